//! `ouk kit pull`: download one published bundle with its sidecars, resuming.
//!
//! Each file the index lists for the bundle is downloaded to `DEST/<path>.part`, with the
//! server's `ETag` kept in `DEST/<path>.part.etag`. A later run resumes a `.part` file with
//! `Range: bytes=<have>-` and `If-Range: <etag>`: a 206 that starts where the partial file
//! ends is appended; an answer that says the file changed (another ETag, or a whole 200
//! under a different ETag) is refused and the partial file removed, so bytes of two
//! versions are never joined. A server that ignores ranges but still has the same file
//! (same ETag) is downloaded again from the start.
//!
//! Invariants: a file reaches its final name only once its size and SHA-256 equal the
//! index's (rename after fsync); a file already there with those is not fetched again;
//! the pull reports success only after the bundle's digest and signature verified
//! ([`ouk_kit::verify::verify_bundle`] with the trusted keys), and then writes the
//! `.metadata.json` summary (the server's, when it matches, else one made from the index);
//! pull writes only the bundle's own files, under names it derives from the bundle's name
//! (the bundle, its sidecars, the shared manifest and its sidecars: an index listing
//! anything else is refused before anything is written), and a kit only under the name its
//! version and channel give; pull's own files are opened with `O_NOFOLLOW` and created
//! exclusively ([`ouk_store::fsutil`]), and `DEST/manifest` must be a real directory, so a
//! symbolic link planted in the destination never redirects a read or a write.
//!
//! A bundle that holds secrets is served only to a client with the pull token: given one
//! ([`PullOptions::token`]), pull sends it as `Authorization: Bearer` to the server of
//! `--from` on every request (never to a host a redirect leads to: ureq drops
//! authorization headers on redirects); a 401 or 403 is [`TransportError::Refused`], with
//! the server's reason and what to do, and keeps any partial file.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ouk_kit::manifest::MANIFEST_PATH;
use ouk_kit::sign::VerifyingKey;
use ouk_store::fsutil::{HashingWriter, Opening, open_no_follow, sync_dir};
use serde::Serialize;
use sha2::Digest;

use crate::error::{IoContext, PullRefusal, RefusalReason, Result, TransportError, shown};
use crate::index::{INDEX_NAME, MAX_INDEX_BYTES, PublishedBundle, PublishedFile, PublishedIndex};

/// What to pull.
pub struct PullOptions {
    /// Base URL of the published directory (`http://HOST:PORT/ouk/`).
    pub from: String,
    /// Where the files go.
    pub destination: PathBuf,
    /// `latest` or a version (or a bundle name).
    pub selector: String,
    /// `kit` or `delta`.
    pub kind: String,
    /// Only this channel.
    pub channel: Option<String>,
    /// Keys to verify the bundle's signature with.
    pub keys: Vec<VerifyingKey>,
    /// Accept a bundle whose signature was not checked (no key, or no signature).
    pub allow_unsigned: bool,
    /// Connect and response timeouts.
    pub timeout: Duration,
    /// The pull token, for bundles that hold secrets (`None`: none sent).
    pub token: Option<String>,
}

/// One file's transfer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileTransfer {
    /// Relative path.
    pub path: String,
    /// Size.
    pub size: u64,
    /// `present` (already complete), `downloaded`, or `resumed`.
    pub how: String,
    /// Bytes fetched over the network in this run.
    pub fetched: u64,
    /// Where a resume started (bytes kept from the partial file).
    pub resumed_from: u64,
}

/// What a pull did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PullReport {
    /// The bundle.
    pub bundle: PublishedBundle,
    /// Its path on disk.
    pub path: PathBuf,
    /// Every file.
    pub files: Vec<FileTransfer>,
    /// Bytes fetched in this run.
    pub fetched: u64,
    /// Key id that verified the bundle signature.
    pub signed_by: Option<String>,
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .timeout_per_read(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(3)
        // The pull token is for the `--from` server only (this is ureq's default too).
        .redirect_auth_headers(ureq::config::RedirectAuthHeaders::Never)
        .build()
        .new_agent()
}

fn join_url(base: &str, path: &str) -> String {
    let enc: Vec<String> = path
        .split('/')
        .map(|seg| percent_encoding::utf8_percent_encode(seg, SEGMENT).to_string())
        .collect();
    if base.ends_with('/') {
        format!("{base}{}", enc.join("/"))
    } else {
        format!("{base}/{}", enc.join("/"))
    }
}

