//! Real inputs to attack: [`Kit`] (a bundle built by `ouk` with its decompressed tar and
//! member table), [`Corpus`] (signed kits of three consecutive days and the deltas between
//! them), the per-process [`small_corpus`], and [`fat_kit`] (a kit with incompressible
//! bulk, for disk-space tests).

use std::fs;
use std::path::{Path, PathBuf};

use super::scratch::scratch;
use super::{build_kit, gunzip, gzip, make_delta, tar};

/// A real bundle (kit or delta) with its decompressed archive.
#[derive(Debug, Clone)]
pub struct Kit {
    /// The bundle, next to its sidecars.
    pub bundle: PathBuf,
    /// Its bytes.
    pub gz: Vec<u8>,
    /// The decompressed tar.
    pub tar: Vec<u8>,
    /// Members in archive order.
    pub members: Vec<tar::Member>,
    /// Offset of the end-of-archive marker.
    pub trailer: usize,
    /// The generation a successful import of it activates.
    pub generation: String,
    /// Its version.
    pub version: String,
    /// The tar recompressed the way mutants are (to recognise a mutation that changed
    /// nothing).
    pub regz: Vec<u8>,
}

impl Kit {
    /// Load a bundle built by `ouk`.
    pub fn load(bundle: &Path) -> Kit {
        let gz = fs::read(bundle).unwrap();
        let tar = gunzip(bundle);
        let (members, trailer) = tar::parse(&tar);
        let mut kit = Kit {
            bundle: bundle.to_path_buf(),
            gz,
            tar,
            members,
            trailer,
            generation: String::new(),
            version: String::new(),
            regz: Vec::new(),
        };
        kit.regz = gzip(&kit.tar);
        let doc = if let Some(m) = kit.member("manifest/offline-manifest.json") {
            serde_json::from_slice::<serde_json::Value>(kit.data(m)).unwrap()
        } else {
            let h = kit.member("delta/delta.json").expect("a kit or a delta");
            serde_json::from_slice::<serde_json::Value>(kit.data(h)).unwrap()["target"].clone()
        };
        let field = |a: &str, b: &str| {
            doc.get(a)
                .or_else(|| doc.get(b))
                .and_then(|v| v.as_str())
                .unwrap()
                .to_string()
        };
        kit.generation = field("generationId", "generation");
        kit.version = field("version", "version");
        kit
    }

    /// The member named `name`.
    pub fn member(&self, name: &str) -> Option<&tar::Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// A member's data.
    pub fn data(&self, m: &tar::Member) -> &[u8] {
        &self.tar[m.data..m.data + m.size as usize]
    }

    /// A member's whole bytes (records, header, data, padding).
    pub fn raw(&self, m: &tar::Member) -> &[u8] {
        &self.tar[m.start..m.end]
    }

    /// A sidecar's bytes (`sig`, `sha256`, `metadata.json`).
    pub fn sidecar(&self, ext: &str) -> Vec<u8> {
        fs::read(format!("{}.{ext}", self.bundle.display())).unwrap()
    }

    /// The kit's sidecar manifest and its JWS (from its output directory).
    pub fn sidecar_manifest(&self) -> (Vec<u8>, Vec<u8>) {
        let dir = self.bundle.parent().unwrap().join("manifest");
        (
            fs::read(dir.join("offline-manifest.json")).unwrap(),
            fs::read(dir.join("offline-manifest.json.jws")).unwrap(),
        )
    }

    /// The in-bundle offline manifest (kits only).
    pub fn manifest(&self) -> &[u8] {
        self.data(self.member("manifest/offline-manifest.json").unwrap())
    }

