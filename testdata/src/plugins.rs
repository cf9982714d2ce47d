//! Scanner language analyzer plug-ins under `plugins/scanner/analyzers/lang/<id>/`: a
//! PE-looking `.dll`, an MSF-looking `.pdb` and a `manifest.json` (id, version, entry
//! point, SHA-256 of the DLL). Each day one plug-in is rebuilt: its DLL and PDB change in
//! a few scattered places (new MVID, timestamp, version, code bytes) and its manifest's
//! version and digest follow.

use crate::fsutil::write_file;
use crate::rng::{Sm, fill_binary, h};
use crate::schedule::{PLUGIN_REBUILDS, rebuild_days, rebuild_time};
use crate::text::{DAY, T0, rfc3339};
use serde_json::json;
use std::io;
use std::path::Path;

/// (short name, language id, DLL size, PDB size). Sizes follow the seed's 2025-10-23 kit.
pub const PLUGINS: [(&str, &str, usize, usize); 5] = [
    ("Node", "node", 41_472, 30_180),
    ("Go", "golang", 33_792, 32_152),
    ("DotNet", "dotnet", 70_144, 40_400),
    ("Python", "python", 47_104, 31_896),
    ("Rust", "rust", 54_784, 36_636),
];

/// The root of the language analyzer plug-ins inside a tree.
pub const PLUGIN_ROOT: &str = "plugins/scanner/analyzers/lang";

const TAG_DLL: u64 = 0x646c_6c00;
const TAG_PDB: u64 = 0x7064_6200;
const MVID_AT: usize = 0x300;
const VERSION_AT: usize = 0x320;

/// The plug-in directory name for short name `x`.
pub fn plugin_id(x: &str) -> String {
    format!("StellaOps.Scanner.Analyzers.Lang.{x}")
}

fn version(rebuilds: usize) -> String {
    format!("1.0.{rebuilds}")
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if at < buf.len() {
        let n = bytes.len().min(buf.len() - at);
        buf[at..at + n].copy_from_slice(&bytes[..n]);
    }
}

/// Applies the scattered edits of one rebuild.
fn patch(buf: &mut [u8], key: u64, count: u64) {
    let mut r = Sm::new(key);
    let n = count + r.below(4);
    let len = buf.len();
    if len <= 0x1000 + 64 {
        return;
    }
    for _ in 0..n {
        let at = 0x1000 + r.below((len - 0x1000 - 64) as u64) as usize;
        let plen = r.range(8, 48) as usize;
        for b in &mut buf[at..at + plen] {
            *b = r.next() as u8;
        }
    }
}

fn dll_bytes(seed: u64, idx: usize, x: &str, size: usize, rebuilds: &[u32]) -> Vec<u8> {
    let mut buf = vec![0u8; size];
    fill_binary(&mut buf, h(&[seed, TAG_DLL, idx as u64]));
    buf[..0x400.min(size)].fill(0);
    put(
        &mut buf,
        0,
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff",
    );
    put(&mut buf, 0x3c, &0x80u32.to_le_bytes());
    put(
        &mut buf,
        0x4e,
        b"This program cannot be run in DOS mode.\r\r\n$",
    );
    put(&mut buf, 0x80, b"PE\0\0\x4c\x01\x03\x00");
    for (i, s) in [".text\0\0\0", ".rsrc\0\0\0", ".reloc\0\0"]
        .iter()
        .enumerate()
    {
        put(&mut buf, 0x178 + 40 * i, s.as_bytes());
    }
    let strings = format!(
        "{id}\0{id}.{x}AnalyzerPlugin\0{id}.{x}LanguageAnalyzer\0StellaOps.Scanner.Analyzers.Lang\0\
         System.Runtime\0System.Collections.Immutable\0System.Text.Json\0ILanguageAnalyzer\0\
         IAnalyzerPlugin\0AnalyzeAsync\0CreateAnalyzer\0<Module>\0",
        id = plugin_id(x)
    );
    put(&mut buf, 0x400, strings.as_bytes());
    let mut stamp = 0x6700_0000u32;
    for (j, &day) in rebuilds.iter().enumerate() {
        let key = h(&[seed, TAG_DLL, idx as u64, u64::from(day)]);
        put(&mut buf, MVID_AT, &h(&[key, 1]).to_le_bytes());
        put(&mut buf, MVID_AT + 8, &h(&[key, 2]).to_le_bytes());
        stamp = stamp.wrapping_add(86_400 + j as u32);
        patch(&mut buf, key, 3);
    }
    if rebuilds.is_empty() {
        let key = h(&[seed, TAG_DLL, idx as u64]);
        put(&mut buf, MVID_AT, &h(&[key, 1]).to_le_bytes());
        put(&mut buf, MVID_AT + 8, &h(&[key, 2]).to_le_bytes());
    }
    put(&mut buf, 0x88, &stamp.to_le_bytes());
    let mut v = [0u8; 32];
    let vs = version(rebuilds.len());
    v[..vs.len().min(32)].copy_from_slice(&vs.as_bytes()[..vs.len().min(32)]);
    put(&mut buf, VERSION_AT, &v);
    buf
}