const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn network(url: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError::Network {
        url: url.to_string(),
        message: e.to_string(),
    }
}

/// A GET of `url`, with the pull token when there is one.
fn get(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
    let req = agent.get(url);
    match token {
        Some(t) => req.header("Authorization", format!("Bearer {t}")),
        None => req,
    }
}

/// The refusal of a 401 or 403 answer, with the server's reason (its JSON `error`, or the
/// start of its text; its `reason`, when it gives one this client knows) and what the
/// refusal means for this client.
fn refused(url: &str, status: u16, body: ureq::Body, token_sent: bool) -> TransportError {
    let mut text = String::new();
    let _ = body.into_reader().take(4096).read_to_string(&mut text);
    let json = serde_json::from_str::<serde_json::Value>(&text).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|v| v.get(name).and_then(|e| e.as_str()).map(str::to_string))
    };
    let reason = field("reason").and_then(|r| RefusalReason::parse(&r));
    let message = shown(&field("error").unwrap_or(text));
    let refusal = if status == 401 && token_sent {
        PullRefusal::TokenRejected
    } else if token_sent {
        PullRefusal::ServerHasNoToken
    } else {
        PullRefusal::TokenNeeded
    };
    TransportError::Refused {
        url: url.to_string(),
        status,
        message: if message.is_empty() {
            "no reason given".into()
        } else {
            message
        },
        reason,
        refusal,
    }
}

/// Fetch and parse the index at `from`, sending the pull token when there is one (a
/// server or proxy may guard the index too).
pub fn fetch_index(from: &str, timeout: Duration, token: Option<&str>) -> Result<PublishedIndex> {
    let url = join_url(from, INDEX_NAME);
    let resp = get(&agent(timeout), &url, token)
        .call()
        .map_err(|e| network(&url, e))?;
    let status = resp.status().as_u16();
    if status == 401 || status == 403 {
        return Err(refused(&url, status, resp.into_body(), token.is_some()));
    }
    if status != 200 {
        return Err(TransportError::Status { url, status });
    }
    let mut bytes = Vec::new();
    resp.into_body()
        .into_reader()
        .take(MAX_INDEX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| network(&url, e))?;
    if bytes.len() as u64 > MAX_INDEX_BYTES {
        return Err(TransportError::Invalid {
            what: url,
            message: format!("larger than {MAX_INDEX_BYTES} bytes"),
        });
    }
    PublishedIndex::parse(&bytes)
}

fn sha256_of(path: &Path) -> Result<(u64, String)> {
    let f = open_no_follow(path, Opening::Read).ctx(|| format!("open {}", path.display()))?;
    let (digest, n) =
        ouk_store::fsutil::sha256_reader(f).ctx(|| format!("read {}", path.display()))?;
    Ok((n, hex::encode(digest)))
}

fn part_paths(final_path: &Path) -> (PathBuf, PathBuf) {
    let mut part = final_path.as_os_str().to_owned();
    part.push(".part");
    let mut etag = part.clone();
    etag.push(".etag");
    (PathBuf::from(part), PathBuf::from(etag))
}

fn remove_partial(part: &Path, etag: &Path) {
    let _ = fs::remove_file(part);
    let _ = fs::remove_file(etag);
}

