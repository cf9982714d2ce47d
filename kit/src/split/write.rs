//! `ouk kit split`: cut a bundle (kit or delta) into parts of at most `--max-size` bytes.
//!
//! Invariants:
//! - deterministic: part `n` is bytes `(n-1)*max .. n*max` of the bundle; the index and
//!   the part sidecars depend only on the bundle, its name and the maximum; the bundle's
//!   sidecars are copied byte for byte;
//! - never overwrites: refused when the output directory already holds any part or index
//!   of this bundle, or a sidecar with other content (an identical one is left alone, so
//!   splitting into the bundle's own directory works);
//! - every file is written under an exclusive temporary name (never through a planted
//!   link), fsynced and renamed into place, the directory fsynced after each; the index is
//!   written last, so a set with an index is complete;
//!   a failure removes what this run wrote;
//! - the bundle is read once; its digest is checked against its own `.sha256` /
//!   `.metadata.json` (when present) before the index is written, so a damaged bundle is
//!   not turned into a set of parts that look fine.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use ouk_store::fsutil::{AtomicFile, HashingReader, HashingWriter};
use serde::Serialize;

use super::PartError;
use super::index::{
    BundleRef, INDEX_FORMAT, MAX_PARTS, PartName, PartRef, PartsIndex, check_bundle_name,
    index_name, part_name,
};
use crate::error::{IoContext, KitError, Result};
use crate::manifest::MANIFEST_PATH;
use crate::verify::{self, Sidecars};

/// The default `--max-size`: 4 GiB - 1 byte, the largest file FAT32 holds.
pub const DEFAULT_MAX_PART_SIZE: u64 = (4 << 30) - 1;

/// What to split.
#[derive(Debug, Clone)]
pub struct SplitOptions {
    /// The bundle (a kit or a delta).
    pub bundle: PathBuf,
    /// Where the parts go (created when missing).
    pub output_dir: PathBuf,
    /// Largest part, bytes.
    pub max_part_size: u64,
}

/// One part written.
#[derive(Debug, Clone, Serialize)]
pub struct SplitPart {
    /// Its path.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Its SHA-256.
    pub sha256: String,
}

/// What `kit split` wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SplitReport {
    /// The bundle's file name.
    pub bundle: String,
    /// Its SHA-256.
    pub sha256: String,
    /// Its size.
    pub size: u64,
    /// The maximum part size used.
    pub max_part_size: u64,
    /// The index.
    pub index: PathBuf,
    /// The parts, in order.
    pub parts: Vec<SplitPart>,
    /// Sidecars copied next to the parts (or already there with the same content).
    pub sidecars: Vec<PathBuf>,
    /// Sidecars not copied, and why.
    pub warnings: Vec<String>,
}

/// Removes what a failed split wrote.
struct Written {
    files: Vec<PathBuf>,
    done: bool,
}

impl Drop for Written {
    fn drop(&mut self) {
        if !self.done {
            for f in self.files.iter().rev() {
                let _ = fs::remove_file(f);
            }
        }
    }
}

/// Write `bytes` to `path` through an exclusive temporary file, fsync, rename, fsync the
/// directory ([`ouk_store::fsutil::write_atomic`]). The temporary is removed on failure.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(ouk_store::fsutil::write_atomic(path, bytes)?)
}

fn sha256_line(digest: &[u8; 32], name: &str) -> String {
    format!("{}  {name}\n", hex::encode(digest))
}

/// A sidecar to copy: source, destination, and whether a different existing file at the
/// destination refuses the split (bundle sidecars) or is only reported (the shared
/// `manifest/` directory, which several kits in one directory share).
struct Copy {
    from: PathBuf,
    to: PathBuf,
    strict: bool,
}

