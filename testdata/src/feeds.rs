//! Synthetic vulnerability feeds (OSV, GHSA, NVD 2.0 as JSON lines) and their day-to-day
//! churn.
//!
//! Every feed renders rows of one shared "universe" of vulnerabilities: row `u` has the same
//! CVE id, package and class in all three feeds. A feed of day `d` is computed directly from
//! `(seed, kind, base row count, d)`:
//! - each row's revisions form a Bernoulli(1 %) process over days, drawn with geometric
//!   gaps from a per-row stream, so finding the state at day `d` costs `O(1 + d / 100)`;
//! - each day withdraws a few rows (kept, marked withdrawn/rejected) and removes one;
//! - each day adds a few rows, inserted after pseudo-random anchor rows.

use crate::rng::{Sm, h};
use crate::text::{DAY, Push, T0, civil_from_days, day_start, days_from_civil};
use crate::words::{NAME_PARTS, ORGS, VULN_CLASSES, WORDS};
use std::collections::HashMap;
use std::io::{self, Write};

/// Daily probability that a given row is revised.
pub const DAILY_REVISION_P: f64 = 0.01;

const TAG_VULN: u64 = 0x7675_6c6e;
const TAG_BUMP: u64 = 0x6275_6d70;
const TAG_WITHDRAW: u64 = 0x7769_7468;
const TAG_ADD: u64 = 0x6164_6464;
/// Universe indices of rows added after day 0 start here.
const ADDED_BASE: u64 = 1 << 48;
/// Rows rendered to estimate the average row size.
const CALIBRATION_ROWS: u64 = 256;

/// Which feed format a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeedKind {
    /// OSV schema 1.6 records (`feeds/osv/osv-all.jsonl`).
    Osv,
    /// GitHub Security Advisory REST records (`feeds/ghsa/ghsa-all.jsonl`).
    Ghsa,
    /// NVD CVE API 2.0 records (`feeds/nvd/nvd-2.0.jsonl`).
    Nvd,
}

impl FeedKind {
    /// All feed kinds, in tree order.
    pub const ALL: [FeedKind; 3] = [FeedKind::Osv, FeedKind::Ghsa, FeedKind::Nvd];

    /// Path of this feed inside a release tree.
    pub fn rel_path(self) -> &'static str {
        match self {
            FeedKind::Osv => "feeds/osv/osv-all.jsonl",
            FeedKind::Ghsa => "feeds/ghsa/ghsa-all.jsonl",
            FeedKind::Nvd => "feeds/nvd/nvd-2.0.jsonl",
        }
    }

    /// Share (percent) of the tree's feed bytes this feed gets.
    pub(crate) fn share_percent(self) -> u64 {
        match self {
            FeedKind::Osv => 45,
            FeedKind::Ghsa => 30,
            FeedKind::Nvd => 25,
        }
    }

    fn tag(self) -> u64 {
        match self {
            FeedKind::Osv => 1,
            FeedKind::Ghsa => 2,
            FeedKind::Nvd => 3,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Eco {
    Npm,
    PyPi,
    Go,
    Maven,
    Crates,
}

impl Eco {
    fn osv(self) -> &'static str {
        match self {
            Eco::Npm => "npm",
            Eco::PyPi => "PyPI",
            Eco::Go => "Go",
            Eco::Maven => "Maven",
            Eco::Crates => "crates.io",
        }
    }
    fn github(self) -> &'static str {
        match self {
            Eco::Npm => "npm",
            Eco::PyPi => "pip",
            Eco::Go => "go",
            Eco::Maven => "maven",
            Eco::Crates => "rust",
        }
    }
    fn purl_type(self) -> &'static str {
        match self {
            Eco::Npm => "npm",
            Eco::PyPi => "pypi",
            Eco::Go => "golang",
            Eco::Maven => "maven",
            Eco::Crates => "cargo",
        }
    }
    fn cpe_target(self) -> &'static str {
        match self {
            Eco::Npm => "node.js",
            Eco::PyPi => "python",
            Eco::Go => "go",
            Eco::Maven => "java",
            Eco::Crates => "rust",
        }
    }
}

