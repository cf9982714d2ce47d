//! `ouk`: build, carry and import Offline Update Kits.
//!
//! This binary is thin: it parses arguments (clap), opens what a command needs, calls the
//! library crates, prints the result for people or as JSON, and turns errors into the exit
//! codes listed in [`exit`]. Nothing here decides policy or formats on disk.

mod cmd;
mod contain;
mod exit;
mod output;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::exit::ExitCode;
use crate::output::Output;

/// The exit codes (`--help`): the table of [`exit`], for people.
const EXIT_CODES: &str = "Exit codes: 0 ok, 1 input not found or another failure, 2 digest mismatch, \
5 signature invalid or untrusted, 8 version not newer, 9 (status) nothing active or the active \
kit stale, 11 validation failed, 12 not enough disk space, 13 locked by another ouk process, \
130 interrupted.";

/// Offline Update Kit: content-addressed kits and deltas for air-gapped hosts.
#[derive(Debug, Parser)]
#[command(name = "ouk", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Root directory holding the store, generations and `current`.
    #[arg(long, global = true, env = "OUK_ROOT", default_value = "ouk-root")]
    root: PathBuf,
    /// Print one JSON document instead of human text.
    #[arg(long, global = true)]
    json: bool,
    /// Print nothing but errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Wait for another ouk process to release the root instead of failing (exit 13).
    #[arg(long, global = true)]
    wait: bool,
    /// Keep the chunk store's packs in S3-compatible object storage (s3://bucket/prefix;
    /// endpoint, region and keys from the AWS_* environment). The root keeps the local
    /// index, a cache that `ouk store reindex` rebuilds from the bucket. For the mirror
    /// commands, serve, delta make and store reindex/stats/fsck.
    #[arg(long, global = true, env = "OUK_STORE_URL", value_name = "URL")]
    store_url: Option<String>,
    /// Target size of an object-storage pack (uploaded once it is this big).
    #[arg(long, global = true, value_name = "SIZE", default_value = "32MiB", value_parser = cmd::split::parse_size)]
    store_pack_size: u64,
    /// Most entries the quarantine keeps (each refused import is one); the oldest are
    /// dropped first. For imports (`kit import`, the import API of `serve`) and
    /// `quarantine clean`.
    #[arg(long, global = true, env = "OUK_QUARANTINE_MAX_ENTRIES", value_name = "N",
          default_value_t = ouk_kit::import::quarantine::DEFAULT_MAX_ENTRIES as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    quarantine_max_entries: u32,
    /// Most bytes the quarantine keeps in all; the oldest entries are dropped first, and a
    /// refused input larger than this is not kept (its reason is).
    #[arg(long, global = true, env = "OUK_QUARANTINE_MAX_SIZE", value_name = "SIZE",
          default_value = "4GiB", value_parser = cmd::split::parse_size)]
    quarantine_max_size: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The content-addressed chunk store.
    #[command(subcommand)]
    Store(cmd::store::StoreCommand),
    /// Generations: list, roll back, retain.
    #[command(subcommand)]
    Gen(cmd::generation::GenCommand),
    /// The active generation, its labels and age; a check for monitors.
    ///
    /// Reads without the root's lock (it answers during an import and never makes one
    /// fail), writes nothing, and needs only read access to the root. Exit 0 when a kit is
    /// active and within the staleness window; exit 9 when nothing is active or the active
    /// kit is stale (`--json`: "verdict" and "exitCode" say the same); exit 1 when the root
    /// does not exist.
    Status(cmd::status::StatusArgs),
    /// Offline kits: build, verify, import, split, list.
    #[command(subcommand)]
    Kit(cmd::kit::KitCommand),
    /// The debug store of a release.
    #[command(subcommand)]
    DebugStore(cmd::kit::DebugStoreCommand),
    /// Advisory feeds in kits and generations: audit the feed index, supersedes chains.
    #[command(subcommand)]
    Feeds(cmd::feeds::FeedsCommand),
    /// Daily deltas between kits.
    #[command(subcommand)]
    Delta(cmd::delta::DeltaCommand),
    /// What this host has, for a connected site making deltas.
    #[command(subcommand)]
    Inventory(cmd::delta::InventoryCommand),
    /// A mirror of bundles: kept deduplicated, given back byte-identical.
    #[command(subcommand)]
    Mirror(cmd::mirror::MirrorCommand),
    /// Keys this root trusts for imports.
    #[command(subcommand)]
    Trust(cmd::trust::TrustCommand),
    /// Signing keys.
    #[command(subcommand)]
    Key(cmd::kit::KeyCommand),
    /// The advisory AI volume primer: lay queue/, plans/, outputs/ onto the shared volume.
    #[command(subcommand)]
    Primer(cmd::primer::PrimerCommand),
    /// The telemetry collector bundle.
    #[command(subcommand)]
    Telemetry(cmd::telemetry::TelemetryCommand),
    /// The Authority configuration shipped with a kit: scope guardrails.
    #[command(subcommand)]
    Authority(cmd::authority::AuthorityCommand),
    /// Publish a kit directory over HTTP (with ranges) and accept imports through the API.
    Serve(cmd::transport::ServeArgs),
    /// The scanner's offline fair-use ledger: count a scan, report the counts.
    #[command(subcommand)]
    Quota(cmd::quota::QuotaCommand),
    /// Refused imports kept for inspection: list, show, clean.
    #[command(subcommand)]
    Quarantine(cmd::quarantine::QuarantineCommand),
}