fn sidecar_copies(bundle: &Path, name: &str, out: &Path) -> Vec<Copy> {
    let found = Sidecars::discover(bundle, Sidecars::default());
    let mut copies = Vec::new();
    for (src, ext) in [
        (&found.sha256, "sha256"),
        (&found.signature, "sig"),
        (&found.metadata, "metadata.json"),
    ] {
        if let Some(from) = src {
            copies.push(Copy {
                from: from.clone(),
                to: out.join(format!("{name}.{ext}")),
                strict: true,
            });
        }
    }
    // The signature set and the trust chain a kit may carry (issue 25): without them a
    // split kit would lose its countersignatures and the rotations it brings.
    // And a delta's kept feed changes, for `delta show` (checked there against the
    // delta's header).
    for ext in ["sigs.json", "trust.json", "feeds-changes.jsonl"] {
        let from = PathBuf::from(format!("{}.{ext}", bundle.display()));
        if from.is_file() {
            copies.push(Copy {
                from,
                to: out.join(format!("{name}.{ext}")),
                strict: true,
            });
        }
    }
    // The manifest sidecar only when it is this bundle's (`discover` checks the descriptor).
    if let Some(m) = &found.manifest {
        let dest = out.join(MANIFEST_PATH);
        copies.push(Copy {
            from: m.clone(),
            to: dest.clone(),
            strict: false,
        });
        for ext in ["sha256", "sig", "jws"] {
            let from = PathBuf::from(format!("{}.{ext}", m.display()));
            if from.is_file() {
                copies.push(Copy {
                    from,
                    to: PathBuf::from(format!("{}.{ext}", dest.display())),
                    strict: false,
                });
            }
        }
    }
    copies
}

/// Largest sidecar copied (the manifest is the biggest; it is bounded far below this).
const MAX_SIDECAR_BYTES: u64 = 256 << 20;

fn read_sidecar(path: &Path) -> Result<Vec<u8>> {
    let f = File::open(path).ctx(|| format!("open {}", path.display()))?;
    let mut out = Vec::new();
    f.take(MAX_SIDECAR_BYTES + 1)
        .read_to_end(&mut out)
        .ctx(|| format!("read {}", path.display()))?;
    if out.len() as u64 > MAX_SIDECAR_BYTES {
        return Err(KitError::Validation(format!(
            "{}: larger than {MAX_SIDECAR_BYTES} bytes",
            path.display()
        )));
    }
    Ok(out)
}

/// Refuse when `dir` holds any part or index of `name`.
fn check_no_parts(dir: &Path, name: &str) -> Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(KitError::Io {
                context: format!("list {}", dir.display()),
                source,
            });
        }
    };
    let mut found: Vec<PathBuf> = Vec::new();
    for e in rd {
        let e = e.ctx(|| format!("list {}", dir.display()))?;
        let file_name = e.file_name();
        let Some(n) = file_name.to_str() else {
            continue;
        };
        // Parts, their sidecars and the index.
        let base = n.strip_suffix(".sha256").unwrap_or(n);
        if PartName::of(base).is_some_and(|p| p.bundle() == name) {
            found.push(e.path());
        }
    }
    found.sort();
    match found.first() {
        Some(first) => Err(PartError::PartsInTheWay {
            path: first.clone(),
            dir: dir.to_path_buf(),
            count: found.len(),
            bundle: name.to_string(),
        }
        .into()),
        None => Ok(()),
    }
}

