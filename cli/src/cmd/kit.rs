//! `ouk kit {build|verify|import|split|manifest}`, `ouk debug-store mirror`, `ouk key generate`.

use std::path::PathBuf;

use clap::Subcommand;
use ouk_kit::verify::Sidecars;

use crate::exit::ExitCode;
use crate::output::bytes;
use crate::shared::{env_password, kit_failure, load_public_keys, prompt_password};
use crate::{Context, Failure};

#[derive(Debug, Subcommand)]
pub enum KitCommand {
    /// Build a signed, reproducible kit from a release tree.
    Build(BuildArgs),
    /// Verify a bundle's digest, signature and manifest; prints OK <sha256>.
    Verify(VerifyArgs),
    /// Import a kit into the root: verify, unpack, check, ingest, activate.
    Import(ImportArgs),
    /// Download a published kit (or delta) with its sidecars, resuming, and verify it.
    Pull(crate::cmd::transport::PullArgs),
    /// Write DIR/index.json, so a static web server can publish DIR for `kit pull`.
    Index(crate::cmd::transport::IndexArgs),
    /// Cut a bundle into parts of at most --max-size bytes (USB / FAT32); `kit import` and
    /// `kit verify` take any part, or the index.
    Split(crate::cmd::split::SplitArgs),
    /// What a kit, delta, split kit or manifest is: version, channel, created, signer and
    /// whether this root trusts it, files and sizes; for a delta its baseline and changes.
    /// Reads only: nothing is unpacked or imported.
    Inspect(crate::cmd::inspect::InspectArgs),
    /// Countersign a bundle (`BUNDLE.sigs.json`): a fleet whose trust document asks for
    /// several signatures accepts the kit once enough keys signed it.
    Sign(crate::cmd::trust::SignArgs),
    /// List a kit's artifacts: name, sha256, size, capturedAt.
    Manifest {
        /// A bundle or an offline-manifest.json.
        file: PathBuf,
    },
}

/// Arguments of `ouk kit build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Kit version, e.g. 2025.10.0.
    #[arg(long)]
    pub version: String,
    /// Release channel, e.g. edge.
    #[arg(long)]
    pub channel: String,
    /// The release tree.
    #[arg(long)]
    pub release_dir: PathBuf,
    /// Where the bundle, its sidecars and the manifest go.
    #[arg(long)]
    pub output_dir: PathBuf,
    /// Also write generated files (manifest, SBOM, provenance, summaries) here.
    #[arg(long)]
    pub staging_dir: Option<PathBuf>,
    /// Signing keys (`--signing-key`, repeatable, alias `--cosign-key`; the first signs
    /// `.sig` and the manifest, all of them `.sigs.json`). Without one the kit is unsigned.
    #[command(flatten)]
    pub signing: crate::cmd::trust::SigningArgs,
    /// Carry this trust chain (`ouk trust chain`) beside the bundle (`BUNDLE.trust.json`).
    #[arg(long, value_name = "FILE")]
    pub trust_chain: Option<PathBuf>,
    /// capturedAt for every artifact (RFC 3339) instead of file mtimes.
    #[arg(long)]
    pub captured_at: Option<String>,
    /// createdAt of the kit (RFC 3339). Default: SOURCE_DATE_EPOCH (Unix seconds), else
    /// --captured-at, else the build time. Give this or SOURCE_DATE_EPOCH for a
    /// reproducible build; a time already past the hosts' staleness window (7 days by
    /// default) is warned about.
    #[arg(long)]
    pub created_at: Option<String>,
    /// Accept a release tree without debug/.
    #[arg(long)]
    pub allow_missing_debug: bool,
    /// Owner uid of the advisory AI volume primer's directories.
    #[arg(long, default_value_t = ouk_kit::ops::primer::DEFAULT_UID)]
    pub primer_uid: u32,
    /// Owner gid of the primer's directories.
    #[arg(long, default_value_t = ouk_kit::ops::primer::DEFAULT_GID)]
    pub primer_gid: u32,
    /// Mode (octal) of the primer's directories.
    #[arg(long, default_value = "0770", value_parser = crate::cmd::primer::parse_mode)]
    pub primer_mode: u32,
    /// Leave the advisory AI volume primer out of the kit.
    #[arg(long, conflicts_with_all = ["primer_uid", "primer_gid", "primer_mode"])]
    pub no_primer: bool,
    /// Carry FILE in the kit as caches/<file name> (e.g. the BDU vulxml.zip); a *.zip
    /// must be a valid zip archive. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub cold_start_cache: Vec<PathBuf>,
    /// Build even though the feeds conflict (duplicate or divergent rows, see
    /// `ouk feeds audit`); the conflicts are reported as warnings.
    #[arg(long)]
    pub allow_feed_conflicts: bool,
    /// Replace a different bundle of this version and channel already in the output
    /// directory (refused by default; a reproducible rebuild replaces nothing).
    #[arg(long)]
    pub force: bool,
    /// Leave malformed feed rows (invalid JSON, no upstream id) out of the feed index
    /// and list them, instead of failing the build (exit 11).
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// A field that holds a feed row's upstream id; repeatable, the first present
    /// string field wins; a dotted name is a path into nested objects (default: id,
    /// ghsa_id, cve.id).
    #[arg(long, value_name = "FIELD")]
    pub feed_id_field: Vec<String>,
}