fn pdb_bytes(seed: u64, idx: usize, size: usize, mvid: &[u8], rebuilds: &[u32]) -> Vec<u8> {
    let mut buf = vec![0u8; size];
    fill_binary(&mut buf, h(&[seed, TAG_PDB, idx as u64]));
    buf[..0x400.min(size)].fill(0);
    put(&mut buf, 0, b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0");
    put(&mut buf, 0x20, &4096u32.to_le_bytes());
    put(&mut buf, 0x200, mvid);
    for &day in rebuilds {
        patch(&mut buf, h(&[seed, TAG_PDB, idx as u64, u64::from(day)]), 2);
    }
    buf
}

/// Writes the five analyzer plug-ins of day `day`.
pub fn write_plugins(root: &Path, seed: u64, day: u32) -> io::Result<()> {
    for (idx, &(x, lang, dll_size, pdb_size)) in PLUGINS.iter().enumerate() {
        let id = plugin_id(x);
        let dir = root.join(PLUGIN_ROOT).join(&id);
        let rebuilds = rebuild_days(seed, PLUGIN_REBUILDS, PLUGINS.len() as u64, idx as u64, day);
        let dll = dll_bytes(seed, idx, x, dll_size, &rebuilds);
        let dll_sha = write_file(&dir.join(format!("{id}.dll")), &dll)?;
        let pdb = pdb_bytes(seed, idx, pdb_size, &dll[MVID_AT..MVID_AT + 16], &rebuilds);
        write_file(&dir.join(format!("{id}.pdb")), &pdb)?;
        let built = match rebuilds.last() {
            Some(&k) => rebuild_time(seed, PLUGIN_REBUILDS, k),
            None => T0 - 2 * DAY,
        };
        let manifest = json!({
            "schemaVersion": "1.0",
            "id": format!("stellaops.analyzer.lang.{lang}"),
            "displayName": format!("StellaOps {x} Analyzer"),
            "version": version(rebuilds.len()),
            "requiresRestart": true,
            "entryPoint": {
                "type": "dotnet",
                "assembly": format!("{id}.dll"),
                "typeName": format!("{id}.{x}AnalyzerPlugin"),
            },
            "capabilities": ["language-analyzer", lang],
            "metadata": {
                "org.stellaops.analyzer.language": lang,
                "org.stellaops.analyzer.kind": "language",
                "org.stellaops.restart.required": "true",
            },
            "sha256": hex::encode(dll_sha),
            "builtAt": rfc3339(built),
        });
        let mut bytes = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
        bytes.push(b'\n');
        write_file(&dir.join("manifest.json"), &bytes)?;
    }
    Ok(())
}
