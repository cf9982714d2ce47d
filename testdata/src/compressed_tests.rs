//! Tests of the compressed variant: deterministic, every gz/zip/zst file decodes to the
//! plain variant's content of the same day (so the churn inside is the plain churn), OCI
//! descriptors and diff_ids match the bytes, both deflate producers are used, and the
//! wheel changes in exactly two members a day.

use super::*;
use crate::tests::{Snapshot, gen_tree, layer_digests, row_id, sha_hex, text};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read, Write};

fn gunzip(bytes: &[u8]) -> (Vec<u8>, u32, Option<String>) {
    let mut d = flate2::read::GzDecoder::new(bytes);
    let mut out = Vec::new();
    d.read_to_end(&mut out).unwrap();
    let hd = d.header().unwrap();
    let name = hd
        .filename()
        .map(|n| String::from_utf8(n.to_vec()).unwrap());
    (out, hd.mtime(), name)
}

fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let name = f.name().unwrap().to_string();
            assert_eq!(f.compression(), zip::CompressionMethod::Deflated, "{name}");
            let mut out = Vec::new();
            f.read_to_end(&mut out).unwrap();
            (name, out)
        })
        .collect()
}

fn bytes<'a>(snap: &'a Snapshot, rel: &str) -> &'a [u8] {
    &snap.get(rel).unwrap_or_else(|| panic!("missing {rel}")).0
}

/// The tree's layer descriptors, per image directory: (mediaType, digest, size, diff_id).
fn layers(snap: &Snapshot) -> BTreeMap<String, Vec<(String, String, u64, String)>> {
    let mut out = BTreeMap::new();
    for name in IMAGES {
        for (arch, _) in ARCHES {
            let dir = format!("images/{name}/{arch}");
            let blob = |d: &str| bytes(snap, &format!("{dir}/blobs/sha256/{}", &d[7..])).to_vec();
            let index: serde_json::Value =
                serde_json::from_str(&text(snap, &format!("{dir}/index.json"))).unwrap();
            let md = &index["manifests"][0];
            let mbytes = blob(md["digest"].as_str().unwrap());
            assert_eq!(md["size"].as_u64().unwrap(), mbytes.len() as u64);
            let manifest: serde_json::Value = serde_json::from_slice(&mbytes).unwrap();
            let cbytes = blob(manifest["config"]["digest"].as_str().unwrap());
            assert_eq!(
                manifest["config"]["size"].as_u64().unwrap(),
                cbytes.len() as u64
            );
            let config: serde_json::Value = serde_json::from_slice(&cbytes).unwrap();
            let diffs = config["rootfs"]["diff_ids"].as_array().unwrap();
            let ls = manifest["layers"].as_array().unwrap();
            assert_eq!(diffs.len(), ls.len());
            let v = ls
                .iter()
                .zip(diffs)
                .map(|(l, d)| {
                    (
                        l["mediaType"].as_str().unwrap().to_string(),
                        l["digest"].as_str().unwrap().to_string(),
                        l["size"].as_u64().unwrap(),
                        d.as_str().unwrap().to_string(),
                    )
                })
                .collect();
            out.insert(dir, v);
        }
    }
    out
}

