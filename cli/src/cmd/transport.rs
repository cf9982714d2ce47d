//! `ouk serve`, `ouk kit pull` and `ouk kit index`: carrying kits over HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use ouk_transport::serve::SecretsDoor;

use crate::exit::ExitCode;
use crate::output::{Output, bytes};
use crate::shared::parse_size;
use crate::shared::{load_public_keys, transport_failure};
use crate::{Context, Failure};

/// `ouk serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Loopback by default; give another address to serve a network.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The directory to publish (kits and deltas as `kit build` / `delta make` write
    /// them). Default: ROOT/kits.
    #[arg(long)]
    kits: Option<PathBuf>,
    /// A file holding the bearer token of the import API. Without one (or
    /// OUK_IMPORT_TOKEN) the import API is off.
    #[arg(long)]
    import_token_file: Option<PathBuf>,
    /// A file (mode 0600) holding the pull token: the bearer token a client must give
    /// (`ouk kit pull --token-file`) to download a bundle that holds secrets (files under
    /// secrets/, such as the Policy Gateway's DPoP key). Also: OUK_PULL_TOKEN. Without one,
    /// such bundles are refused to everyone (403) unless --public-secrets; their sidecars
    /// stay public.
    #[arg(long, value_name = "FILE")]
    pull_token_file: Option<PathBuf>,
    /// Hand bundles that hold secrets to any client that can reach the server, without a
    /// token (only on a network where everyone may have the kits' private keys).
    #[arg(long, conflicts_with = "pull_token_file")]
    public_secrets: bool,
    /// A file (mode 0600) holding the read-only token `GET /metrics` then needs (also:
    /// OUK_METRICS_TOKEN). Without one, /metrics answers anyone who can reach the server;
    /// /healthz always does. It opens nothing else, and must differ from the other tokens.
    #[arg(long, value_name = "FILE")]
    metrics_token_file: Option<PathBuf>,
    /// Connections served at once.
    #[arg(long, default_value_t = 64)]
    max_connections: usize,
    /// Seconds a connection has to send its request head.
    #[arg(long, default_value_t = 10)]
    header_timeout: u64,
    /// Seconds requests in flight get to finish after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
    /// Largest upload the import API accepts (e.g. 64GiB).
    #[arg(long, default_value = "64GiB", value_parser = parse_size)]
    max_upload: u64,
    /// Limit each download to this many bytes per second (e.g. 10MiB).
    #[arg(long, value_parser = parse_size)]
    limit_rate: Option<u64>,
    /// Seconds a client may leave a response unread before its connection is closed.
    #[arg(long, default_value_t = 60)]
    send_timeout: u64,
    /// Publish the root's mirror (which may be on object storage, --store-url): every
    /// mirrored bundle is exported, verified, into the published directory (default
    /// ROOT/mirror-published) before serving; bundles already there are kept.
    #[arg(long)]
    mirror: bool,
    /// Refuse API imports of kits created more than DAYS days ago (0: no limit).
    #[arg(long, value_name = "DAYS", default_value_t = ouk_kit::import::DEFAULT_MAX_AGE_DAYS)]
    max_kit_age: u64,
    /// Refuse API imports of kits dated more than SECONDS ahead of this host's clock.
    #[arg(long, value_name = "SECONDS", default_value_t = ouk_kit::import::policy::DEFAULT_MAX_CLOCK_SKEW_SECS)]
    max_clock_skew: u64,
}

pub fn run_serve(ctx: &Context, args: ServeArgs) -> Result<ExitCode, Failure> {
    let kits_dir = serve_dir(ctx, &args)?;
    let tokens = ServeTokens::read(&args)?;
    let secrets = SecretsDoor::of(args.public_secrets, tokens.pull.is_some());
    let hooks = serve_hooks(ctx, tokens.import.is_some(), secrets);
    let opts = ouk_transport::serve::ServeOptions {
        listen: args.listen,
        kits_dir,
        root_dir: ctx.root.clone(),
        max_connections: args.max_connections,
        header_timeout: Duration::from_secs(args.header_timeout.max(1)),
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        import_token: tokens.import,
        pull_token: tokens.pull,
        public_secrets: args.public_secrets,
        metrics_token: tokens.metrics,
        max_upload: args.max_upload,
        limit_rate: args.limit_rate,
        send_timeout: Duration::from_secs(args.send_timeout.max(1)),
        max_kit_age: args.max_kit_age,
        max_clock_skew: args.max_clock_skew,
        quarantine: ctx.quarantine,
    };
    ouk_transport::serve::serve(opts, hooks).map_err(transport_failure)?;
    Ok(ExitCode::Ok)
}

