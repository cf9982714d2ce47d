//! Archive path rules, shared by the writer and the reader.
//!
//! Job: decide whether a string is an acceptable name for a bundle entry.
//!
//! Invariants of an accepted path (the *canonical form*):
//! - non-empty, valid UTF-8, at most [`MAX_PATH_LEN`] bytes;
//! - relative: no leading `/`, and no trailing `/` (directory entries carry their `/` only
//!   inside the tar header, never in the canonical name);
//! - `/`-separated components, none of them empty, `.` or `..`;
//! - no backslash, no NUL and no other ASCII control character (a newline in a name would
//!   forge lines of `sha256sum`-style listings).
//!
//! Because a canonical path has exactly one spelling, comparing strings is enough to detect
//! duplicate entries, and joining it under a directory can never leave that directory.

use std::fmt;

/// Longest accepted entry name in bytes (Linux `PATH_MAX`). Long-name records larger than
/// this are refused before they are read, so a hostile header cannot make us buffer much.
pub const MAX_PATH_LEN: usize = 4096;

/// Why a path is not acceptable as a bundle entry name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathProblem {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_PATH_LEN`].
    TooLong,
    /// The name is not valid UTF-8.
    NotUtf8,
    /// The name starts with `/`.
    Absolute,
    /// A component is `..`.
    ParentComponent,
    /// A component is `.`.
    CurrentComponent,
    /// Two consecutive `/`, or a trailing `/`.
    EmptyComponent,
    /// The name contains a backslash.
    Backslash,
    /// The name contains NUL or another control character.
    ControlCharacter,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            PathProblem::Empty => "empty name",
            PathProblem::TooLong => "name longer than 4096 bytes",
            PathProblem::NotUtf8 => "name is not UTF-8",
            PathProblem::Absolute => "absolute path",
            PathProblem::ParentComponent => "`..` component",
            PathProblem::CurrentComponent => "`.` component",
            PathProblem::EmptyComponent => "empty path component",
            PathProblem::Backslash => "backslash in name",
            PathProblem::ControlCharacter => "NUL or control character in name",
        };
        f.write_str(s)
    }
}

/// Checks that `path` is in canonical form (see the module doc).
pub fn check(path: &str) -> Result<(), PathProblem> {
    if path.is_empty() {
        return Err(PathProblem::Empty);
    }
    if path.len() > MAX_PATH_LEN {
        return Err(PathProblem::TooLong);
    }
    if path.starts_with('/') {
        return Err(PathProblem::Absolute);
    }
    if let Some(bad) = path.chars().find(|c| *c == '\\' || c.is_ascii_control()) {
        return Err(if bad == '\\' {
            PathProblem::Backslash
        } else {
            PathProblem::ControlCharacter
        });
    }
    for component in path.split('/') {
        match component {
            "" => return Err(PathProblem::EmptyComponent),
            "." => return Err(PathProblem::CurrentComponent),
            ".." => return Err(PathProblem::ParentComponent),
            _ => {}
        }
    }
    Ok(())
}

/// The proper ancestors of a canonical path, shortest first: `a/b/c` gives `a`, `a/b`.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_path_rules() {
        assert_eq!(check("a/b.txt"), Ok(()));
        assert_eq!(check("manifest/offline-manifest.json"), Ok(()));
        assert_eq!(check(""), Err(PathProblem::Empty));
        assert_eq!(check("/etc/passwd"), Err(PathProblem::Absolute));
        assert_eq!(check("../x"), Err(PathProblem::ParentComponent));
        assert_eq!(check("a/../../x"), Err(PathProblem::ParentComponent));
        assert_eq!(check("./x"), Err(PathProblem::CurrentComponent));
        assert_eq!(check("a//b"), Err(PathProblem::EmptyComponent));
        assert_eq!(check("a/"), Err(PathProblem::EmptyComponent));
        assert_eq!(check("a\\b"), Err(PathProblem::Backslash));
        assert_eq!(check("a\0b"), Err(PathProblem::ControlCharacter));
        assert_eq!(check("a\nb"), Err(PathProblem::ControlCharacter));
        assert_eq!(check(&"a".repeat(4097)), Err(PathProblem::TooLong));
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), vec!["a", "a/b"]);
        assert_eq!(ancestors("a").count(), 0);
    }
}