/// Arguments of `ouk kit verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The bundle (or a part or the index of a split kit).
    pub bundle: PathBuf,
    /// Public key (PKIX PEM) to check signatures with (default: the keys ROOT/trust
    /// holds).
    #[arg(long)]
    pub key: Vec<PathBuf>,
    /// Report the bundle verified even though no key is given or trusted to check its
    /// signature with (without it, that is a refusal, exit 5).
    #[arg(long)]
    pub allow_unsigned: bool,
    /// The bundle's cosign signature (default: BUNDLE.sig).
    #[arg(long)]
    pub signature: Option<PathBuf>,
    /// The offline manifest (default: manifest/offline-manifest.json next to the bundle).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// The manifest's JWS (default: MANIFEST.jws).
    #[arg(long)]
    pub manifest_signature: Option<PathBuf>,
}

/// Arguments of `ouk kit import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The bundle (or any part, or the index, of a split kit: the parts are read in place).
    pub bundle: PathBuf,
    /// The offline manifest (default: manifest/offline-manifest.json next to the bundle,
    /// else the bundle's own copy).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// The bundle's cosign signature (default: BUNDLE.sig).
    #[arg(long)]
    pub bundle_signature: Option<PathBuf>,
    /// The manifest's JWS (default: MANIFEST.jws).
    #[arg(long)]
    pub manifest_signature: Option<PathBuf>,
    /// Trust this public key for this import (in addition to ROOT/trust).
    #[arg(long)]
    pub trust_key: Vec<PathBuf>,
    /// Accept a bundle without a valid signature from a trusted key.
    #[arg(long)]
    pub allow_unsigned: bool,
    /// Verify, unpack and check, report what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Activate even though the version is not newer (needs --force-reason).
    #[arg(long, requires = "force_reason")]
    pub force_activate: bool,
    /// Why the activation is forced (recorded with who and when).
    #[arg(long, requires = "force_activate")]
    pub force_reason: Option<String>,
    /// Free space to keep on the root's file system beyond what the import writes
    /// (1.5 x the kit): an import that would leave less is refused with exit 12 before
    /// writing anything. Units: B, KiB, MiB, GiB (or plain bytes).
    #[arg(long, value_name = "SIZE", default_value = FREE_MARGIN_TEXT, value_parser = crate::shared::parse_size_or_zero)]
    pub free_margin: u64,
    /// Refuse kits created more than DAYS days ago (0: no limit).
    #[arg(long, value_name = "DAYS", default_value_t = ouk_kit::import::DEFAULT_MAX_AGE_DAYS)]
    pub max_kit_age: u64,
    /// Refuse kits dated more than SECONDS ahead of this host's clock (a kit dated in
    /// the future would never go stale); --force-activate overrides.
    #[arg(long, value_name = "SECONDS", default_value_t = ouk_kit::import::policy::DEFAULT_MAX_CLOCK_SKEW_SECS)]
    pub max_clock_skew: u64,
}