/// The directory `ouk serve` serves: `--kits`, or the root's `kits/`; with `--mirror`,
/// the root's `mirror-published/` (unless `--kits`), into which the mirror is published
/// first. An object-storage store is served only that way.
fn serve_dir(ctx: &Context, args: &ServeArgs) -> Result<PathBuf, Failure> {
    let kits_dir = match (&args.kits, args.mirror) {
        (Some(dir), _) => dir.clone(),
        (None, true) => ctx.root.join("mirror-published"),
        (None, false) => ctx.root.join("kits"),
    };
    if args.mirror {
        // The root is locked only while publishing: the import API opens it per request.
        let root = ctx.open_root()?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let r = ouk_kit::mirror::publish(&root, &kits_dir, threads)
            .map_err(crate::shared::kit_failure)?;
        if !ctx.out.quiet && !ctx.out.json {
            eprintln!(
                "published the mirror into {}: {} exported, {} unchanged",
                kits_dir.display(),
                r.exported.len(),
                r.unchanged.len()
            );
        }
    } else if ctx.remote.is_some() {
        return Err(Failure::new(
            ExitCode::Failure,
            "serve publishes an object-storage store's mirror with --mirror",
        ));
    }
    Ok(kits_dir)
}

/// The three secrets of `ouk serve` (import, pull, metrics), each at least 16 characters
/// and each different from the others, since each is held by someone the others must not
/// let in.
struct ServeTokens {
    import: Option<String>,
    pull: Option<String>,
    metrics: Option<String>,
}

impl ServeTokens {
    fn read(args: &ServeArgs) -> Result<Self, Failure> {
        let token = read_token(
            args.import_token_file.as_deref(),
            "OUK_IMPORT_TOKEN",
            "--import-token-file",
        )?;
        if token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(Failure::new(
                ExitCode::Validation,
                "the import token must be at least 16 characters",
            ));
        }
        let pull_token = if args.public_secrets {
            None
        } else {
            read_token(
                args.pull_token_file.as_deref(),
                "OUK_PULL_TOKEN",
                "--pull-token-file",
            )?
        };
        if let Some(t) = &pull_token {
            if t.len() < 16 {
                return Err(Failure::new(
                    ExitCode::Validation,
                    "the pull token must be at least 16 characters",
                ));
            }
            // Every puller holds the pull token: it must not also open the import API.
            if token.as_ref() == Some(t) {
                return Err(Failure::new(
                    ExitCode::Validation,
                    "the pull token must differ from the import token (every puller holds the pull token)",
                ));
            }
        }
        let metrics_token = read_token(
            args.metrics_token_file.as_deref(),
            "OUK_METRICS_TOKEN",
            "--metrics-token-file",
        )?;
        if let Some(t) = &metrics_token {
            if t.len() < 16 {
                return Err(Failure::new(
                    ExitCode::Validation,
                    "the metrics token must be at least 16 characters",
                ));
            }
            // A monitoring system holds it: it must open nothing but /metrics.
            if token.as_ref() == Some(t) || pull_token.as_ref() == Some(t) {
                return Err(Failure::new(
                    ExitCode::Validation,
                    "the metrics token must differ from the import and pull tokens (a monitoring system holds it)",
                ));
            }
        }
        Ok(ServeTokens {
            import: token,
            pull: pull_token,
            metrics: metrics_token,
        })
    }
}

