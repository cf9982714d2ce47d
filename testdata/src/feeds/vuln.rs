//! One synthetic vulnerability ([`Vuln`]): the facts all three feeds share (ecosystem,
//! package, CVE and GHSA ids, versions, vector, text keys), drawn from `(seed, universe
//! index)` alone, and the pieces of JSON each feed's row is written from.

use super::cvss::*;
use super::timeline::RowState;
use super::*;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Eco {
    Npm,
    PyPi,
    Go,
    Maven,
    Crates,
}

impl Eco {
    pub(super) fn osv(self) -> &'static str {
        match self {
            Eco::Npm => "npm",
            Eco::PyPi => "PyPI",
            Eco::Go => "Go",
            Eco::Maven => "Maven",
            Eco::Crates => "crates.io",
        }
    }
    pub(super) fn github(self) -> &'static str {
        match self {
            Eco::Npm => "npm",
            Eco::PyPi => "pip",
            Eco::Go => "go",
            Eco::Maven => "maven",
            Eco::Crates => "rust",
        }
    }
    pub(super) fn purl_type(self) -> &'static str {
        match self {
            Eco::Npm => "npm",
            Eco::PyPi => "pypi",
            Eco::Go => "golang",
            Eco::Maven => "maven",
            Eco::Crates => "cargo",
        }
    }
    pub(super) fn cpe_target(self) -> &'static str {
        match self {
            Eco::Npm => "node.js",
            Eco::PyPi => "python",
            Eco::Go => "go",
            Eco::Maven => "java",
            Eco::Crates => "rust",
        }
    }
}

/// The stable facts of one vulnerability, shared by all feeds.
pub(super) struct Vuln {
    pub(super) u: u64,
    pub(super) eco: Eco,
    pub(super) org: &'static str,
    pub(super) p1: &'static str,
    pub(super) p2: &'static str,
    pub(super) scoped: bool,
    pub(super) class: usize,
    pub(super) cve_year: u64,
    pub(super) cve_num: u64,
    pub(super) ghsa: [u8; 14],
    pub(super) published: i64,
    pub(super) base_modified: i64,
    pub(super) vector: [u8; 8],
    pub(super) intro: Option<(u64, u64)>,
    pub(super) fixed: (u64, u64, u64),
    pub(super) n_versions: u64,
    pub(super) issue: u64,
    pub(super) commit: [u64; 3],
    pub(super) text_key: u64,
    pub(super) sentences: u64,
    pub(super) reporter: &'static str,
    pub(super) epss: u64,
    pub(super) cpe_uuid: [u64; 2],
}

pub(super) const GHSA_ALPHABET: &[u8; 20] = b"23456789cfghjmpqrvwx";

