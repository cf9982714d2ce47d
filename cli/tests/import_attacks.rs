//! Attacks on what the importer reads and what a signature authorizes (the security
//! review's items 1, 2, 3 and 9; docs/security.md names each test):
//!
//! - **read once**: the bundle is swapped for another the moment its first read ends (an
//!   inotify watch on the drop directory, so the swap wins every time instead of 9 in 10
//!   as in the review). The importer opens it exactly once and activates the signed bytes;
//!   for kits, deltas, split parts and `mirror add`;
//! - **purpose**: a kit shipped as a plug-in DLL gets a plug-in signature from the normal
//!   build; that signature never imports as a kit's;
//! - **private store**: another local user reads no byte of a kit's secret from the root;
//! - **sidecar**: the manifest sidecar of the active kit beside another signed bundle does
//!   not make that bundle "already active".

mod common;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use common::hostile::fixture;
use common::*;

/// Watches a directory and counts opens per file name; the first time `target` is closed
/// after a read, renames `swap_in` over it (the swap an attacker with write access to the
/// drop directory makes).
struct OpenWatch {
    fd: i32,
    stop: Arc<AtomicBool>,
    opens: Arc<Mutex<HashMap<OsString, u32>>>,
    thread: Option<JoinHandle<()>>,
}

impl OpenWatch {
    fn start(dir: &Path, swap: Option<(PathBuf, PathBuf)>) -> OpenWatch {
        use std::os::unix::ffi::OsStringExt;
        // SAFETY: plain syscalls on a descriptor this struct owns; the path is
        // NUL-terminated.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        assert!(
            fd >= 0,
            "inotify_init1: {}",
            std::io::Error::last_os_error()
        );
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
        let wd = unsafe {
            libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_OPEN | libc::IN_CLOSE_NOWRITE)
        };
        assert!(
            wd >= 0,
            "inotify_add_watch: {}",
            std::io::Error::last_os_error()
        );
        let stop = Arc::new(AtomicBool::new(false));
        let opens = Arc::new(Mutex::new(HashMap::new()));
        let (stop2, opens2) = (stop.clone(), opens.clone());
        let thread = std::thread::spawn(move || {
            let mut swap = swap;
            let mut buf = vec![0u8; 64 << 10];
            loop {
                // Loaded before the read: inotify queues an event when its syscall runs,
                // so once `finish` sets the flag (the watched process has returned) every
                // event is queued, and the first empty read after that ends the watch.
                let stopping = stop2.load(Ordering::SeqCst);
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one pollfd we own.
                unsafe { libc::poll(&mut pfd, 1, 20) };
                // SAFETY: reading into our own buffer.
                let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    if stopping {
                        break;
                    }
                    continue;
                }
                let mut at = 0usize;
                while at + 16 <= n as usize {
                    let mask = u32::from_ne_bytes(buf[at + 4..at + 8].try_into().unwrap());
                    let len =
                        u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
                    let raw = &buf[at + 16..at + 16 + len];
                    let name = raw.split(|b| *b == 0).next().unwrap_or_default().to_vec();
                    let name = OsString::from_vec(name);
                    if mask & libc::IN_OPEN != 0 {
                        *opens2.lock().unwrap().entry(name.clone()).or_default() += 1;
                    }
                    if mask & libc::IN_CLOSE_NOWRITE != 0
                        && let Some((target, evil)) = &swap
                        && target.file_name() == Some(name.as_os_str())
                    {
                        fs::rename(evil, target).unwrap();
                        swap = None;
                    }
                    at += 16 + len;
                }
            }
        });
        OpenWatch {
            fd,
            stop,
            opens,
            thread: Some(thread),
        }
    }

    /// Stop watching; how often each name was opened.
    fn finish(mut self) -> HashMap<OsString, u32> {
        // The watched process has returned: its events are all queued; the thread drains
        // them before it stops (no sleep standing in for "they have arrived").
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.opens.lock().unwrap().clone()
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // SAFETY: our descriptor, closed once.
        unsafe { libc::close(self.fd) };
    }
}

/// `ouk --json kit import BUNDLE` (the fixture kits are dated 2025: no staleness limit).
fn import(root: &Path, bundle: &Path) -> (i32, serde_json::Value) {
    run_json(
        root,
        &[
            "kit",
            "import",
            bundle.to_str().unwrap(),
            "--max-kit-age",
            "0",
        ],
    )
}

