//! `ouk kit inspect PATH`: what any kit, delta, split kit or manifest is, in one answer.
//!
//! It names the kind, the version and channel, when it was made, who signed it and
//! whether this root trusts that key, its files and sizes, and for a delta its baseline
//! and what it changes (like `zarf package inspect`).
//!
//! Invariants: inspect never unpacks nor imports, so it is safe on files nobody has
//! verified; it reads the input once, into a private temporary copy (O_EXCL, removed when
//! done) that every pass reads, so the signature verdict and what is shown are of the same
//! bytes; it reads the root's trust store only (no lock, nothing
//! written, no root created: without a root every signature reads as "not trusted here").
//! A signature is reported as trusted only when it verifies under a key the root trusts
//! over the digest of the very bytes inspected.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use crate::exit::ExitCode;
use crate::output::bytes;
use crate::shared::kit_failure;
use crate::{Context, Failure};

/// `ouk kit inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A kit or delta bundle, a part or the index of a split kit, or an
    /// offline-manifest.json.
    path: PathBuf,
    /// List every file (people's output lists the first 20; `--json` always lists all).
    #[arg(long)]
    files: bool,
}

/// How many files people's output lists without `--files`.
const FILES_SHOWN: usize = 20;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Inspection {
    path: String,
    /// `kit`, `delta`, `split-kit`, `split-delta` or `manifest`.
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
    /// The generation's id (`generation`, as in every JSON output of ouk).
    #[serde(rename = "generation", skip_serializing_if = "Option::is_none")]
    generation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<SignatureState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parts: Option<PartsState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<serde_json::Value>,
    /// The kit's files (for a delta: the files it adds or changes).
    files: Vec<FileEntry>,
    file_count: usize,
    file_bytes: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignatureState {
    /// The signature file beside the bundle, when there is one.
    sidecar: Option<String>,
    /// The key id that signed it, when it verifies under a key this root trusts.
    signed_by: Option<String>,
    /// Whether the signature verifies under a key this root trusts.
    trusted_here: bool,
    /// Why it is not trusted here, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PartsState {
    index: String,
    bundle: String,
    count: usize,
    max_part_size: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileEntry {
    path: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
}

pub fn run(ctx: &Context, args: &InspectArgs) -> Result<ExitCode, Failure> {
    let path = &args.path;
    if !path.is_file() {
        return Err(Failure::new(
            ExitCode::Failure,
            format!("{}: not found", path.display()),
        ));
    }
    let inspection = if path.extension().is_some_and(|e| e == "json") && !is_parts_index(path) {
        inspect_manifest(path)?
    } else {
        inspect_bundle(ctx, path)?
    };
    ctx.out.emit(&inspection, || human(&inspection, args.files));
    Ok(ExitCode::Ok)
}

fn is_parts_index(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".parts.json"))
}

fn empty(path: &Path, kind: &'static str) -> Inspection {
    Inspection {
        path: path.display().to_string(),
        kind,
        size: None,
        sha256: None,
        version: None,
        channel: None,
        created_at: None,
        generation_id: None,
        signature: None,
        parts: None,
        delta: None,
        files: Vec::new(),
        file_count: 0,
        file_bytes: 0,
    }
}

fn with_manifest(mut i: Inspection, m: &ouk_kit::manifest::OfflineManifest) -> Inspection {
    i.version = Some(m.version.clone());
    i.channel = Some(m.channel.clone());
    i.created_at = Some(m.created_at.clone());
    i.generation_id = Some(m.generation_id.clone());
    i.files = m
        .artifacts
        .iter()
        .map(|a| FileEntry {
            path: a.name.clone(),
            size: a.size,
            sha256: Some(a.sha256.clone()),
        })
        .collect();
    i.file_count = i.files.len();
    i.file_bytes = i.files.iter().map(|f| f.size).sum();
    i
}