/// The files pull writes for `bundle`, under names it derives itself from the bundle's
/// name: the bundle, its `.sha256`, `.sig` and `.metadata.json`, and the shared
/// [`MANIFEST_PATH`] with its `.jws`, `.sig` and `.sha256`. The index says only which of
/// them exist (and their sizes and digests); a hostile index listing any other path (an
/// earlier bundle, a script) is refused before anything is written.
fn own_files(bundle: &PublishedBundle) -> Result<Vec<PublishedFile>> {
    let name = &bundle.name;
    let invalid = |message: String| TransportError::Invalid {
        what: format!("{INDEX_NAME}: bundle {name:?}"),
        message,
    };
    // A bundle's own name, so it can never be another bundle's (or another bundle's
    // sidecar): a kit's is the one `ouk kit build` gives its version and channel, a
    // delta's ends as `ouk delta make` names them.
    let named_right = match bundle.kind.as_str() {
        "kit" => *name == ouk_kit::build::bundle_name(&bundle.version, &bundle.channel),
        "delta" => name.ends_with(".delta.tgz") || name.ends_with(".delta.tar.gz"),
        _ => false,
    };
    if !named_right {
        return Err(invalid(format!(
            "not the file name of a {} {} in channel {}",
            bundle.kind, bundle.version, bundle.channel
        )));
    }
    let mut allowed: Vec<String> = [
        "",
        ".sha256",
        ".sig",
        ".metadata.json",
        ".manifest.json",
        ".manifest.json.jws",
        ".sigs.json",
        ".trust.json",
    ]
    .iter()
    .map(|ext| format!("{name}{ext}"))
    .collect();
    allowed.extend(
        ["", ".jws", ".sig", ".sha256"]
            .iter()
            .map(|ext| format!("{MANIFEST_PATH}{ext}")),
    );
    let mut files: Vec<PublishedFile> = Vec::with_capacity(bundle.files.len());
    for f in &bundle.files {
        if !allowed.contains(&f.path) {
            return Err(invalid(format!(
                "lists {:?}, which is not one of the bundle's files (pull writes only {name}, its .sha256, .sig, .metadata.json, .manifest.json, .manifest.json.jws, .sigs.json and .trust.json, and {MANIFEST_PATH} with its .jws, .sig and .sha256)",
                f.path
            )));
        }
        if files.iter().any(|g| g.path == f.path) {
            return Err(invalid(format!("lists {:?} twice", f.path)));
        }
        files.push(f.clone());
    }
    // A delta's kept feed changes (for `delta show`; checked there against its header).
    let feed_changes = format!("{name}{}", ouk_kit::delta::FEED_CHANGES_SUFFIX);
    for f in &bundle.extras {
        if bundle.kind != "delta" || f.path != feed_changes {
            return Err(invalid(format!(
                "lists {:?} among its extras (pull writes there only a delta's {feed_changes})",
                f.path
            )));
        }
        if files.iter().any(|g| g.path == f.path) {
            return Err(invalid(format!("lists {:?} twice", f.path)));
        }
        files.push(f.clone());
    }
    Ok(files)
}

/// Make `dest/rel_dir` a real directory, creating what is missing, and refuse a symbolic
/// link (or anything else) on the way: a `DEST/manifest` link planted in a shared
/// destination would otherwise take the manifest files wherever it points.
fn real_dir_under(dest: &Path, rel_dir: &str) -> Result<()> {
    let mut at = dest.to_path_buf();
    for seg in rel_dir.split('/') {
        at.push(seg);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => {
                return Err(TransportError::Invalid {
                    what: at.display().to_string(),
                    message: "not a directory (a symbolic link?): pull writes nothing through a link; remove it and pull again".into(),
                });
            }
            // `mkdir` never follows a link: one planted meanwhile makes it fail.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir(&at).ctx(|| format!("create {}", at.display()))?;
            }
            Err(e) => {
                return Err(e)
                    .ctx(|| format!("stat {}", at.display()))
                    .map_err(Into::into);
            }
        }
    }
    Ok(())
}