/// Asserts that compressed tree `c` carries plain tree `p`'s content (same spec and day).
fn check_same_content(p: &Snapshot, c: &Snapshot, day: u32) {
    // Sidecars of the compressed tree are valid; blobs are named by their digest.
    for (k, (b, _, _)) in c {
        if let Some(target) = k.strip_suffix(".sha256") {
            let name = Path::new(target).file_name().unwrap().to_str().unwrap();
            let line = String::from_utf8(b.clone()).unwrap();
            assert_eq!(
                line,
                format!("{}  {name}\n", sha_hex(bytes(c, target))),
                "{k}"
            );
        }
        if let Some(d) = k.split("/blobs/sha256/").nth(1).filter(|d| !d.is_empty()) {
            assert_eq!(d, sha_hex(b), "{k} is not named by its digest");
        }
    }

    // GHSA: the zstd feed is the plain feed.
    let plain_ghsa = bytes(p, FeedKind::Ghsa.rel_path());
    assert_eq!(zstd::decode_all(bytes(c, GHSA_ZST)).unwrap(), plain_ghsa);

    // OSV: one member per plain row, in order, named by the row's id.
    let plain_osv = text(p, FeedKind::Osv.rel_path());
    let members = unzip(bytes(c, OSV_ZIP));
    let lines: Vec<&str> = plain_osv.split_inclusive('\n').collect();
    assert_eq!(members.len(), lines.len());
    for ((name, body), line) in members.iter().zip(&lines) {
        assert_eq!(body, line.as_bytes());
        assert_eq!(name, &format!("{}.json", row_id(FeedKind::Osv, line)));
    }

    // NVD: yearly gzip files (gzip -9 with name and the day's time) holding JSON arrays
    // whose elements, one per line, are the plain rows of that CVE year.
    let mut rows: Vec<String> = Vec::new();
    let mut years = 0;
    for (k, (b, _, _)) in c.range(format!("{NVD_DIR}/")..) {
        if !k.starts_with(&format!("{NVD_DIR}/")) {
            break;
        }
        if !k.ends_with(".json.gz") {
            continue;
        }
        years += 1;
        let file = k.rsplit('/').next().unwrap();
        let (json, mtime, name) = gunzip(b);
        assert_eq!(b[8], 2, "{k}: XFL of level 9");
        assert_eq!(i64::from(mtime), day_start(day), "{k}");
        assert_eq!(name.as_deref(), file.strip_suffix(".gz"), "{k}");
        let arr: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let year = file
            .trim_start_matches("nvdcve-2.0-")
            .trim_end_matches(".json.gz");
        for e in arr.as_array().unwrap() {
            let id = e["cve"]["id"].as_str().unwrap();
            assert!(id.starts_with(&format!("CVE-{year}-")), "{id} in {file}");
        }
        let s = String::from_utf8(json).unwrap();
        let inner = s
            .strip_prefix("[\n")
            .unwrap()
            .strip_suffix("\n]\n")
            .unwrap();
        rows.extend(inner.split(",\n").map(str::to_string));
    }
    assert!(years >= 20, "{years} yearly files");
    let mut plain_rows: Vec<String> = text(p, FeedKind::Nvd.rel_path())
        .lines()
        .map(str::to_string)
        .collect();
    plain_rows.sort();
    rows.sort();
    assert_eq!(rows, plain_rows);

    // Images: gzip layers whose tars are the plain variant's layers, from both producers.
    let (pl, cl) = (layers(p), layers(c));
    let mut producers = BTreeSet::new();
    for (dir, cv) in &cl {
        let pv = &pl[dir];
        assert_eq!(pv.len(), cv.len());
        for (pd, (mt, digest, size, diff)) in pv.iter().zip(cv) {
            assert_eq!(mt, "application/vnd.oci.image.layer.v1.tar+gzip");
            let blob = bytes(c, &format!("{dir}/blobs/sha256/{}", &digest[7..]));
            assert_eq!(*size, blob.len() as u64);
            let (tar, mtime, name) = gunzip(blob);
            assert_eq!((mtime, name), (0, None), "layer gzip header");
            assert_eq!(diff, &format!("sha256:{}", sha_hex(&tar)));
            assert_eq!(diff, &pd.1, "{dir}: the tar is not the plain layer");
            let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            z.write_all(&tar).unwrap();
            let zlib = z.finish().unwrap();
            // Both headers carry no name and mtime 0; compare the deflate streams.
            producers.insert(if zlib[10..] == blob[10..] {
                "zlib"
            } else {
                "other"
            });
        }
    }
    assert_eq!(
        producers,
        BTreeSet::from(["other", "zlib"]),
        "layers come from two producers"
    );

    // Everything outside feeds/ and images/ is the plain tree's, plus the wheel.
    for (k, v) in p {
        if !(k.starts_with("feeds/") || k.starts_with("images/")) {
            assert_eq!(c.get(k).map(|x| &x.0), Some(&v.0), "{k}");
        }
    }
    for k in c.keys() {
        assert!(
            p.contains_key(k)
                || k.starts_with("feeds/")
                || k.starts_with("images/")
                || k.starts_with("plugins/scanner/wheels"),
            "unexpected {k}"
        );
    }
}