#[derive(Debug, Subcommand)]
pub enum DebugStoreCommand {
    /// Mirror debug/ of a release tree into the offline kit staging tree, verify it, and
    /// write metadata/debug-store.json.
    Mirror {
        /// The release tree.
        #[arg(long)]
        release_dir: PathBuf,
        /// The offline kit staging directory.
        #[arg(long, alias = "offline-dir")]
        offline_kit_dir: PathBuf,
        /// Where the summary goes (default OFFLINE_KIT_DIR/metadata/debug-store.json).
        #[arg(long)]
        summary: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write PREFIX.key (cosign encrypted format, password from COSIGN_PASSWORD) and PREFIX.pub.
    Generate {
        /// Path prefix.
        #[arg(long)]
        output_prefix: PathBuf,
    },
}

/// `kit import --free-margin`'s default, as people read it: [`ouk_kit::import::DEFAULT_FREE_MARGIN`]
/// (a unit test holds the two equal).
const FREE_MARGIN_TEXT: &str = "2GiB";

pub fn run(ctx: &Context, cmd: KitCommand) -> Result<ExitCode, Failure> {
    match cmd {
        KitCommand::Build(args) => run_build(ctx, args),
        KitCommand::Verify(args) => run_verify(ctx, args),
        KitCommand::Import(args) => run_import(ctx, args),
        KitCommand::Split(args) => crate::cmd::split::run(ctx, args),
        KitCommand::Pull(args) => crate::cmd::transport::run_pull(ctx, args),
        KitCommand::Index(args) => crate::cmd::transport::run_index(ctx, args),
        KitCommand::Inspect(args) => crate::cmd::inspect::run(ctx, &args),
        KitCommand::Sign(args) => crate::cmd::trust::run_kit_sign(ctx, args),
        KitCommand::Manifest { file } => run_manifest(ctx, file),
    }
}

/// `ouk kit build`.
fn run_build(ctx: &Context, args: BuildArgs) -> Result<ExitCode, Failure> {
    let BuildArgs {
        version,
        channel,
        release_dir,
        output_dir,
        staging_dir,
        signing,
        trust_chain,
        captured_at,
        created_at,
        allow_missing_debug,
        primer_uid,
        primer_gid,
        primer_mode,
        no_primer,
        cold_start_cache,
        allow_feed_conflicts,
        skip_bad_rows,
        feed_id_field,
        force,
    } = args;
    let primer = if no_primer {
        None
    } else {
        Some(
            ouk_kit::ops::primer::PrimerSpec::new(primer_uid, primer_gid, primer_mode)
                .map_err(crate::cmd::primer::primer_failure)?,
        )
    };
    let keys = signing.load()?;
    let key = keys.first().cloned();
    if key.is_none() {
        eprintln!(
            "ouk: WARNING: no --signing-key: building an UNSIGNED kit (no .sig, no .jws, no provenance attestation)"
        );
    }
    let opts = ouk_kit::build::BuildOptions {
        version,
        channel,
        release_dir,
        output_dir,
        staging_dir,
        signing_key: key,
        captured_at,
        created_at,
        allow_missing_debug,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        primer,
        cold_start_caches: cold_start_cache,
        feed_index: ouk_kit::feeds::IndexOptions {
            id_fields: if feed_id_field.is_empty() {
                ouk_kit::feeds::IndexOptions::default().id_fields
            } else {
                feed_id_field
            },
            skip_bad_rows,
            ..Default::default()
        },
        allow_feed_conflicts,
        force,
    };
    let mut progress = ctx.out.progress("build", 0);
    let mut report =
        ouk_kit::build::build_kit(&opts, &mut |s| progress.step(s)).map_err(kit_failure)?;
    drop(progress);
    // The warnings as this build's user reads them, on stderr and in --json alike.
    report.warnings = report
        .warnings
        .into_iter()
        .map(crate::hint::build_warning)
        .collect();
    crate::cmd::trust::finish_signing(
        ctx,
        &report.bundle,
        &report.sha256,
        &keys,
        trust_chain.as_deref(),
    )?;
    for w in &report.warnings {
        ctx.out.note(&format!("warning: {w}"));
    }
    ctx.out.emit(&report, || {
        let mut s = format!(
            "built {}\n  sha256 {}\n  {} files, {} -> {} bundle\n  generation {}\n  {}",
            report.bundle.display(),
            report.sha256,
            report.files,
            bytes(report.bytes),
            bytes(report.size),
            report.generation_id,
            match &report.kid {
                Some(k) => format!("signed by {k}"),
                None => "UNSIGNED".into(),
            }
        );
        s.push_str(&crate::cmd::feeds::build_text(&report));
        s
    });
    Ok(ExitCode::Ok)
}

/// `ouk kit verify`.
fn run_verify(ctx: &Context, args: VerifyArgs) -> Result<ExitCode, Failure> {
    let VerifyArgs {
        bundle,
        key,
        signature,
        manifest,
        manifest_signature,
        allow_unsigned,
    } = args;
    // The keys named here, else the root's trust store (what an import would
    // check with): a missing trust directory is an empty store.
    let keys = if key.is_empty() {
        ouk_kit::import::trusted_keys(&ctx.root, &[]).map_err(kit_failure)?
    } else {
        load_public_keys(&key)?
    };
    let explicit = Sidecars {
        signature,
        manifest,
        manifest_signature,
        ..Default::default()
    };
    let report = ouk_kit::verify::verify_bundle_trusted(&bundle, explicit, &keys, allow_unsigned)
        .map_err(kit_failure)?;
    ctx.out.emit(&report, || {
        let mut s = format!("OK {}", report.sha256);
        if report.signature_kid.is_none() {
            s.push_str("\n  (signature not checked: --allow-unsigned, no key given or trusted)");
        }
        if let Some(n) = report.files_checked {
            s.push_str(&format!("\n  {n} files match the manifest"));
        }
        s
    });
    Ok(ExitCode::Ok)
}

/// `ouk kit import`.
fn run_import(ctx: &Context, args: ImportArgs) -> Result<ExitCode, Failure> {
    let ImportArgs {
        bundle,
        manifest,
        bundle_signature,
        manifest_signature,
        trust_key,
        allow_unsigned,
        dry_run,
        force_activate,
        force_reason,
        free_margin,
        max_kit_age,
        max_clock_skew,
    } = args;
    let extra_keys = load_public_keys(&trust_key)?;
    let opts = ouk_kit::import::ImportOptions {
        bundle,
        sidecars: Sidecars {
            signature: bundle_signature,
            manifest,
            manifest_signature,
            ..Default::default()
        },
        extra_keys,
        allow_unsigned,
        dry_run,
        force: force_reason
            .filter(|_| force_activate)
            .map(|reason| ouk_kit::import::Force { reason }),
        wait: ctx.wait,
        free_margin,
        quarantine: ctx.quarantine,
        max_age_days: max_kit_age,
        max_clock_skew_secs: max_clock_skew,
    };
    let mut progress = ctx.out.progress("import", 0);
    // Every phase the pipeline reports (verify, unpack, store, activate), with its
    // total: the bar shows phase, percent and ETA; --progress json one event each.
    let result = ouk_kit::import::import(&ctx.root, &opts, &mut |s| progress.step(s));
    drop(progress);
    let report = result.map_err(|f| {
        let mut failure = kit_failure(f.error);
        failure.message = format!("import refused at step {}: {}", f.step, failure.message);
        failure.step = Some(f.step.to_string());
        failure.quarantined = f.quarantined.clone();
        if failure.code == ExitCode::NoSpace {
            failure
                .message
                .push_str(" (the kept margin is --free-margin, now ");
            failure
                .message
                .push_str(&format!("{})", bytes(free_margin)));
        }
        if let Some(q) = f.quarantined {
            failure
                .message
                .push_str(&format!(" (quarantined in {})", q.display()));
        }
        failure
    })?;
    if report.trust_migrated {
        ctx.out.note(&format!(
                    "ouk: migrated the flat trust store (ROOT/trust/*.pub) to trust document version 1 ({}); `ouk trust status` shows it",
                    ouk_kit::trust_root::root_file(&ctx.root).display()
                ));
    }
    if !report.trust_applied.is_empty() {
        ctx.out.note(&format!(
            "ouk: applied trust document version(s) {:?} carried by the kit",
            report.trust_applied
        ));
    }
    ctx.out.emit(&report, || {
        let what = match report.outcome.as_str() {
            "already-active" => "is already active; nothing changed".to_string(),
            "dry-run" => "would be activated (dry run; nothing changed)".to_string(),
            _ => format!(
                "activated{}",
                report
                    .previous
                    .map(|p| format!(" (previous {})", p.short()))
                    .unwrap_or_default()
            ),
        };
        let mut s = format!(
            "kit {} {} (generation {}) {what}
  {} files, {}",
            report.version,
            report.channel,
            report.generation.short(),
            report.files,
            bytes(report.bytes)
        );
        if report.outcome != "already-active" {
            s.push_str(&format!(
                "
  {} added, {} changed, {} removed ({})",
                report.diff.added.len(),
                report.diff.changed.len(),
                report.diff.removed.len(),
                bytes(report.diff.bytes)
            ));
        }
        if let Some(f) = &report.feeds {
            s.push_str(&format!(
                "\n  feed rows: {} changed -> {}",
                f.rows,
                f.changes_file.display()
            ));
        }
        match &report.signed_by {
            Some(k) => s.push_str(&format!(
                "
  signature verified (kid {k})"
            )),
            None => s.push_str(
                "
  UNSIGNED (accepted with --allow-unsigned)",
            ),
        }
        s
    });
    Ok(ExitCode::Ok)
}

/// `ouk kit manifest`.
fn run_manifest(ctx: &Context, file: PathBuf) -> Result<ExitCode, Failure> {
    if !file.is_file() {
        return Err(Failure::new(
            ExitCode::Failure,
            format!("{}: not found", file.display()),
        ));
    }
    let is_json = file.extension().is_some_and(|e| e == "json");
    let manifest = if is_json {
        let bytes = std::fs::read(&file)
            .map_err(|e| Failure::new(ExitCode::Failure, format!("{}: {e}", file.display())))?;
        ouk_kit::manifest::OfflineManifest::parse(&bytes).map_err(|e| kit_failure(e.into()))?
    } else {
        ouk_kit::verify::manifest_from_bundle(&file)
            .map_err(kit_failure)?
            .0
    };
    ctx.out.emit(&manifest, || {
        let mut s = format!(
            "version {}  channel {}  created {}  generation {}\n",
            manifest.version, manifest.channel, manifest.created_at, manifest.generation_id
        );
        for a in &manifest.artifacts {
            s.push_str(&format!(
                "{}  {:>10}  {}  {}\n",
                a.sha256, a.size, a.captured_at, a.name
            ));
        }
        s
    });
    Ok(ExitCode::Ok)
}

pub fn run_debug_store(ctx: &Context, cmd: DebugStoreCommand) -> Result<ExitCode, Failure> {
    let DebugStoreCommand::Mirror {
        release_dir,
        offline_kit_dir,
        summary,
    } = cmd;
    if !release_dir.is_dir() {
        return Err(Failure::new(
            ExitCode::Failure,
            format!("{}: not found", release_dir.display()),
        ));
    }
    let report = ouk_kit::layout::mirror_debug_store(
        &release_dir,
        &offline_kit_dir,
        summary.as_deref(),
        None,
    )
    .map_err(|e| kit_failure(e.into()))?;
    for w in &report.warnings {
        let text = crate::hint::message(w, crate::hint::for_layout_warning(w));
        ctx.out.note(&format!("warning: {text}"));
    }
    let doc = serde_json::json!({
        "files": report.files,
        "bytes": report.bytes,
        "summary": report.summary_path,
        "removed": report.removed,
    });
    ctx.out.emit(&doc, || {
        format!(
            "mirrored {} debug files ({}) into {}\nsummary {}",
            report.files,
            bytes(report.bytes),
            offline_kit_dir.display(),
            report.summary_path.display()
        )
    });
    Ok(ExitCode::Ok)
}

pub fn run_key(ctx: &Context, cmd: KeyCommand) -> Result<ExitCode, Failure> {
    let KeyCommand::Generate { output_prefix } = cmd;
    // COSIGN_PASSWORD for scripts; else asked twice on the terminal. Empty is refused
    // below (the library's check) either way.
    let pw = match env_password() {
        Some(pw) => pw,
        None => prompt_password("Enter the password for the new private key: ", true)?,
    };
    let key = ouk_kit::sign::write_key_pair(&output_prefix, &pw).map_err(|e| {
        Failure::new(
            ExitCode::Failure,
            format!("{}: {e}", output_prefix.display()),
        )
    })?;
    let doc = serde_json::json!({
        "privateKey": format!("{}.key", output_prefix.display()),
        "publicKey": format!("{}.pub", output_prefix.display()),
        "kid": key.kid(),
    });
    ctx.out.emit(&doc, || {
        format!(
            "wrote {0}.key (cosign encrypted) and {0}.pub\nkid {1}",
            output_prefix.display(),
            key.kid()
        )
    });
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_free_margin_default_people_read_is_the_one_imports_use() {
        assert_eq!(
            crate::shared::parse_size(super::FREE_MARGIN_TEXT),
            Ok(ouk_kit::import::DEFAULT_FREE_MARGIN)
        );
    }
}