/// Download `file` to `dest_dir`, resuming a partial copy; `progress` gets byte counts.
fn fetch_file(
    agent: &ureq::Agent,
    token: Option<&str>,
    from: &str,
    dest_dir: &Path,
    file: &PublishedFile,
    progress: &mut dyn FnMut(u64),
) -> Result<FileTransfer> {
    let dest = dest_dir.join(&file.path);
    let mut t = FileTransfer {
        path: file.path.clone(),
        size: file.size,
        how: "present".into(),
        fetched: 0,
        resumed_from: 0,
    };
    // `symlink_metadata`: a symbolic link planted at the destination is never "present"
    // (the rename below replaces the link itself, not what it points to).
    let present = fs::symlink_metadata(&dest).is_ok_and(|m| m.file_type().is_file());
    if present && sha256_of(&dest)? == (file.size, file.sha256.clone()) {
        return Ok(t);
    }
    let (part, etag_path) = part_paths(&dest);
    let url = join_url(from, &file.path);
    let (have, resume) = resume_point(&part, &etag_path, file.size);
    if resume.is_none() {
        remove_partial(&part, &etag_path);
    }
    let mut req = get(agent, &url, token);
    if let Some((have, etag)) = &resume {
        req = req
            .header("Range", format!("bytes={have}-"))
            .header("If-Range", etag.as_str());
    }
    let resp = req.call().map_err(|e| network(&url, e))?;
    let partial = PartialFile {
        dest: &dest,
        part: &part,
        etag_path: &etag_path,
    };
    let (body, etag_now, append) =
        accept_response(resp, &url, &partial, resume.as_ref(), token.is_some())?;
    let out = if append {
        t.how = "resumed".into();
        t.resumed_from = have;
        open_no_follow(&part, Opening::Append).ctx(|| format!("open {}", part.display()))?
    } else {
        t.how = "downloaded".into();
        start_part(&part, &etag_path, etag_now.as_deref())?
    };
    let start = if append { have } else { 0 };
    // A kept prefix counts as done: the progress total is every file's whole size.
    progress(start);
    let want = file.size - start;
    let (fetched, digest) = receive_into_part(body, out, &part, &url, start, want, progress)?;
    t.fetched = fetched;
    let got = (start + t.fetched, digest);
    if got != (file.size, file.sha256.clone()) {
        if got.0 < file.size && t.fetched < want {
            // Cut short (the connection closed): keep it for the next run.
            return Err(network(
                &url,
                format!(
                    "transfer ended after {} of {} bytes; re-run to resume",
                    got.0, file.size
                ),
            ));
        }
        remove_partial(&part, &etag_path);
        return Err(TransportError::DigestMismatch {
            path: dest,
            expected: format!("{} bytes, sha256 {}", file.size, file.sha256),
            actual: format!("{} bytes, sha256 {}", got.0, got.1),
        });
    }
    fs::rename(&part, &dest).ctx(|| format!("rename {} into place", part.display()))?;
    let _ = fs::remove_file(&etag_path);
    if let Some(parent) = dest.parent() {
        sync_dir(parent)?;
    }
    Ok(t)
}

/// The destination of one file and the partial copy (with its saved ETag) beside it.
struct PartialFile<'a> {
    dest: &'a Path,
    part: &'a Path,
    etag_path: &'a Path,
}

/// The bytes of a partial copy at `part` (0 when there is none), and the range to ask
/// for: `(kept bytes, saved ETag)` when the copy is shorter than `size` and its ETag was
/// saved, so the server can say whether it is still the same entity.
fn resume_point(part: &Path, etag_path: &Path, size: u64) -> (u64, Option<(u64, String)>) {
    let have = fs::symlink_metadata(part)
        .ok()
        .filter(|m| m.file_type().is_file())
        .map_or(0, |m| m.len());
    let saved_etag = open_no_follow(etag_path, Opening::Read)
        .and_then(std::io::read_to_string)
        .ok()
        .map(|s| s.trim().to_string());
    let resume = match &saved_etag {
        Some(e) if have > 0 && have < size && !e.is_empty() => Some((have, e.clone())),
        _ => None,
    };
    (have, resume)
}

/// Judge the server's answer to the GET: its body, its ETag, and whether it continues the
/// partial copy (`true`) or starts the file over (`false`). A changed entity, a refused
/// token or another status is an error; the partial copy is removed when no later run
/// could resume it.
fn accept_response(
    resp: ureq::http::Response<ureq::Body>,
    url: &str,
    partial: &PartialFile<'_>,
    resume: Option<&(u64, String)>,
    token_sent: bool,
) -> Result<(ureq::Body, Option<String>, bool)> {
    let status = resp.status().as_u16();
    let etag_now = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string());
    let content_range_start = resp
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let append = match (status, resume) {
        (206, Some((have, before))) => {
            if etag_now.as_deref() != Some(before.as_str()) || content_range_start != Some(*have) {
                remove_partial(partial.part, partial.etag_path);
                return Err(TransportError::ChangedMidResume {
                    path: partial.dest.to_path_buf(),
                    before: before.clone(),
                    after: etag_now.unwrap_or_else(|| "none".into()),
                });
            }
            true
        }
        (200, Some((_, before))) => {
            if etag_now.as_deref() != Some(before.as_str()) {
                remove_partial(partial.part, partial.etag_path);
                return Err(TransportError::ChangedMidResume {
                    path: partial.dest.to_path_buf(),
                    before: before.clone(),
                    after: etag_now.unwrap_or_else(|| "none".into()),
                });
            }
            // Same file, but the server does not do ranges: start over.
            false
        }
        (200, None) => false,
        // No (valid) token: the partial file is still good, keep it for the run that has
        // the token.
        (401 | 403, _) => {
            return Err(refused(url, status, resp.into_body(), token_sent));
        }
        (status, _) => {
            // A server that refuses this partial file (416: it is longer than the file
            // now; another 4xx) would refuse it on every run: start afresh next time.
            if (400..500).contains(&status) && status != 408 && status != 429 {
                remove_partial(partial.part, partial.etag_path);
            }
            return Err(TransportError::Status {
                url: url.to_string(),
                status,
            });
        }
    };
    Ok((resp.into_body(), etag_now, append))
}

