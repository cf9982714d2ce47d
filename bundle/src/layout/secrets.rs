//! Rule 3: every file under `secrets/` has mode exactly `0600`.
//!
//! The seed: "Set the permissions explicitly (chmod 600 ...) so only the kit importer can
//! read it; the importer will refuse keys that are broader." Group or other bits, execute
//! bits and set-id/sticky bits are all refused; so is a mode without owner read/write,
//! since the bundle writer keeps `0600` under `secrets/` and anything else means the tree
//! was not prepared as documented. The violation names the file and its mode.

use super::{Index, SECRET_MODE, SECRETS_DIR, Violation};

/// Whether `path` (tree-relative) is under `secrets/`.
pub fn is_secret(path: &str) -> bool {
    path.strip_prefix(SECRETS_DIR)
        .is_some_and(|rest| rest.starts_with('/'))
}

pub(crate) fn check(index: &Index<'_>, out: &mut Vec<Violation>) {
    for (&path, e) in index.iter() {
        if is_secret(path) && e.mode & 0o7777 != SECRET_MODE {
            out.push(Violation::SecretMode {
                path: path.to_owned(),
                mode: e.mode & 0o7777,
            });
        }
    }
}