fn inspect_manifest(path: &Path) -> Result<Inspection, Failure> {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::new(ExitCode::Failure, format!("{}: {e}", path.display())))?;
    let m = ouk_kit::manifest::OfflineManifest::parse(&bytes).map_err(|e| kit_failure(e.into()))?;
    Ok(with_manifest(empty(path, "manifest"), &m))
}

fn inspect_bundle(ctx: &Context, path: &Path) -> Result<Inspection, Failure> {
    let input = ouk_kit::split::BundleInput::open(path).map_err(kit_failure)?;
    let bundle_path = input.path();
    let parts = input.parts().map(|s| PartsState {
        index: s.index_path().display().to_string(),
        bundle: s.index().bundle.name.clone(),
        count: s.index().parts.len(),
        max_part_size: s.index().max_part_size,
    });
    // Read once: the bytes are copied (and hashed on the way) into a private file that
    // every later pass reads, so what the signature is checked against is what is shown,
    // whatever the path returns afterwards. The copy goes when `input` is dropped.
    let input = input
        .read_once(&std::env::temp_dir())
        .map_err(kit_failure)?;
    let copy = input
        .private_path()
        .map(Path::to_path_buf)
        .ok_or_else(|| Failure::new(ExitCode::Failure, "no private copy was taken"))?;
    let (sha, size) = input.digest().map_err(kit_failure)?;
    let is_delta = ouk_kit::delta::is_delta(&copy);
    let mut i = if is_delta {
        inspect_delta(path, &copy, &bundle_path, parts.is_some())?
    } else {
        let (m, _) = ouk_kit::verify::manifest_from_input(&input).map_err(kit_failure)?;
        let kind = if parts.is_some() { "split-kit" } else { "kit" };
        with_manifest(empty(path, kind), &m)
    };
    i.size = Some(size);
    i.sha256 = Some(sha.iter().map(|b| format!("{b:02x}")).collect());
    i.parts = parts;
    i.signature = Some(signature_state(ctx, &bundle_path, &sha));
    Ok(i)
}

/// `path` names it; `copy` is the private copy its bytes are read from; `bundle` is the
/// bundle's name (a split delta's parts are named after it).
fn inspect_delta(
    path: &Path,
    copy: &Path,
    bundle: &Path,
    split: bool,
) -> Result<Inspection, Failure> {
    // The kept feed changes are beside the bundle's name, and checked against the header
    // read from the copy.
    let (header, summary, feeds) = ouk_kit::delta::show_as(copy, bundle).map_err(kit_failure)?;
    let mut i = empty(path, if split { "split-delta" } else { "delta" });
    i.version = header.target.version.clone();
    i.generation_id = Some(header.target.generation.to_hex());
    i.files = header
        .files
        .iter()
        .map(|f| FileEntry {
            path: f.path.clone(),
            size: f.size,
            sha256: None,
        })
        .collect();
    i.file_count = i.files.len();
    i.file_bytes = summary.listed_bytes;
    i.delta = Some(serde_json::json!({
        "baseline": {
            "generation": header.baseline.generation,
            "version": header.baseline.version,
        },
        "target": {
            "generation": header.target.generation,
            "version": header.target.version,
        },
        "removed": header.removed,
        "summary": {
            "files": summary.files,
            "removed": summary.removed,
            "reused": summary.reused,
            "patched": summary.patched,
            "literal": summary.literal,
            "solid": summary.solid,
            "recompressed": summary.recompressed,
            "derived": summary.derived,
            "listedBytes": summary.listed_bytes,
            "payloadBytes": summary.payload_bytes,
        },
        "feedRows": match feeds {
            ouk_kit::delta::ShownFeeds::Rows(f) => Some(f.rows.len()),
            ouk_kit::delta::ShownFeeds::Unrecorded(_) => None,
        },
    }));
    Ok(i)
}

