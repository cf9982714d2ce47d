//! The chunk store's packs on S3-compatible object storage (cargo feature `aws`).
//!
//! Layout under `s3://bucket/prefix/` (see [`crate::pack_index`] for the names):
//! `packs/<blake3>.pack`, `index/<blake3>.okpi`, `records/<holder>/<sha256>.rec`.
//!
//! Invariants:
//! - **Create-only.** Every object is written once with `PutMode::Create` (`If-None-Match:
//!   *`). A write that loses a race is detected (`AlreadyExists`), never overwritten: for a
//!   pack or index object the name is the BLAKE3 of the bytes, so the object already there
//!   holds the same bytes (its length is checked with a HEAD); a record keeps the first
//!   writer's version.
//! - **Data before references.** [`S3Packs::publish`] returns only after every pack and
//!   then its index object are in the bucket; the caller commits the redb entries that
//!   reference them afterwards. An interrupted upload leaves at worst a pack without an
//!   index object, which nothing references and `reindex` ignores.
//! - **Synchronous at the boundary.** The async client runs on a private tokio runtime;
//!   each call blocks the calling thread until its request finished (the future is
//!   spawned on the runtime and its result sent back over a channel, so a caller on
//!   another runtime's blocking thread works too).
//! - **Failure handling.** Requests time out (`OUK_S3_TIMEOUT`, default 120 s; connect
//!   10 s) and are retried with exponential backoff on 5xx answers and connection errors
//!   (`OUK_S3_MAX_RETRIES`, default 5). Wrong credentials and a missing bucket are found
//!   at open by one LIST and reported as [`StoreError::RemoteAccess`], naming the bucket and
//!   the endpoint.
//! - **No credentials in messages.** An endpoint may carry them (`AWS_ENDPOINT_URL=
//!   http://user:password@host`), and the client's errors quote the URLs it requested:
//!   every endpoint, store URL and client message an error carries goes through
//!   [`redact_userinfo`] first.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{
    ClientConfigKey, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
};

use crate::backend::{BucketListing, PackBackend, RemoteOptions, RequestCounts, SealedPack};
use crate::error::{IoContext, RemoteFailure, Result, StoreError};
use crate::id::FileDigest;
use crate::index::FileRecord;
use crate::pack_index::{
    MAX_INDEX_OBJECT_LEN, PackIndex, PackName, parse_index_key, parse_pack_key, parse_record_key,
    record_key,
};

/// Repeats of a create-only PUT that failed in transport (see `put_create`).
const TRANSPORT_RETRIES: u32 = 3;

/// Whether `e` is a request that never got an answer (sent on a dead connection, reset).
fn is_transport_failure(e: &object_store::Error) -> bool {
    let text = e.to_string();
    text.contains("error sending request") || text.contains("connection")
}

/// Keys a LIST page holds (S3's default and maximum `max-keys`).
const LIST_PAGE: u64 = 1000;

#[derive(Default)]
struct Counters {
    get: AtomicU64,
    put: AtomicU64,
    list: AtomicU64,
    head: AtomicU64,
    bytes_put: AtomicU64,
    bytes_got: AtomicU64,
}

/// A test hook (never set in production): before PUT number `n` (1-based) of this process,
/// create `DIR/paused-<n>` and wait until `DIR/resume-<n>` exists. The fault-injection
/// test stops the server while an upload is held there, without depending on timing.
struct PauseHook {
    dir: std::path::PathBuf,
    at: u64,
}

/// Packs in an S3-compatible bucket; see the module doc.
pub struct S3Packs {
    url: String,
    bucket: String,
    endpoint: String,
    prefix: ObjectPath,
    store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
    pack_target: u64,
    names: Mutex<HashMap<u32, PackName>>,
    counters: Counters,
    pause: Option<PauseHook>,
}

fn env_duration(name: &str, default_secs: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default_secs),
    )
}

/// `text` with the user-info (`user:password@`) of every URL in it replaced by `***@`.
///
/// A URL runs from its `://` to the next whitespace, quote, angle bracket or parenthesis;
/// its user-info ends at the last `@` before any `?` or `#`. That is wider than RFC 3986
/// (whose authority ends at the first `/`) on purpose: a password typed by hand with a raw
/// `/` or `@` in it is hidden too. The cost is that an `@` in a URL's path also hides the
/// host, which only makes a message less precise, never leaky.
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '(' | ')'))
            .unwrap_or(tail.len());
        let scope = &tail[..tail[..end].find(['?', '#']).unwrap_or(end)];
        rest = match scope.rfind('@') {
            Some(at) => {
                out.push_str("***@");
                &tail[at + 1..]
            }
            None => tail,
        };
    }
    out.push_str(rest);
    out
}