fn opens_of(opens: &HashMap<OsString, u32>, path: &Path) -> u32 {
    opens.get(path.file_name().unwrap()).copied().unwrap_or(0)
}

/// An unsigned kit of day `day` built into `dir` (the attacker's bytes).
fn evil_kit(tmp: &Path, day: u32) -> PathBuf {
    let out = tmp.join(format!("evil-{day}"));
    let o = build_unsigned(&small_tree(tmp, day), &out, &[]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    out.join("stella-ops-offline-kit-2025.10.0-edge.tar.gz")
}

/// The bundle alone in a fresh drop directory with its `.sig` (no descriptor, no manifest
/// sidecar: the case the review won 9 times in 10).
fn drop_dir(tmp: &Path, name: &str, bundle: &Path) -> PathBuf {
    let dir = tmp.join(name);
    fs::create_dir_all(&dir).unwrap();
    let dest = dir.join(bundle.file_name().unwrap());
    fs::copy(bundle, &dest).unwrap();
    fs::copy(
        format!("{}.sig", bundle.display()),
        format!("{}.sig", dest.display()),
    )
    .unwrap();
    dest
}

/// The generation id the kit at `bundle` activates (from its descriptor).
fn generation_of(bundle: &Path) -> String {
    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(format!("{}.metadata.json", bundle.display())).unwrap())
            .unwrap();
    meta["generationId"].as_str().unwrap().to_string()
}

/// Import `signed` (copied alone into a drop directory) while the drop directory's owner
/// swaps an unsigned kit in the moment the first read of it ends: the import must open it
/// once and activate `expected` (the signed bytes' generation).
fn import_while_swapped(tmp: &Path, root: &Path, signed: &Path, expected: &str) {
    let evil = evil_kit(tmp, 2);
    let bundle = drop_dir(tmp, "drop", signed);
    let staged_evil = bundle.with_file_name(".evil");
    fs::copy(&evil, &staged_evil).unwrap();
    let watch = OpenWatch::start(
        bundle.parent().unwrap(),
        Some((bundle.clone(), staged_evil)),
    );
    let (rc, doc) = import(root, &bundle);
    let opens = watch.finish();
    assert_eq!(
        fs::read(&bundle).unwrap(),
        fs::read(&evil).unwrap(),
        "the swap happened"
    );
    assert_eq!(rc, 0, "{doc}");
    assert_eq!(
        check_current_complete(root).as_deref(),
        Some(expected),
        "the signed bytes are what is active: {doc}"
    );
    assert_eq!(opens_of(&opens, &bundle), 1, "read once: {opens:?}");
}

#[test]
fn a_kit_swapped_after_its_first_read_is_never_what_is_imported() {
    let tmp = tempfile::tempdir().unwrap();
    let good = build_signed_kit(
        &small_tree(tmp.path(), 1),
        "2025.10.1",
        &tmp.path().join("good"),
    );
    let root = trusted_root(tmp.path(), "root");
    import_while_swapped(tmp.path(), &root, &good, &generation_of(&good));
}

#[test]
fn a_delta_swapped_after_its_first_read_is_never_what_is_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let k0 = build_signed_kit(
        &small_tree(tmp.path(), 0),
        "2025.10.0",
        &tmp.path().join("k0"),
    );
    let k1 = build_signed_kit(
        &small_tree(tmp.path(), 1),
        "2025.10.1",
        &tmp.path().join("k1"),
    );
    let deltas = tmp.path().join("deltas");
    fs::create_dir_all(&deltas).unwrap();
    let delta = deltas.join("stella-ouk-2025-10-01.delta.tgz");
    let o = Command::new(ouk())
        .arg("--root")
        .arg(tmp.path().join("maker"))
        .args(["delta", "make", "--from"])
        .arg(&k0)
        .arg("--to")
        .arg(&k1)
        .arg("--output")
        .arg(&delta)
        .arg("--signing-key")
        .arg(fixture("fixture.key"))
        .env("COSIGN_PASSWORD", "hello")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let root = trusted_root(tmp.path(), "root");
    assert_eq!(import(&root, &k0).0, 0);

    import_while_swapped(tmp.path(), &root, &delta, &generation_of(&k1));
}