/// Whether the bundle's `.sig` verifies under a key this root trusts, over `sha256`.
fn signature_state(ctx: &Context, bundle: &Path, sha256: &[u8; 32]) -> SignatureState {
    let sidecars =
        ouk_kit::verify::Sidecars::discover(bundle, ouk_kit::verify::Sidecars::default());
    let sidecar = sidecars.signature.as_ref().map(|p| p.display().to_string());
    let not_trusted = |reason: String| SignatureState {
        sidecar: sidecar.clone(),
        signed_by: None,
        trusted_here: false,
        reason: Some(reason),
    };
    if sidecar.is_none() {
        return not_trusted("unsigned: no .sig beside the bundle".into());
    }
    if !ctx.root.is_dir() {
        return not_trusted(format!(
            "no root at {}: nothing is trusted here",
            ctx.root.display()
        ));
    }
    let keys: Vec<_> = match ouk_kit::import::trust::list(&ctx.root) {
        Ok(keys) => keys.into_iter().map(|(_, k)| k).collect(),
        Err(e) => return not_trusted(format!("the trust store cannot be read: {e}")),
    };
    if keys.is_empty() {
        return not_trusted("this root trusts no key (ouk trust add PUB)".into());
    }
    match ouk_kit::verify::check_signature(sha256, &sidecars, &keys) {
        Ok(kid) => SignatureState {
            sidecar: sidecar.clone(),
            signed_by: kid,
            trusted_here: true,
            reason: None,
        },
        Err(e) => not_trusted(crate::hint::message(&e, crate::hint::for_kit(&e))),
    }
}

fn human(i: &Inspection, all_files: bool) -> String {
    let mut s = format!("{}  {}\n", i.kind, i.path);
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<12}{v}\n"));
    if let Some(v) = &i.version {
        line("version", v.clone());
    }
    if let Some(v) = &i.channel {
        line("channel", v.clone());
    }
    if let Some(v) = &i.created_at {
        line("created", v.clone());
    }
    if let Some(v) = &i.generation_id {
        line("generation", v.clone());
    }
    if let (Some(size), Some(sha)) = (i.size, &i.sha256) {
        line("size", format!("{} ({size} B)", bytes(size)));
        line("sha256", sha.clone());
    }
    if let Some(p) = &i.parts {
        line(
            "parts",
            format!(
                "{} of at most {} ({}; index {})",
                p.count,
                bytes(p.max_part_size),
                p.bundle,
                p.index
            ),
        );
    }
    if let Some(sig) = &i.signature {
        let v = match (&sig.signed_by, &sig.reason) {
            (Some(kid), _) => format!("signed by {kid}, trusted here"),
            (None, Some(r)) => format!("NOT trusted here: {r}"),
            (None, None) => "NOT trusted here".into(),
        };
        line("signature", v);
    }
    if let Some(d) = &i.delta {
        let version = |side: &str| {
            d[side]["version"]
                .as_str()
                .map_or_else(|| "?".to_string(), str::to_string)
        };
        let generation = |side: &str| d[side]["generation"].as_str().unwrap_or("?").to_string();
        line(
            "baseline",
            format!("{} ({})", version("baseline"), generation("baseline")),
        );
        line(
            "target",
            format!("{} ({})", version("target"), generation("target")),
        );
        let removed = d["removed"].as_array().map_or(0, |r| r.len());
        let payload = d["summary"]["payloadBytes"].as_u64().unwrap_or(0);
        let derived = d["summary"]["derived"].as_u64().unwrap_or(0);
        line(
            "changes",
            format!(
                "{} file(s) new or changed ({derived} derived on the host), {removed} removed, \
                 payload {}",
                i.file_count,
                bytes(payload)
            ),
        );
    }
    s.push_str(&format!(
        "files       {} ({})\n",
        i.file_count,
        bytes(i.file_bytes)
    ));
    let shown = if all_files {
        i.files.len()
    } else {
        FILES_SHOWN
    };
    for f in i.files.iter().take(shown) {
        s.push_str(&format!("  {:>10}  {}\n", bytes(f.size), f.path));
    }
    if i.files.len() > shown {
        s.push_str(&format!(
            "  ... {} more (--files lists all)\n",
            i.files.len() - shown
        ));
    }
    s.truncate(s.trim_end().len());
    s
}