    /// Regular files with data, excluding `except`.
    pub fn files(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].typeflag == b'0' && self.members[i].size > 0)
            .collect()
    }

    /// The archive rebuilt from `parts` (raw member bytes) and an end marker.
    pub fn assemble(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            out.extend_from_slice(p);
        }
        out.extend(tar::end());
        out
    }

    /// Every member's raw bytes, in order.
    pub fn parts(&self) -> Vec<Vec<u8>> {
        self.members.iter().map(|m| self.raw(m).to_vec()).collect()
    }

    /// The members with member `i` replaced by a file `name` holding `data`.
    pub fn with_data(&self, i: usize, data: &[u8]) -> Vec<Vec<u8>> {
        let mut parts = self.parts();
        let m = &self.members[i];
        let mode = {
            let h = &self.tar[m.header + 100..m.header + 108];
            let s: String = h
                .iter()
                .take_while(|&&b| b != 0 && b != b' ')
                .map(|&b| b as char)
                .collect();
            u64::from_str_radix(s.trim(), 8).unwrap_or(0o644)
        };
        parts[i] = tar::file(&m.name, mode, data);
        parts
    }
}

/// Real inputs: kits of days 0, 1 and 2 and the deltas 0->1 and 1->2.
pub struct Corpus {
    /// Where everything lives.
    pub dir: PathBuf,
    /// Day 0 (2025.10.0): what the sandbox host has active.
    pub k0: Kit,
    /// Day 1 (2025.10.1): the kit under attack.
    pub k1: Kit,
    /// Day 2 (2025.10.2).
    pub k2: Kit,
    /// Delta day 0 -> day 1 (the delta under attack).
    pub d01: Kit,
    /// Delta day 1 -> day 2 (a baseline the host does not have).
    pub d12: Kit,
}

impl Corpus {
    /// Build the corpus under `dir` from the testdata tree `spec` (days 0-2).
    pub fn build(dir: &Path, spec: ouk_testdata::TreeSpec) -> Corpus {
        Corpus::build_days(dir, spec, 3)
    }

    /// The same with only days 0 and 1 (`k2` and `d12` are then copies of `k1` and `d01`).
    pub fn build_days(dir: &Path, spec: ouk_testdata::TreeSpec, days: u32) -> Corpus {
        let mut kits = Vec::new();
        for day in 0..days {
            let release = dir.join(format!("release-{day}"));
            if !release.exists() {
                ouk_testdata::generate(&spec.on_day(day), &release).unwrap();
            }
            let bundle = build_kit(
                &release,
                &dir.join(format!("kit-{day}")),
                &format!("2025.10.{day}"),
                true,
            );
            kits.push(Kit::load(&bundle));
        }
        let d01 = make_delta(
            &kits[0].bundle,
            &kits[1].bundle,
            &dir.join("deltas/stella-ouk-2025-10-24.delta.tgz"),
        );
        let d12 = if days > 2 {
            make_delta(
                &kits[1].bundle,
                &kits[2].bundle,
                &dir.join("deltas/stella-ouk-2025-10-25.delta.tgz"),
            )
        } else {
            d01.clone()
        };
        if days < 3 {
            kits.push(kits[1].clone());
        }
        let k2 = kits.pop().unwrap();
        let k1 = kits.pop().unwrap();
        let k0 = kits.pop().unwrap();
        Corpus {
            dir: dir.to_path_buf(),
            k0,
            k1,
            k2,
            d01: Kit::load(&d01),
            d12: Kit::load(&d12),
        }
    }
}

/// The corpus of small kits (testdata `small(7)`, days 0-2) and deltas, built once per test
/// process (a test binary) in a scratch directory removed at exit.
pub fn small_corpus() -> &'static Corpus {
    static C: std::sync::OnceLock<Corpus> = std::sync::OnceLock::new();
    C.get_or_init(|| Corpus::build(&scratch("corpus"), ouk_testdata::TreeSpec::small(7)))
}

/// The day-`day` small tree plus `feeds/blob.bin`, `random_mib` MiB of incompressible
/// bytes (seeded), built as a kit of `version` signed by the fixture key.
pub fn fat_kit(dir: &Path, day: u32, version: &str, random_mib: usize, seed: u64) -> PathBuf {
    use rand::{RngCore, SeedableRng};
    let release = dir.join(format!("release-{version}"));
    ouk_testdata::generate(&ouk_testdata::TreeSpec::small(7).on_day(day), &release).unwrap();
    let mut bytes = vec![0u8; random_mib << 20];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    fs::write(release.join("feeds/blob.bin"), &bytes).unwrap();
    build_kit(&release, &dir.join(format!("kit-{version}")), version, true)
}
