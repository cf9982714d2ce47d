//! Containing redb's panics on a damaged index.
//!
//! redb trusts a cleanly closed `index.redb` and can panic (a slice index out of range, a
//! failed internal check) when a page was damaged outside it: bit rot, a stray write. Such
//! a panic reports damaged data, not a bug in ouk, so the command ends like any other
//! damage: exit 2 and a message naming the index and telling the operator to run
//! `ouk store fsck` (which ends with redb's own integrity check of every page). A
//! panic anywhere else is still a bug and ends as one (the default hook's message,
//! exit 101).
//!
//! Nothing is lost by unwinding out of a command: every step before the flip writes only
//! under `staging/` (cleaned by the next open), and an interrupted redb write transaction
//! never commits.

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::Mutex;

use crate::Failure;
use crate::exit::ExitCode;

/// Where the last redb panic happened, on any thread.
static REDB_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// True for a source file of the redb crate (`.../redb-4.6.0/src/...`).
fn is_redb_source(file: &str) -> bool {
    file.split(['/', '\\']).any(|part| {
        part.strip_prefix("redb-")
            .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// Install the panic hook: redb's panics are recorded quietly, others go to the default
/// hook.
pub fn install_hook() {
    let default = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if let Some(loc) = info.location()
            && is_redb_source(loc.file())
        {
            let what = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            let at = format!("{what} at {}:{}", loc.file(), loc.line());
            if let Ok(mut slot) = REDB_PANIC.lock() {
                *slot = Some(at);
            }
            return;
        }
        default(info)
    }));
}

/// Run a command; a redb panic during it (on this thread or a worker whose failure it
/// reported) becomes exit 2 naming `root`'s index.
pub fn run<T>(root: &Path, command: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    let outcome = panic::catch_unwind(AssertUnwindSafe(command));
    let redb = REDB_PANIC.lock().ok().and_then(|mut slot| slot.take());
    match (outcome, redb) {
        (Ok(Ok(v)), _) => Ok(v),
        (Ok(Err(_)) | Err(_), Some(at)) => Err(Failure::new(
            ExitCode::DigestMismatch,
            format!(
                "the store index {} is damaged: redb could not read it ({at}); run `ouk store fsck`, and re-import the active kit into a fresh root if it cannot repair the index",
                root.join("store/index.redb").display()
            ),
        )),
        (Ok(Err(f)), None) => Err(f),
        (Err(payload), None) => panic::resume_unwind(payload),
    }
}

#[cfg(test)]
mod tests {
    use super::{REDB_PANIC, is_redb_source, run};
    use crate::Failure;
    use crate::exit::ExitCode;

    #[test]
    fn a_recorded_redb_panic_turns_the_failure_into_index_damage() {
        // What the hook records when redb panics on a worker thread whose failure the
        // command then reports.
        *REDB_PANIC.lock().unwrap() = Some("index out of range at btree_base.rs:283".into());
        let r: Result<(), Failure> = run(std::path::Path::new("/r"), || {
            Err(Failure::new(ExitCode::Failure, "worker thread failed"))
        });
        let f = r.unwrap_err();
        assert_eq!(f.code, ExitCode::DigestMismatch);
        assert!(
            f.message.contains("/r/store/index.redb is damaged"),
            "{}",
            f.message
        );
        // The slot is consumed: the next command's failure is its own.
        let r: Result<(), Failure> = run(std::path::Path::new("/r"), || {
            Err(Failure::new(ExitCode::Validation, "bad input"))
        });
        assert_eq!(r.unwrap_err().code, ExitCode::Validation);
    }

    #[test]
    fn only_redb_sources_are_recognised() {
        assert!(is_redb_source(
            "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/redb-4.6.0/src/tree_store/btree_base.rs"
        ));
        assert!(is_redb_source("vendor\\redb-4.6.0\\src\\db.rs"));
        assert!(!is_redb_source("cli/src/main.rs"));
        assert!(!is_redb_source("/x/redbird/src/lib.rs"));
        assert!(!is_redb_source("/x/redb-extras/src/lib.rs"));
    }
}
