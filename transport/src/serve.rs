//! `ouk serve`: publish a kit directory over HTTP/1.1 and accept imports.
//!
//! Routes:
//! - `GET /ouk/` and `GET /ouk/index.json`: the [published index](crate::index), rebuilt
//!   from the directory on every request (digests are cached by inode, size and mtime);
//! - `GET /ouk/<path>`: a file the index lists, with a strong `ETag` (its SHA-256),
//!   `Accept-Ranges`, single `Range` requests (206 / 416), `If-None-Match` (304) and
//!   `If-Range`; `HEAD` of the same; a bundle that holds secrets (files under `secrets/`,
//!   such as the Policy Gateway's DPoP private key) only to a request bearing the pull
//!   token (403 when none is configured, 401 without it or with another), unless the
//!   operator published them with `--public-secrets`; its sidecars stay public;
//! - `POST /api/offline-kit/import`: the body (multipart `bundle` plus optional
//!   `signature`, `metadata`, `manifest`, `manifest-signature` parts, or a raw bundle) is
//!   streamed to `ROOT/uploads/`, then run through the same import pipeline as `ouk kit
//!   import` (query: `dryRun=true`, `maxKitAge=DAYS`); the answer is JSON with the exit
//!   code, and the HTTP status follows it ([`http_status_of`]);
//! - `GET /api/offline-kit/status`: what `ouk status --json` prints;
//! - `GET /healthz`: `200 ok` while the server runs (liveness), to anyone;
//! - `GET /metrics`: the Prometheus text format ([`crate::metrics`]), to anyone, or only
//!   under the metrics token when one is configured.
//!
//! Invariants: a file URL reaches only a path the index lists (the whitelist is the only
//! way to the disk, so `..`, percent-encoded or not, leads nowhere); the API answers only a
//! request bearing the token configured at start (compared in constant time, never
//! logged), and is off when no token is configured; a bundle holding secrets (by its
//! descriptor, or by its own content, checked on the file actually opened) is sent only
//! under the pull token (same comparison, never logged; the import token does not open
//! it, so pullers never need the credential that changes the root) or with
//! `--public-secrets`; the metrics token opens `/metrics` only (it is the read-only
//! credential a monitoring system holds: neither the import nor the pull token opens
//! `/metrics`, and it opens neither the API nor a bundle); a scrape reads the root through
//! the binary's hook, which takes no lock, so monitoring never delays or fails an import;
//! at most `max_connections` connections are served at once (the
//! rest wait in the kernel's backlog); a connection that does not send its request head
//! within `header_timeout` is closed; on SIGINT or SIGTERM the server stops accepting,
//! lets requests in flight finish (up to `shutdown_grace`) and returns.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use ouk_store::ErrorClass;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::error::{RefusalReason, Result, TransportError};
use crate::index::{DigestCache, INDEX_NAME, PublishedIndex, is_plain_path, scan};

/// The root's status as JSON, or an exit code and message.
pub type StatusOf = dyn Fn() -> std::result::Result<serde_json::Value, (u8, String)> + Send + Sync;
/// The root's gauges for `/metrics` (read without the root's lock), or why they could not
/// be read.
pub type GaugesOf =
    dyn Fn() -> std::result::Result<crate::metrics::RootGauges, String> + Send + Sync;

/// Told a published bundle's name and how the server hands it out (it holds secrets).
pub type SecretsHeld = dyn Fn(&str, SecretsDoor) + Send;

/// How to serve.
pub struct ServeOptions {
    /// Address to bind (loopback unless the operator says otherwise).
    pub listen: SocketAddr,
    /// The published directory.
    pub kits_dir: PathBuf,
    /// The root imports go to.
    pub root_dir: PathBuf,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time a connection has to send its request head.
    pub header_timeout: Duration,
    /// Time requests in flight get after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Bearer token of the import API (`None`: the API is off).
    pub import_token: Option<String>,
    /// Bearer token a client needs to download a bundle that holds secrets (`None`:
    /// nobody may, unless `public_secrets`).
    pub pull_token: Option<String>,
    /// Hand bundles that hold secrets to any client (the operator's explicit choice).
    pub public_secrets: bool,
    /// Bearer token `/metrics` needs (`None`: it answers anyone).
    pub metrics_token: Option<String>,
    /// Largest upload the import API accepts.
    pub max_upload: u64,
    /// Bytes per second per download (`None`: no limit).
    pub limit_rate: Option<u64>,
    /// Time a client may leave the server's writes unread before its connection is
    /// closed (a slow reader holds a connection slot only this long).
    pub send_timeout: Duration,
    /// The staleness window applied to API imports (days; 0: none), as `ouk kit import
    /// --max-kit-age`. Fixed at start: an API client cannot turn the freeze check off.
    pub max_kit_age: u64,
    /// How far ahead of this host's clock an API-imported kit may be dated (seconds), as
    /// `ouk kit import --max-clock-skew`; fixed at start like the window.
    pub max_clock_skew: u64,
    /// How much the quarantine may hold (refused uploads).
    pub quarantine: ouk_kit::import::quarantine::Limits,
}

