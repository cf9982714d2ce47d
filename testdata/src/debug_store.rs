//! The debug store: `debug/.build-id/<aa>/<rest>.debug` ELF-looking symbol files (GNU
//! build-id = 40 hex digits), `debug/debug-manifest.json` mapping build-ids to platforms,
//! paths, digests and originating images, and `debug/debug-manifest.json.sha256`.
//! Manifest `path`s are relative to the tree root. The store does not churn between days.

use crate::fsutil::{create_hashed, finish_hashed, sha256, write_file, write_sidecar};
use crate::images::{ARCHES, IMAGE_TAG, REGISTRY};
use crate::rng::{fill_binary, h, hs};
use crate::text::{T0, rfc3339};
use serde_json::json;
use std::io::{self, Write};
use std::path::Path;

/// (image, binary path inside the image, share of the arch's debug bytes in percent).
const ARTEFACTS: [(&str, &str, u64); 6] = [
    (
        "stella-ops",
        "/usr/lib/stellaops/libstellaops_native.so",
        30,
    ),
    (
        "stella-ops",
        "/usr/share/dotnet/shared/Microsoft.NETCore.App/10.0.0/libcoreclr.so",
        25,
    ),
    ("zastava", "/usr/local/bin/zastava-observer", 15),
    ("zastava", "/usr/local/bin/zastava-webhook", 10),
    ("advisory-ai-web", "/app/libonnxruntime.so", 12),
    ("advisory-ai-worker", "/app/libllama.so", 8),
];

const SECTION_NAMES: &[u8] = b"\0.note.gnu.build-id\0.debug_info\0.debug_abbrev\0.debug_line\0\
.debug_str\0.debug_ranges\0.symtab\0.strtab\0.shstrtab\0";

const CHUNK: u64 = 1 << 20;

/// Overlays an ELF64 header, a GNU build-id note and section names on the first 512 bytes.
fn elf_header(buf: &mut [u8], arch: usize, build_id: &[u8]) {
    buf[..0x200].fill(0);
    buf[..16].copy_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    buf[16] = 3;
    buf[18] = if arch == 0 { 0x3e } else { 0xb7 };
    buf[20] = 1;
    // .note.gnu.build-id: namesz 4, descsz 20, type 3 (NT_GNU_BUILD_ID), "GNU\0".
    buf[0x40..0x4c].copy_from_slice(&[4, 0, 0, 0, 20, 0, 0, 0, 3, 0, 0, 0]);
    buf[0x4c..0x50].copy_from_slice(b"GNU\0");
    buf[0x50..0x64].copy_from_slice(&build_id[..20]);
    buf[0x80..0x80 + SECTION_NAMES.len()].copy_from_slice(SECTION_NAMES);
}

/// Writes the debug store for `debug_bytes` bytes of symbol files in total.
pub fn write_debug_store(root: &Path, seed: u64, debug_bytes: u64) -> io::Result<()> {
    let mut artifacts = Vec::new();
    for (arch, (_, oci_arch)) in ARCHES.iter().enumerate() {
        let arch_bytes = debug_bytes / ARCHES.len() as u64;
        for (image, binary, pct) in ARTEFACTS {
            let key = h(&[seed, hs(binary), arch as u64]);
            let build_id =
                hex::encode(&sha256(format!("{seed}:{oci_arch}:{binary}").as_bytes())[..20]);
            let size = (arch_bytes * pct / 100).max(1024);
            let raw = hex::decode(&build_id).map_err(io::Error::other)?;
            let rel = format!(
                "debug/.build-id/{}/{}.debug",
                &build_id[..2],
                &build_id[2..]
            );
            // Streamed in 1 MiB pieces so memory stays bounded whatever the size.
            let mut w = create_hashed(&root.join(&rel))?;
            let mut buf = vec![0u8; CHUNK.min(size) as usize];
            let mut off = 0u64;
            while off < size {
                let piece = &mut buf[..CHUNK.min(size - off) as usize];
                fill_binary(piece, h(&[key, off / CHUNK]));
                if off == 0 {
                    elf_header(piece, arch, &raw);
                }
                w.write_all(piece)?;
                off += piece.len() as u64;
            }
            let (digest, _) = finish_hashed(w)?;
            artifacts.push(json!({
                "buildId": build_id,
                "platform": format!("linux/{oci_arch}"),
                "path": rel,
                "binary": binary,
                "sha256": hex::encode(digest),
                "size": size,
                "image": format!("{REGISTRY}/{image}:{IMAGE_TAG}"),
            }));
        }
    }
    artifacts.sort_by(|a, b| a["buildId"].as_str().cmp(&b["buildId"].as_str()));
    let manifest = json!({
        "generatedAt": rfc3339(T0),
        "version": IMAGE_TAG,
        "channel": "edge",
        "artifacts": artifacts,
    });
    let mut bytes = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
    bytes.push(b'\n');
    let path = root.join("debug/debug-manifest.json");
    let digest = write_file(&path, &bytes)?;
    write_sidecar(&path, &digest)
}
