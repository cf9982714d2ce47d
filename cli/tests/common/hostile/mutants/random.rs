//! Random mutants drawn from a seeded RNG (bit flips, cuts, header edits, manifest and
//! delta-header edits, inserted hostile members); each must get one of a small set of
//! codes. A draw that changed nothing is drawn again.

use super::*;
use crate::common::hostile::corpus::Corpus;

/// One random mutation of `c.k1` or `c.d01`.
pub fn random_mutant(c: &Corpus, rng: &mut ChaCha8Rng) -> Mutant {
    let kit = if rng.random_bool(0.6) { &c.k1 } else { &c.d01 };
    random_mutant_of(kit, rng)
}

/// One random mutation of the kit or delta `kit`.
pub fn random_mutant_of(kit: &Kit, rng: &mut ChaCha8Rng) -> Mutant {
    // A draw that changed nothing (a digit replaced by itself, a swap of two directory
    // entries...) is drawn again: every input counted is a real mutation.
    loop {
        let m = draw_mutant(kit, rng);
        match &m.bundle {
            Payload::Bytes(b) if *b == kit.gz || *b == kit.regz => continue,
            _ => return m,
        }
    }
}

/// A draw that changed nothing (`random_mutant_of` draws again).
fn noop(kit: &Kit) -> Mutant {
    Mutant::new("noop", "", kit, kit.gz.clone())
}

