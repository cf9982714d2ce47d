//! `ouk`: build, carry and import Offline Update Kits.
//!
//! This binary is thin: it parses arguments (clap), opens what a command needs, calls the
//! library crates, prints the result for people or as JSON, and turns errors into the exit
//! codes listed in [`exit`]. Nothing here decides policy or formats on disk.

mod cmd;
mod completions;
mod contain;
mod exit;
mod hint;
mod output;
mod shared;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::exit::ExitCode;
use crate::output::Output;

/// The exit codes (`--help`): the table of [`exit`], for people.
const EXIT_CODES: &str = "Exit codes: 0 ok, 1 input not found or another failure, 2 digest mismatch, \
5 signature invalid or untrusted, 8 version not newer, 9 (status) nothing active or the active \
kit stale, 11 validation failed, 12 not enough disk space, 13 locked by another ouk process, \
64 usage error (unknown option, missing argument), 130 interrupted.";

/// The root used when neither `--root` nor `OUK_ROOT` is given: `ouk-root` (relative to the
/// working directory) for a build from source, and whatever the build sets in
/// `OUK_DEFAULT_ROOT` otherwise: the Debian and RPM packages set `/var/lib/ouk/root`, the
/// directory their postinst creates, so the packaged `ouk` and `ouk serve` unit agree on it.
const DEFAULT_ROOT: &str = match option_env!("OUK_DEFAULT_ROOT") {
    Some(root) => root,
    None => "ouk-root",
};

/// Whether this build has the S3-compatible object-storage store (cargo feature `s3`).
const OBJECT_STORAGE: &str = if cfg!(feature = "s3") {
    "s3"
} else {
    "none (built without the `s3` feature)"
};

/// `ouk -V`: the version, the commit and the build date (cli/build.rs: from the commit or
/// `SOURCE_DATE_EPOCH`, never the clock, so the same commit builds the same bytes).
const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("OUK_BUILD_COMMIT"),
    ", built ",
    env!("OUK_BUILD_DATE"),
    ")"
);

/// `ouk --version`: the version line, then what this build defaults to (a root and the
/// object-storage support are decided at build time, and a support ticket needs both).
fn long_version() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        format!(
            "{VERSION_LINE}\ncommit: {}\nbuilt: {}\ndefault root: {DEFAULT_ROOT}\nobject storage: {OBJECT_STORAGE}",
            env!("OUK_BUILD_COMMIT"),
            env!("OUK_BUILD_DATE"),
        )
    })
}

/// The help heading of the options every command takes.
const GLOBAL: &str = "Global options";

/// Offline Update Kit: content-addressed kits and deltas for air-gapped hosts.
#[derive(Debug, Parser)]
#[command(
    name = "ouk",
    version = VERSION_LINE,
    long_version = long_version(),
    about,
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Root directory holding the store, generations and `current`.
    #[arg(long, global = true, env = "OUK_ROOT", default_value = DEFAULT_ROOT,
          help_heading = GLOBAL)]
    root: PathBuf,
    /// Print one JSON document instead of human text.
    #[arg(long, global = true, help_heading = GLOBAL)]
    json: bool,
    /// Print nothing but errors.
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    quiet: bool,
    /// Say what the run does, step by step, on stderr: -v steps, -vv details, -vvv
    /// everything (OUK_LOG, in `tracing` filter syntax, overrides: OUK_LOG=ouk_kit=debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Wait for another ouk process to release the root instead of failing (exit 13).
    #[arg(long, global = true, help_heading = GLOBAL)]
    wait: bool,
    /// Progress of long work on stderr: `auto` draws a bar (phase, percent, ETA) when
    /// stderr is a terminal, `json` writes one event per line, `none` nothing.
    #[arg(long, global = true, value_enum, default_value_t, help_heading = GLOBAL, env = "OUK_PROGRESS")]
    progress: output::ProgressMode,
    /// `--store-url` (or OUK_STORE_URL) before the command name, as it was spelled when it
    /// was a global option: still accepted for scripts, hidden from help; the commands that
    /// take it list it as their own option ([`with_store_url`]).
    #[arg(long, env = "OUK_STORE_URL", value_name = "URL", hide = true)]
    store_url: Option<String>,
    /// Target size of an object-storage pack (uploaded once it is this big).
    #[arg(long, global = true, value_name = "SIZE", default_value = "32MiB",
          value_parser = cmd::split::parse_size, help_heading = GLOBAL)]
    store_pack_size: u64,
    /// Most entries the quarantine keeps (each refused import is one); the oldest are
    /// dropped first. For imports (`kit import`, the import API of `serve`) and
    /// `quarantine clean`.
    #[arg(long, global = true, env = "OUK_QUARANTINE_MAX_ENTRIES", value_name = "N",
          default_value_t = ouk_kit::import::quarantine::DEFAULT_MAX_ENTRIES as u32,
          value_parser = clap::value_parser!(u32).range(1..), help_heading = GLOBAL)]
    quarantine_max_entries: u32,
    /// Most bytes the quarantine keeps in all; the oldest entries are dropped first, and a
    /// refused input larger than this is not kept (its reason is).
    #[arg(long, global = true, env = "OUK_QUARANTINE_MAX_SIZE", value_name = "SIZE",
          default_value = "4GiB", value_parser = cmd::split::parse_size, help_heading = GLOBAL)]
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
    /// Check the root and say what to fix: permissions, lock, free space, trust, clock,
    /// staleness, leftovers, quarantine (and the store with --fsck).
    ///
    /// Read-only like `status` (no lock unless --fsck). Exit 0 unless a check fails (1).
    Doctor(cmd::doctor::DoctorArgs),
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    ///
    /// bash: `ouk completions bash > /etc/bash_completion.d/ouk` (the packages install it).
    Completions(completions::CompletionsArgs),
    /// Write the man pages (ouk.1 and one per subcommand), generated from this binary.
    ///
    /// `ouk man --output-dir /usr/local/share/man/man1 && mandb` (the packages install them).
    Man(completions::ManArgs),
}