impl Vuln {
    pub(super) fn new(seed: u64, u: u64) -> Vuln {
        let mut r = Sm::new(h(&[seed, TAG_VULN, u]));
        let eco = match r.below(100) {
            0..=29 => Eco::Npm,
            30..=54 => Eco::PyPi,
            55..=74 => Eco::Maven,
            75..=89 => Eco::Go,
            _ => Eco::Crates,
        };
        let (cve_year, cve_num, published) = if u >= ADDED_BASE {
            let k = (u - ADDED_BASE) >> 8;
            let j = (u - ADDED_BASE) & 0xff;
            let t = day_start(k as u32) - DAY + r.range(600, DAY as u64 - 600) as i64;
            (2025, 100_000 + k * 16 + j, t)
        } else {
            let year = 2005 + u % 20;
            let start = days_from_civil(year as i64, 1, 1) * DAY;
            let t = start + r.below(365) as i64 * DAY + r.below(DAY as u64) as i64;
            (year, 1000 + u / 20, t.min(T0 - 30 * DAY))
        };
        let since = ((T0 - DAY - published).max(0) as u64).max(1);
        let base_modified = if u >= ADDED_BASE {
            published
        } else {
            published + r.below(since) as i64
        };
        let mut ghsa = [b'-'; 14];
        let g = r.next();
        for (i, idx) in [0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13]
            .into_iter()
            .enumerate()
        {
            ghsa[idx] = GHSA_ALPHABET[((g >> (5 * i)) % 20) as usize];
        }
        let mut vector = [0u8; 8];
        vector[0] = [0, 0, 0, 0, 0, 0, 1, 2, 2, 3][r.below(10) as usize];
        vector[1] = u8::from(r.chance(20));
        vector[2] = [0, 0, 0, 1, 1, 2][r.below(6) as usize];
        vector[3] = u8::from(r.chance(35));
        vector[4] = u8::from(r.chance(15));
        for x in &mut vector[5..8] {
            *x = r.below(3) as u8;
        }
        if vector[5] == 2 && vector[6] == 2 && vector[7] == 2 {
            vector[7] = 0;
        }
        let fixed = (r.below(12), r.below(30), r.range(1, 40));
        let intro = if r.chance(60) {
            Some((fixed.0.saturating_sub(r.below(2)), r.below(fixed.1 + 1)))
        } else {
            None
        };
        let n_versions = if matches!(eco, Eco::PyPi | Eco::Maven) && r.chance(40) {
            r.range(3, 24)
        } else {
            0
        };
        Vuln {
            u,
            eco,
            org: r.pick(ORGS),
            p1: r.pick(NAME_PARTS),
            p2: r.pick(NAME_PARTS),
            scoped: r.chance(20),
            class: r.below(VULN_CLASSES.len() as u64) as usize,
            cve_year,
            cve_num,
            ghsa,
            published,
            base_modified,
            vector,
            intro,
            fixed,
            n_versions,
            issue: r.range(10, 9000),
            commit: [r.next(), r.next(), r.next()],
            text_key: r.next(),
            sentences: r.range(2, 6),
            reporter: r.pick(NAME_PARTS),
            epss: r.range(4, 97_000),
            cpe_uuid: [r.next(), r.next()],
        }
    }

    pub(super) fn push_ghsa(&self, out: &mut Vec<u8>) {
        out.s("GHSA-");
        out.extend_from_slice(&self.ghsa);
    }

    pub(super) fn push_cve(&self, out: &mut Vec<u8>) {
        out.s("CVE-");
        out.u(self.cve_year);
        out.push(b'-');
        out.u0(self.cve_num, 4);
    }

    pub(super) fn push_osv_id(&self, out: &mut Vec<u8>) {
        match self.eco {
            Eco::Npm | Eco::Maven => self.push_ghsa(out),
            Eco::PyPi => {
                out.s("PYSEC-");
                out.u(self.cve_year);
                out.push(b'-');
                out.u(self.cve_num);
            }
            Eco::Go => {
                out.s("GO-");
                out.u(self.cve_year);
                out.push(b'-');
                out.u0(self.cve_num, 4);
            }
            Eco::Crates => {
                out.s("RUSTSEC-");
                out.u(self.cve_year);
                out.push(b'-');
                out.u0(self.cve_num, 4);
            }
        }
    }

    /// The package name (no quoting; all parts are JSON-safe).
    pub(super) fn push_pkg(&self, out: &mut Vec<u8>) {
        match self.eco {
            Eco::Npm => {
                if self.scoped {
                    out.push(b'@');
                    out.s(self.org);
                    out.push(b'/');
                }
                out.s(self.p1);
                out.push(b'-');
                out.s(self.p2);
            }
            Eco::PyPi => {
                out.s("py");
                out.s(self.p1);
                out.push(b'-');
                out.s(self.p2);
            }
            Eco::Go => {
                out.s("github.com/");
                out.s(self.org);
                out.push(b'/');
                out.s(self.p1);
                out.s(self.p2);
            }
            Eco::Maven => {
                out.s("org.");
                out.s(self.org);
                out.push(b'.');
                out.s(self.p1);
                out.push(b':');
                out.s(self.p1);
                out.push(b'-');
                out.s(self.p2);
            }
            Eco::Crates => {
                out.s(self.p1);
                out.push(b'_');
                out.s(self.p2);
            }
        }
    }

