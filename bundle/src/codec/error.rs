//! Typed errors of the bundle codec.
//!
//! Job: one error enum for writing ([`WriteError`]) and one for reading ([`ReadError`]).
//!
//! Invariants: every refusal of hostile input names the entry (its path, printed with
//! `{:?}` so control characters cannot forge output) or the byte offset in the decompressed
//! tar stream where the problem was found. Local filesystem failures while unpacking are a
//! separate variant ([`ReadError::Output`]) so the caller can tell "bad bundle" (exit 11)
//! from "disk full" (exit 12), see [`ReadError::is_local_io`].

use std::io;
use std::path::PathBuf;

use super::path::PathProblem;

/// Errors while writing a bundle.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The entry name is not a canonical relative path.
    #[error("invalid entry name {path:?}: {problem}")]
    InvalidPath { path: String, problem: PathProblem },
    /// The mode has bits outside 0o777 (setuid, setgid, sticky or file-type bits).
    #[error("invalid mode {mode:#o} for entry {path:?}: only permission bits (0o777) are allowed")]
    InvalidMode { path: String, mode: u32 },
    /// A uid or gid past what the tar header's octal field holds.
    #[error("invalid owner {uid}:{gid} for entry {path:?}: ids must be at most 2097151")]
    InvalidOwner { path: String, uid: u32, gid: u32 },
    /// Entries must be added in strictly increasing byte order of their names.
    #[error("entry {path:?} is not after {previous:?}: entries must be unique and sorted by name")]
    OutOfOrder { previous: String, path: String },
    /// A file name is also needed as the parent directory of another entry.
    #[error("entry {path:?} needs {ancestor:?} as a directory, but it is a file")]
    PathConflict { path: String, ancestor: String },
    /// The source had another size than announced (it changed while the kit was built).
    #[error(
        "source of entry {path:?} changed while copying: expected {expected} bytes, found {actual}"
    )]
    SourceChanged {
        path: String,
        expected: u64,
        actual: u64,
    },
    /// Reading a source file failed.
    #[error("reading {source_path}: {source}")]
    Source {
        source_path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing the bundle (compressing or the output itself) failed.
    #[error("writing the bundle: {0}")]
    Output(#[source] io::Error),
    /// Options out of range.
    #[error("invalid bundle writer options: {0}")]
    InvalidOptions(&'static str),
}

/// Errors while reading or unpacking a bundle. All but [`ReadError::Output`] mean the
/// bundle is corrupt or hostile.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The gzip stream is corrupt (bad header, bad deflate data, CRC-32 or size mismatch)
    /// or could not be read.
    #[error("corrupt gzip stream near tar offset {offset}: {source}")]
    Stream {
        offset: u64,
        #[source]
        source: io::Error,
    },
    /// The archive ends early (inside an entry, or without the two zero blocks).
    #[error("truncated archive at tar offset {offset}{}", entry_suffix(entry))]
    Truncated { offset: u64, entry: Option<String> },
    /// A header block is malformed.
    #[error("malformed tar header at offset {offset}: {reason}")]
    BadHeader { offset: u64, reason: &'static str },
    /// A header's checksum does not match.
    #[error("tar header checksum mismatch at offset {offset}")]
    Checksum { offset: u64 },
    /// The entry name is unsafe (absolute, `..`, empty component, backslash, NUL, ...).
    #[error("unsafe entry name {path:?}: {problem}")]
    UnsafePath { path: String, problem: PathProblem },
    /// A symbolic or hard link. A kit holds regular files and directories only, so every
    /// link is refused, wherever it points.
    #[error("entry {path:?} is a {} to {target:?}: links are not allowed in a kit", if *.hard { "hard link" } else { "symbolic link" })]
    Link {
        path: String,
        target: String,
        hard: bool,
    },
    /// A character or block device node.
    #[error("entry {path:?} is a device node: not allowed in a kit")]
    Device { path: String },
    /// A FIFO.
    #[error("entry {path:?} is a FIFO: not allowed in a kit")]
    Fifo { path: String },
    /// Any other entry type (sparse, contiguous, volume label, global pax header, ...).
    #[error("entry {path:?} has unsupported type {:?}", char::from(*.typeflag))]
    UnsupportedType { path: String, typeflag: u8 },
    /// A pax extended header sets something other than `path`, `size` or a timestamp.
    #[error("pax header at offset {offset} sets {key:?}: not allowed in a kit")]
    PaxKey { offset: u64, key: String },
    /// Mode bits outside 0o777 (setuid, setgid, sticky, file-type bits).
    #[error("entry {path:?} has mode {mode:#o}: only permission bits (0o777) are allowed")]
    UnsafeMode { path: String, mode: u64 },
    /// The same name appears twice.
    #[error("duplicate entry {path:?}")]
    Duplicate { path: String },
    /// An entry needs a file as its directory, or a file takes a directory's name.
    #[error("entry {path:?} conflicts with {other:?} (file versus directory)")]
    PathConflict { path: String, other: String },
    /// A file the caller's manifest does not declare.
    #[error("entry {path:?} is not declared in the manifest")]
    Undeclared { path: String },
    /// A file larger than the manifest declares (refused before any byte is copied).
    #[error("entry {path:?} is {size} bytes, more than the {declared} bytes the manifest declares")]
    SizeExceedsDeclared {
        path: String,
        size: u64,
        declared: u64,
    },
    /// The decompressed stream grew past the caller's total limit (gzip bomb).
    #[error("bundle decompresses to more than the limit of {limit} bytes")]
    TotalLimit { limit: u64 },
    /// More header blocks than the caller's limit.
    #[error("bundle has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    /// Non-zero data after the end-of-archive marker, or bytes after the gzip member.
    #[error("unexpected data after the end of the archive (tar offset {offset})")]
    TrailingData { offset: u64 },
    /// Writing the unpacked tree failed (local filesystem: permissions, disk full, a
    /// pre-existing entry in the target directory).
    #[error("writing {path}: {source}")]
    Output {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn entry_suffix(entry: &Option<String>) -> String {
    match entry {
        Some(e) => format!(" inside entry {e:?}"),
        None => String::new(),
    }
}

impl ReadError {
    /// True when the error comes from the local filesystem (see [`ReadError::Output`]),
    /// false when the bundle itself is at fault.
    pub fn is_local_io(&self) -> bool {
        matches!(self, ReadError::Output { .. })
    }

    /// The entry the error is about, when there is one.
    pub fn entry(&self) -> Option<&str> {
        match self {
            ReadError::Truncated { entry, .. } => entry.as_deref(),
            ReadError::UnsafePath { path, .. }
            | ReadError::Link { path, .. }
            | ReadError::Device { path }
            | ReadError::Fifo { path }
            | ReadError::UnsupportedType { path, .. }
            | ReadError::UnsafeMode { path, .. }
            | ReadError::Duplicate { path }
            | ReadError::PathConflict { path, .. }
            | ReadError::Undeclared { path }
            | ReadError::SizeExceedsDeclared { path, .. } => Some(path),
            _ => None,
        }
    }

    /// Wraps the error into an `io::Error` (for `Read` impls); [`ReadError::from_io`]
    /// gets it back.
    pub(crate) fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }

    /// Recovers a `ReadError` wrapped by `into_io`, or classifies a plain `io::Error`
    /// from the bundle stream.
    pub fn from_io(err: io::Error, offset: u64, entry: Option<&str>) -> ReadError {
        if err.get_ref().is_some_and(|e| e.is::<ReadError>()) {
            match err.into_inner().map(|inner| inner.downcast::<ReadError>()) {
                Some(Ok(re)) => return *re,
                // `is` said it was a ReadError; keep a well-formed answer anyway.
                Some(Err(other)) => {
                    return ReadError::Stream {
                        offset,
                        source: io::Error::other(other),
                    };
                }
                None => {
                    return ReadError::Stream {
                        offset,
                        source: io::Error::other("empty wrapped error"),
                    };
                }
            }
        }
        if err.kind() == io::ErrorKind::UnexpectedEof {
            ReadError::Truncated {
                offset,
                entry: entry.map(str::to_owned),
            }
        } else {
            ReadError::Stream {
                offset,
                source: err,
            }
        }
    }
}