#[test]
fn compressed_variant_is_deterministic_and_distinct() {
    let spec = TreeSpec::small(11).on_day(2).with_compressed(true);
    let (_a, sa, a) = gen_tree(&spec);
    let (_b, sb, b) = gen_tree(&spec);
    assert_eq!(sa, sb);
    assert!(a == b, "two runs of the compressed variant differ");
    let (_p, _, p) = gen_tree(&spec.with_compressed(false));
    assert_ne!(crate::tests::tree_digest(&a), crate::tests::tree_digest(&p));
    assert!(a.contains_key(WHEEL) && a.contains_key(OSV_ZIP) && a.contains_key(GHSA_ZST));
    assert!(!a.contains_key(FeedKind::Osv.rel_path()));
}

#[test]
fn compressed_files_hold_the_plain_content_and_its_churn() {
    let base = TreeSpec::small(5);
    let mut comp = Vec::new();
    for day in [0, 1] {
        let (_p, _, p) = gen_tree(&base.on_day(day));
        let (_c, _, c) = gen_tree(&base.on_day(day).with_compressed(true));
        check_same_content(&p, &c, day);
        comp.push(c);
    }
    let (c0, c1) = (&comp[0], &comp[1]);

    // Every compressed feed file changed, and the rows' edits are scattered over the
    // NVD years (not one file).
    for f in [OSV_ZIP, GHSA_ZST] {
        assert_ne!(bytes(c0, f), bytes(c1, f), "{f}");
    }
    let nvd_changed = c1
        .iter()
        .filter(|(k, _)| k.starts_with("feeds/nvd/") && k.ends_with(".gz"))
        .filter(|(k, v)| c0.get(*k).map(|x| &x.0) != Some(&v.0))
        .count();
    assert!(nvd_changed >= 3, "{nvd_changed} NVD files changed");

    // Exactly one (gzip) layer blob replaced.
    let (l0, l1) = (layer_digests(c0), layer_digests(c1));
    assert_eq!(l1.difference(&l0).count(), 1, "new layers");
    assert_eq!(l0.difference(&l1).count(), 1, "dropped layers");

    // The wheel: exactly one module and RECORD changed; RECORD lists every member.
    let (w0, w1) = (unzip(bytes(c0, WHEEL)), unzip(bytes(c1, WHEEL)));
    assert_eq!(
        w0.iter().map(|m| &m.0).collect::<Vec<_>>(),
        w1.iter().map(|m| &m.0).collect::<Vec<_>>()
    );
    let changed: Vec<&str> = w0
        .iter()
        .zip(&w1)
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, _)| a.0.as_str())
        .collect();
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert!(changed[0].starts_with(&format!("{WHEEL_PACKAGE}/")) && changed[0].ends_with(".py"));
    assert!(changed[1].ends_with(".dist-info/RECORD"));
    let record = String::from_utf8(w1.last().unwrap().1.clone()).unwrap();
    for (name, body) in &w1[..w1.len() - 1] {
        let line = record
            .lines()
            .find(|l| l.starts_with(&format!("{name},")))
            .unwrap_or_else(|| panic!("{name} not in RECORD"));
        let digest = {
            use base64ct::{Base64UrlUnpadded, Encoding};
            Base64UrlUnpadded::encode_string(&crate::fsutil::sha256(body))
        };
        assert_eq!(line, format!("{name},sha256={digest},{}", body.len()));
    }
    // A few lines of the module, not all of it.
    let (a, b) = (
        &w0.iter().find(|m| m.0 == changed[0]).unwrap().1,
        &w1.iter().find(|m| m.0 == changed[0]).unwrap().1,
    );
    let (la, lb): (BTreeSet<&[u8]>, BTreeSet<&[u8]>) = (
        a.split(|&x| x == b'\n').collect(),
        b.split(|&x| x == b'\n').collect(),
    );
    let gone = la.difference(&lb).count();
    assert!((1..=8).contains(&gone), "{gone} module lines changed");
}