/// Split `opts.bundle` into `opts.output_dir`. `progress` is called with bytes copied.
pub fn split_bundle(opts: &SplitOptions, progress: &mut dyn FnMut(u64)) -> Result<SplitReport> {
    let bundle = &opts.bundle;
    let max = opts.max_part_size;
    let Input {
        name,
        file,
        size,
        count,
    } = open_input(opts)?;
    let out = &opts.output_dir;
    check_no_parts(out, &name)?;
    // Sidecars: refuse now, before the long copy, when a different one is in the way.
    let (copies, warnings) = plan_sidecars(bundle, &name, out)?;
    fs::create_dir_all(out).ctx(|| format!("create {}", out.display()))?;

    let mut written = Written {
        files: Vec::new(),
        done: false,
    };
    // The whole bundle's SHA-256, fed as the parts are copied.
    let mut file = HashingReader::new(file);
    let mut parts = Vec::with_capacity(count as usize);
    let mut buf = vec![0u8; 1 << 20];
    for number in 1..=count as usize {
        let part_size = max.min(size - (number as u64 - 1) * max);
        let pname = part_name(&name, number);
        let dest = out.join(&pname);
        let mut source = PartSource {
            file: &mut file,
            bundle,
            buf: &mut buf,
        };
        let digest = source.copy_part(&dest, part_size, progress)?;
        written.files.push(dest.clone());
        let side = out.join(format!("{pname}.sha256"));
        write_new(&side, sha256_line(&digest, &pname).as_bytes())?;
        written.files.push(side);
        parts.push(SplitPart {
            path: dest,
            size: part_size,
            sha256: hex::encode(digest),
        });
    }
    let mut probe = [0u8; 1];
    if file
        .read(&mut probe)
        .ctx(|| format!("read {}", bundle.display()))?
        != 0
    {
        return Err(KitError::Validation(format!(
            "{}: grew while being split",
            bundle.display()
        )));
    }
    let (digest, _) = file.digest();
    // A damaged bundle must not become a set of parts that look fine.
    let found = Sidecars::discover(bundle, Sidecars::default());
    verify::check_recorded_digest(bundle, &digest, size, &found)?;

    let mut sidecars = Vec::new();
    for (c, bytes) in copies {
        if let Some(bytes) = bytes {
            if let Some(parent) = c.to.parent() {
                fs::create_dir_all(parent).ctx(|| format!("create {}", parent.display()))?;
            }
            write_new(&c.to, &bytes)?;
            written.files.push(c.to.clone());
        }
        sidecars.push(c.to);
    }

    let index = parts_index(&name, size, &digest, max, &parts);
    // What we write must be what the importer accepts.
    index
        .validate()
        .map_err(|e| KitError::Validation(format!("internal: the parts index is invalid: {e}")))?;
    let index_path = out.join(index_name(&name));
    write_new(&index_path, &index.to_bytes())?;
    written.files.push(index_path.clone());
    written.done = true;
    Ok(SplitReport {
        bundle: name,
        sha256: hex::encode(digest),
        size,
        max_part_size: max,
        index: index_path,
        parts,
        sidecars,
        warnings,
    })
}

/// The bundle to split, opened and checked: its file name, size and part count.
struct Input {
    name: String,
    file: File,
    size: u64,
    count: u64,
}

/// Open `opts.bundle` and check it can be split as asked: a UTF-8 bundle name that is not
/// already a part, a non-empty file, a part size of at least one byte and at most
/// [`MAX_PARTS`] parts.
fn open_input(opts: &SplitOptions) -> Result<Input> {
    let bundle = &opts.bundle;
    if !bundle.is_file() {
        return Err(KitError::NotFound(bundle.clone()));
    }
    let name = bundle
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| KitError::Usage(format!("{}: not a UTF-8 file name", bundle.display())))?
        .to_string();
    check_bundle_name(&name).map_err(|e| KitError::Usage(format!("{}: {e}", bundle.display())))?;
    if PartName::of(&name).is_some() {
        return Err(KitError::Usage(format!(
            "{}: already a part of a split kit",
            bundle.display()
        )));
    }
    let max = opts.max_part_size;
    if max == 0 {
        // The binary's size parser refuses 0 first; this guards the division below.
        return Err(KitError::Usage(
            "the part size must be at least 1 byte".into(),
        ));
    }
    let file = File::open(bundle).ctx(|| format!("open {}", bundle.display()))?;
    let size = file
        .metadata()
        .ctx(|| format!("stat {}", bundle.display()))?
        .len();
    if size == 0 {
        return Err(KitError::Validation(format!(
            "{}: empty file, nothing to split",
            bundle.display()
        )));
    }
    let count = size.div_ceil(max);
    if count > MAX_PARTS as u64 {
        return Err(PartError::TooManyParts {
            max_part_size: max,
            size,
            count,
        }
        .into());
    }
    Ok(Input {
        name,
        file,
        size,
        count,
    })
}