/// Create a fresh partial copy at `part` (removing any old one), with the entity's strong
/// ETag saved beside it.
fn start_part(part: &Path, etag_path: &Path, etag_now: Option<&str>) -> Result<fs::File> {
    remove_partial(part, etag_path);
    let f =
        open_no_follow(part, Opening::CreateNew).ctx(|| format!("create {}", part.display()))?;
    // The ETag goes next to the partial file first, so an interrupted transfer can be
    // resumed against the same entity.
    match etag_now {
        Some(e) if !e.starts_with("W/") => open_no_follow(etag_path, Opening::CreateNew)
            .and_then(|mut f| f.write_all(e.as_bytes()))
            .ctx(|| format!("write {}", etag_path.display()))?,
        _ => {
            let _ = fs::remove_file(etag_path);
        }
    }
    Ok(f)
}

/// Write the body to `out` (the partial copy, whose first `kept` bytes stay), at most
/// one byte past `want`, and fsync it. Returns the bytes received and the hex SHA-256 of
/// the whole copy: the kept prefix is hashed once, then what arrives.
fn receive_into_part(
    body: ureq::Body,
    out: fs::File,
    part: &Path,
    url: &str,
    kept: u64,
    want: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<(u64, String)> {
    let mut out = HashingWriter::new(out);
    if kept > 0 {
        let kept = open_no_follow(part, Opening::Read)
            .ctx(|| format!("open {}", part.display()))?
            .take(kept);
        out.hash_prefix(kept)
            .ctx(|| format!("read {}", part.display()))?;
    }
    let mut fetched = 0u64;
    let mut reader = body.into_reader().take(want.saturating_add(1));
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = reader.read(&mut buf).map_err(|e| network(url, e))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .ctx(|| format!("write {}", part.display()))?;
        fetched += n as u64;
        progress(n as u64);
        if fetched > want {
            break;
        }
    }
    let (digest, _, out) = out.finish();
    out.sync_all().ctx(|| format!("fsync {}", part.display()))?;
    Ok((fetched, hex::encode(digest)))
}

/// What [`pull`] reports as it goes, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullProgress<'a> {
    /// Before any byte: the bytes of every file to fetch, in all (a resumed file counts
    /// whole; its kept prefix is reported as done when its fetch starts).
    Total(u64),
    /// `n` more bytes of the file at this path are done.
    Bytes(&'a str, u64),
}

