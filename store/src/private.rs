//! Directories private to the user who owns the data: the store, staging and quarantine
//! hold kit content (secrets included: a kit's DPoP private key is a chunk in a pack like
//! any other file), so no other local user may traverse them.
//!
//! Invariant: after [`ensure_private_dir`], the directory exists and grants nothing to
//! group or others (mode 0700 or narrower). A directory another user owns is left as it
//! is and reported, not silently trusted: chmod would fail there anyway.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Create `dir` (and missing parents) as 0700, or narrow an existing one to 0700 when it
/// grants anything to group or others.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "exists and is not a directory",
        ));
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(meta.mode() & 0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_and_existing_directories_end_private() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fresh = tmp.path().join("a/b");
        ensure_private_dir(&fresh).expect("create");
        assert_eq!(fs::metadata(&fresh).expect("stat").mode() & 0o777, 0o700);
        let open = tmp.path().join("open");
        fs::create_dir(&open).expect("mkdir");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).expect("chmod");
        ensure_private_dir(&open).expect("narrow");
        assert_eq!(fs::metadata(&open).expect("stat").mode() & 0o777, 0o700);
        let file = tmp.path().join("file");
        fs::write(&file, b"x").expect("write");
        assert!(ensure_private_dir(&file).is_err());
    }
}