/// `(bucket, prefix)` of `s3://bucket/prefix`.
pub fn parse_store_url(url: &str) -> Result<(String, String)> {
    let bad = |why: &str| StoreError::RemoteUrl {
        url: redact_userinfo(url),
        message: why.to_string(),
    };
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| bad("not an s3:// URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid_bucket {
        return Err(bad("the bucket name is not 3 to 63 of [a-z0-9.-]"));
    }
    let prefix = prefix.trim_matches('/');
    if prefix
        .split('/')
        .any(|s| s == "." || s == ".." || (s.is_empty() && !prefix.is_empty()))
    {
        return Err(bad("the prefix has an empty, `.` or `..` segment"));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

impl S3Packs {
    /// Connect to `options.url` with the `AWS_*` environment (endpoint, region, keys,
    /// `AWS_ALLOW_HTTP`), and check with one LIST that the bucket is there and the keys
    /// work.
    pub fn connect(options: &RemoteOptions) -> Result<S3Packs> {
        let (bucket, prefix) = parse_store_url(&options.url)?;
        let mut builder = AmazonS3Builder::new()
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                format!("{}s", env_duration("OUK_S3_TIMEOUT", 120).as_secs()),
            )
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                "10s",
            );
        // As `AmazonS3Builder::from_env`, after our defaults so the environment wins.
        for (key, value) in std::env::vars() {
            if key.starts_with("AWS_")
                && let Ok(config_key) = key.to_ascii_lowercase().parse()
            {
                builder = builder.with_config(config_key, value);
            }
        }
        let endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .unwrap_or_else(|| "AWS S3 (no AWS_ENDPOINT_URL)".into());
        let retry = RetryConfig {
            max_retries: std::env::var("OUK_S3_MAX_RETRIES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(5),
            retry_timeout: env_duration("OUK_S3_RETRY_TIMEOUT", 120),
            ..Default::default()
        };
        let store = builder
            .with_bucket_name(&bucket)
            .with_retry(retry)
            .build()
            .map_err(|e| StoreError::RemoteUrl {
                url: redact_userinfo(&options.url),
                message: redact_userinfo(&e.to_string()),
            })?;
        let pause = std::env::var("OUK_TEST_S3_PAUSE_BEFORE_PUT")
            .ok()
            .and_then(|v| {
                let (n, dir) = v.split_once(':')?;
                Some(PauseHook {
                    at: n.parse().ok()?,
                    dir: dir.into(),
                })
            });
        let packs = S3Packs::with_store(
            Arc::new(store),
            &options.url,
            &bucket,
            &endpoint,
            &prefix,
            options.pack_target,
        )?;
        Ok(S3Packs { pause, ..packs })
    }

    /// Packs in `store` (any object store: the tests use an in-memory one) under `prefix`.
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        url: &str,
        bucket: &str,
        endpoint: &str,
        prefix: &str,
        pack_target: u64,
    ) -> Result<S3Packs> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ouk-s3")
            .enable_all()
            .build()
            .ctx(|| "start the object-storage runtime".to_string())?;
        let packs = S3Packs {
            url: url.to_string(),
            bucket: bucket.to_string(),
            // Errors name it: never with its credentials.
            endpoint: redact_userinfo(endpoint),
            prefix: ObjectPath::from(prefix),
            store,
            runtime,
            pack_target: pack_target.max(1 << 20),
            names: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            pause: None,
        };
        packs.probe()?;
        Ok(packs)
    }

    /// One LIST of the prefix: a missing bucket or refused keys fail here, clearly.
    fn probe(&self) -> Result<()> {
        let prefix = self.prefix.clone();
        self.counters.list.fetch_add(1, Ordering::Relaxed);
        self.block(move |s| async move { s.list_with_delimiter(Some(&prefix)).await })
            .map(|_| ())
            .map_err(|e| self.error("list", self.prefix.as_ref(), e))
    }

    fn key(&self, relative: &str) -> ObjectPath {
        if self.prefix.as_ref().is_empty() {
            ObjectPath::from(relative)
        } else {
            ObjectPath::from(format!("{}/{relative}", self.prefix.as_ref()))
        }
    }

    /// The key relative to the prefix, if `key` is under it.
    fn relative<'k>(&self, key: &'k str) -> Option<&'k str> {
        let prefix = self.prefix.as_ref();
        if prefix.is_empty() {
            Some(key)
        } else {
            key.strip_prefix(prefix)?.strip_prefix('/')
        }
    }

    /// Run one request on the private runtime and wait for it.
    fn block<T, F>(
        &self,
        request: impl FnOnce(Arc<dyn ObjectStore>) -> F,
    ) -> object_store::Result<T>
    where
        T: Send + 'static,
        F: Future<Output = object_store::Result<T>> + Send + 'static,
    {
        let fut = request(self.store.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(object_store::Error::Generic {
                store: "S3",
                source: "the object-storage runtime stopped".into(),
            })
        })
    }

    fn error(&self, op: &str, key: &str, e: object_store::Error) -> StoreError {
        let kind = match &e {
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => RemoteFailure::AccessDenied,
            // A listing of the prefix cannot be "not found" but for the bucket itself.
            object_store::Error::NotFound { .. } if op == "list" => RemoteFailure::NoSuchBucket,
            other if other.to_string().contains("NoSuchBucket") => RemoteFailure::NoSuchBucket,
            other
                if [
                    "InvalidAccessKeyId",
                    "SignatureDoesNotMatch",
                    "AccessDenied",
                ]
                .iter()
                .any(|code| other.to_string().contains(code)) =>
            {
                RemoteFailure::AccessDenied
            }
            object_store::Error::NotFound { .. } => RemoteFailure::NotFound,
            _ => RemoteFailure::Request,
        };
        StoreError::Remote {
            kind,
            bucket: self.bucket.clone(),
            endpoint: self.endpoint.clone(),
            what: format!("{op} {key}"),
            // The client quotes the request URL, credentials and all.
            message: redact_userinfo(&e.to_string()),
        }
    }

    fn pause_before_put(&self) {
        let Some(hook) = &self.pause else { return };
        let n = self.counters.put.load(Ordering::Relaxed) + 1;
        if n != hook.at {
            return;
        }
        let _ = std::fs::write(hook.dir.join(format!("paused-{n}")), b"");
        let resume = hook.dir.join(format!("resume-{n}"));
        while !resume.exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Create `relative` with `bytes`. `Ok(false)` when it existed already (the race was
    /// lost; nothing was overwritten).
    fn put_create(&self, relative: &str, bytes: Vec<u8>) -> Result<bool> {
        self.pause_before_put();
        let key = self.key(relative);
        let len = bytes.len() as u64;
        self.counters.put.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_put.fetch_add(len, Ordering::Relaxed);
        let payload = PutPayload::from(bytes);
        // object_store does not retry a create-only PUT that failed in transport (it is
        // not idempotent to it: a stale pooled connection, a reset). Repeating it is safe
        // here: a repeat that finds the object there takes the lost-race path, which checks
        // a content-named object's length and keeps a record as it is.
        let mut attempt = 0u32;
        loop {
            let path = key.clone();
            let body = payload.clone();
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match self.block(move |s| async move { s.put_opts(&path, body, opts).await }) {
                Ok(_) => return Ok(true),
                Err(object_store::Error::AlreadyExists { .. }) => return Ok(false),
                Err(e @ object_store::Error::Generic { .. })
                    if attempt < TRANSPORT_RETRIES && is_transport_failure(&e) =>
                {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(100 << attempt));
                }
                Err(e) => return Err(self.error("put", key.as_ref(), e)),
            }
        }
    }

    /// Create a content-named object; when it exists already, check its length (same name,
    /// same bytes: the first writer's object serves).
    fn put_named(&self, relative: &str, bytes: Vec<u8>) -> Result<()> {
        let len = bytes.len() as u64;
        if self.put_create(relative, bytes)? {
            return Ok(());
        }
        let key = self.key(relative);
        let path = key.clone();
        self.counters.head.fetch_add(1, Ordering::Relaxed);
        let meta = self
            .block(move |s| async move { s.head(&path).await })
            .map_err(|e| self.error("head", key.as_ref(), e))?;
        if meta.size != len {
            return Err(StoreError::Remote {
                kind: RemoteFailure::Request,
                bucket: self.bucket.clone(),
                endpoint: self.endpoint.clone(),
                what: format!("put {key}"),
                message: format!(
                    "an object of {} bytes has this content name, these bytes are {len}: the bucket holds damaged data",
                    meta.size
                ),
            });
        }
        Ok(())
    }

    fn get(&self, relative: &str, max_len: u64) -> Result<Vec<u8>> {
        let key = self.key(relative);
        let path = key.clone();
        self.counters.get.fetch_add(1, Ordering::Relaxed);
        let bytes = self
            .block(move |s| async move {
                let r = s.get(&path).await?;
                if r.meta.size > max_len {
                    return Err(object_store::Error::Generic {
                        store: "S3",
                        source: format!("{} bytes, more than {max_len}", r.meta.size).into(),
                    });
                }
                r.bytes().await
            })
            .map_err(|e| self.error("get", key.as_ref(), e))?;
        self.counters
            .bytes_got
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes.to_vec())
    }

    /// Every key under `relative/`, with sizes, relative to the store prefix.
    fn list(&self, relative: &str) -> Result<Vec<(String, u64)>> {
        let key = self.key(relative);
        let path = key.clone();
        let metas = self
            .block(move |s| async move {
                let mut out = Vec::new();
                let mut stream = s.list(Some(&path));
                while let Some(m) = stream.next().await {
                    out.push(m?);
                }
                Ok(out)
            })
            .map_err(|e| self.error("list", key.as_ref(), e))?;
        self.counters
            .list
            .fetch_add(1 + metas.len() as u64 / LIST_PAGE, Ordering::Relaxed);
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                self.relative(m.location.as_ref())
                    .map(|r| (r.to_string(), m.size))
            })
            .collect())
    }

    fn name_of(&self, pack: u32) -> Option<PackName> {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pack)
            .copied()
    }
}