/// Pull one bundle. `progress` gets the total, then the bytes as they arrive.
pub fn pull(opts: &PullOptions, progress: &mut dyn FnMut(PullProgress<'_>)) -> Result<PullReport> {
    let token = opts.token.as_deref().filter(|t| !t.is_empty());
    let index = fetch_index(&opts.from, opts.timeout, token)?;
    let bundle = index
        .select(&opts.selector, &opts.kind, opts.channel.as_deref())
        .cloned()
        .ok_or_else(|| TransportError::NotPublished {
            what: format!(
                "{} {}{}",
                opts.kind,
                opts.selector,
                opts.channel
                    .as_deref()
                    .map(|c| format!(" in channel {c}"))
                    .unwrap_or_default()
            ),
            url: join_url(&opts.from, INDEX_NAME),
        })?;
    // Everything is checked before anything is written.
    let own = own_files(&bundle)?;
    fs::create_dir_all(&opts.destination)
        .ctx(|| format!("create {}", opts.destination.display()))?;
    for f in &own {
        if let Some((dir, _)) = f.path.rsplit_once('/') {
            real_dir_under(&opts.destination, dir)?;
        }
    }
    let agent = agent(opts.timeout);
    progress(PullProgress::Total(
        own.iter().fold(0u64, |sum, f| sum.saturating_add(f.size)),
    ));
    let mut files = Vec::new();
    for f in &own {
        let path = f.path.clone();
        files.push(fetch_file(
            &agent,
            token,
            &opts.from,
            &opts.destination,
            f,
            &mut |n| progress(PullProgress::Bytes(&path, n)),
        )?);
    }
    let path = opts.destination.join(&bundle.name);
    // What `ouk kit verify` checks; a delta has no offline manifest of its own to check
    // its content against (the importer checks the rebuilt one), so digest and signature.
    let (sha256, signature_kid) = if bundle.kind == "delta" {
        use ouk_kit::verify::{Sidecars, check_digest, check_signature};
        let sidecars = Sidecars::discover(&path, Sidecars::default());
        let (sha, _, _) = check_digest(&path, &sidecars)?;
        (
            hex::encode(sha),
            check_signature(&sha, &sidecars, &opts.keys)?,
        )
    } else {
        let r = ouk_kit::verify::verify_bundle(&path, Default::default(), &opts.keys)?;
        (r.sha256, r.signature_kid)
    };
    if sha256 != bundle.sha256 {
        return Err(TransportError::DigestMismatch {
            path,
            expected: bundle.sha256.clone(),
            actual: sha256,
        });
    }
    if signature_kid.is_none() && !opts.allow_unsigned {
        if opts.keys.is_empty() {
            return Err(TransportError::NoKeyToVerify {
                bundle: bundle.name.clone(),
            });
        }
        return Err(TransportError::from(ouk_kit::KitError::Signature {
            what: bundle.name.clone(),
            message: "the bundle has no signature (.sig) on the server".into(),
        }));
    }
    write_summary(&opts.destination, &bundle, signature_kid.clone())?;
    Ok(PullReport {
        fetched: files.iter().map(|f| f.fetched).sum(),
        bundle,
        path,
        files,
        signed_by: signature_kid,
    })
}

/// Keep the server's `.metadata.json` when it describes this bundle; else write one made
/// from the index entry and the bundle's own manifest.
fn write_summary(dest: &Path, bundle: &PublishedBundle, kid: Option<String>) -> Result<()> {
    use ouk_kit::build::{KitMetadata, ManifestRef};
    let path = dest.join(format!("{}.metadata.json", bundle.name));
    let existing = open_no_follow(&path, Opening::Read).and_then(|f| {
        let mut bytes = Vec::new();
        f.take(MAX_INDEX_BYTES)
            .read_to_end(&mut bytes)
            .map(|_| bytes)
    });
    if let Ok(bytes) = existing
        && let Ok(m) = serde_json::from_slice::<KitMetadata>(&bytes)
        && m.name == bundle.name
        && m.sha256 == bundle.sha256
        && m.size == bundle.size
    {
        return Ok(());
    }
    let (parsed, manifest) = ouk_kit::verify::manifest_from_bundle(&dest.join(&bundle.name))?;
    let summary = KitMetadata {
        name: bundle.name.clone(),
        kind: bundle.kind.clone(),
        version: bundle.version.clone(),
        channel: bundle.channel.clone(),
        sha256: bundle.sha256.clone(),
        size: bundle.size,
        manifest: ManifestRef {
            name: "manifest/offline-manifest.json".into(),
            sha256: hex::encode(sha2::Sha256::digest(&manifest)),
            size: manifest.len() as u64,
        },
        created_at: bundle.created_at.clone(),
        generation_id: bundle.generation_id.clone(),
        signed: kid.is_some(),
        kid,
        secrets: Some(ouk_kit::exposure::manifest_lists_secrets(&parsed)),
    };
    let mut bytes = serde_json::to_vec_pretty(&summary).map_err(|e| TransportError::Invalid {
        what: path.display().to_string(),
        message: e.to_string(),
    })?;
    bytes.push(b'\n');
    ouk_kit::build::write_atomic(&path, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_join_with_encoded_segments() {
        assert_eq!(
            join_url("http://h/ouk/", "a b.tar.gz"),
            "http://h/ouk/a%20b.tar.gz"
        );
        assert_eq!(
            join_url("http://h/ouk", "manifest/offline-manifest.json"),
            "http://h/ouk/manifest/offline-manifest.json"
        );
    }
}
