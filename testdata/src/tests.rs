//! Tree-level tests: determinism, day-to-day churn, layout rules.

use super::*;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

/// rel path -> (bytes, mode, mtime); directories have empty bytes and a trailing '/'.
pub(crate) type Snapshot = BTreeMap<String, (Vec<u8>, u32, i64)>;

pub(crate) fn snapshot(root: &Path) -> Snapshot {
    fn walk(root: &Path, dir: &Path, out: &mut Snapshot) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
            let mode = md.permissions().mode() & 0o7777;
            if md.is_dir() {
                out.insert(format!("{rel}/"), (Vec::new(), mode, md.mtime()));
                walk(root, &p, out);
            } else {
                assert!(md.is_file(), "{rel} is not a regular file");
                out.insert(rel, (fs::read(&p).unwrap(), mode, md.mtime()));
            }
        }
    }
    let mut out = Snapshot::new();
    walk(root, root, &mut out);
    out
}

pub(crate) fn gen_tree(spec: &TreeSpec) -> (tempfile::TempDir, TreeSummary, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(spec, dir.path()).unwrap();
    let snap = snapshot(dir.path());
    (dir, summary, snap)
}

pub(crate) fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub(crate) fn text(snap: &Snapshot, rel: &str) -> String {
    String::from_utf8(
        snap.get(rel)
            .unwrap_or_else(|| panic!("missing {rel}"))
            .0
            .clone(),
    )
    .unwrap()
}

pub(crate) fn row_id(kind: FeedKind, line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let id = match kind {
        FeedKind::Osv => &v["id"],
        FeedKind::Ghsa => &v["ghsa_id"],
        FeedKind::Nvd => &v["cve"]["id"],
    };
    id.as_str().unwrap().to_string()
}

pub(crate) fn layer_digests(snap: &Snapshot) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for name in IMAGES {
        for (arch, _) in ARCHES {
            let dir = format!("images/{name}/{arch}");
            let index: serde_json::Value =
                serde_json::from_str(&text(snap, &format!("{dir}/index.json"))).unwrap();
            let mdigest = index["manifests"][0]["digest"].as_str().unwrap();
            let mpath = format!(
                "{dir}/blobs/sha256/{}",
                mdigest.trim_start_matches("sha256:")
            );
            let manifest: serde_json::Value = serde_json::from_str(&text(snap, &mpath)).unwrap();
            for l in manifest["layers"].as_array().unwrap() {
                out.insert(l["digest"].as_str().unwrap().to_string());
            }
        }
    }
    out
}

#[test]
fn generation_is_deterministic() {
    let spec = TreeSpec::small(11).on_day(2);
    let (_a, sa, snap_a) = gen_tree(&spec);
    let (_b, sb, snap_b) = gen_tree(&spec);
    assert_eq!(sa, sb);
    assert_eq!(
        snap_a.keys().collect::<Vec<_>>(),
        snap_b.keys().collect::<Vec<_>>()
    );
    for (k, va) in &snap_a {
        assert!(va == &snap_b[k], "{k} differs between runs");
    }
    let files = snap_a.keys().filter(|k| !k.ends_with('/')).count() as u64;
    let bytes: u64 = snap_a.values().map(|v| v.0.len() as u64).sum();
    assert_eq!(sa, TreeSummary { files, bytes });
    // Small means small and fast to use.
    assert!(
        (3 << 20..8 << 20).contains(&bytes),
        "small tree is {bytes} bytes"
    );
}