/// What the server calls back into the binary: status and gauges read through fresh
/// quiet JSON contexts, the listening line on stdout, the log on stderr.
fn serve_hooks(ctx: &Context, api: bool, secrets: SecretsDoor) -> ouk_transport::serve::ServeHooks {
    let status_ctx = Context {
        root: ctx.root.clone(),
        out: Output {
            json: true,
            quiet: true,
            progress: crate::output::ProgressMode::None,
        },
        wait: false,
        remote: None,
        quarantine: ctx.quarantine,
    };
    let gauges_ctx = Context {
        root: ctx.root.clone(),
        out: Output {
            json: true,
            quiet: true,
            progress: crate::output::ProgressMode::None,
        },
        wait: false,
        remote: None,
        quarantine: ctx.quarantine,
    };
    let quiet = ctx.out.quiet;
    let json = ctx.out.json;
    ouk_transport::serve::ServeHooks {
        status: Arc::new(move || {
            crate::cmd::status::status_json(&status_ctx).map_err(|f| (f.code as u8, f.message))
        }),
        gauges: Arc::new(move || crate::cmd::status::gauges(&gauges_ctx).map_err(|f| f.message)),
        on_listening: Box::new(move |addr| {
            // One line on stdout, so scripts (and tests) learn the port.
            if json {
                crate::output::print_line(
                    &serde_json::json!({
                        "listening": addr.to_string(),
                        "importApi": api,
                        "secrets": match secrets {
                            SecretsDoor::Public => "public",
                            SecretsDoor::PullToken => "token",
                            SecretsDoor::Closed => "refused",
                        },
                    })
                    .to_string(),
                );
            } else {
                // No ':' after the address: scripts take the port from the last one.
                crate::output::print_line(&format!(
                    "listening on http://{addr}/ouk/ (import API {}, bundles holding secrets {})",
                    if api { "on" } else { "off" },
                    match secrets {
                        SecretsDoor::Public => "served to anyone",
                        SecretsDoor::PullToken => "served with the pull token",
                        SecretsDoor::Closed => "refused",
                    }
                ));
            }
        }),
        log: Arc::new(move |line: &str| {
            if !quiet {
                eprintln!("{line}");
            }
        }),
        secrets_held: Box::new(move |name, door| {
            if !quiet {
                eprintln!("{name} holds secrets: {}", secrets_door_text(door));
            }
        }),
    }
}

/// How the server hands out a bundle holding secrets, with the flags that set it (the
/// start-up line per such bundle).
fn secrets_door_text(door: SecretsDoor) -> &'static str {
    match door {
        SecretsDoor::Public => "served to anyone (--public-secrets)",
        SecretsDoor::PullToken => "served only with the pull token",
        SecretsDoor::Closed => {
            "refused to every client (no --pull-token-file; --public-secrets serves it to anyone)"
        }
    }
}

/// A bearer token from `file` (which group and others may not read or write: the import
/// token activates kits, the pull token opens kits' secrets), else from the environment
/// variable `env`; `None` when neither gives a non-empty one. The mode is the open file's,
/// so the file checked is the file read. `option` names the flag in messages.
fn read_token(
    file: Option<&std::path::Path>,
    env: &str,
    option: &str,
) -> Result<Option<String>, Failure> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = file else {
        return Ok(std::env::var(env)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty()));
    };
    let fail =
        |e: std::io::Error| Failure::new(ExitCode::Failure, format!("{}: {e}", path.display()));
    let f = std::fs::File::open(path).map_err(fail)?;
    // The mode of the file opened (not of a name that could be swapped meanwhile).
    let mode = f.metadata().map_err(fail)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Failure::new(
            ExitCode::Validation,
            format!(
                "{option} {}: mode {:04o} lets group or others at the token: chmod 600 {}",
                path.display(),
                mode & 0o7777,
                path.display()
            ),
        ));
    }
    let mut text = String::new();
    f.take(64 << 10).read_to_string(&mut text).map_err(fail)?;
    let t = text.trim().to_string();
    if t.is_empty() {
        return Err(Failure::new(
            ExitCode::Validation,
            format!("{option} {}: the file is empty", path.display()),
        ));
    }
    Ok(Some(t))
}

