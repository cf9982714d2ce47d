//! The named attacks: one mutant per attack on a real kit and delta (truncation at every
//! structural boundary, swapped members, mix-and-match manifests, foreign signatures,
//! `../` names, links, devices, bombs...), each with the exact exit code it must get.

use super::*;
use crate::common::hostile::corpus::Corpus;
use std::collections::BTreeMap;

use crate::common::hostile::{gzip, sign};

/// Every named attack on the kit `c.k1` and the delta `c.d01` (host: `c.k0` active).
pub fn structured_mutants(c: &Corpus) -> Vec<Mutant> {
    let mut out = Vec::new();
    for (label, kit) in [("kit", &c.k1), ("delta", &c.d01)] {
        let gz = &kit.gz;
        let n = gz.len();
        // Truncation of the compressed file at its structural boundaries.
        for (what, len) in [
            ("empty file", 0),
            ("inside the gzip magic", 1),
            ("inside the gzip header", 5),
            ("right after the gzip header", 10),
            ("first deflate bytes", 12),
            ("mid deflate stream", n / 2),
            ("before the CRC-32 trailer", n - 8),
            ("inside the CRC-32", n - 6),
            ("before ISIZE", n - 4),
            ("last byte missing", n - 1),
        ] {
            out.push(
                Mutant::new(
                    "gz-truncate",
                    format!("{label}: {what} ({len} bytes)"),
                    kit,
                    gz[..len].to_vec(),
                )
                .message("truncated|corrupt|gzip|bundle refused|not a delta|invalid"),
            );
        }
        let mut b = gz.clone();
        b[n - 8] ^= 1;
        out.push(
            Mutant::new("gz-trailer", format!("{label}: CRC-32 bit flipped"), kit, b)
                .message("corrupt"),
        );
        let mut b = gz.clone();
        b[n - 2] ^= 1;
        out.push(
            Mutant::new("gz-trailer", format!("{label}: ISIZE bit flipped"), kit, b)
                .message("corrupt"),
        );
        let mut b = gz.clone();
        b.extend_from_slice(b"garbage after the gzip member");
        out.push(
            Mutant::new(
                "gz-trailing",
                format!("{label}: garbage after the member"),
                kit,
                b,
            )
            .message("after the end"),
        );
        let mut b = gz.clone();
        b.extend(gzip(&tar::end()));
        out.push(
            Mutant::new(
                "gz-trailing",
                format!("{label}: a second gzip member"),
                kit,
                b,
            )
            .message("after the end"),
        );
        let mut b = gz.clone();
        b[0] = 0x1e;
        out.push(
            Mutant::new("gz-header", format!("{label}: bad gzip magic"), kit, b)
                .message("corrupt|gzip|invalid"),
        );
        let mut b = gz.clone();
        b[3] |= 0x02; // FHCRC set: a header CRC that is not there
        out.push(
            Mutant::new(
                "gz-header",
                format!("{label}: FHCRC flag without a CRC"),
                kit,
                b,
            )
            .message("corrupt|gzip|invalid"),
        );
        // Truncation of the tar stream at its structural boundaries (recompressed, so the
        // gzip layer is valid and the tar reader must notice).
        let mid = &kit.members[kit.members.len() / 2];
        let last = kit.members.last().unwrap();
        for (what, cut) in [
            ("at a member's header", mid.start),
            ("inside a header", mid.header + 100),
            ("right after a header", mid.data),
            ("mid entry data", mid.data + (mid.size as usize / 2).max(1)),
            (
                "inside the padding",
                mid.data + mid.size as usize + tar::padding(mid.size).min(1),
            ),
            ("at the end marker", kit.trailer),
            ("inside the end marker", kit.trailer + 512),
            (
                "mid last entry",
                last.data + (last.size as usize / 2).max(1),
            ),
            // Inside the in-bundle manifest (read before anything is unpacked; found by
            // the long random run: this was exit 1, a local I/O error, instead of 11).
            (
                "inside the manifest entry",
                kit.member("manifest/offline-manifest.json")
                    .map_or(0, |m| m.data + m.size as usize / 2),
            ),
        ] {
            if cut >= kit.tar.len() || cut == 0 {
                continue;
            }
            out.push(
                Mutant::new(
                    "tar-truncate",
                    format!("{label}: {what} (tar offset {cut})"),
                    kit,
                    gzip(&kit.tar[..cut]),
                )
                .message("truncated|malformed"),
            );
        }
        // Header damage without and with a fixed checksum (on a file member).
        let files = kit.files();
        let mid = &kit.members[files[files.len() / 2]];
        let mut t = kit.tar.clone();
        t[mid.header + 10] ^= 0x20;
        out.push(
            Mutant::new(
                "tar-header",
                format!("{label}: name byte flipped, stale checksum"),
                kit,
                gzip(&t),
            )
            .message("checksum"),
        );
        // A member's data larger than the manifest/header declares: a size-field edit.
        let mut t = kit.tar.clone();
        let h = &mut t[mid.header..mid.header + 512];
        h[124..136].copy_from_slice(b"77777777777\0");
        tar::set_checksum(h);
        out.push(
            Mutant::new(
                "tar-header",
                format!("{label}: size field 8 GiB"),
                kit,
                gzip(&t),
            )
            .message("more than|declares|not declared|truncated"),
        );
        let mut t = kit.tar.clone();
        let h = &mut t[mid.header..mid.header + 512];
        h[124] = 0x80;
        h[125..136].fill(0);
        h[128..136].copy_from_slice(&(1u64 << 62).to_be_bytes());
        tar::set_checksum(h);
        out.push(
            Mutant::new(
                "tar-header",
                format!("{label}: base-256 size 2^62"),
                kit,
                gzip(&t),
            )
            .message("more than|declares|not declared|truncated"),
        );
        let mut t = kit.tar.clone();
        let h = &mut t[mid.header..mid.header + 512];
        h[156] = b'2';
        h[157..162].copy_from_slice(b"/etc\0");
        tar::set_checksum(h);
        out.push(
            Mutant::new(
                "tar-header",
                format!("{label}: file turned into a symlink"),
                kit,
                gzip(&t),
            )
            .message("link"),
        );
        // Hostile members inserted at the start, the middle and just before the end.
        for (i, (what, member, msg)) in hostile_members().into_iter().enumerate() {
            let mut parts = kit.parts();
            let at = match i % 3 {
                0 => 0,
                1 => parts.len() / 2,
                _ => parts.len(),
            };
            parts.insert(at, member);
            out.push(
                Mutant::new(
                    "hostile-member",
                    format!("{label}: {what} at member {at}"),
                    kit,
                    gzip(&Kit::assemble(&parts)),
                )
                .message(msg),
            );
        }
        // Duplicate names: a member repeated, and a directory repeated.
        let mut parts = kit.parts();
        let dup = parts[files[0]].clone();
        parts.push(dup);
        out.push(
            Mutant::new(
                "duplicate",
                format!("{label}: file {} twice", kit.members[files[0]].name),
                kit,
                gzip(&Kit::assemble(&parts)),
            )
            .message("duplicate"),
        );
        if let Some(d) = kit.members.iter().position(|m| m.typeflag == b'5') {
            let mut parts = kit.parts();
            parts.push(kit.raw(&kit.members[d]).to_vec());
            out.push(
                Mutant::new(
                    "duplicate",
                    format!("{label}: directory {} twice", kit.members[d].name),
                    kit,
                    gzip(&Kit::assemble(&parts)),
                )
                .message("duplicate"),
            );
        }
        let mut parts = kit.parts();
        let f = &kit.members[files[0]];
        parts.push(tar::entry(&format!("{}/", f.name), b'5', 0o755, b""));
        out.push(
            Mutant::new(
                "duplicate",
                format!("{label}: a file's name again as a directory"),
                kit,
                gzip(&Kit::assemble(&parts)),
            )
            .message("conflicts|duplicate"),
        );
        // A member dropped.
        let mut parts = kit.parts();
        parts.remove(*files.last().unwrap());
        out.push(
            Mutant::new(
                "dropped",
                format!("{label}: last file dropped"),
                kit,
                gzip(&Kit::assemble(&parts)),
            )
            .message("lacks|not a delta|no "),
        );
        // Bomb: a member that decompresses to 100 x its declared size (for a delta, the
        // payload, which its header bounds).
        let i = kit
            .members
            .iter()
            .position(|m| m.name == "delta/payload.bin")
            .unwrap_or(files[0]);
        let m = &kit.members[i];
        let big = vec![0u8; (m.size as usize) * 100];
        out.push(
            Mutant::new(
                "bomb",
                format!("{label}: {} is 100 x its size", m.name),
                kit,
                gzip(&Kit::assemble(&kit.with_data(i, &big))),
            )
            .message("more than|payload"),
        );
    }

    // ---- kit-only attacks ----
    let k1 = &c.k1;
    let files = k1.files();
    let manifest_i = k1
        .members
        .iter()
        .position(|m| m.name == "manifest/offline-manifest.json")
        .unwrap();
    let content: Vec<usize> = files.iter().copied().filter(|&i| i != manifest_i).collect();
    // One data bit flipped (the gzip layer valid): the digest check catches it.
    let mut t = k1.tar.clone();
    let m = &k1.members[content[content.len() / 2]];
    t[m.data + m.size as usize / 2] ^= 0x01;
    out.push(
        Mutant::new(
            "tar-data",
            format!("kit: one bit of {} flipped", m.name),
            k1,
            gzip(&t),
        )
        .expect(&[2])
        .message("digest mismatch"),
    );
    // The same, but re-signed with the trusted key: a valid signature does not make wrong
    // content right.
    let bytes = gzip(&t);
    out.push(
        Mutant::new(
            "resigned",
            format!("kit: {} tampered then re-signed", m.name),
            k1,
            bytes.clone(),
        )
        .sidecar(".sig", sign(&bytes))
        .trusted()
        .expect(&[2])
        .message("digest mismatch"),
    );
    // Swapped members: two files' contents exchanged under their names.
    let (a, b) = (content[1], content[content.len() - 2]);
    let mut parts = k1.parts();
    let (ma, mb) = (&k1.members[a], &k1.members[b]);
    parts[a] = tar::file(&ma.name, 0o644, k1.data(mb));
    parts[b] = tar::file(&mb.name, 0o644, k1.data(ma));
    out.push(
        Mutant::new(
            "swapped",
            format!("kit: contents of {} and {} swapped", ma.name, mb.name),
            k1,
            gzip(&Kit::assemble(&parts)),
        )
        .expect(&[2, 11])
        .message("digest mismatch|more than"),
    );
    // Same-size swap, if two files share a size: only the digests can tell.
    let mut by_size: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for &i in &content {
        by_size.entry(k1.members[i].size).or_default().push(i);
    }
    if let Some(pair) = by_size
        .values()
        .find(|v| v.len() >= 2 && k1.data(&k1.members[v[0]]) != k1.data(&k1.members[v[1]]))
    {
        let (a, b) = (pair[0], pair[1]);
        let mut parts = k1.parts();
        let (ma, mb) = (&k1.members[a], &k1.members[b]);
        parts[a] = tar::file(&ma.name, 0o644, k1.data(mb));
        parts[b] = tar::file(&mb.name, 0o644, k1.data(ma));
        out.push(
            Mutant::new(
                "swapped",
                format!("kit: same-size {} and {} swapped", ma.name, mb.name),
                k1,
                gzip(&Kit::assemble(&parts)),
            )
            .expect(&[2])
            .message("digest mismatch"),
        );
    }
    // Members in another order (harmless: the order is not part of the contract).
    let mut parts = k1.parts();
    parts.reverse();
    out.push(
        Mutant::new(
            "reordered",
            "kit: members in reverse order",
            k1,
            gzip(&Kit::assemble(&parts)),
        )
        .expect(&[0, 11]),
    );
    // Mix-and-match: k1's files with k2's manifest inside, and with k0's.
    out.push(
        Mutant::new(
            "mix-and-match",
            "kit: day-1 files with the day-2 manifest inside",
            k1,
            gzip(&replace(
                k1,
                "manifest/offline-manifest.json",
                c.k2.manifest(),
            )),
        )
        .expect(&[2, 11])
        .message("digest mismatch|more than|lacks|not declared"),
    );
    out.push(
        Mutant::new(
            "mix-and-match",
            "kit: day-2 files with the day-1 manifest inside",
            &c.k2,
            gzip(&replace(
                &c.k2,
                "manifest/offline-manifest.json",
                k1.manifest(),
            )),
        )
        .expect(&[2, 11])
        .message("digest mismatch|more than|lacks|not declared"),
    );
    // Mix-and-match through sidecars, every signature valid: the day-2 bundle (its own
    // valid .sig) with the day-1 manifest and its valid JWS.
    let (m1, jws1) = k1.sidecar_manifest();
    out.push(
        Mutant::new(
            "mix-and-match",
            "kit: day-2 bundle, day-1 manifest + JWS as sidecars",
            &c.k2,
            c.k2.gz.clone(),
        )
        .sidecar(".sig", c.k2.sidecar("sig"))
        .sidecar("m.json", m1.clone())
        .sidecar("m.json.jws", jws1.clone())
        .trusted()
        .arg("--manifest")
        .arg("{dir}/m.json")
        .arg("--manifest-signature")
        .arg("{dir}/m.json.jws")
        .message("differs|more than|digest mismatch"),
    );
    // A valid signature over different bytes: day-0's .sig next to the day-1 bundle.
    out.push(
        Mutant::new(
            "foreign-signature",
            "kit: day-1 bundle with day-0's valid .sig",
            k1,
            k1.gz.clone(),
        )
        .sidecar(".sig", c.k0.sidecar("sig"))
        .trusted()
        .expect(&[5])
        .message("not valid"),
    );
    out.push(
        Mutant::new(
            "foreign-signature",
            "kit: day-1 manifest with day-0's valid JWS",
            k1,
            k1.gz.clone(),
        )
        .sidecar(".sig", k1.sidecar("sig"))
        .sidecar("m.json", m1)
        .sidecar("m.json.jws", c.k0.sidecar_manifest().1)
        .trusted()
        .arg("--manifest")
        .arg("{dir}/m.json")
        .arg("--manifest-signature")
        .arg("{dir}/m.json.jws")
        .expect(&[5])
        .message("manifest signature"),
    );
    out.push(
        Mutant::new(
            "foreign-digest",
            "kit: day-1 bundle with day-0's .sha256",
            k1,
            k1.gz.clone(),
        )
        .sidecar(".sha256", c.k0.sidecar("sha256"))
        .expect(&[2])
        .message("re-copy the kit"),
    );
    out.push(
        Mutant::new(
            "foreign-digest",
            "kit: day-1 bundle with day-0's .metadata.json",
            k1,
            k1.gz.clone(),
        )
        .sidecar(".metadata.json", c.k0.sidecar("metadata.json"))
        .expect(&[2])
        .message("re-copy the kit"),
    );
    out.push(
        Mutant::new(
            "unsigned",
            "kit: no .sig with a trusted key",
            k1,
            k1.gz.clone(),
        )
        .trusted()
        .expect(&[5])
        .message("unsigned"),
    );
    out.push(
        Mutant::new("foreign-signature", "kit: garbage .sig", k1, k1.gz.clone())
            .sidecar(".sig", b"MEUCIQDnot-a-signature==".to_vec())
            .trusted()
            .expect(&[5]),
    );
    // Manifest edits (the in-bundle manifest is what --allow-unsigned imports trust).
    let names: Vec<String> = content
        .iter()
        .map(|&i| k1.members[i].name.clone())
        .collect();
    let idx_of = |v: &serde_json::Value, name: &str| {
        v["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .position(|a| a["name"] == name)
            .unwrap()
    };
    let target = names[names.len() / 3].clone();
    let t2 = target.clone();
    out.push(
        manifest_mutant(k1, "a digest changed", move |v| {
            let i = idx_of(v, &t2);
            v["artifacts"][i]["sha256"] = "0".repeat(64).into();
        })
        .expect(&[2])
        .message("digest mismatch"),
    );
    let t2 = target.clone();
    out.push(
        manifest_mutant(k1, "a size one byte too large", move |v| {
            let i = idx_of(v, &t2);
            let s = v["artifacts"][i]["size"].as_u64().unwrap();
            v["artifacts"][i]["size"] = (s + 1).into();
        })
        .expect(&[2])
        .message("digest mismatch"),
    );
    let t2 = target.clone();
    out.push(
        manifest_mutant(k1, "a size one byte too small (endless data)", move |v| {
            let i = idx_of(v, &t2);
            let s = v["artifacts"][i]["size"].as_u64().unwrap();
            v["artifacts"][i]["size"] = (s - 1).into();
        })
        .message("more than"),
    );
    let t2 = target.clone();
    out.push(
        manifest_mutant(k1, "an artifact removed", move |v| {
            let i = idx_of(v, &t2);
            v["artifacts"].as_array_mut().unwrap().remove(i);
        })
        .message("not declared"),
    );
    out.push(manifest_mutant(k1, "an artifact the bundle lacks", |v| {
        v["artifacts"].as_array_mut().unwrap().push(serde_json::json!({
            "name": "zzz/missing.bin", "sha256": "1".repeat(64), "size": 3, "capturedAt": "2025-10-24T00:00:00Z"
        }));
    }).message("lacks"));
    out.push(
        manifest_mutant(k1, "artifacts unsorted", |v| {
            v["artifacts"].as_array_mut().unwrap().reverse();
        })
        .message("sorted"),
    );
    out.push(
        manifest_mutant(k1, "an artifact twice", |v| {
            let a = v["artifacts"][0].clone();
            v["artifacts"].as_array_mut().unwrap().insert(0, a);
        })
        .message("sorted or duplicated"),
    );
    out.push(
        manifest_mutant(k1, "an artifact named ../../etc/passwd", |v| {
            v["artifacts"][0]["name"] = "../../etc/passwd".into();
        })
        .message("artifact"),
    );
    out.push(
        manifest_mutant(k1, "an artifact listing the manifest itself", |v| {
            let mut a = v["artifacts"][0].clone();
            a["name"] = "manifest/offline-manifest.json".into();
            let arr = v["artifacts"].as_array_mut().unwrap();
            let at = arr
                .iter()
                .position(|x| x["name"].as_str().unwrap() > "manifest/offline-manifest.json")
                .unwrap_or(arr.len());
            arr.insert(at, a);
        })
        .message("lists itself"),
    );
    out.push(
        manifest_mutant(k1, "generationId of another tree", |v| {
            v["generationId"] = "ab".repeat(32).into();
        })
        .message("generation"),
    );
    out.push(
        manifest_mutant(k1, "generationId not hex", |v| {
            v["generationId"] = "xyz".into();
        })
        .message("generationId"),
    );
    out.push(
        manifest_mutant(k1, "schema of another format", |v| {
            v["schema"] = "evil/manifest@9".into();
        })
        .message("schema"),
    );
    out.push(
        manifest_mutant(k1, "version older than the active one", |v| {
            v["version"] = "2025.9.30".into();
        })
        .expect(&[8])
        .message("version not newer"),
    );
    out.push(
        manifest_mutant(k1, "version equal to the active one", |v| {
            v["version"] = "2025.10.0".into();
        })
        .expect(&[8])
        .message("version not newer"),
    );
    out.push(
        manifest_mutant(k1, "createdAt a year old (freeze)", |v| {
            v["createdAt"] = "2024-10-23T00:00:00Z".into();
        })
        .arg("--max-kit-age")
        .arg("30")
        .expect(&[8])
        .message("stale"),
    );
    out.push(
        manifest_mutant(k1, "createdAt not a time", |v| {
            v["createdAt"] = "yesterday".into();
        })
        .arg("--max-kit-age")
        .arg("30")
        .expect(&[8, 11])
        .message("stale|createdAt"),
    );
    let t2 = target.clone();
    out.push(
        manifest_mutant(k1, "a huge declared size (2^60)", move |v| {
            let i = idx_of(v, &t2);
            v["artifacts"][i]["size"] = (1u64 << 60).into();
        })
        .expect(&[11, 12])
        .message("free >=|size|too large|bytes"),
    );
    out.push(
        manifest_mutant(k1, "declared sizes that overflow a u64 sum", |v| {
            for a in v["artifacts"].as_array_mut().unwrap().iter_mut().take(3) {
                a["size"] = u64::MAX.into();
            }
        })
        .expect(&[11, 12])
        .message("free >=|size|too large|overflow|bytes"),
    );
    out.push(
        manifest_mutant(k1, "an unknown artifact field", |v| {
            v["artifacts"][0]["x-evil"] = "1".into();
        })
        .message("unknown field"),
    );
    out.push(
        manifest_mutant(k1, "an unknown top-level field (ignored)", |v| {
            v["x-comment"] = "harmless".into();
        })
        .expect(&[0]),
    );
    let tar = replace(k1, "manifest/offline-manifest.json", b"{\"schema\": ");
    out.push(
        Mutant::new(
            "manifest-edit",
            "kit: manifest is truncated JSON",
            k1,
            gzip(&tar),
        )
        .message("manifest"),
    );
    let tar = replace(k1, "manifest/offline-manifest.json", &[0xff; 64]);
    out.push(
        Mutant::new(
            "manifest-edit",
            "kit: manifest is binary garbage",
            k1,
            gzip(&tar),
        )
        .message("manifest"),
    );

    // ---- delta-only attacks ----
    let d = &c.d01;
    out.push(
        delta_header_mutant(d, "baseline the host does not have", |v| {
            v["baseline"]["generation"] = "cd".repeat(32).into();
        })
        .message("does not have"),
    );
    out.push(
        delta_header_mutant(d, "target version older", |v| {
            v["target"]["version"] = "2025.9.1".into();
        })
        .expect(&[8])
        .message("version not newer"),
    );
    out.push(
        // (The target id seeds the solid block's dictionary: rebuilt files differ, 2.)
        delta_header_mutant(d, "target generation of another tree", |v| {
            v["target"]["generation"] = "ef".repeat(32).into();
        })
        .expect(&[2, 11])
        .message("disagree|generation|rebuilt content"),
    );
    out.push(
        delta_header_mutant(d, "payloadSize one byte more", |v| {
            let s = v["payloadSize"].as_u64().unwrap();
            v["payloadSize"] = (s + 1).into();
        })
        .message("payload"),
    );
    out.push(
        delta_header_mutant(d, "format of another version", |v| {
            v["format"] = "ouk-delta/9".into();
        })
        .message("format"),
    );
    out.push(
        delta_header_mutant(d, "a file path ../../evil", |v| {
            v["files"][0]["path"] = "../../evil".into();
        })
        .message("`..`|path|parent"),
    );
    out.push(
        delta_header_mutant(d, "a file path /etc/evil", |v| {
            v["files"][0]["path"] = "/etc/evil".into();
        })
        .message("absolute|path"),
    );
    out.push(
        delta_header_mutant(d, "a setuid mode", |v| {
            v["files"][0]["mode"] = 0o4755.into();
        })
        .message("mode"),
    );
    out.push(
        delta_header_mutant(d, "a file's size one byte more", |v| {
            let s = v["files"][0]["size"].as_u64().unwrap();
            v["files"][0]["size"] = (s + 1).into();
        })
        .expect(&[2, 11]),
    );
    out.push(
        delta_header_mutant(d, "a file's sha256 changed", |v| {
            v["files"][0]["sha256"] = "0".repeat(64).into();
        })
        .expect(&[2, 11]),
    );
    out.push(
        delta_header_mutant(d, "a huge file size (endless data)", |v| {
            v["files"][0]["size"] = (1u64 << 50).into();
        })
        .expect(&[11, 12]),
    );
    out.push(
        delta_header_mutant(d, "removes a path the baseline lacks", |v| {
            let r = v
                .as_object_mut()
                .unwrap()
                .entry("removed")
                .or_insert(serde_json::json!([]));
            r.as_array_mut().unwrap().push("zzzz/not-there".into());
        })
        .message("does not have|removes"),
    );
    out.push(
        delta_header_mutant(d, "solid block past the payload", |v| {
            if v["solid"].is_object() {
                v["solid"]["length"] = (1u64 << 40).into();
            } else {
                v["payloadSize"] = 0.into();
            }
        })
        .message("payload|outside"),
    );
    out.push(
        delta_header_mutant(d, "solid block decoding to 1 GiB", |v| {
            if v["solid"].is_object() {
                v["solid"]["size"] = (1u64 << 30).into();
            } else {
                v["payloadSize"] = 0.into();
            }
        })
        .message("too large|payload|solid"),
    );
    out.push(
        delta_header_mutant(d, "files unsorted", |v| {
            v["files"].as_array_mut().unwrap().reverse();
        })
        .message("sorted"),
    );
    out.push(
        delta_header_mutant(d, "the target manifest file dropped", |v| {
            v["files"]
                .as_array_mut()
                .unwrap()
                .retain(|f| f["path"] != "manifest/offline-manifest.json");
        })
        .expect(&[2, 11]),
    );
    let h = d.member("delta/delta.json").unwrap();
    let tar = replace(d, "delta/delta.json", &d.data(h)[..d.data(h).len() / 2]);
    out.push(
        Mutant::new("delta-header", "delta: delta.json truncated", d, gzip(&tar))
            .message("delta.json"),
    );
    // The payload damaged: one bit, and cut short.
    let p = d.member("delta/payload.bin").unwrap();
    let mut t = d.tar.clone();
    t[p.data + p.size as usize / 2] ^= 0x10;
    out.push(
        Mutant::new(
            "delta-payload",
            "delta: one payload bit flipped",
            d,
            gzip(&t),
        )
        .expect(&[2, 11]),
    );
    let payload = d.data(p);
    let tar = replace(d, "delta/payload.bin", &payload[..payload.len() - 1]);
    out.push(
        Mutant::new(
            "delta-payload",
            "delta: payload one byte short",
            d,
            gzip(&tar),
        )
        .message("payload"),
    );
    // A delta with the kit's signature material of another delta.
    out.push(
        Mutant::new(
            "foreign-signature",
            "delta: d01 with d12's valid .sig",
            d,
            d.gz.clone(),
        )
        .sidecar(".sig", c.d12.sidecar("sig"))
        .trusted()
        .expect(&[5])
        .message("not valid"),
    );
    out.push(
        Mutant::new(
            "baseline",
            "delta: d12 (baseline day 1) on a day-0 host",
            &c.d12,
            c.d12.gz.clone(),
        )
        .sidecar(".sig", c.d12.sidecar("sig"))
        .trusted()
        .expect(&[11])
        .message("does not have"),
    );
    // A kit named like a delta, and a delta named like a kit.
    out.push(
        Mutant::new("disguise", "kit bytes named .delta.tgz", k1, k1.gz.clone())
            .named("stella-ouk-2025-10-24.delta.tgz")
            .message("not a delta|not declared"),
    );
    out.push(
        Mutant::new("disguise", "delta bytes named .tar.gz", d, d.gz.clone())
            .named("stella-ops-offline-kit-2025.10.1-edge.tar.gz")
            .expect(&[0, 11]),
    );
    out
}