#[test]
fn layout_modes_mtimes_and_digests() {
    let spec = TreeSpec::small(3).on_day(1);
    let (_d, _s, snap) = gen_tree(&spec);
    let mtime = spec.mtime();
    assert_eq!(mtime, T0 + 86_400);
    for (k, (bytes, mode, mt)) in &snap {
        assert_eq!(*mt, mtime, "{k} mtime");
        let want = if k.ends_with('/') {
            0o755
        } else {
            file_mode(k)
        };
        assert_eq!(*mode, want, "{k} mode {mode:o}");
        if let Some(target) = k.strip_suffix(".sha256") {
            let line = String::from_utf8(bytes.clone()).unwrap();
            let name = Path::new(target).file_name().unwrap().to_str().unwrap();
            assert_eq!(
                line,
                format!("{}  {name}\n", sha_hex(&snap[target].0)),
                "{k}"
            );
        }
        if let Some(d) = k.split("/blobs/sha256/").nth(1).filter(|d| !d.is_empty()) {
            assert_eq!(d, sha_hex(bytes), "{k} is not named by its digest");
        }
    }
    assert_eq!(
        snap["secrets/policy-gateway/policy-gateway-dpop.pem"].1,
        0o600
    );
    assert_eq!(snap["scripts/run-python-analyzer-smoke.sh"].1, 0o755);
    for f in [
        "feeds/osv/osv-all.jsonl",
        "feeds/ghsa/ghsa-all.jsonl",
        "feeds/nvd/nvd-2.0.jsonl",
    ] {
        assert!(snap.contains_key(&format!("{f}.sha256")), "{f} sidecar");
    }
    for rel in [
        "certificates/russian_trusted_bundle.pem",
        "etc/policy-gateway.yaml",
        "etc/authority.yaml.sample",
        "docs/policy/gateway.md",
        "scripts/check-advisory-raw-duplicates.js",
    ] {
        assert!(snap.contains_key(rel), "missing {rel}");
    }

    // Debug store: sidecar valid, every artefact present with its digest and size.
    let dm = text(&snap, "debug/debug-manifest.json");
    assert_eq!(
        text(&snap, "debug/debug-manifest.json.sha256"),
        format!("{}  debug-manifest.json\n", sha_hex(dm.as_bytes()))
    );
    let dm: serde_json::Value = serde_json::from_str(&dm).unwrap();
    let arts = dm["artifacts"].as_array().unwrap();
    assert_eq!(arts.len(), 12);
    for a in arts {
        let id = a["buildId"].as_str().unwrap();
        assert_eq!(id.len(), 40);
        let path = a["path"].as_str().unwrap();
        assert_eq!(
            path,
            format!("debug/.build-id/{}/{}.debug", &id[..2], &id[2..])
        );
        let bytes = &snap[path].0;
        assert_eq!(a["sha256"].as_str().unwrap(), sha_hex(bytes));
        assert_eq!(a["size"].as_u64().unwrap(), bytes.len() as u64);
        assert!(a["platform"].as_str().unwrap().starts_with("linux/"));
        assert!(a["image"].as_str().unwrap().contains(':'));
    }

    // Plug-ins: manifest digest is the DLL's, sizes in the seed's range.
    for (x, _, dll_size, pdb_size) in PLUGINS {
        let id = plugin_id(x);
        let dir = format!("{PLUGIN_ROOT}/{id}");
        let dll = &snap[&format!("{dir}/{id}.dll")].0;
        assert_eq!(dll.len(), dll_size);
        assert_eq!(&dll[..2], b"MZ");
        assert_eq!(snap[&format!("{dir}/{id}.pdb")].0.len(), pdb_size);
        let m: serde_json::Value =
            serde_json::from_str(&text(&snap, &format!("{dir}/manifest.json"))).unwrap();
        assert_eq!(m["sha256"].as_str().unwrap(), sha_hex(dll));
        assert_eq!(
            m["entryPoint"]["assembly"].as_str().unwrap(),
            format!("{id}.dll")
        );
        assert!(m["id"].is_string() && m["version"].is_string());
    }

    // Images: every descriptor points at an existing blob with the right size; shared
    // layers are byte-identical across images; config diff_ids match the layers.
    let mut seen_layers: HashMap<String, usize> = HashMap::new();
    for name in IMAGES {
        for (arch, oci_arch) in ARCHES {
            let dir = format!("images/{name}/{arch}");
            let blob = |d: &str| {
                &snap[&format!("{dir}/blobs/sha256/{}", d.trim_start_matches("sha256:"))].0
            };
            let index: serde_json::Value =
                serde_json::from_str(&text(&snap, &format!("{dir}/index.json"))).unwrap();
            let md = &index["manifests"][0];
            assert_eq!(md["platform"]["architecture"].as_str().unwrap(), oci_arch);
            let mbytes = blob(md["digest"].as_str().unwrap());
            assert_eq!(md["size"].as_u64().unwrap(), mbytes.len() as u64);
            let manifest: serde_json::Value = serde_json::from_slice(mbytes).unwrap();
            let cd = manifest["config"]["digest"].as_str().unwrap();
            let config: serde_json::Value = serde_json::from_slice(blob(cd)).unwrap();
            let layers = manifest["layers"].as_array().unwrap();
            assert_eq!(
                config["rootfs"]["diff_ids"].as_array().unwrap().len(),
                layers.len()
            );
            for (l, diff) in layers
                .iter()
                .zip(config["rootfs"]["diff_ids"].as_array().unwrap())
            {
                let d = l["digest"].as_str().unwrap();
                assert_eq!(d, diff.as_str().unwrap());
                let b = blob(d);
                assert_eq!(l["size"].as_u64().unwrap(), b.len() as u64);
                assert_eq!(&b[257..262], b"ustar");
                *seen_layers.entry(d.to_string()).or_default() += 1;
            }
        }
    }
    assert!(
        seen_layers.values().any(|&n| n == 4),
        "base layer shared by four images"
    );
    assert_eq!(seen_layers.len(), 2 * 7, "7 distinct layers per arch");
}