#[test]
fn split_parts_and_mirror_add_read_their_input_once() {
    let tmp = tempfile::tempdir().unwrap();
    let good = build_signed_kit(
        &small_tree(tmp.path(), 1),
        "2025.10.1",
        &tmp.path().join("good"),
    );

    // Parts: each part opened once, the signed kit activated.
    let parts = tmp.path().join("parts");
    let o = run(
        &tmp.path().join("unused-root"),
        &[
            "kit",
            "split",
            good.to_str().unwrap(),
            "--max-size",
            "64KiB",
            "--output-dir",
            parts.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let index = parts.join(format!(
        "{}.parts.json",
        good.file_name().unwrap().to_string_lossy()
    ));
    let part_files: Vec<PathBuf> = fs::read_dir(&parts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".part0"))
        .filter(|p| !p.to_string_lossy().ends_with(".sha256"))
        .collect();
    assert!(
        part_files.len() > 1,
        "split into several parts: {part_files:?}"
    );
    let root = trusted_root(tmp.path(), "root");
    let watch = OpenWatch::start(&parts, None);
    let (rc, doc) = import(&root, &index);
    let opens = watch.finish();
    assert_eq!(rc, 0, "{doc}");
    for p in &part_files {
        assert_eq!(
            opens_of(&opens, p),
            1,
            "{} read once: {opens:?}",
            p.display()
        );
    }

    // mirror add: the bundle opened once, whatever it holds afterwards.
    let mirror = trusted_root(tmp.path(), "mirror");
    let bundle = drop_dir(tmp.path(), "drop", &good);
    let watch = OpenWatch::start(bundle.parent().unwrap(), None);
    let (rc, doc) = run_json(&mirror, &["mirror", "add", bundle.to_str().unwrap()]);
    let opens = watch.finish();
    assert_eq!(rc, 0, "{doc}");
    assert_eq!(
        opens_of(&opens, &bundle),
        1,
        "mirror add reads once: {opens:?}"
    );
}

/// The review's attack: a supplier ships a kit as a plug-in DLL; the normal signed build
/// signs the DLL; the DLL and its `.sig` are then offered as a kit.
#[test]
fn a_plugin_signature_never_authorizes_a_kit() {
    let tmp = tempfile::tempdir().unwrap();
    let evil = evil_kit(tmp.path(), 2);
    let evil_bytes = fs::read(&evil).unwrap();
    // The release, with the Go analyzer's DLL replaced by the attacker's kit (and the
    // plug-in manifest's digest updated, as the supplier controls both).
    let release = tmp.path().join("release");
    let o = Command::new("cp")
        .arg("-a")
        .arg(small_tree(tmp.path(), 1))
        .arg(&release)
        .output()
        .unwrap();
    assert!(o.status.success());
    let lang = release.join("plugins/scanner/analyzers/lang");
    let plugin = fs::read_dir(&lang)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("a plug-in");
    let id = plugin.file_name().unwrap().to_string_lossy().into_owned();
    let dll = plugin.join(format!("{id}.dll"));
    fs::write(&dll, &evil_bytes).unwrap();
    for ext in ["sha256", "sig"] {
        let _ = fs::remove_file(format!("{}.{ext}", dll.display()));
    }
    let manifest_path = plugin.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
    manifest["sha256"] = sha256_file(&dll).into();
    fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();

    let kit = build_signed_kit(&release, "2025.10.1", &tmp.path().join("out"));
    // Take the DLL and its signature out of the signed kit.
    let x = tmp.path().join("x");
    fs::create_dir_all(&x).unwrap();
    let o = Command::new("tar")
        .arg("-xzf")
        .arg(&kit)
        .arg("-C")
        .arg(&x)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let rel = format!("plugins/scanner/analyzers/lang/{id}/{id}.dll");
    let signed_dll = x.join(&rel);
    let dll_sig =
        fs::read(format!("{}.sig", signed_dll.display())).expect("the build signs the DLL");
    assert_eq!(fs::read(&signed_dll).unwrap(), evil_bytes);

    // The plug-in signature verifies under the plug-in key the kit publishes (cosign
    // verify-blob semantics, checked with openssl)...
    let pubkey = x.join("plugins/scanner/analyzers/lang/plugin-signing.pub");
    assert!(
        pubkey.is_file(),
        "the kit carries the plug-in verification key"
    );
    let der = tmp.path().join("sig.der");
    let sig_bytes = base64_decode(String::from_utf8_lossy(&dll_sig).trim());
    fs::write(&der, sig_bytes).unwrap();
    let o = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&pubkey)
        .arg("-signature")
        .arg(&der)
        .arg(&signed_dll)
        .output()
        .expect("openssl (installed by .ci/run)");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Verified OK"),
        "{o:?}"
    );

    // ... and offered as a kit, it is refused (exit 5), nothing activated.
    let drop = tmp.path().join("drop");
    fs::create_dir_all(&drop).unwrap();
    let offered = drop.join("stella-ops-offline-kit-2025.10.9-edge.tar.gz");
    fs::copy(&signed_dll, &offered).unwrap();
    fs::write(format!("{}.sig", offered.display()), &dll_sig).unwrap();
    let root = trusted_root(tmp.path(), "root");
    let (rc, doc) = import(&root, &offered);
    assert_eq!(rc, 5, "{doc}");
    assert_eq!(check_current_complete(&root), None);
}