    pub(super) fn push_purl(&self, out: &mut Vec<u8>) {
        out.s("pkg:");
        out.s(self.eco.purl_type());
        out.push(b'/');
        match self.eco {
            Eco::Npm if self.scoped => {
                out.s("%40");
                out.s(self.org);
                out.push(b'/');
                out.s(self.p1);
                out.push(b'-');
                out.s(self.p2);
            }
            Eco::Maven => {
                out.s("org.");
                out.s(self.org);
                out.push(b'.');
                out.s(self.p1);
                out.push(b'/');
                out.s(self.p1);
                out.push(b'-');
                out.s(self.p2);
            }
            _ => self.push_pkg(out),
        }
    }

    pub(super) fn push_repo(&self, out: &mut Vec<u8>) {
        out.s("https://github.com/");
        out.s(self.org);
        out.push(b'/');
        out.s(self.p1);
        out.push(b'-');
        out.s(self.p2);
    }

    pub(super) fn push_version(out: &mut Vec<u8>, v: (u64, u64, u64)) {
        out.u(v.0);
        out.push(b'.');
        out.u(v.1);
        out.push(b'.');
        out.u(v.2);
    }

    pub(super) fn intro_version(&self) -> Option<(u64, u64, u64)> {
        self.intro.map(|(a, b)| (a, b, 0))
    }

    pub(super) fn push_summary(&self, st: &RowState, out: &mut Vec<u8>) {
        out.s(VULN_CLASSES[self.class].0);
        out.s(" in ");
        self.push_pkg(out);
        if st.text_rev != 0 {
            let mut r = Sm::new(st.text_rev);
            out.s(" via ");
            out.s(r.pick(WORDS));
            out.push(b' ');
            out.s(r.pick(WORDS));
        }
    }

    /// Advisory prose: one fixed opening sentence, then word-list sentences; a text
    /// revision rewrites one of them.
    pub(super) fn push_details(&self, st: &RowState, out: &mut Vec<u8>) {
        self.push_pkg(out);
        out.s(" before ");
        Self::push_version(out, self.fixed);
        out.s(" is vulnerable to ");
        out.s(VULN_CLASSES[self.class].0);
        out.s(".");
        let rewritten = if st.text_rev != 0 {
            Some(st.text_rev % self.sentences)
        } else {
            None
        };
        for s in 0..self.sentences {
            let key = if rewritten == Some(s) {
                st.text_rev
            } else {
                h(&[self.text_key, s])
            };
            let mut r = Sm::new(key);
            let n = r.range(8, 22);
            out.push(b' ');
            for w in 0..n {
                let word = r.pick(WORDS);
                if w == 0 {
                    let mut cs = word.chars();
                    if let Some(c) = cs.next() {
                        let mut tmp = [0u8; 4];
                        out.s(c.to_ascii_uppercase().encode_utf8(&mut tmp));
                        out.s(cs.as_str());
                    }
                } else {
                    out.push(b' ');
                    out.s(word);
                }
            }
            out.push(b'.');
        }
    }

    pub(super) fn push_vector(v: &[u8; 8], out: &mut Vec<u8>) {
        out.s("CVSS:3.1");
        for (m, name) in METRIC_NAMES.iter().enumerate() {
            out.push(b'/');
            out.s(name);
            out.push(b':');
            out.s(metric_letter(m, v[m]));
        }
    }

    pub(super) fn push_commit_url(&self, i: usize, out: &mut Vec<u8>) {
        self.push_repo(out);
        out.s("/commit/");
        let c = self.commit[i % 3];
        out.hexn(c, 16);
        out.hexn(c.rotate_left(17) ^ 0x5bd1_e995, 16);
        out.hexn(c.rotate_left(41), 8);
    }
}