/// A command's failure: a message for stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub code: ExitCode,
    /// Message (without the `ouk:` prefix).
    pub message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: ExitCode, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<ouk_delta::DeltaError> for Failure {
    fn from(e: ouk_delta::DeltaError) -> Self {
        Failure::new(exit::delta_code(&e), e.to_string())
    }
}

impl From<ouk_store::StoreError> for Failure {
    fn from(e: ouk_store::StoreError) -> Self {
        Failure::new(exit::store_code(&e), e.to_string())
    }
}

/// Global settings every command gets.
pub struct Context {
    /// The root directory.
    pub root: PathBuf,
    /// Output settings.
    pub out: Output,
    /// Wait for the lock.
    pub wait: bool,
    /// Where the store's packs are (`None`: in the root).
    pub remote: Option<ouk_store::RemoteOptions>,
    /// How much the quarantine may hold (imports, the import API, `quarantine clean`).
    pub quarantine: ouk_kit::import::quarantine::Limits,
}

impl Context {
    /// Open the root for reading only: no lock, nothing created or written (see
    /// [`ouk_delta::RootView`]). A root last written by an older ouk has no published state
    /// yet: it is opened once for writing (which publishes it; only its owner can), then read.
    pub fn open_view(&self) -> Result<ouk_delta::RootView, Failure> {
        match ouk_delta::RootView::open(&self.root) {
            Err(ouk_delta::DeltaError::Unpublished { .. }) => {
                drop(self.open_root()?);
                Ok(ouk_delta::RootView::open(&self.root)?)
            }
            other => Ok(other?),
        }
    }

    /// Fail (exit 1) unless the root exists: read-only commands never create one.
    pub fn require_root(&self) -> Result<(), Failure> {
        if self.root.is_dir() {
            Ok(())
        } else {
            Err(ouk_delta::DeltaError::NoRoot {
                path: self.root.clone(),
            }
            .into())
        }
    }