fn base64_decode(s: &str) -> Vec<u8> {
    let o = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(s.as_bytes())?;
            c.wait_with_output()
        })
        .expect("base64");
    assert!(o.status.success());
    o.stdout
}

/// Item 9: the signed manifest sidecar of the active kit, placed beside another bundle
/// signed by a trusted key, must not report that bundle "already active".
#[test]
fn the_active_kits_manifest_beside_another_bundle_is_not_already_active() {
    let tmp = tempfile::tempdir().unwrap();
    let k1 = build_signed_kit(
        &small_tree(tmp.path(), 1),
        "2025.10.1",
        &tmp.path().join("k1"),
    );
    let k2 = build_signed_kit(
        &small_tree(tmp.path(), 2),
        "2025.10.2",
        &tmp.path().join("k2"),
    );
    let root = trusted_root(tmp.path(), "root");
    assert_eq!(import(&root, &k1).0, 0);
    // k2's bundle and signature, beside k1's manifest and its JWS.
    let drop = tmp.path().join("drop");
    let bundle = drop_dir(tmp.path(), "drop", &k2);
    fs::create_dir_all(drop.join("manifest")).unwrap();
    for f in ["offline-manifest.json", "offline-manifest.json.jws"] {
        fs::copy(
            k1.parent().unwrap().join("manifest").join(f),
            drop.join("manifest").join(f),
        )
        .unwrap();
    }
    let (rc, doc) = import(&root, &bundle);
    assert_ne!(rc, 0, "not reported as already active: {doc}");
    assert_ne!(doc["outcome"], "already-active", "{doc}");
    assert_eq!(
        check_current_complete(&root).as_deref(),
        Some(generation_of(&k1).as_str())
    );
}

/// Item 3: another local user finds no byte of a kit's secret under the root. Run as root
/// (as CI does), the check switches to `nobody` with `setpriv`; the modes are checked in
/// any case.
#[test]
fn no_other_user_can_read_the_store_staging_or_quarantine() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    // The temp dir itself must be traversable for the other user to try.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let k1 = build_signed_kit(
        &small_tree(tmp.path(), 1),
        "2025.10.1",
        &tmp.path().join("k1"),
    );
    let root = trusted_root(tmp.path(), "root");
    assert_eq!(import(&root, &k1).0, 0);
    // A refused input lands in quarantine.
    let junk = tmp.path().join("junk.tar.gz");
    fs::write(&junk, b"not a kit").unwrap();
    assert_ne!(import(&root, &junk).0, 0);
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();

    for sub in ["store", "staging", "quarantine"] {
        let mode = fs::metadata(root.join(sub)).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{sub} is private: {mode:o}");
    }
    for pack in fs::read_dir(root.join("store/packs")).unwrap() {
        let p = pack.unwrap().path();
        let mode = fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is private: {mode:o}", p.display());
    }

    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("OUK_SKIP_PRIVILEGED").is_some(),
            "this test switches to another user and must run as root (CI does); set OUK_SKIP_PRIVILEGED=1 to check modes only"
        );
        return;
    }
    let secret =
        fs::read(small_tree(tmp.path(), 1).join("secrets/policy-gateway/policy-gateway-dpop.pem"))
            .unwrap();
    // Everything `nobody` can read under the root, concatenated, decompressing nothing
    // (a readable pack would already fail the listing below).
    let script = format!(
        "find '{}' -type f -readable 2>/dev/null; true",
        root.display()
    );
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            &script,
        ])
        .output()
        .expect("setpriv (util-linux)");
    assert!(o.status.success(), "{o:?}");
    let readable = String::from_utf8_lossy(&o.stdout).into_owned();
    for line in readable.lines() {
        for private in ["/store/", "/staging/", "/quarantine/"] {
            assert!(
                !line.contains(private),
                "nobody can read {line}:\n{readable}"
            );
        }
        let bytes = fs::read(line).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "{line} holds the secret and nobody can read it"
        );
    }
}
