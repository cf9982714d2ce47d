//! Where tests work: [`scratch`] directories under the cargo target dir (removed at exit,
//! stale ones of dead processes first), and [`SmallFs`], a small mounted filesystem for
//! disk-full tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch directory under the cargo target dir, removed by the caller when done. Stale
/// ones of processes that no longer run are removed first.
pub fn scratch(name: &str) -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    if let Ok(rd) = fs::read_dir(&base) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = n
                .strip_prefix(&format!("{name}-"))
                .and_then(|p| p.parse::<u32>().ok())
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = ouk_root::remove_tree(&e.path());
            }
        }
    }
    let dir = base.join(format!("{name}-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    SCRATCH.lock().unwrap().push(dir.clone());
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registering a plain extern "C" function; it runs once at exit.
        unsafe { libc::atexit(remove_scratch) };
    });
    dir
}

static SCRATCH: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

extern "C" fn remove_scratch() {
    if let Ok(dirs) = SCRATCH.lock() {
        for d in dirs.iter() {
            let _ = ouk_root::remove_tree(d);
        }
    }
}

/// A small filesystem mounted by the test (tests run as root): tmpfs with a size limit,
/// else an ext4 image on a loop device. Unmounted (lazily, if busy) when dropped.
pub struct SmallFs {
    /// Mount point.
    pub mnt: PathBuf,
    /// `tmpfs` or `ext4-loop`.
    pub kind: &'static str,
    image: Option<PathBuf>,
}

fn sh(cmd: &str, args: &[&str]) -> Result<(), String> {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

impl SmallFs {
    /// Mount a filesystem of `bytes` (plus `extra` mount options for tmpfs, like
    /// `nr_inodes=300`) at `dir/mnt`. Panics with a clear message when neither tmpfs nor a
    /// loop-mounted ext4 image can be mounted: a full-disk test must not pass silently.
    pub fn new(dir: &Path, bytes: u64, extra: &str) -> SmallFs {
        let mnt = dir.join("mnt");
        fs::create_dir_all(&mnt).unwrap();
        let m = mnt.to_str().unwrap();
        let mut opts = format!("size={bytes}");
        if !extra.is_empty() {
            opts = format!("{opts},{extra}");
        }
        let tmpfs = sh("mount", &["-t", "tmpfs", "-o", &opts, "tmpfs", m]);
        if tmpfs.is_ok() {
            return SmallFs {
                mnt,
                kind: "tmpfs",
                image: None,
            };
        }
        let image = dir.join("fs.img");
        let img = image.to_str().unwrap();
        let size = format!("{bytes}");
        let ext4 = sh("truncate", &["-s", &size, img])
            .and_then(|_| sh("mkfs.ext4", &["-q", "-F", "-m", "0", img]))
            .and_then(|_| sh("mount", &["-o", "loop", img, m]));
        match ext4 {
            Ok(()) => SmallFs {
                mnt,
                kind: "ext4-loop",
                image: Some(image),
            },
            Err(e) => panic!(
                "cannot make a small filesystem for the full-disk test (it needs root): \
                 tmpfs: {}; loop ext4: {e}",
                tmpfs.unwrap_err()
            ),
        }
    }

    /// Change the size (tmpfs only; returns false for the ext4 fallback).
    pub fn resize(&self, bytes: u64) -> bool {
        if self.kind != "tmpfs" {
            return false;
        }
        sh(
            "mount",
            &[
                "-o",
                &format!("remount,size={bytes}"),
                self.mnt.to_str().unwrap(),
            ],
        )
        .unwrap();
        true
    }

    /// Bytes free for an unprivileged writer.
    pub fn free(&self) -> u64 {
        statvfs(&self.mnt).0
    }

    /// Bytes in use.
    pub fn used(&self) -> u64 {
        let (free, total) = statvfs(&self.mnt);
        total - free
    }
}

/// (available, total) bytes of the filesystem holding `path`.
pub fn statvfs(path: &Path) -> (u64, u64) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: statvfs fills the struct we own; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    (
        st.f_bavail as u64 * st.f_frsize as u64,
        st.f_blocks as u64 * st.f_frsize as u64,
    )
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let m = self.mnt.to_str().unwrap().to_string();
        if sh("umount", &[&m]).is_err() {
            let _ = sh("umount", &["-l", &m]);
        }
        if let Some(img) = &self.image {
            let _ = fs::remove_file(img);
        }
    }
}