// CVSS 3.1 metric tables: (name letters, NVD words).
const AV: [(&str, &str); 4] = [
    ("N", "NETWORK"),
    ("A", "ADJACENT_NETWORK"),
    ("L", "LOCAL"),
    ("P", "PHYSICAL"),
];
const AC: [(&str, &str); 2] = [("L", "LOW"), ("H", "HIGH")];
const PR: [(&str, &str); 3] = [("N", "NONE"), ("L", "LOW"), ("H", "HIGH")];
const UI: [(&str, &str); 2] = [("N", "NONE"), ("R", "REQUIRED")];
const SC: [(&str, &str); 2] = [("U", "UNCHANGED"), ("C", "CHANGED")];
const CIA: [(&str, &str); 3] = [("H", "HIGH"), ("L", "LOW"), ("N", "NONE")];
const METRIC_CARD: [u8; 8] = [4, 2, 3, 2, 2, 3, 3, 3];
const METRIC_NAMES: [&str; 8] = ["AV", "AC", "PR", "UI", "S", "C", "I", "A"];

fn metric_letter(m: usize, v: u8) -> &'static str {
    let v = v as usize;
    match m {
        0 => AV[v % 4].0,
        1 => AC[v % 2].0,
        2 => PR[v % 3].0,
        3 => UI[v % 2].0,
        4 => SC[v % 2].0,
        _ => CIA[v % 3].0,
    }
}

fn metric_word(m: usize, v: u8) -> &'static str {
    let v = v as usize;
    match m {
        0 => AV[v % 4].1,
        1 => AC[v % 2].1,
        2 => PR[v % 3].1,
        3 => UI[v % 2].1,
        4 => SC[v % 2].1,
        _ => CIA[v % 3].1,
    }
}

fn roundup(x: f64) -> u32 {
    let i = (x * 100_000.0).round() as i64;
    if i % 10_000 == 0 {
        (i / 10_000) as u32
    } else {
        (i / 10_000 + 1) as u32
    }
}

/// CVSS 3.1 (base score, exploitability, impact), each in tenths.
fn cvss_scores(v: &[u8; 8]) -> (u32, u32, u32) {
    let av = [0.85, 0.62, 0.55, 0.2][v[0] as usize % 4];
    let ac = [0.77, 0.44][v[1] as usize % 2];
    let changed = v[4] % 2 == 1;
    let pr = match (v[2] % 3, changed) {
        (0, _) => 0.85,
        (1, false) => 0.62,
        (1, true) => 0.68,
        (_, false) => 0.27,
        (_, true) => 0.5,
    };
    let ui = [0.85, 0.62][v[3] as usize % 2];
    let cia = |x: u8| [0.56, 0.22, 0.0][x as usize % 3];
    let iss = 1.0 - (1.0 - cia(v[5])) * (1.0 - cia(v[6])) * (1.0 - cia(v[7]));
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02f64).powi(15)
    } else {
        6.42 * iss
    };
    let expl = 8.22 * av * ac * pr * ui;
    let base = if impact <= 0.0 {
        0
    } else if changed {
        roundup((1.08 * (impact + expl)).min(10.0))
    } else {
        roundup((impact + expl).min(10.0))
    };
    let r1 = |x: f64| (x.max(0.0) * 10.0).round() as u32;
    (base, r1(expl), r1(impact))
}

fn severity_word(score: u32) -> (&'static str, &'static str) {
    match score {
        0 => ("NONE", "none"),
        1..=39 => ("LOW", "low"),
        40..=69 => ("MEDIUM", "moderate"),
        70..=89 => ("HIGH", "high"),
        _ => ("CRITICAL", "critical"),
    }
}

/// The stable facts of one vulnerability, shared by all feeds.
struct Vuln {
    u: u64,
    eco: Eco,
    org: &'static str,
    p1: &'static str,
    p2: &'static str,
    scoped: bool,
    class: usize,
    cve_year: u64,
    cve_num: u64,
    ghsa: [u8; 14],
    published: i64,
    base_modified: i64,
    vector: [u8; 8],
    intro: Option<(u64, u64)>,
    fixed: (u64, u64, u64),
    n_versions: u64,
    issue: u64,
    commit: [u64; 3],
    text_key: u64,
    sentences: u64,
    reporter: &'static str,
    epss: u64,
    cpe_uuid: [u64; 2],
}

const GHSA_ALPHABET: &[u8; 20] = b"23456789cfghjmpqrvwx";