/// `ouk kit pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Base URL of the published directory, e.g. http://HOST:8080/ouk/.
    #[arg(long)]
    from: String,
    /// Where the bundle and its sidecars go.
    #[arg(long, default_value = "offline-kit")]
    destination: PathBuf,
    /// `latest`, a version, or a bundle name.
    #[arg(default_value = "latest")]
    selector: String,
    /// Pull a kit or a delta.
    #[arg(long, default_value = "kit", value_parser = ["kit", "delta"])]
    kind: String,
    /// Only from this channel.
    #[arg(long)]
    channel: Option<String>,
    /// Public key (PKIX PEM) to verify the bundle's signature with (also: ROOT/trust).
    #[arg(long)]
    key: Vec<PathBuf>,
    /// Accept a bundle whose signature could not be checked.
    #[arg(long)]
    allow_unsigned: bool,
    /// Seconds to wait for the server to connect, answer or send more bytes.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// A file (mode 0600: one readable by group or others is refused) holding the pull
    /// token, sent as `Authorization: Bearer` to the --from server: `ouk serve` hands out
    /// bundles that hold secrets only with it. Also: OUK_PULL_TOKEN.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

pub fn run_pull(ctx: &Context, args: PullArgs) -> Result<ExitCode, Failure> {
    let token = read_token(args.token_file.as_deref(), "OUK_PULL_TOKEN", "--token-file")?;
    let extra = load_public_keys(&args.key)?;
    let keys = if ctx.root.join("trust").is_dir() {
        ouk_kit::import::trusted_keys(&ctx.root, &extra).map_err(crate::shared::kit_failure)?
    } else {
        extra
    };
    let opts = ouk_transport::pull::PullOptions {
        from: args.from,
        destination: args.destination,
        selector: args.selector,
        kind: args.kind,
        channel: args.channel,
        keys,
        allow_unsigned: args.allow_unsigned,
        timeout: Duration::from_secs(args.timeout.max(1)),
        token,
    };
    let mut progress = ctx.out.progress("pull", 0);
    let report = ouk_transport::pull::pull(&opts, &mut |event| match event {
        ouk_transport::pull::PullProgress::Total(total) => progress.set_total(total),
        ouk_transport::pull::PullProgress::Bytes(_, n) => progress.inc(n),
    })
    .map_err(transport_failure)?;
    drop(progress);
    ctx.out.emit(&report, || {
        let mut s = format!(
            "pulled {} ({} {}, {})\n  sha256 {}\n  {}",
            report.path.display(),
            report.bundle.kind,
            report.bundle.version,
            bytes(report.bundle.size),
            report.bundle.sha256,
            match &report.signed_by {
                Some(kid) => format!("signature verified (kid {kid})"),
                None => "signature NOT checked (--allow-unsigned)".into(),
            }
        );
        for f in &report.files {
            let how = match f.how.as_str() {
                "resumed" => format!("resumed at {}", bytes(f.resumed_from)),
                other => other.to_string(),
            };
            s.push_str(&format!("\n  {:<24} {}", how, f.path));
        }
        s
    });
    Ok(ExitCode::Ok)
}

/// `ouk kit index`.
#[derive(Debug, Args)]
pub struct IndexArgs {
    /// The directory to index (writes DIR/index.json, for static web servers).
    dir: PathBuf,
}

pub fn run_index(ctx: &Context, args: IndexArgs) -> Result<ExitCode, Failure> {
    let (index, skipped) =
        ouk_transport::index::write_index(&args.dir).map_err(transport_failure)?;
    // A static web server has no pull token: it hands these to anyone who can reach it.
    let secret: Vec<&str> = index
        .bundles
        .iter()
        .filter(|b| b.secrets)
        .map(|b| b.name.as_str())
        .collect();
    let doc = serde_json::json!({
        "index": args.dir.join(ouk_transport::index::INDEX_NAME),
        "bundles": index.bundles.len(),
        "skipped": skipped,
        "secrets": secret,
    });
    ctx.out.emit(&doc, || {
        let mut s = format!(
            "wrote {} ({} bundles)",
            args.dir.join(ouk_transport::index::INDEX_NAME).display(),
            index.bundles.len()
        );
        for k in &skipped {
            s.push_str(&format!("\n  not published: {}: {}", k.name, k.reason));
        }
        for n in &secret {
            s.push_str(&format!(
                "\n  holds secrets: {n} (a static web server hands it to anyone who can reach it: restrict it there, or publish with `ouk serve --pull-token-file`)"
            ));
        }
        s
    });
    Ok(ExitCode::Ok)
}