/// A sidecar to copy and its bytes (`None`: the same bytes are already there).
type PlannedCopy = (Copy, Option<Vec<u8>>);

/// The bundle's sidecars to copy beside the parts (`None`: already there, identical) and
/// the warnings for those left alone. A strict sidecar that differs from the one in the
/// way is an error, found before the long copy.
fn plan_sidecars(bundle: &Path, name: &str, out: &Path) -> Result<(Vec<PlannedCopy>, Vec<String>)> {
    let mut copies = Vec::new();
    let mut warnings = Vec::new();
    for c in sidecar_copies(bundle, name, out) {
        let bytes = read_sidecar(&c.from)?;
        match fs::read(&c.to) {
            Ok(existing) if existing == bytes => copies.push((c, None)),
            Ok(_) if c.strict => {
                return Err(PartError::Exists {
                    path: c.to.clone(),
                    reason: format!(
                        "it differs from {} (the sidecar of another bundle?)",
                        c.from.display()
                    ),
                }
                .into());
            }
            Ok(_) => warnings.push(format!(
                "{} exists with other content (another kit's manifest?): left alone; the import reads the bundle's own copy",
                c.to.display()
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => copies.push((c, Some(bytes))),
            Err(source) => {
                return Err(KitError::Io {
                    context: format!("read {}", c.to.display()),
                    source,
                });
            }
        }
    }
    Ok((copies, warnings))
}

/// The bundle being cut, read once from start to end: each part takes the next bytes.
struct PartSource<'a> {
    /// The bundle, hashed whole as the parts are copied.
    file: &'a mut HashingReader<File>,
    bundle: &'a Path,
    buf: &'a mut [u8],
}

impl PartSource<'_> {
    /// Copy the next `part_size` bytes into a new file at `dest` (temporary name, fsync,
    /// rename) and return their SHA-256. A bundle that ends early is an error (it shrank).
    fn copy_part(
        &mut self,
        dest: &Path,
        part_size: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<[u8; 32]> {
        // Dropped on any error below, the temporary file is removed.
        let mut f = HashingWriter::new(AtomicFile::create(dest)?);
        let mut left = part_size;
        while left > 0 {
            let want = usize::try_from(left).map_or(self.buf.len(), |l| l.min(self.buf.len()));
            let window = self.buf.get_mut(..want).unwrap_or_default();
            let n = match self.file.read(window) {
                Ok(0) => {
                    return Err(KitError::Validation(format!(
                        "{}: shrank while being split",
                        self.bundle.display()
                    )));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(KitError::Io {
                        context: format!("read {}", self.bundle.display()),
                        source,
                    });
                }
            };
            let chunk = window.get(..n).unwrap_or_default();
            f.write_all(chunk)
                .ctx(|| format!("write {}", f.get_ref().path().display()))?;
            left -= n as u64;
            progress(n as u64);
        }
        let (digest, _, f) = f.finish();
        f.commit()?;
        Ok(digest)
    }
}

/// The parts index of a bundle `name` of `size` bytes and SHA-256 `digest`, cut into `parts`.
fn parts_index(
    name: &str,
    size: u64,
    digest: &[u8; 32],
    max: u64,
    parts: &[SplitPart],
) -> PartsIndex {
    PartsIndex {
        format: INDEX_FORMAT.into(),
        bundle: BundleRef {
            name: name.to_string(),
            size,
            sha256: hex::encode(digest),
        },
        max_part_size: max,
        parts: parts
            .iter()
            .map(|p| PartRef {
                name: p
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                size: p.size,
                sha256: p.sha256.clone(),
            })
            .collect(),
    }
}