    /// Open and lock the root.
    pub fn open_root(&self) -> Result<ouk_delta::Root, Failure> {
        let wait = if self.wait {
            ouk_delta::LockWait::Wait
        } else {
            ouk_delta::LockWait::Fail
        };
        let options = ouk_store::StoreOptions {
            remote: self.remote.clone(),
            ..Default::default()
        };
        let root = ouk_delta::Root::open(&self.root, wait, options)?;
        let rec = root.recovery();
        if !rec.removed_partial.is_empty() || !rec.store.is_clean() || rec.staging_cleaned > 0 {
            self.out.note(&format!(
                "recovered from an interrupted run: removed {} partial generation(s), {} staging entr(ies), cut {} pack tail(s), deleted {} orphan pack(s)",
                rec.removed_partial.len(),
                rec.staging_cleaned,
                rec.store.truncated_packs.len(),
                rec.store.removed_packs.len()
            ));
        }
        Ok(root)
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    output::guard_stdout();
    let ctx = Context {
        root: cli.root,
        out: Output {
            json: cli.json,
            quiet: cli.quiet,
        },
        wait: cli.wait,
        remote: cli.store_url.clone().map(|url| ouk_store::RemoteOptions {
            url,
            pack_target: cli.store_pack_size,
        }),
        quarantine: ouk_kit::import::quarantine::Limits {
            max_entries: cli.quarantine_max_entries as usize,
            max_bytes: cli.quarantine_max_size,
        },
    };
    contain::install_hook();
    let command = cli.command;
    if ctx.remote.is_some() && !takes_store_url(&command) {
        let msg = "--store-url is for the mirror commands, serve, delta make and store reindex/stats/fsck (host-side commands keep the local store)";
        if ctx.out.json {
            output::print_line(
                &serde_json::json!({"error": msg, "exitCode": ExitCode::Failure as u8}).to_string(),
            );
        }
        eprintln!("ouk: {msg}");
        return std::process::ExitCode::from(ExitCode::Failure as u8);
    }
    let result = contain::run(&ctx.root, || match command {
        Command::Store(c) => cmd::store::run(&ctx, c),
        Command::Gen(c) => cmd::generation::run(&ctx, c),
        Command::Status(a) => cmd::status::run(&ctx, &a),
        Command::Kit(c) => cmd::kit::run(&ctx, c),
        Command::DebugStore(c) => cmd::kit::run_debug_store(&ctx, c),
        Command::Key(c) => cmd::kit::run_key(&ctx, c),
        Command::Trust(c) => cmd::trust::run_trust(&ctx, c),
        Command::Mirror(c) => cmd::mirror::run(&ctx, c),
        Command::Feeds(c) => cmd::feeds::run(&ctx, c),
        Command::Delta(c) => cmd::delta::run(&ctx, c),
        Command::Inventory(c) => cmd::delta::run_inventory(&ctx, c),
        Command::Serve(a) => cmd::transport::run_serve(&ctx, a),
        Command::Primer(c) => cmd::primer::run(&ctx, c),
        Command::Telemetry(c) => cmd::telemetry::run(&ctx, c),
        Command::Quota(c) => cmd::quota::run(&ctx, c),
        Command::Authority(c) => cmd::authority::run(&ctx, c),
        Command::Quarantine(c) => cmd::quarantine::run(&ctx, c),
    });
    match result {
        Ok(code) => std::process::ExitCode::from(code as u8),
        Err(f) => {
            if ctx.out.json {
                let doc = serde_json::json!({"error": f.message, "exitCode": f.code as u8});
                output::print_line(&doc.to_string());
            }
            eprintln!("ouk: {}", f.message);
            std::process::ExitCode::from(f.code as u8)
        }
    }
}

/// Whether `command` works against an object-storage store (`--store-url`).
fn takes_store_url(command: &Command) -> bool {
    use cmd::store::StoreCommand;
    match command {
        Command::Mirror(_) | Command::Serve(_) => true,
        Command::Delta(c) => matches!(c, cmd::delta::DeltaCommand::Make { .. }),
        Command::Store(c) => matches!(
            c,
            StoreCommand::Reindex | StoreCommand::Stats | StoreCommand::Fsck
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