/// What the binary lends the server.
pub struct ServeHooks {
    /// The root's status.
    pub status: Arc<StatusOf>,
    /// The root's gauges, for `/metrics`.
    pub gauges: Arc<GaugesOf>,
    /// Called once the socket is bound, with its address.
    pub on_listening: Box<dyn FnOnce(SocketAddr) + Send>,
    /// One line per request (method, path, status, bytes, time; never headers).
    pub log: Arc<dyn Fn(&str) + Send + Sync>,
    /// At start, once per published bundle that holds secrets: its name and how this
    /// server hands it out (the binary words it, with the flags that set it).
    pub secrets_held: Box<SecretsHeld>,
}

/// How a server hands out bundles that hold secrets, as its options set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretsDoor {
    /// To anyone who can reach it.
    Public,
    /// Only to a request bearing the pull token.
    PullToken,
    /// To nobody (no pull token configured).
    Closed,
}

impl SecretsDoor {
    /// The door `public_secrets` and a configured (non-empty) pull token make: public
    /// wins, as in [`authorize_secrets`].
    pub fn of(public_secrets: bool, pull_token: bool) -> Self {
        if public_secrets {
            SecretsDoor::Public
        } else if pull_token {
            SecretsDoor::PullToken
        } else {
            SecretsDoor::Closed
        }
    }
}

struct Shared {
    kits: PathBuf,
    root: PathBuf,
    cache: DigestCache,
    index: RwLock<Arc<PublishedIndex>>,
    token: Option<String>,
    pull_token: Option<String>,
    public_secrets: bool,
    metrics_token: Option<String>,
    max_upload: u64,
    limit_rate: Option<u64>,
    status: Arc<StatusOf>,
    gauges: Arc<GaugesOf>,
    log: Arc<dyn Fn(&str) + Send + Sync>,
    counters: crate::metrics::ServeCounters,
    uploads: AtomicU64,
    max_kit_age: u64,
    max_clock_skew: u64,
    quarantine: ouk_kit::import::quarantine::Limits,
    /// One directory scan at a time (concurrent requests wait for it and share it).
    scanning: tokio::sync::Mutex<()>,
}

type AppState = Arc<Shared>;

/// Serve until SIGINT or SIGTERM. Blocks the calling thread.
pub fn serve(opts: ServeOptions, hooks: ServeHooks) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| TransportError::Serve(format!("start the runtime: {e}")))?;
    runtime.block_on(run(opts, hooks))
}