/// Asserts the churn between two consecutive days and returns the changed plug-in.
fn check_churn(d0: &Snapshot, d1: &Snapshot) {
    // Feeds: differ, share > 95 % of lines, ~1 % of rows revised, a few added/withdrawn.
    let mut rows = 0usize;
    let mut revised = 0usize;
    for kind in FeedKind::ALL {
        let a = text(d0, kind.rel_path());
        let b = text(d1, kind.rel_path());
        assert_ne!(a, b, "{kind:?} unchanged");
        let lines_b: BTreeSet<&str> = b.lines().collect();
        let shared = a.lines().filter(|l| lines_b.contains(l)).count();
        let n0 = a.lines().count();
        assert!(
            shared * 100 > n0 * 95,
            "{kind:?}: only {shared}/{n0} lines shared"
        );
        let map_a: HashMap<String, &str> = a.lines().map(|l| (row_id(kind, l), l)).collect();
        let map_b: HashMap<String, &str> = b.lines().map(|l| (row_id(kind, l), l)).collect();
        assert_eq!(map_a.len(), n0, "{kind:?}: duplicate ids");
        let added = map_b.keys().filter(|k| !map_a.contains_key(*k)).count();
        let removed = map_a.keys().filter(|k| !map_b.contains_key(*k)).count();
        let changed = map_a
            .iter()
            .filter(|(k, l)| map_b.get(*k).is_some_and(|m| m != *l))
            .count();
        assert!((3..=6).contains(&added), "{kind:?}: {added} added");
        assert_eq!(removed, 1, "{kind:?}: removed");
        let withdrawn = b.matches("\"withdrawn\":\"").count()
            + b.matches("\"withdrawn_at\":\"").count()
            + b.matches("\"vulnStatus\":\"Rejected\"").count();
        let withdrawn0 = a.matches("\"withdrawn\":\"").count()
            + a.matches("\"withdrawn_at\":\"").count()
            + a.matches("\"vulnStatus\":\"Rejected\"").count();
        assert!(withdrawn > withdrawn0, "{kind:?}: nothing withdrawn");
        // Changed rows are scattered: not all in one place.
        let positions: Vec<usize> = a
            .lines()
            .enumerate()
            .filter(|(_, l)| !lines_b.contains(l))
            .map(|(i, _)| i)
            .collect();
        if let (Some(first), Some(last)) = (positions.first(), positions.last()) {
            assert!(last - first > n0 / 2, "{kind:?}: changes not scattered");
        }
        rows += n0;
        revised += changed;
    }
    let pct = revised as f64 * 100.0 / rows as f64;
    assert!(
        (0.5..2.0).contains(&pct),
        "{revised}/{rows} rows revised = {pct:.2} %"
    );

    // Exactly one plug-in rebuilt; its version moved.
    let mut rebuilt = Vec::new();
    for (x, _, _, _) in PLUGINS {
        let id = plugin_id(x);
        let dll = format!("{PLUGIN_ROOT}/{id}/{id}.dll");
        if d0[&dll].0 != d1[&dll].0 {
            rebuilt.push(x);
            let diff = d0[&dll]
                .0
                .iter()
                .zip(&d1[&dll].0)
                .filter(|(a, b)| a != b)
                .count();
            assert!(diff < 600, "{x}: {diff} bytes changed");
            let m = |s: &Snapshot| -> serde_json::Value {
                serde_json::from_str(&text(s, &format!("{PLUGIN_ROOT}/{id}/manifest.json")))
                    .unwrap()
            };
            assert_ne!(m(d0)["version"], m(d1)["version"]);
        }
    }
    assert_eq!(rebuilt.len(), 1, "rebuilt plug-ins: {rebuilt:?}");
    let plugin_dir = format!("{PLUGIN_ROOT}/{}/", plugin_id(rebuilt[0]));

    // Exactly one layer blob replaced.
    let l0 = layer_digests(d0);
    let l1 = layer_digests(d1);
    assert_eq!(l1.difference(&l0).count(), 1, "new layers");
    assert_eq!(l0.difference(&l1).count(), 1, "dropped layers");

    // Everything else is byte-identical.
    let changed_image = d1
        .keys()
        .find(|k| !d0.contains_key(*k) && k.starts_with("images/"))
        .map(|k| k.split("/blobs/").next().unwrap().to_string())
        .unwrap();
    for (k, v1) in d1.iter().filter(|(k, _)| !k.ends_with('/')) {
        let expected_change =
            k.starts_with("feeds/") || k.starts_with(&plugin_dir) || k.starts_with(&changed_image);
        if !expected_change {
            assert_eq!(d0.get(k).map(|v| &v.0), Some(&v1.0), "{k} changed");
        }
    }
}