/// A command's failure: a message for stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub code: ExitCode,
    /// Message (without the `ouk:` prefix).
    pub message: String,
    /// The step that refused (an import's `verify`, `policy`, ...), as the import API
    /// reports it.
    pub step: Option<String>,
    /// Where a refused input was kept for inspection.
    pub quarantined: Option<PathBuf>,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: ExitCode, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            step: None,
            quarantined: None,
        }
    }

    /// The JSON error document (`--json`): the fields the import API answers with.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "error": self.message,
            "exitCode": self.code as u8,
            "step": self.step,
            "quarantined": self.quarantined.as_ref().map(|p| p.display().to_string()),
        })
    }
}

impl From<ouk_delta::DeltaError> for Failure {
    fn from(e: ouk_delta::DeltaError) -> Self {
        Failure::new(
            exit::class_code(e.class()),
            hint::message(&e, hint::for_delta(&e)),
        )
    }
}

impl From<ouk_store::StoreError> for Failure {
    fn from(e: ouk_store::StoreError) -> Self {
        Failure::new(
            exit::class_code(e.class()),
            hint::message(&e, hint::for_store(&e)),
        )
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
    /// [`ouk_root::RootView`]). A root last written by an older ouk has no published state
    /// yet: it is opened once for writing (which publishes it; only its owner can), then read.
    pub fn open_view(&self) -> Result<ouk_root::RootView, Failure> {
        match ouk_root::RootView::open(&self.root) {
            Err(ouk_delta::DeltaError::Unpublished { .. }) => {
                drop(self.open_root()?);
                Ok(ouk_root::RootView::open(&self.root)?)
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
    pub fn open_root(&self) -> Result<ouk_root::Root, Failure> {
        let wait = if self.wait {
            ouk_root::LockWait::Wait
        } else {
            ouk_root::LockWait::Fail
        };
        let options = ouk_store::StoreOptions {
            remote: self.remote.clone(),
            ..Default::default()
        };
        let root = ouk_root::Root::open(&self.root, wait, options)?;
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

/// The help of `--store-url` on the commands that take it.
const STORE_URL_HELP: &str = "Keep the chunk store's packs in S3-compatible object storage \
(s3://bucket/prefix; endpoint, region and keys from the AWS_* environment, the URL also from \
OUK_STORE_URL). The root keeps the local index, a cache that `ouk store reindex` rebuilds from \
the bucket.";

/// The argument id of a command's own `--store-url`.
const STORE_URL_ID: &str = "command_store_url";

/// Which commands take `--store-url`, as paths of subcommand names: where the option is
/// added (and so listed in help, completions and man pages) and nowhere else.
const STORE_URL_COMMANDS: [&[&str]; 6] = [
    &["mirror"],
    &["serve"],
    &["delta", "make"],
    &["store", "reindex"],
    &["store", "stats"],
    &["store", "fsck"],
];

/// [`Cli`]'s clap definition with `--store-url` added to the commands that take it
/// ([`STORE_URL_COMMANDS`]; under `mirror`, to every subcommand). Parsing, completions and
/// man pages all start from this.
pub fn cli_command() -> clap::Command {
    use clap::CommandFactory;
    fn add(cmd: clap::Command, path: &[&str]) -> clap::Command {
        match path.split_first() {
            None => cmd.arg(
                clap::Arg::new(STORE_URL_ID)
                    .long("store-url")
                    .value_name("URL")
                    .help(STORE_URL_HELP)
                    // Under `mirror`, every subcommand takes it.
                    .global(true),
            ),
            Some((name, rest)) => cmd.mut_subcommand(*name, |sub| add(sub, rest)),
        }
    }
    STORE_URL_COMMANDS
        .iter()
        .fold(Cli::command(), |cmd, path| add(cmd, path))
}

/// The `--store-url` given to the command that runs (the deepest subcommand that has one).
fn command_store_url(matches: &clap::ArgMatches) -> Option<String> {
    let here = matches
        .try_get_one::<String>(STORE_URL_ID)
        .ok()
        .flatten()
        .cloned();
    here.or_else(|| {
        matches
            .subcommand()
            .and_then(|(_, sub)| command_store_url(sub))
    })
}

/// Parse the command line: [`Cli`] from [`cli_command`]'s matches, with the command's own
/// `--store-url` taking the place of the old global spelling.
fn parse_cli() -> Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    let matches = cli_command().try_get_matches()?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let Some(url) = command_store_url(&matches) {
        cli.store_url = Some(url);
    }
    Ok(cli)
}

fn main() -> std::process::ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    output::guard_stdout();
    init_log(cli.verbose);
    let ctx = Context {
        root: cli.root,
        out: Output {
            json: cli.json,
            quiet: cli.quiet,
            progress: cli.progress,
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
        let msg = STORE_URL_ONLY;
        if ctx.out.json {
            output::print_line(&Failure::new(ExitCode::Failure, msg).json().to_string());
        }
        eprintln!("ouk: {msg}");
        return std::process::ExitCode::from(ExitCode::Failure as u8);
    }
    let result = contain::run(&ctx.root, || match command {
        Command::Store(c) => cmd::store::run(&ctx, c),
        Command::Gen(c) => cmd::generation::run(&ctx, c),
        Command::Status(a) => cmd::status::run(&ctx, &a),
        Command::Doctor(a) => cmd::doctor::run(&ctx, &a),
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
        Command::Completions(a) => completions::run_completions(&a),
        Command::Man(a) => completions::run_man(&ctx, &a),
    });
    match result {
        Ok(code) => std::process::ExitCode::from(code as u8),
        Err(f) => {
            if ctx.out.json {
                output::print_line(&f.json().to_string());
            }
            eprintln!("ouk: {}", f.message);
            std::process::ExitCode::from(f.code as u8)
        }
    }
}

/// Help and `--version` print and exit 0; any other parse failure is a usage error: exit 64
/// (EX_USAGE, not clap's 2, which is ouk's "digest mismatch"), with a JSON error on stdout
/// under `--json` as for every other failure.
fn usage_error(e: clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        // Printing help can only fail on a closed stdout; nothing else to say then.
        let _ = e.print();
        return std::process::ExitCode::SUCCESS;
    }
    let code = ExitCode::Usage as u8;
    // `--json` may be what failed to parse around; look for it among the raw words.
    if std::env::args_os().skip(1).any(|a| a == "--json") {
        // clap's message up to its usage block, on one line.
        let rendered = e.to_string();
        let message = rendered
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        let mut failure = Failure::new(ExitCode::Usage, message.trim_start_matches("error: "));
        failure.step = Some("usage".into());
        output::print_line(&failure.json().to_string());
    }
    let _ = e.print();
    if matches!(e.kind(), ErrorKind::UnknownArgument)
        && std::env::args_os().any(|a| a.to_string_lossy().starts_with("--store-url"))
    {
        eprintln!("ouk: {STORE_URL_ONLY}");
    }
    std::process::ExitCode::from(code)
}

/// What to say when `--store-url` is given to a command that does not take it.
const STORE_URL_ONLY: &str = "--store-url is for the mirror commands, serve, delta make and store reindex/stats/fsck (host-side commands keep the local store)";

/// The support log: ouk's own crates at the level `-v` asks for (nothing without it: the
/// messages people read are the commands' own),
/// or what OUK_LOG says; on stderr, so `--json` stdout stays one document.
fn init_log(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let level = match verbose {
        0 => "off",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let default = format!(
        "ouk={level},ouk_kit={level},ouk_delta={level},ouk_store={level},ouk_transport={level},ouk_recompress={level}"
    );
    let filter = std::env::var("OUK_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    // A second subscriber cannot be installed; there is none before this one.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .try_init();
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
        super::cli_command().debug_assert();
    }

    /// `--store-url` is an option of exactly the commands that take it.
    #[test]
    fn store_url_is_listed_only_where_it_is_taken() {
        fn walk(cmd: &clap::Command, path: &mut Vec<String>, seen: &mut Vec<String>) {
            if cmd
                .get_arguments()
                .any(|a| a.get_long() == Some("store-url") && !a.is_hide_set())
            {
                seen.push(path.join(" "));
            }
            for sub in cmd.get_subcommands() {
                path.push(sub.get_name().to_string());
                walk(sub, path, seen);
                path.pop();
            }
        }
        let mut cmd = super::cli_command();
        cmd.build();
        let mut seen = Vec::new();
        walk(&cmd, &mut Vec::new(), &mut seen);
        assert!(seen.contains(&"mirror add".to_string()), "{seen:?}");
        for want in [
            "serve",
            "delta make",
            "store reindex",
            "store stats",
            "store fsck",
        ] {
            assert!(seen.contains(&want.to_string()), "{want}: {seen:?}");
        }
        assert!(
            seen.iter().all(|p| p.starts_with("mirror")
                || super::STORE_URL_COMMANDS.iter().any(|c| c.join(" ") == *p)),
            "{seen:?}"
        );
        assert!(
            !seen.iter().any(|p| p.is_empty() || p.starts_with("kit")),
            "{seen:?}"
        );
    }
}