async fn run(opts: ServeOptions, hooks: ServeHooks) -> Result<()> {
    if !opts.kits_dir.is_dir() {
        return Err(TransportError::NotADirectory {
            path: opts.kits_dir.clone(),
        });
    }
    let cache = DigestCache::default();
    let kits = opts.kits_dir.clone();
    let (first, cache) = tokio::task::spawn_blocking(move || {
        let r = scan(&kits, &cache);
        (r, cache)
    })
    .await
    .map_err(|e| TransportError::Serve(e.to_string()))?;
    let (index, skipped) = first?;
    for s in &skipped {
        (hooks.log)(&format!("not published: {}: {}", s.name, s.reason));
    }
    let pull_token = opts.pull_token.clone().filter(|t| !t.is_empty());
    let door = SecretsDoor::of(opts.public_secrets, pull_token.is_some());
    for b in index.bundles.iter().filter(|b| b.secrets) {
        (hooks.secrets_held)(&b.name, door);
    }
    let state: AppState = Arc::new(Shared {
        kits: opts.kits_dir.clone(),
        root: opts.root_dir.clone(),
        cache,
        index: RwLock::new(Arc::new(index)),
        token: opts.import_token.clone().filter(|t| !t.is_empty()),
        pull_token,
        public_secrets: opts.public_secrets,
        metrics_token: opts.metrics_token.clone().filter(|t| !t.is_empty()),
        max_upload: opts.max_upload,
        limit_rate: opts.limit_rate.filter(|r| *r > 0),
        status: hooks.status,
        gauges: hooks.gauges,
        log: hooks.log.clone(),
        counters: crate::metrics::ServeCounters::default(),
        uploads: AtomicU64::new(0),
        max_kit_age: opts.max_kit_age,
        max_clock_skew: opts.max_clock_skew,
        quarantine: opts.quarantine,
        scanning: tokio::sync::Mutex::new(()),
    });
    sweep_uploads(&opts.root_dir.join("uploads"), &state.log);
    let app = Router::new()
        .route("/ouk", get(index_doc))
        .route("/ouk/", get(index_doc))
        .route("/ouk/{*path}", get(file))
        .route(
            "/api/offline-kit/import",
            post(import).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/offline-kit/status", get(status))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state.clone());

    // Signal handlers first: a SIGTERM right after the "listening" line must already mean
    // a graceful stop.
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate())
        .map_err(|e| TransportError::Serve(format!("SIGTERM handler: {e}")))?;
    let int = signal(SignalKind::interrupt())
        .map_err(|e| TransportError::Serve(format!("SIGINT handler: {e}")))?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| TransportError::Serve(format!("bind {}: {e}", opts.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| TransportError::Serve(e.to_string()))?;
    (hooks.on_listening)(local);

    let permits = Arc::new(tokio::sync::Semaphore::new(opts.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let shutdown = shutdown_signal(term, int);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, _peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                // Out of descriptors and the like: wait a little rather than spin.
                Err(e) => {
                    (state.log)(&format!("accept: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let svc = TowerToHyperService::new(app.clone());
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(opts.header_timeout)
            .serve_connection(
                TokioIo::new(WriteTimeout {
                    inner: stream,
                    timeout: opts.send_timeout,
                    sleep: None,
                }),
                svc,
            );
        let watched = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = watched.await;
            drop(permit);
        });
    }
    drop(listener);
    (state.log)("shutting down: finishing requests in flight");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(opts.shutdown_grace) => {
            (state.log)("shutdown grace elapsed; closing remaining connections");
        }
    }
    Ok(())
}

async fn shutdown_signal(
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Remove upload directories left by server processes that no longer run (a crash, or a
/// shutdown that cut an import off). Names are `<pid>-<n>`.
fn sweep_uploads(dir: &Path, log: &Arc<dyn Fn(&str) + Send + Sync>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive && std::fs::remove_dir_all(e.path()).is_ok() {
            log(&format!("removed the stale upload {}", e.path().display()));
        }
    }
}

/// A connection whose writes fail once the client has left them unread for `timeout`.
/// hyper has a timeout for reading a request head but none for writing: without this, a
/// client that asks for a large file and never reads keeps its connection slot forever.
struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteTimeout<S> {
    /// After the inner write returned pending: time out once the deadline passes.
    fn pending<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<T>> {
        let timeout = self.timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            std::task::Poll::Ready(()) => std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WriteTimeout<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match std::pin::Pin::new(&mut this.inner).poll_write(cx, buf) {
            std::task::Poll::Pending => this.pending(cx),
            ready => {
                this.sleep = None;
                ready
            }
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match std::pin::Pin::new(&mut this.inner).poll_flush(cx) {
            std::task::Poll::Pending => this.pending(cx),
            ready => {
                this.sleep = None;
                ready
            }
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

fn log_line(st: &Shared, method: &Method, path: &str, status: StatusCode, bytes: u64, t: Instant) {
    // Every response with a body is logged here with its size: the one place to count.
    st.counters.add_served(bytes);
    // Paths are logged with control characters escaped; headers (and so tokens) never.
    let shown: String = path.chars().flat_map(char::escape_debug).collect();
    (st.log)(&format!(
        "{method} {shown} {} {bytes} B {:.3}s",
        status.as_u16(),
        t.elapsed().as_secs_f64()
    ));
}

async fn refresh(st: &AppState) -> std::result::Result<Arc<PublishedIndex>, StatusCode> {
    let _one = st.scanning.lock().await;
    let s = st.clone();
    let scanned = tokio::task::spawn_blocking(move || scan(&s.kits, &s.cache))
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    match scanned {
        Ok((index, _)) => {
            let index = Arc::new(index);
            *st.index.write().unwrap_or_else(|p| p.into_inner()) = index.clone();
            Ok(index)
        }
        Err(e) => {
            (st.log)(&format!("index: {e}"));
            Err(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').any(|t| {
        let t = t.trim();
        t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag
    })
}

async fn index_doc(State(st): State<AppState>, method: Method, headers: HeaderMap) -> Response {
    let t = Instant::now();
    let (status, bytes, r) = index_response(&st, &headers).await;
    log_line(
        &st,
        &method,
        &format!("/ouk/{INDEX_NAME}"),
        status,
        bytes,
        t,
    );
    r
}

/// The index document (or 304), with the bytes it sends; the caller logs the request.
async fn index_response(st: &AppState, headers: &HeaderMap) -> (StatusCode, u64, Response) {
    let index = match refresh(st).await {
        Ok(i) => i,
        Err(s) => return (s, 0, s.into_response()),
    };
    let mut body = match serde_json::to_vec_pretty(&*index) {
        Ok(b) => b,
        Err(_) => {
            let s = StatusCode::INTERNAL_SERVER_ERROR;
            return (s, 0, s.into_response());
        }
    };
    body.push(b'\n');
    let etag = format!("\"{}\"", hex::encode(&sha2_of(&body)[..16]));
    let status = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, &etag))
    {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let sent = if status == StatusCode::OK {
        body.len() as u64
    } else {
        0
    };
    let mut r = if status == StatusCode::OK {
        Response::new(Body::from(body))
    } else {
        Response::new(Body::empty())
    };
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    (status, sent, r)
}

fn sha2_of(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// A `Range` request against a file of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// Send the whole file (no range, an unsupported or malformed one, several ranges).
    Full,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// Nothing of the file is in the range (416).
    Unsatisfiable,
}

fn parse_range(value: &str, len: u64) -> RangeRequest {
    // The unit is case-insensitive (RFC 9110 14.1).
    let v = value.trim();
    let spec = match v.get(..6) {
        Some(unit) if unit.eq_ignore_ascii_case("bytes=") => &v[6..],
        _ => return RangeRequest::Full,
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeRequest::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    // Digits only; a number past u64 is clamped (it is past any file's end anyway).
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            Some(s.parse().unwrap_or(u64::MAX))
        }
    };
    match (a.is_empty(), num(a), num(b)) {
        (true, _, Some(n)) => {
            if n == 0 || len == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Part(len.saturating_sub(n), len - 1)
            }
        }
        (false, Some(s), None) if b.is_empty() => {
            if s >= len {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Part(s, len - 1)
            }
        }
        (false, Some(s), Some(e)) if s <= e => {
            if s >= len {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Part(s, e.min(len - 1))
            }
        }
        _ => RangeRequest::Full,
    }
}

async fn file(State(st): State<AppState>, req: Request) -> Response {
    let t = Instant::now();
    let method = req.method().clone();
    let raw = req.uri().path().to_string();
    let headers = req.headers().clone();
    let (status, bytes, response) = serve_file(&st, &raw, &headers).await;
    let sent = if method == Method::HEAD { 0 } else { bytes };
    log_line(&st, &method, &raw, status, sent, t);
    response
}

fn plain(status: StatusCode, message: &str) -> (StatusCode, u64, Response) {
    let mut r = Response::new(Body::from(format!("{message}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    (status, 0, r)
}

async fn serve_file(st: &AppState, raw: &str, headers: &HeaderMap) -> (StatusCode, u64, Response) {
    let Some(rel) = raw.strip_prefix("/ouk/") else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    // Decode once, strictly; the result must be a plain path the index lists.
    let Ok(rel) = percent_encoding::percent_decode_str(rel).decode_utf8() else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    let rel = rel.into_owned();
    if !is_plain_path(&rel) {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    if rel == INDEX_NAME {
        return index_response(st, headers).await;
    }
    let index = st.index.read().unwrap_or_else(|p| p.into_inner()).clone();
    let index = if index.file(&rel).is_some() {
        index
    } else {
        match refresh(st).await {
            Ok(index) => index,
            Err(s) => return plain(s, "index unavailable"),
        }
    };
    if index.file(&rel).is_none() {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    // Only bundles are gated (sidecars and the manifest stay public); whether this one
    // holds secrets is asked of the file opened below, not only of the index, which may
    // be older than the file.
    let gated = !st.public_secrets && index.is_bundle(&rel);
    let said_secret = index.holds_secrets(&rel);
    drop(index);
    let path = st.kits.join(&rel);
    if !crate::index::no_symlink_on_the_way(&st.kits, &rel) {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    let mut f = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) => return plain(StatusCode::NOT_FOUND, "not found"),
    };
    let digest = {
        let (s, p) = (st.clone(), path.clone());
        tokio::task::spawn_blocking(move || {
            let secret = gated && (said_secret || s.cache.holds_secrets(&p));
            s.cache.digest(&p).map(|d| (d, secret))
        })
        .await
    };
    let ((len, sha), secret) = match digest {
        Ok(Ok(d)) => d,
        _ => return plain(StatusCode::NOT_FOUND, "not found"),
    };
    // The file opened must be the one hashed and surveyed (not replaced in between).
    match (f.metadata().await, tokio::fs::symlink_metadata(&path).await) {
        (Ok(a), Ok(b)) if same_file(&a, &b) && a.len() == len => {}
        _ => return plain(StatusCode::SERVICE_UNAVAILABLE, "file is changing; retry"),
    }
    if secret && let Some(refused) = authorize_secrets(st, headers) {
        return (refused.status(), 0, refused);
    }
    let etag = format!("\"{sha}\"");
    let mut base = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "no-cache");
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, &etag))
    {
        let r = base
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_default();
        return (StatusCode::NOT_MODIFIED, 0, r);
    }
    // If-Range names the entity the client's partial copy came from: a range is served
    // only when it is still this one (else the whole new file).
    let range_applies = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == etag));
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) if range_applies => parse_range(v, len),
        _ => RangeRequest::Full,
    };
    let (status, start, count) = match range {
        RangeRequest::Full => (StatusCode::OK, 0, len),
        RangeRequest::Part(s, e) => {
            base = base.header(header::CONTENT_RANGE, format!("bytes {s}-{e}/{len}"));
            (StatusCode::PARTIAL_CONTENT, s, e - s + 1)
        }
        RangeRequest::Unsatisfiable => {
            let r = base
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .body(Body::empty())
                .unwrap_or_default();
            return (StatusCode::RANGE_NOT_SATISFIABLE, 0, r);
        }
    };
    if start > 0 && f.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "seek failed");
    }
    let content_type = if rel.ends_with(".json") {
        "application/json"
    } else if rel.ends_with(".gz") || rel.ends_with(".tgz") {
        "application/gzip"
    } else {
        "application/octet-stream"
    };
    let body = file_body(f, count, st.limit_rate);
    let r = base
        .status(status)
        .header(header::CONTENT_LENGTH, count)
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .unwrap_or_default();
    (status, count, r)
}

fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

fn file_body(f: tokio::fs::File, count: u64, rate: Option<u64>) -> Body {
    use tokio::io::AsyncReadExt;
    let chunk = match rate {
        Some(r) => (r / 10).clamp(1024, 64 << 10) as usize,
        None => 256 << 10,
    };
    let stream = tokio_util::io::ReaderStream::with_capacity(f.take(count), chunk);
    match rate {
        None => Body::from_stream(stream),
        Some(r) => Body::from_stream(stream.then(move |item| async move {
            if let Ok(b) = &item {
                let secs = b.len() as f64 / r as f64;
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            }
            item
        })),
    }
}

async fn not_found(method: Method, State(st): State<AppState>, req: Request) -> Response {
    let t = Instant::now();
    let path = req.uri().path().to_string();
    let (status, _, r) = plain(StatusCode::NOT_FOUND, "not found");
    log_line(&st, &method, &path, status, 0, t);
    r
}

fn same_token(a: &[u8], b: &[u8]) -> bool {
    // Constant time in the content; the length of a wrong token is not a secret worth
    // hiding (the configured one is random and long).
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    let mut body = serde_json::to_vec_pretty(&value).unwrap_or_default();
    body.push(b'\n');
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A refusal's JSON body: `error` says what is refused and why (naming no flag: an HTTP
/// client has none), `reason` is the stable word a client keys on, `secrets` marks a
/// bundle holding secrets. A 401 asks for a bearer token (`WWW-Authenticate`).
fn refusal(status: StatusCode, reason: RefusalReason, secrets: bool) -> Response {
    let mut body = serde_json::json!({
        "error": reason.message(),
        "reason": reason.as_str(),
    });
    if secrets {
        body["secrets"] = true.into();
    }
    let mut r = json(status, body);
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// The bearer token a request gives, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
}

/// The door of a bundle that holds secrets: `None` when the request may have it, else the
/// refusal, which says what to do (the operator or the client).
fn authorize_secrets(st: &Shared, headers: &HeaderMap) -> Option<Response> {
    if st.public_secrets {
        return None;
    }
    let Some(token) = &st.pull_token else {
        return Some(refusal(
            StatusCode::FORBIDDEN,
            RefusalReason::SecretsNotServed,
            true,
        ));
    };
    match bearer(headers) {
        Some(g) if same_token(g.as_bytes(), token.as_bytes()) => None,
        _ => Some(refusal(
            StatusCode::UNAUTHORIZED,
            RefusalReason::SecretsNeedToken,
            true,
        )),
    }
}

/// The API's door: `None` when the request may pass, else the refusal.
fn authorize(st: &Shared, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &st.token else {
        return Some(refusal(
            StatusCode::FORBIDDEN,
            RefusalReason::ImportApiOff,
            false,
        ));
    };
    match bearer(headers) {
        Some(g) if same_token(g.as_bytes(), token.as_bytes()) => None,
        _ => Some(refusal(
            StatusCode::UNAUTHORIZED,
            RefusalReason::ImportTokenRequired,
            false,
        )),
    }
}

/// The HTTP status an import exit code is reported with.
pub fn http_status_of(code: u8) -> StatusCode {
    match code {
        0 => StatusCode::OK,
        2 | 11 => StatusCode::UNPROCESSABLE_ENTITY,
        5 => StatusCode::FORBIDDEN,
        8 | 13 => StatusCode::CONFLICT,
        12 => StatusCode::INSUFFICIENT_STORAGE,
        130 => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn status(State(st): State<AppState>, req: Request) -> Response {
    let t = Instant::now();
    let path = req.uri().path().to_string();
    let r = match authorize(&st, req.headers()) {
        Some(refused) => refused,
        None => {
            let f = st.status.clone();
            match tokio::task::spawn_blocking(move || f()).await {
                Ok(Ok(v)) => json(StatusCode::OK, v),
                Ok(Err((code, message))) => json(
                    http_status_of(code),
                    serde_json::json!({"exitCode": code, "error": message}),
                ),
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
    };
    log_line(&st, &Method::GET, &path, r.status(), 0, t);
    r
}

async fn healthz(State(st): State<AppState>) -> Response {
    let t = Instant::now();
    let (status, _, r) = plain(StatusCode::OK, "ok");
    log_line(&st, &Method::GET, "/healthz", status, 0, t);
    r
}

async fn metrics(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let t = Instant::now();
    if let Some(token) = &st.metrics_token
        && !bearer(&headers).is_some_and(|g| same_token(g.as_bytes(), token.as_bytes()))
    {
        let r = refusal(
            StatusCode::UNAUTHORIZED,
            RefusalReason::MetricsTokenRequired,
            false,
        );
        log_line(&st, &Method::GET, "/metrics", r.status(), 0, t);
        return r;
    }
    let f = st.gauges.clone();
    let root = match tokio::task::spawn_blocking(move || f()).await {
        Ok(Ok(g)) => Some(g),
        Ok(Err(message)) => {
            // The scrape still answers (with `ouk_root_readable 0`): the counters are this
            // server's, and an alert on the gauge names the problem.
            (st.log)(&format!("metrics: the root's state: {message}"));
            None
        }
        Err(_) => None,
    };
    let body = st.counters.render(root.as_ref(), unix_now());
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Its body is not counted as bytes served: those are what the kits cost the network.
    log_line(&st, &Method::GET, "/metrics", StatusCode::OK, 0, t);
    r
}

/// Seconds since the epoch, now.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A file name a client suggested, made safe (one plain segment) or replaced.
fn upload_name(suggested: Option<&str>) -> String {
    suggested
        .and_then(|n| n.rsplit('/').next())
        .filter(|n| is_plain_path(n) && n.len() <= 200)
        .map_or_else(|| "upload.tar.gz".to_string(), str::to_string)
}

/// Why an upload stopped.
enum UploadError {
    TooLarge,
    Client(String),
    Local(std::io::Error),
}

async fn write_stream<S, E>(
    stream: S,
    dest: &Path,
    budget: &mut u64,
) -> std::result::Result<u64, UploadError>
where
    S: futures_util::Stream<Item = std::result::Result<axum::body::Bytes, E>>,
    E: std::fmt::Display,
{
    let mut stream = std::pin::pin!(stream);
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)
        .await
        .map_err(UploadError::Local)?;
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| UploadError::Client(e.to_string()))?;
        if chunk.len() as u64 > *budget {
            return Err(UploadError::TooLarge);
        }
        *budget -= chunk.len() as u64;
        f.write_all(&chunk).await.map_err(UploadError::Local)?;
        n += chunk.len() as u64;
    }
    f.sync_all().await.map_err(UploadError::Local)?;
    Ok(n)
}

/// What the import API's query string may say: `dryRun=true` (verify and check, do not
/// activate), as `ouk kit import --dry-run`. Anything else is ignored; in particular the
/// staleness window is the server's (`--max-kit-age`), not the client's.
#[derive(Debug, PartialEq, Eq)]
struct ImportQuery {
    dry_run: bool,
}

impl ImportQuery {
    fn parse(query: &str) -> ImportQuery {
        let mut q = ImportQuery { dry_run: false };
        for kv in query.split('&') {
            if let Some(("dryRun", v)) = kv.split_once('=') {
                q.dry_run = v == "true" || v == "1";
            }
        }
        q
    }
}

async fn import(State(st): State<AppState>, req: Request) -> Response {
    let t = Instant::now();
    let path = req.uri().path().to_string();
    let query = ImportQuery::parse(req.uri().query().unwrap_or(""));
    let r = match authorize(&st, req.headers()) {
        Some(refused) => refused,
        None => {
            let n = st.uploads.fetch_add(1, Ordering::Relaxed);
            let dir = st
                .root
                .join("uploads")
                .join(format!("{}-{n}", std::process::id()));
            // In a task of its own: when the client goes away the handler is dropped, but
            // the upload (or the import already running) still ends and is cleaned up.
            let (st2, dir2) = (st.clone(), dir.clone());
            let task = tokio::spawn(async move {
                let r = receive_and_import(&st2, req, &dir2, &query).await;
                let _ = tokio::fs::remove_dir_all(&dir2).await;
                r
            });
            match task.await {
                Ok(r) => r,
                Err(_) => {
                    let _ = tokio::fs::remove_dir_all(&dir).await;
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
            }
        }
    };
    log_line(&st, &Method::POST, &path, r.status(), 0, t);
    r
}

async fn receive_and_import(
    st: &AppState,
    req: Request,
    dir: &Path,
    query: &ImportQuery,
) -> Response {
    // Every way out is counted for `/metrics`: the early ones here, the import's below.
    let failed = |status: StatusCode, class: ErrorClass, message: String| {
        let code = class.exit_code();
        st.counters.record_import("failed", code, unix_now());
        json(
            status,
            serde_json::json!({"exitCode": code, "error": message}),
        )
    };
    let made = match dir.parent() {
        Some(parent) => tokio::fs::create_dir_all(parent).await,
        None => Ok(()),
    };
    // `create_dir`, not `_all`: a directory left by an earlier process of the same pid is
    // never reused.
    if let Err(e) = made.and(tokio::fs::create_dir(dir).await) {
        return failed(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorClass::Other,
            format!("create {}: {e}", dir.display()),
        );
    }
    let mut budget = st.max_upload;
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let received = if is_multipart {
        receive_multipart(st, req, dir, &mut budget).await
    } else {
        let name = upload_name(
            req.headers()
                .get("x-ouk-bundle-name")
                .and_then(|v| v.to_str().ok()),
        );
        let bundle = dir.join(&name);
        let stream = req.into_body().into_data_stream();
        match write_stream(stream, &bundle, &mut budget).await {
            Ok(_) => Ok(bundle),
            Err(e) => Err(e),
        }
    };
    let bundle = match received {
        Ok(b) => b,
        Err(UploadError::TooLarge) => {
            return failed(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorClass::Validation,
                format!("upload larger than {} bytes", st.max_upload),
            );
        }
        Err(UploadError::Client(m)) => {
            return failed(
                StatusCode::BAD_REQUEST,
                ErrorClass::Validation,
                format!("upload: {m}"),
            );
        }
        Err(UploadError::Local(e)) => {
            // A full disk says so; any other local failure is the server's own.
            let class = match ErrorClass::of_io(&e) {
                ErrorClass::NoSpace => ErrorClass::NoSpace,
                _ => ErrorClass::Other,
            };
            return failed(
                http_status_of(class.exit_code()),
                class,
                format!("upload: {e}"),
            );
        }
    };
    let opts = ouk_kit::import::ImportOptions {
        bundle,
        sidecars: Default::default(),
        extra_keys: Vec::new(),
        allow_unsigned: false,
        dry_run: query.dry_run,
        force: None,
        wait: false,
        free_margin: ouk_kit::import::DEFAULT_FREE_MARGIN,
        max_age_days: st.max_kit_age,
        max_clock_skew_secs: st.max_clock_skew,
        quarantine: st.quarantine,
    };
    let root = st.root.clone();
    let done = tokio::task::spawn_blocking(move || {
        ouk_kit::import::import(&root, &opts, &mut ouk_store::progress::ignore).map_err(|f| {
            // The answer's exitCode and HTTP status follow the error's class, as the
            // binary's exit code does.
            let code = f.error.class().exit_code();
            (code, Box::new(f))
        })
    })
    .await;
    match done {
        Ok(Ok(report)) => {
            st.counters.record_import(&report.outcome, 0, unix_now());
            json(
                StatusCode::OK,
                serde_json::json!({"exitCode": 0, "report": report}),
            )
        }
        Ok(Err((code, f))) => {
            st.counters.record_import("failed", code, unix_now());
            json(
                http_status_of(code),
                serde_json::json!({
                    "exitCode": code,
                    "step": f.step,
                    "error": f.error.to_string(),
                    "quarantined": f.quarantined.map(|p| p.display().to_string()),
                }),
            )
        }
        Err(e) => failed(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorClass::Other,
            format!("import: {e}"),
        ),
    }
}

async fn receive_multipart(
    st: &AppState,
    req: Request,
    dir: &Path,
    budget: &mut u64,
) -> std::result::Result<PathBuf, UploadError> {
    let mut mp = Multipart::from_request(req, st)
        .await
        .map_err(|e| UploadError::Client(e.to_string()))?;
    let mut bundle: Option<PathBuf> = None;
    // Sidecars are small: kept in memory until the bundle's name is known.
    let mut sidecars: Vec<(&'static str, Vec<u8>)> = Vec::new();
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(UploadError::Client(e.to_string())),
        };
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "bundle" if bundle.is_none() => {
                let file = dir.join(upload_name(field.file_name()));
                write_stream(field, &file, budget).await?;
                bundle = Some(file);
            }
            "signature" | "metadata" | "manifest" | "manifest-signature" => {
                let (key, cap): (&'static str, usize) = match name.as_str() {
                    "signature" => ("signature", 64 << 10),
                    "metadata" => ("metadata", 1 << 20),
                    "manifest" => ("manifest", 64 << 20),
                    _ => ("manifest-signature", 64 << 10),
                };
                if sidecars.iter().any(|(k, _)| *k == key) {
                    return Err(UploadError::Client(format!("part {key:?} given twice")));
                }
                let mut bytes = Vec::new();
                let mut field = field;
                loop {
                    match field.chunk().await {
                        Ok(Some(c)) => {
                            if bytes.len() + c.len() > cap || c.len() as u64 > *budget {
                                return Err(UploadError::TooLarge);
                            }
                            *budget -= c.len() as u64;
                            bytes.extend_from_slice(&c);
                        }
                        Ok(None) => break,
                        Err(e) => return Err(UploadError::Client(e.to_string())),
                    }
                }
                sidecars.push((key, bytes));
            }
            other => {
                return Err(UploadError::Client(format!(
                    "unexpected part {other:?} (expected bundle, signature, metadata, manifest, manifest-signature)"
                )));
            }
        }
    }
    let Some(bundle) = bundle else {
        return Err(UploadError::Client("no `bundle` part".into()));
    };
    let file_name = bundle
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("upload.tar.gz")
        .to_string();
    for (key, bytes) in sidecars {
        let dest = match key {
            "signature" => dir.join(format!("{file_name}.sig")),
            "metadata" => dir.join(format!("{file_name}.metadata.json")),
            "manifest" => dir.join("manifest/offline-manifest.json"),
            _ => dir.join("manifest/offline-manifest.json.jws"),
        };
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(UploadError::Local)?;
        }
        tokio::fs::write(&dest, &bytes)
            .await
            .map_err(UploadError::Local)?;
    }
    Ok(bundle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_as_rfc_9110_says() {
        use RangeRequest::*;
        assert_eq!(parse_range("bytes=0-9", 100), Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Part(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), Part(0, 99));
        assert_eq!(parse_range("bytes=50-1000", 100), Part(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("Bytes=0-1", 100), Part(0, 1));
        assert_eq!(
            parse_range("bytes=5-99999999999999999999999", 100),
            Part(5, 99)
        );
        assert_eq!(
            parse_range("bytes=-99999999999999999999999", 100),
            Part(0, 99)
        );
        assert_eq!(
            parse_range("bytes=99999999999999999999999-", 100),
            Unsatisfiable
        );
        for ignored in [
            "bytes=9-0",
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=+1-2",
            "bytes=0x1-",
        ] {
            assert_eq!(parse_range(ignored, 100), Full, "{ignored}");
        }
    }

    #[test]
    fn the_import_query_says_only_dry_run() {
        assert_eq!(
            ImportQuery::parse("dryRun=true&maxKitAge=0&other=x"),
            ImportQuery { dry_run: true }
        );
        assert!(!ImportQuery::parse("dryRun=no").dry_run);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"secret", b"secret"));
        assert!(!same_token(b"secret", b"secreT"));
        assert!(!same_token(b"secret", b"secret2"));
        assert!(!same_token(b"", b"x"));
    }

    #[test]
    fn etags_match_lists_and_weak_forms() {
        assert!(etag_matches("\"a\", \"b\"", "\"b\""));
        assert!(etag_matches("W/\"a\"", "\"a\""));
        assert!(etag_matches("*", "\"a\""));
        assert!(!etag_matches("\"c\"", "\"a\""));
    }

    #[test]
    fn upload_names_are_one_plain_segment() {
        assert_eq!(upload_name(Some("k.tar.gz")), "k.tar.gz");
        assert_eq!(upload_name(Some("../../etc/k.tar.gz")), "k.tar.gz");
        assert_eq!(upload_name(Some("..")), "upload.tar.gz");
        assert_eq!(upload_name(Some(".hidden")), "upload.tar.gz");
        assert_eq!(upload_name(None), "upload.tar.gz");
    }
}