#[test]
fn day_to_day_churn() {
    let base = TreeSpec::small(5);
    let (_a, _, d0) = gen_tree(&base);
    let (_b, _, d1) = gen_tree(&base.on_day(1));
    check_churn(&d0, &d1);
}

#[test]
fn distant_days_are_generated_directly() {
    let base = TreeSpec::small(8);
    let (_a, s3, d3) = gen_tree(&base.on_day(3));
    let (_b, s3b, d3b) = gen_tree(&base.on_day(3));
    assert_eq!(s3, s3b);
    assert!(d3 == d3b, "day 3 is not reproducible");
    let (_c, _, d4) = gen_tree(&base.on_day(4));
    check_churn(&d3, &d4);
    // Three rebuilds happened by day 3: plug-in versions add up to them.
    let rebuilds: u64 = PLUGINS
        .iter()
        .map(|(x, ..)| {
            let id = plugin_id(x);
            let m: serde_json::Value =
                serde_json::from_str(&text(&d3, &format!("{PLUGIN_ROOT}/{id}/manifest.json")))
                    .unwrap();
            m["version"]
                .as_str()
                .unwrap()
                .rsplit('.')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(rebuilds, 3);
}

#[test]
fn refuses_a_non_empty_output_directory() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("stale"), b"x").unwrap();
    let err = generate(&TreeSpec::small(1), dir.path()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    let missing: PathBuf = dir.path().join("new/tree");
    assert!(generate(&TreeSpec::small(1), &missing).is_ok());
}

#[test]
fn total_bytes_scales_the_tree() {
    let n = 12u64 << 20;
    let spec = TreeSpec::with_total_bytes(2, n);
    assert_eq!(
        spec.feed_bytes + spec.image_bytes + spec.debug_bytes + FIXED_BYTES,
        n
    );
    let dir = tempfile::tempdir().unwrap();
    let s = generate(&spec, dir.path()).unwrap();
    let ratio = s.bytes as f64 / n as f64;
    assert!((0.9..1.1).contains(&ratio), "{} bytes for {n}", s.bytes);
    let feeds: u64 = FeedKind::ALL
        .iter()
        .map(|k| fs::metadata(dir.path().join(k.rel_path())).unwrap().len())
        .sum();
    assert!(
        feeds as f64 > 0.6 * s.bytes as f64,
        "feeds are {feeds} of {}",
        s.bytes
    );
}

#[test]
fn far_days_work_and_absurd_days_are_refused() {
    let spec = TreeSpec::small(4).on_day(365);
    let (_d, _, snap) = gen_tree(&spec);
    let versions: u64 = PLUGINS
        .iter()
        .map(|(x, ..)| {
            let id = plugin_id(x);
            let m: serde_json::Value =
                serde_json::from_str(&text(&snap, &format!("{PLUGIN_ROOT}/{id}/manifest.json")))
                    .unwrap();
            m["version"]
                .as_str()
                .unwrap()
                .rsplit('.')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(versions, 365, "one plug-in rebuild per day");
    let dir = tempfile::tempdir().unwrap();
    let err = generate(&TreeSpec::small(4).on_day(MAX_DAY + 1), dir.path()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

/// One SHA-256 over every path, mode and content of a snapshot, in path order.
pub(crate) fn tree_digest(snap: &Snapshot) -> String {
    let mut hsh = Sha256::new();
    for (k, (bytes, mode, _)) in snap {
        hsh.update(k.as_bytes());
        hsh.update([0]);
        hsh.update(mode.to_le_bytes());
        hsh.update((bytes.len() as u64).to_le_bytes());
        hsh.update(bytes);
    }
    hex::encode(hsh.finalize())
}

#[test]
fn plain_trees_are_pinned() {
    // The uncompressed variant is what every existing test and benchmark measures: its
    // bytes must not move when the generator learns new variants. These digests were taken
    // before the compressed variant existed.
    for (spec, want) in [
        (
            TreeSpec::small(11).on_day(2),
            "f21e3d23c605777e24562172a1bd85da0cd7e14d921e67a125088ab60a2d3e90",
        ),
        (
            TreeSpec::small(5).on_day(1),
            "81728d912e8ace842fdd234702b1523187a6674fc72b512380bc18f01665169f",
        ),
    ] {
        let (_d, _s, snap) = gen_tree(&spec);
        assert_eq!(tree_digest(&snap), want, "{spec:?}");
    }
}