impl Vuln {
    fn new(seed: u64, u: u64) -> Vuln {
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

    fn push_ghsa(&self, out: &mut Vec<u8>) {
        out.s("GHSA-");
        out.extend_from_slice(&self.ghsa);
    }

    fn push_cve(&self, out: &mut Vec<u8>) {
        out.s("CVE-");
        out.u(self.cve_year);
        out.push(b'-');
        out.u0(self.cve_num, 4);
    }

    fn push_osv_id(&self, out: &mut Vec<u8>) {
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
    fn push_pkg(&self, out: &mut Vec<u8>) {
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

    fn push_purl(&self, out: &mut Vec<u8>) {
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

    fn push_repo(&self, out: &mut Vec<u8>) {
        out.s("https://github.com/");
        out.s(self.org);
        out.push(b'/');
        out.s(self.p1);
        out.push(b'-');
        out.s(self.p2);
    }

    fn push_version(out: &mut Vec<u8>, v: (u64, u64, u64)) {
        out.u(v.0);
        out.push(b'.');
        out.u(v.1);
        out.push(b'.');
        out.u(v.2);
    }

    fn intro_version(&self) -> Option<(u64, u64, u64)> {
        self.intro.map(|(a, b)| (a, b, 0))
    }

    fn push_summary(&self, st: &RowState, out: &mut Vec<u8>) {
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
    fn push_details(&self, st: &RowState, out: &mut Vec<u8>) {
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

    fn push_vector(v: &[u8; 8], out: &mut Vec<u8>) {
        out.s("CVSS:3.1");
        for (m, name) in METRIC_NAMES.iter().enumerate() {
            out.push(b'/');
            out.s(name);
            out.push(b':');
            out.s(metric_letter(m, v[m]));
        }
    }

    fn push_commit_url(&self, i: usize, out: &mut Vec<u8>) {
        self.push_repo(out);
        out.s("/commit/");
        let c = self.commit[i % 3];
        out.hexn(c, 16);
        out.hexn(c.rotate_left(17) ^ 0x5bd1_e995, 16);
        out.hexn(c.rotate_left(41), 8);
    }
}

/// The per-feed mutable state of a row at a given day.
struct RowState {
    modified: i64,
    text_rev: u64,
    vector: [u8; 8],
    extra_refs: u64,
    withdrawn: Option<i64>,
    revisions: u64,
}

fn event_time(key: u64, day: u32) -> i64 {
    day_start(day) - DAY + (Sm::new(key).below(DAY as u64 - 1200) + 600) as i64
}

impl RowState {
    /// Replays the row's revisions up to `day` (and its withdrawal, if any).
    fn at(seed: u64, kind: FeedKind, v: &Vuln, day: u32, withdrawn_day: Option<u32>) -> RowState {
        let mut st = RowState {
            modified: v.base_modified,
            text_rev: 0,
            vector: v.vector,
            extra_refs: 0,
            withdrawn: None,
            revisions: 0,
        };
        let start = if v.u >= ADDED_BASE {
            ((v.u - ADDED_BASE) >> 8) as u32
        } else {
            0
        };
        let stop = withdrawn_day.unwrap_or(u32::MAX).min(day.saturating_add(1));
        if start < stop {
            let ln = (1.0 - DAILY_REVISION_P).ln();
            let mut r = Sm::new(h(&[seed, TAG_BUMP, kind.tag(), v.u]));
            let mut k = u64::from(start);
            loop {
                k += r.geometric(ln);
                if k >= u64::from(stop) {
                    break;
                }
                let ev = r.next();
                st.apply(ev, k as u32);
            }
        }
        if let Some(w) = withdrawn_day {
            let t = event_time(h(&[seed, TAG_WITHDRAW, v.u, u64::from(w)]), w);
            st.withdrawn = Some(t);
            st.modified = st.modified.max(t);
        }
        st
    }

    fn apply(&mut self, ev: u64, day: u32) {
        let mut r = Sm::new(ev);
        self.revisions += 1;
        self.modified = self.modified.max(event_time(r.next(), day));
        match r.below(100) {
            0..=44 => {
                // A rescoring: one impact/exploitability metric moves.
                let m = r.pick(&[1usize, 2, 3, 5, 6, 7]);
                let card = u64::from(METRIC_CARD[m]);
                let cur = u64::from(self.vector[m]);
                self.vector[m] = ((cur + 1 + r.below(card - 1)) % card) as u8;
                if self.vector[5] == 2 && self.vector[6] == 2 && self.vector[7] == 2 {
                    self.vector[5] = 1;
                }
            }
            45..=79 => self.text_rev = r.next() | 1,
            _ => self.extra_refs += 1,
        }
    }
}

#[derive(Clone, Copy)]
struct Withdrawal {
    day: u32,
    removed: bool,
}

/// The full row plan of one feed at one day.
struct Plan {
    seed: u64,
    kind: FeedKind,
    n_base: u64,
    day: u32,
    withdrawn: HashMap<u64, Withdrawal>,
    /// (anchor row, universe index), sorted.
    added: Vec<(u64, u64)>,
}

impl Plan {
    fn new(seed: u64, kind: FeedKind, n_base: u64, day: u32) -> Plan {
        let mut withdrawn: HashMap<u64, Withdrawal> = HashMap::new();
        let mut added = Vec::new();
        if n_base > 0 {
            for k in 1..=day {
                let mut r = Sm::new(h(&[seed, TAG_WITHDRAW, kind.tag(), u64::from(k)]));
                let marks = 2 + r.below(2);
                for _ in 0..marks {
                    let u = r.below(n_base);
                    withdrawn.entry(u).or_insert(Withdrawal {
                        day: k,
                        removed: false,
                    });
                }
                let u = r.below(n_base);
                let e = withdrawn.entry(u).or_insert(Withdrawal {
                    day: k,
                    removed: true,
                });
                e.removed = true;
                let mut a = Sm::new(h(&[seed, TAG_ADD, kind.tag(), u64::from(k)]));
                let adds = 3 + a.below(4);
                for j in 0..adds {
                    added.push((a.below(n_base), ADDED_BASE + (u64::from(k) << 8) + j));
                }
            }
        }
        added.sort_unstable();
        Plan {
            seed,
            kind,
            n_base,
            day,
            withdrawn,
            added,
        }
    }

    /// Calls `f` with every row of the feed, in file order, rendered as in [`Plan::write`]
    /// (newline-terminated).
    fn each_row(&self, mut f: impl FnMut(&RowKey, &[u8]) -> io::Result<()>) -> io::Result<()> {
        let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
        let mut one = |u: u64, withdrawn: Option<u32>| -> io::Result<()> {
            let v = Vuln::new(self.seed, u);
            buf.clear();
            render_vuln_row(self.seed, self.kind, &v, self.day, withdrawn, &mut buf);
            let mut id = Vec::with_capacity(24);
            match self.kind {
                FeedKind::Osv => v.push_osv_id(&mut id),
                FeedKind::Ghsa => v.push_ghsa(&mut id),
                FeedKind::Nvd => v.push_cve(&mut id),
            }
            let key = RowKey {
                // Ids are built from ASCII parts only.
                id: String::from_utf8_lossy(&id).into_owned(),
                cve_year: v.cve_year,
            };
            f(&key, &buf)
        };
        let mut next_add = 0usize;
        for u in 0..self.n_base {
            match self.withdrawn.get(&u) {
                Some(w) if w.removed => {}
                Some(w) => one(u, Some(w.day))?,
                None => one(u, None)?,
            }
            while next_add < self.added.len() && self.added[next_add].0 == u {
                one(self.added[next_add].1, None)?;
                next_add += 1;
            }
        }
        Ok(())
    }

    /// Writes the feed, streaming through a bounded buffer. Returns bytes written.
    fn write(&self, out: &mut impl Write) -> io::Result<u64> {
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut total = 0u64;
        let mut next_add = 0usize;
        for u in 0..self.n_base {
            match self.withdrawn.get(&u) {
                Some(w) if w.removed => {}
                Some(w) => render_row(self.seed, self.kind, u, self.day, Some(w.day), &mut buf),
                None => render_row(self.seed, self.kind, u, self.day, None, &mut buf),
            }
            while next_add < self.added.len() && self.added[next_add].0 == u {
                render_row(
                    self.seed,
                    self.kind,
                    self.added[next_add].1,
                    self.day,
                    None,
                    &mut buf,
                );
                next_add += 1;
            }
            if buf.len() >= (1 << 20) - 16 * 1024 {
                out.write_all(&buf)?;
                total += buf.len() as u64;
                buf.clear();
            }
        }
        out.write_all(&buf)?;
        total += buf.len() as u64;
        Ok(total)
    }
}

/// Renders one row (one JSON line, newline-terminated) of `kind` for universe index `u`.
fn render_row(
    seed: u64,
    kind: FeedKind,
    u: u64,
    day: u32,
    withdrawn: Option<u32>,
    out: &mut Vec<u8>,
) {
    render_vuln_row(seed, kind, &Vuln::new(seed, u), day, withdrawn, out);
}

/// [`render_row`] for an already drawn vulnerability.
fn render_vuln_row(
    seed: u64,
    kind: FeedKind,
    v: &Vuln,
    day: u32,
    withdrawn: Option<u32>,
    out: &mut Vec<u8>,
) {
    let st = RowState::at(seed, kind, v, day, withdrawn);
    match kind {
        FeedKind::Osv => render_osv(v, &st, out),
        FeedKind::Ghsa => render_ghsa(v, &st, out),
        FeedKind::Nvd => render_nvd(v, &st, out),
    }
    out.push(b'\n');
}

fn render_osv(v: &Vuln, st: &RowState, out: &mut Vec<u8>) {
    out.s("{\"schema_version\":\"1.6.0\",\"id\":\"");
    v.push_osv_id(out);
    out.s("\",\"modified\":\"");
    out.ts(st.modified);
    out.s("\",\"published\":\"");
    out.ts(v.published);
    out.s("\",");
    if let Some(w) = st.withdrawn {
        out.s("\"withdrawn\":\"");
        out.ts(w);
        out.s("\",");
    }
    out.s("\"aliases\":[\"");
    v.push_cve(out);
    if !matches!(v.eco, Eco::Npm | Eco::Maven) {
        out.s("\",\"");
        v.push_ghsa(out);
    }
    out.s("\"],\"summary\":\"");
    v.push_summary(st, out);
    out.s("\",\"details\":\"");
    v.push_details(st, out);
    out.s("\",\"severity\":[{\"type\":\"CVSS_V3\",\"score\":\"");
    Vuln::push_vector(&st.vector, out);
    out.s("\"}],\"affected\":[{\"package\":{\"ecosystem\":\"");
    out.s(v.eco.osv());
    out.s("\",\"name\":\"");
    v.push_pkg(out);
    out.s("\",\"purl\":\"");
    v.push_purl(out);
    out.s("\"},\"ranges\":[{\"type\":\"");
    out.s(if matches!(v.eco, Eco::PyPi | Eco::Maven) {
        "ECOSYSTEM"
    } else {
        "SEMVER"
    });
    out.s("\",\"events\":[{\"introduced\":\"");
    match v.intro_version() {
        Some(i) => Vuln::push_version(out, i),
        None => out.s("0"),
    }
    out.s("\"},{\"fixed\":\"");
    Vuln::push_version(out, v.fixed);
    out.s("\"}]}]");
    if v.n_versions > 0 {
        out.s(",\"versions\":[");
        let (ma, mi) = v.intro.unwrap_or((v.fixed.0, 0));
        for i in 0..v.n_versions {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            Vuln::push_version(out, (ma, mi + i / 5, i % 5));
            out.push(b'"');
        }
        out.s("]");
    }
    out.s(",\"database_specific\":{\"source\":\"https://github.com/github/advisory-database/blob/main/advisories/github-reviewed/");
    let (year, month, _) = civil_from_days(v.published.div_euclid(DAY));
    out.u(year.max(0) as u64);
    out.push(b'/');
    out.u0(u64::from(month), 2);
    out.push(b'/');
    v.push_ghsa(out);
    out.push(b'/');
    v.push_ghsa(out);
    out.s(".json\"}}],\"references\":[{\"type\":\"ADVISORY\",\"url\":\"https://nvd.nist.gov/vuln/detail/");
    v.push_cve(out);
    out.s("\"},{\"type\":\"WEB\",\"url\":\"");
    v.push_repo(out);
    out.s("/issues/");
    out.u(v.issue);
    out.s("\"},{\"type\":\"FIX\",\"url\":\"");
    v.push_commit_url(0, out);
    for i in 0..st.extra_refs {
        out.s("\"},{\"type\":\"WEB\",\"url\":\"");
        v.push_repo(out);
        out.s("/pull/");
        out.u(v.issue + 1 + i);
    }
    out.s("\"},{\"type\":\"PACKAGE\",\"url\":\"");
    v.push_repo(out);
    let (score, _, _) = cvss_scores(&st.vector);
    out.s("\"}],\"database_specific\":{\"cwe_ids\":[\"CWE-");
    out.u(u64::from(VULN_CLASSES[v.class].1));
    out.s("\"],\"severity\":\"");
    out.s(severity_word(score).0);
    out.s("\",\"github_reviewed\":true,\"github_reviewed_at\":\"");
    out.ts(v.published + 3600);
    out.s("\",\"nvd_published_at\":\"");
    out.ts(v.published + 7200);
    out.s("\"}}");
}

fn render_ghsa(v: &Vuln, st: &RowState, out: &mut Vec<u8>) {
    let (score, _, _) = cvss_scores(&st.vector);
    out.s("{\"ghsa_id\":\"");
    v.push_ghsa(out);
    out.s("\",\"cve_id\":\"");
    v.push_cve(out);
    out.s("\",\"url\":\"https://api.github.com/advisories/");
    v.push_ghsa(out);
    out.s("\",\"html_url\":\"https://github.com/advisories/");
    v.push_ghsa(out);
    out.s("\",\"repository_advisory_url\":null,\"summary\":\"");
    v.push_summary(st, out);
    out.s("\",\"description\":\"");
    v.push_details(st, out);
    out.s("\",\"type\":\"reviewed\",\"severity\":\"");
    out.s(severity_word(score).1);
    out.s("\",\"source_code_location\":\"");
    v.push_repo(out);
    out.s("\",\"identifiers\":[{\"value\":\"");
    v.push_ghsa(out);
    out.s("\",\"type\":\"GHSA\"},{\"value\":\"");
    v.push_cve(out);
    out.s("\",\"type\":\"CVE\"}],\"references\":[\"https://nvd.nist.gov/vuln/detail/");
    v.push_cve(out);
    out.s("\",\"");
    v.push_commit_url(1, out);
    for i in 0..st.extra_refs {
        out.s("\",\"");
        v.push_repo(out);
        out.s("/pull/");
        out.u(v.issue + 1 + i);
    }
    out.s("\",\"https://github.com/advisories/");
    v.push_ghsa(out);
    out.s("\"],\"published_at\":\"");
    out.ts(v.published);
    out.s("\",\"updated_at\":\"");
    out.ts(st.modified);
    out.s("\",\"github_reviewed_at\":\"");
    out.ts(v.published + 3600);
    out.s("\",\"nvd_published_at\":\"");
    out.ts(v.published + 7200);
    out.s("\",\"withdrawn_at\":");
    match st.withdrawn {
        Some(w) => {
            out.push(b'"');
            out.ts(w);
            out.push(b'"');
        }
        None => out.s("null"),
    }
    out.s(",\"vulnerabilities\":[{\"package\":{\"ecosystem\":\"");
    out.s(v.eco.github());
    out.s("\",\"name\":\"");
    v.push_pkg(out);
    out.s("\"},\"vulnerable_version_range\":\"");
    if let Some(i) = v.intro_version() {
        out.s(">= ");
        Vuln::push_version(out, i);
        out.s(", ");
    }
    out.s("< ");
    Vuln::push_version(out, v.fixed);
    out.s("\",\"first_patched_version\":\"");
    Vuln::push_version(out, v.fixed);
    out.s(
        "\",\"vulnerable_functions\":[]}],\"cvss_severities\":{\"cvss_v3\":{\"vector_string\":\"",
    );
    Vuln::push_vector(&st.vector, out);
    out.s("\",\"score\":");
    out.tenth(score);
    out.s("},\"cvss_v4\":{\"vector_string\":null,\"score\":0.0}},\"cvss\":{\"vector_string\":\"");
    Vuln::push_vector(&st.vector, out);
    out.s("\",\"score\":");
    out.tenth(score);
    out.s("},\"cwes\":[{\"cwe_id\":\"CWE-");
    let (_, cwe, cwe_name) = VULN_CLASSES[v.class];
    out.u(u64::from(cwe));
    out.s("\",\"name\":");
    out.q(cwe_name);
    out.s("}],\"credits\":[{\"user\":{\"login\":\"");
    out.s(v.reporter);
    out.s("-sec\",\"type\":\"User\"},\"type\":\"reporter\"}],\"epss\":{\"percentage\":0.");
    out.u0(v.epss, 5);
    out.s(",\"percentile\":0.");
    out.u0((v.epss * 7 + 13_000) % 100_000, 5);
    out.s("}}");
}

fn render_nvd(v: &Vuln, st: &RowState, out: &mut Vec<u8>) {
    out.s("{\"cve\":{\"id\":\"");
    v.push_cve(out);
    out.s("\",\"sourceIdentifier\":\"security-advisories@github.com\",\"published\":\"");
    out.ts_nvd(v.published + 7200, (v.text_key % 1000) as u32);
    out.s("\",\"lastModified\":\"");
    out.ts_nvd(st.modified, (st.modified.rem_euclid(997)) as u32);
    out.s("\",\"vulnStatus\":\"");
    if st.withdrawn.is_some() {
        out.s("Rejected\",\"cveTags\":[],\"descriptions\":[{\"lang\":\"en\",\"value\":\"** REJECT ** This candidate was withdrawn by its CNA. Further investigation showed that it was not a security issue in ");
        v.push_pkg(out);
        out.s(". Notes: none.\"}],\"metrics\":{},\"references\":[]}}");
        return;
    }
    out.s(if st.revisions > 0 {
        "Modified"
    } else {
        "Analyzed"
    });
    out.s("\",\"cveTags\":[],\"descriptions\":[{\"lang\":\"en\",\"value\":\"");
    v.push_details(st, out);
    out.s("\"},{\"lang\":\"es\",\"value\":\"");
    v.push_summary(st, out);
    let (score, expl, impact) = cvss_scores(&st.vector);
    out.s("\"}],\"metrics\":{\"cvssMetricV31\":[{\"source\":\"nvd@nist.gov\",\"type\":\"Primary\",\"cvssData\":{\"version\":\"3.1\",\"vectorString\":\"");
    Vuln::push_vector(&st.vector, out);
    out.s("\",\"baseScore\":");
    out.tenth(score);
    out.s(",\"baseSeverity\":\"");
    out.s(severity_word(score).0);
    const NVD_KEYS: [&str; 8] = [
        "attackVector",
        "attackComplexity",
        "privilegesRequired",
        "userInteraction",
        "scope",
        "confidentialityImpact",
        "integrityImpact",
        "availabilityImpact",
    ];
    for (m, key) in NVD_KEYS.iter().enumerate() {
        out.s("\",\"");
        out.s(key);
        out.s("\":\"");
        out.s(metric_word(m, st.vector[m]));
    }
    out.s("\"},\"exploitabilityScore\":");
    out.tenth(expl);
    out.s(",\"impactScore\":");
    out.tenth(impact);
    out.s("}]},\"weaknesses\":[{\"source\":\"nvd@nist.gov\",\"type\":\"Primary\",\"description\":[{\"lang\":\"en\",\"value\":\"CWE-");
    out.u(u64::from(VULN_CLASSES[v.class].1));
    out.s("\"}]}],\"configurations\":[{\"nodes\":[{\"operator\":\"OR\",\"negate\":false,\"cpeMatch\":[{\"vulnerable\":true,\"criteria\":\"cpe:2.3:a:");
    out.s(v.org);
    out.push(b':');
    out.s(v.p1);
    out.push(b'-');
    out.s(v.p2);
    out.s(":*:*:*:*:*:");
    out.s(v.eco.cpe_target());
    out.s(":*:*\",");
    if let Some(i) = v.intro_version() {
        out.s("\"versionStartIncluding\":\"");
        Vuln::push_version(out, i);
        out.s("\",");
    }
    out.s("\"versionEndExcluding\":\"");
    Vuln::push_version(out, v.fixed);
    out.s("\",\"matchCriteriaId\":\"");
    let [a, b] = v.cpe_uuid;
    out.hexn(a >> 32, 8);
    out.push(b'-');
    out.hexn(a >> 16, 4);
    out.push(b'-');
    out.hexn(a, 4);
    out.push(b'-');
    out.hexn(b >> 48, 4);
    out.push(b'-');
    out.hexn(b, 12);
    out.s("\"}]}]}],\"references\":[{\"url\":\"");
    v.push_commit_url(2, out);
    out.s("\",\"source\":\"security-advisories@github.com\",\"tags\":[\"Patch\"]},{\"url\":\"https://github.com/advisories/");
    v.push_ghsa(out);
    out.s("\",\"source\":\"security-advisories@github.com\",\"tags\":[\"Third Party Advisory\"]}");
    for i in 0..st.extra_refs {
        out.s(",{\"url\":\"");
        v.push_repo(out);
        out.s("/pull/");
        out.u(v.issue + 1 + i);
        out.s("\",\"source\":\"security-advisories@github.com\",\"tags\":[\"Issue Tracking\"]}");
    }
    out.s("]}}");
}

/// What the compressed variant needs to know of a row besides its bytes.
pub(crate) struct RowKey {
    /// The row's id in its feed (OSV id, GHSA id, CVE id).
    pub id: String,
    /// The year of its CVE id (NVD's yearly files split on it).
    pub cve_year: u64,
}

/// Calls `f` with every row of the `kind` feed of `day` for a universe of `n_base` base
/// rows: the rows [`write_feed_rows`] writes, in the same order, each newline-terminated.
pub(crate) fn for_each_row(
    seed: u64,
    kind: FeedKind,
    n_base: u64,
    day: u32,
    f: impl FnMut(&RowKey, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    Plan::new(seed, kind, n_base, day).each_row(f)
}

/// Number of base rows a feed of `kind` needs to be about `target_bytes` long
/// (estimated from the first rows of the universe, so it depends on the seed only).
pub fn base_rows(seed: u64, kind: FeedKind, target_bytes: u64) -> u64 {
    if target_bytes == 0 {
        return 0;
    }
    let mut buf = Vec::with_capacity(512 * 1024);
    for u in 0..CALIBRATION_ROWS {
        render_row(seed, kind, u, 0, None, &mut buf);
    }
    let avg = (buf.len() as u64 / CALIBRATION_ROWS).max(1);
    (target_bytes / avg).max(1)
}

/// Writes the `kind` feed of `day` for a universe of `n_base` base rows.
pub fn write_feed_rows(
    out: &mut impl Write,
    seed: u64,
    kind: FeedKind,
    n_base: u64,
    day: u32,
) -> io::Result<u64> {
    Plan::new(seed, kind, n_base, day).write(out)
}

/// Writes the `kind` feed of `day`, sized to about `target_bytes` at day 0 (later days
/// grow by the rows added since). Returns the bytes written. Feeds of different days with
/// the same `(seed, kind, target_bytes)` show the daily churn of a release tree.
pub fn write_feed(
    out: &mut impl Write,
    kind: FeedKind,
    seed: u64,
    day: u32,
    target_bytes: u64,
) -> io::Result<u64> {
    let n = base_rows(seed, kind, target_bytes);
    write_feed_rows(out, seed, kind, n, day)
}

/// Writes about `bytes` bytes of OSV-like JSON lines (whole lines; stops at the first
/// line end at or past `bytes`). Returns the bytes written.
pub fn write_feed_like(out: &mut impl Write, seed: u64, bytes: u64) -> io::Result<u64> {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut total = 0u64;
    let mut u = 0u64;
    while total + (buf.len() as u64) < bytes {
        render_row(seed, FeedKind::Osv, u, 0, None, &mut buf);
        u += 1;
        if buf.len() >= (1 << 20) - 16 * 1024 {
            out.write_all(&buf)?;
            total += buf.len() as u64;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    total += buf.len() as u64;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvss_matches_reference_scores() {
        // AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H = 9.8 (3.9 / 5.9)
        assert_eq!(cvss_scores(&[0, 0, 0, 0, 0, 0, 0, 0]), (98, 39, 59));
        // AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N = 6.1 (XSS)
        assert_eq!(cvss_scores(&[0, 0, 0, 1, 1, 1, 1, 2]).0, 61);
        // AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H = 7.5
        assert_eq!(cvss_scores(&[0, 0, 0, 0, 0, 2, 2, 0]).0, 75);
        // AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N = 1.8
        assert_eq!(cvss_scores(&[2, 1, 2, 1, 0, 1, 2, 2]).0, 18);
    }

    #[test]
    fn rows_are_valid_json() {
        for kind in FeedKind::ALL {
            let mut buf = Vec::new();
            write_feed(&mut buf, kind, 5, 4, 200_000).unwrap();
            let text = String::from_utf8(buf).unwrap();
            let mut n = 0;
            for line in text.lines() {
                let v: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("{kind:?}: {e}: {line}"));
                assert!(v.is_object());
                n += 1;
            }
            assert!(n > 50, "{kind:?}: {n} rows");
        }
    }

    #[test]
    fn feed_like_is_about_the_requested_size() {
        let mut buf = Vec::new();
        let n = write_feed_like(&mut buf, 1, 300_000).unwrap();
        assert_eq!(n as usize, buf.len());
        assert!((300_000..305_000).contains(&n), "{n}");
        assert!(buf.ends_with(b"\n"));
    }

    #[test]
    fn ids_are_unique() {
        let mut buf = Vec::new();
        write_feed(&mut buf, FeedKind::Nvd, 9, 30, 2_000_000).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let mut ids = std::collections::HashSet::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = v["cve"]["id"].as_str().unwrap().to_string();
            assert!(ids.insert(id.clone()), "duplicate {id}");
        }
    }
}