fn draw_mutant(kit: &Kit, rng: &mut ChaCha8Rng) -> Mutant {
    let label = if kit.member("delta/delta.json").is_none() {
        "kit"
    } else {
        "delta"
    };
    let any = &[0, 2, 8, 11][..];
    match rng.random_range(0..9u32) {
        0 => {
            let mut b = kit.gz.clone();
            let k = rng.random_range(1..=4);
            let at = flip(&mut b, rng, k);
            Mutant::new(
                "gz-bitflip",
                format!("{label}: {k} bit(s) at {at:?}"),
                kit,
                b,
            )
            .expect(any)
        }
        1 => {
            let len = rng.random_range(0..kit.gz.len());
            Mutant::new(
                "gz-truncate",
                format!("{label}: cut to {len}"),
                kit,
                kit.gz[..len].to_vec(),
            )
        }
        2 => {
            let mut t = kit.tar.clone();
            let k = rng.random_range(1..=4);
            let at = flip(&mut t, rng, k);
            Mutant::new(
                "tar-bitflip",
                format!("{label}: {k} tar bit(s) at {at:?}"),
                kit,
                gzip(&t),
            )
            .expect(any)
        }
        3 => {
            // Header fields rewritten with a valid checksum.
            let mut t = kit.tar.clone();
            let m = &kit.members[rng.random_range(0..kit.members.len())];
            let field = rng.random_range(0..5u32);
            let h = &mut t[m.header..m.header + 512];
            let what = match field {
                0 => {
                    let i = rng.random_range(0..100);
                    h[i] = rng.random();
                    format!("name byte {i}")
                }
                1 => {
                    let i = rng.random_range(100..108);
                    h[i] = b"01234567"[rng.random_range(0..8)];
                    format!("mode digit {i}")
                }
                2 => {
                    let i = rng.random_range(124..135);
                    h[i] = b"01234567"[rng.random_range(0..8)];
                    format!("size digit {i}")
                }
                3 => {
                    h[156] = b"0123456789xgLKSV7"[rng.random_range(0..17)];
                    format!("typeflag {}", h[156] as char)
                }
                _ => {
                    let i = rng.random_range(257..265);
                    h[i] = rng.random();
                    format!("magic byte {i}")
                }
            };
            tar::set_checksum(h);
            Mutant::new(
                "tar-header",
                format!("{label}: {} {what}", m.name),
                kit,
                gzip(&t),
            )
            .expect(any)
        }
        4 => {
            // The archive cut at a random structural boundary.
            let m = &kit.members[rng.random_range(0..kit.members.len())];
            let choices = [
                m.start,
                m.header + rng.random_range(1..512),
                m.data + (m.size as usize).min(rng.random_range(0..4096)),
                kit.trailer,
                kit.trailer + rng.random_range(1..1024),
            ];
            let cut = choices[rng.random_range(0..choices.len())].min(kit.tar.len() - 1);
            Mutant::new(
                "tar-truncate",
                format!("{label}: tar cut at {cut}"),
                kit,
                gzip(&kit.tar[..cut]),
            )
        }
        5 => {
            // Members dropped, duplicated, swapped or hostile ones inserted.
            let mut parts = kit.parts();
            let i = rng.random_range(0..parts.len());
            let j = rng.random_range(0..parts.len());
            let (what, codes): (String, &[i32]) = match rng.random_range(0..4u32) {
                0 => {
                    parts.remove(i);
                    (format!("member {i} dropped"), &[0, 2, 11])
                }
                1 => {
                    let p = parts[i].clone();
                    parts.insert(j, p);
                    (format!("member {i} repeated at {j}"), &[11])
                }
                2 => {
                    let (a, b) = (&kit.members[i], &kit.members[j]);
                    if a.typeflag != b'0' || b.typeflag != b'0' || kit.data(a) == kit.data(b) {
                        return noop(kit);
                    }
                    parts[i] = tar::file(&a.name, 0o644, kit.data(b));
                    parts[j] = tar::file(&b.name, 0o644, kit.data(a));
                    (format!("data of members {i} and {j} swapped"), any)
                }
                _ => {
                    let hostile = hostile_members();
                    let (name, member, _) = hostile[rng.random_range(0..hostile.len())].clone();
                    parts.insert(j, member);
                    (format!("hostile member {name} at {j}"), &[11])
                }
            };
            Mutant::new(
                "members",
                format!("{label}: {what}"),
                kit,
                gzip(&Kit::assemble(&parts)),
            )
            .expect(codes)
        }
        6 if label == "kit" => {
            // A random edit of the in-bundle manifest.
            let edit = rng.random_range(0..6u32);
            let n = kit.manifest().len();
            let bytes = match edit {
                0 => {
                    let mut b = kit.manifest().to_vec();
                    flip(&mut b, rng, 1);
                    b
                }
                1 => kit.manifest()[..rng.random_range(0..n)].to_vec(),
                _ => {
                    let count = kit.members.len();
                    let pick = rng.random_range(0..count);
                    let hexd = random_hex(rng);
                    let delta: i64 = [-3, -2, -1, 1, 2, 3][rng.random_range(0..6)];
                    json_edit(kit.manifest(), |v| {
                        let arts = v["artifacts"].as_array_mut().unwrap();
                        let k = pick % arts.len();
                        match edit {
                            2 => arts[k]["sha256"] = hexd.into(),
                            3 => {
                                let s = arts[k]["size"].as_u64().unwrap() as i64;
                                arts[k]["size"] = (s + delta).max(0).into();
                            }
                            4 => {
                                arts.remove(k);
                            }
                            _ => v["generationId"] = hexd.into(),
                        }
                    })
                }
            };
            if bytes == kit.manifest() {
                return noop(kit);
            }
            let tar = replace(kit, "manifest/offline-manifest.json", &bytes);
            Mutant::new(
                "manifest-edit",
                format!("{label}: manifest edit {edit}"),
                kit,
                gzip(&tar),
            )
            .expect(any)
        }
        6 | 7 => {
            // A random edit of the delta header (or, for kits, of a random JSON member).
            let (name, data) = if label == "delta" {
                let h = kit.member("delta/delta.json").unwrap();
                ("delta/delta.json".to_string(), kit.data(h).to_vec())
            } else {
                let json: Vec<&tar::Member> = kit
                    .members
                    .iter()
                    .filter(|m| m.name.ends_with(".json"))
                    .collect();
                let m = json[rng.random_range(0..json.len())];
                (m.name.clone(), kit.data(m).to_vec())
            };
            let mut b = data.clone();
            let what = match rng.random_range(0..3u32) {
                0 => {
                    flip(&mut b, rng, 1);
                    "bit flip".to_string()
                }
                1 => {
                    // A digit changed (numbers are sizes and offsets).
                    let digits: Vec<usize> =
                        (0..b.len()).filter(|&i| b[i].is_ascii_digit()).collect();
                    if let Some(&i) = digits.get(rng.random_range(0..digits.len().max(1))) {
                        b[i] = b'0' + rng.random_range(0..10);
                    }
                    "digit changed".to_string()
                }
                _ => {
                    // A hex digit changed (digests and generation ids).
                    let hexes: Vec<usize> =
                        (0..b.len()).filter(|&i| b[i].is_ascii_hexdigit()).collect();
                    if let Some(&i) = hexes.get(rng.random_range(0..hexes.len().max(1))) {
                        b[i] = b"0123456789abcdef"[rng.random_range(0..16)];
                    }
                    "hex digit changed".to_string()
                }
            };
            if b == data {
                return noop(kit);
            }
            let tar = replace(kit, &name, &b);
            Mutant::new(
                "json-edit",
                format!("{label}: {name} {what}"),
                kit,
                gzip(&tar),
            )
            .expect(any)
        }
        _ => {
            // Payload or file data flipped (the gzip layer valid).
            let files = kit.files();
            let m = &kit.members[files[rng.random_range(0..files.len())]];
            let mut t = kit.tar.clone();
            let k = rng.random_range(1..=3);
            let mut at = Vec::new();
            for _ in 0..k {
                let i = m.data + rng.random_range(0..m.size as usize);
                t[i] ^= 1 << rng.random_range(0..8);
                at.push(i);
            }
            Mutant::new(
                "data-bitflip",
                format!("{label}: {} bit(s) in {}", k, m.name),
                kit,
                gzip(&t),
            )
            .expect(any)
        }
    }
}