impl PackBackend for S3Packs {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn read_at(
        &self,
        pack: u32,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> Result<std::result::Result<(), u64>> {
        let name = self.name_of(pack).ok_or_else(|| StoreError::Record {
            what: format!("pack {pack}"),
            message: "the index names no object for it (run `ouk store reindex`)".into(),
        })?;
        let key = self.key(&name.pack_key());
        let path = key.clone();
        let end = offset.saturating_add(len as u64);
        self.counters.get.fetch_add(1, Ordering::Relaxed);
        let got = self
            .block(move |s| async move { s.get_range(&path, offset..end).await })
            .map_err(|e| self.error("get", key.as_ref(), e))?;
        self.counters
            .bytes_got
            .fetch_add(got.len() as u64, Ordering::Relaxed);
        buf.clear();
        buf.extend_from_slice(&got);
        if buf.len() < len {
            return Ok(Err(offset + buf.len() as u64));
        }
        buf.truncate(len);
        Ok(Ok(()))
    }

    fn sealed_pack_target(&self) -> Option<u64> {
        Some(self.pack_target)
    }

    fn prefers_windows(&self) -> bool {
        true
    }

    fn upload_pack(&self, pack: &SealedPack) -> Result<PackName> {
        let bytes = std::fs::read(&pack.path)
            .ctx(|| format!("read spooled pack {}", pack.path.display()))?;
        let name = PackName::of(&bytes);
        self.put_named(&name.pack_key(), bytes)?;
        Ok(name)
    }

    fn publish(
        &self,
        packs: &mut [SealedPack],
        files: &[(FileDigest, FileRecord)],
    ) -> Result<Vec<PackName>> {
        let mut names = Vec::with_capacity(packs.len());
        for p in packs.iter_mut() {
            let name = match p.uploaded {
                Some(n) => n,
                None => self.upload_pack(p)?,
            };
            p.uploaded = Some(name);
            names.push(name);
        }
        // Index objects only after every pack is in: an index names a pack that exists.
        let mut indexes: Vec<PackIndex> = packs
            .iter()
            .zip(&names)
            .map(|(p, n)| PackIndex {
                chunker: crate::ChunkerParams::V1,
                pack: Some(*n),
                pack_len: p.len,
                chunks: p.chunks.clone(),
                files: Vec::new(),
            })
            .collect();
        if !files.is_empty() {
            if indexes.is_empty() {
                indexes.push(PackIndex {
                    chunker: crate::ChunkerParams::V1,
                    pack: None,
                    pack_len: 0,
                    chunks: Vec::new(),
                    files: Vec::new(),
                });
            }
            if let Some(last) = indexes.last_mut() {
                last.files = files.to_vec();
            }
        }
        for index in indexes {
            let bytes = index.encode();
            let name = PackName::of(&bytes);
            self.put_named(&name.index_key(), bytes)?;
        }
        Ok(names)
    }

    fn register(&self, number: u32, name: PackName) {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(number, name);
    }

    fn forget(&self, packs: &[u32]) {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        for n in packs {
            names.remove(n);
        }
    }

    fn present_packs(&self) -> Result<HashSet<u32>> {
        let present: HashSet<PackName> = self
            .list("packs")?
            .iter()
            .filter_map(|(k, _)| parse_pack_key(k))
            .collect();
        Ok(self
            .names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, name)| present.contains(name))
            .map(|(n, _)| *n)
            .collect())
    }

    fn put_record(&self, holder: &str, key: &[u8; 32], bytes: &[u8]) -> Result<bool> {
        self.put_create(&record_key(holder, key), bytes.to_vec())
    }

    fn records(&self, holder: &str) -> Result<Vec<([u8; 32], Vec<u8>)>> {
        let mut out = Vec::new();
        for (k, _) in self.list(&format!("records/{holder}"))? {
            if let Some(digest) = parse_record_key(holder, &k) {
                out.push((digest, self.get(&k, MAX_INDEX_OBJECT_LEN)?));
            }
        }
        Ok(out)
    }

    fn listing(&self) -> Result<BucketListing> {
        let mut listing = BucketListing {
            packs: self
                .list("packs")?
                .into_iter()
                .filter_map(|(k, len)| parse_pack_key(&k).map(|n| (n, len)))
                .collect(),
            ..Default::default()
        };
        for (k, len) in self.list("index")? {
            let Some(name) = parse_index_key(&k) else {
                continue;
            };
            if len > MAX_INDEX_OBJECT_LEN {
                listing.refused.push((
                    k,
                    format!("{len} bytes: larger than {MAX_INDEX_OBJECT_LEN}"),
                ));
                continue;
            }
            let bytes = self.get(&k, MAX_INDEX_OBJECT_LEN)?;
            if PackName::of(&bytes) != name {
                listing
                    .refused
                    .push((k, "its bytes do not match its name".into()));
                continue;
            }
            match PackIndex::decode(&bytes) {
                Ok(index) => listing.indexes.push(index),
                Err(e) => listing.refused.push((k, e.to_string())),
            }
        }
        Ok(listing)
    }

    fn requests(&self) -> Option<RequestCounts> {
        let c = &self.counters;
        Some(RequestCounts {
            get: c.get.load(Ordering::Relaxed),
            put: c.put.load(Ordering::Relaxed),
            list: c.list.load(Ordering::Relaxed),
            head: c.head.load(Ordering::Relaxed),
            bytes_put: c.bytes_put.load(Ordering::Relaxed),
            bytes_got: c.bytes_got.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_redacted_wherever_they_appear() {
        assert_eq!(
            redact_userinfo("http://user:pa55@127.0.0.1:9000"),
            "http://***@127.0.0.1:9000"
        );
        // As the client quotes a request: the host, path and query stay.
        assert_eq!(
            redact_userinfo(
                "Error performing GET http://u:p@h:1/b?prefix=a%40b in 3ms - HTTP error: error sending request (http://u:p@h:1/b)"
            ),
            "Error performing GET http://***@h:1/b?prefix=a%40b in 3ms - HTTP error: error sending request (http://***@h:1/b)"
        );
        // A user alone, a password with a raw `/` or `@` in it (not a valid URL, but typed).
        assert_eq!(redact_userinfo("https://user@host/x"), "https://***@host/x");
        assert_eq!(
            redact_userinfo("http://u:pa/s@s@host:9/"),
            "http://***@host:9/"
        );
        // Nothing to hide: unchanged.
        for plain in [
            "http://127.0.0.1:9000",
            "AWS S3 (no AWS_ENDPOINT_URL)",
            "s3://ouk-mirror/site",
            "mail a@b.c about http://host/?q=a@b",
            "",
            "://",
        ] {
            assert_eq!(redact_userinfo(plain), plain);
        }
        // A store URL that is refused is named without what looks like credentials.
        let e = parse_store_url("s3://key:secret@bucket/p").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn store_urls_parse_and_hostile_ones_are_refused() {
        assert_eq!(
            parse_store_url("s3://ouk-mirror/site/a").unwrap(),
            ("ouk-mirror".into(), "site/a".into())
        );
        assert_eq!(
            parse_store_url("s3://ouk-mirror").unwrap(),
            ("ouk-mirror".into(), "".into())
        );
        assert_eq!(
            parse_store_url("s3://ouk-mirror/p/").unwrap().1,
            "p".to_string()
        );
        for bad in [
            "http://x/y",
            "s3://",
            "s3://UPPER/x",
            "s3://ab/x",
            "s3://bucket/a/../b",
            "s3://bucket/a//b",
        ] {
            assert!(parse_store_url(bad).is_err(), "{bad}");
        }
    }
}
