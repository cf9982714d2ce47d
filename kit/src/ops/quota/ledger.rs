//! The ledger's files and its redb tables.
//!
//! ```text
//! ROOT/quota.lock    flock(2)ed for as long as a Ledger is open (consume and status)
//! ROOT/quota.salt    32 random bytes, mode 0600: the key of the subject hashes
//! ROOT/quota.redb    redb:
//!   quota_meta    &str -> i64                 format = 1, pruned_before = a UTC day
//!   quota_counts  (i64 day, [u8; 32] subject) -> (u8 class, u64 scans)
//! ```
//!
//! Invariants: a [`Ledger`] holds `ROOT/quota.lock` from open to drop, so one process at a
//! time reads or writes the counts (independently of `ROOT/lock`, which imports hold); the
//! salt is created once, under that lock, and never rewritten (losing it resets every
//! counter, as deleting the ledger does); a consume is one write transaction.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;

use super::error::{QuotaError, QuotaIo};
use super::subject::{ResolvedSubject, SubjectClass, subject_hash};
use super::{QuotaLimits, SubjectReport, day_label, resets_at, utc_day};

/// Days of counts kept: today and the 7 before (older days are pruned once a day).
pub const RETAINED_DAYS: i64 = 8;

/// The ledger format version in `quota_meta`.
const FORMAT_VERSION: i64 = 1;

const META: TableDefinition<&str, i64> = TableDefinition::new("quota_meta");
const COUNTS: TableDefinition<(i64, &[u8; 32]), (u8, u64)> = TableDefinition::new("quota_counts");
const FORMAT_KEY: &str = "format";
const PRUNED_KEY: &str = "pruned_before";

/// `ROOT/quota.redb`.
pub fn ledger_path(root: &Path) -> PathBuf {
    root.join("quota.redb")
}
/// `ROOT/quota.lock`.
pub fn lock_path(root: &Path) -> PathBuf {
    root.join("quota.lock")
}
/// `ROOT/quota.salt`.
pub fn salt_path(root: &Path) -> PathBuf {
    root.join("quota.salt")
}

/// Today's counts, for `ouk quota status` without a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerSummary {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// When its counters reset, RFC 3339.
    pub resets_at: String,
    /// Subjects with at least one scan today.
    pub subjects: u64,
    /// Of which anonymous.
    pub anonymous_subjects: u64,
    /// Of which tokens.
    pub token_subjects: u64,
    /// Scans counted today, all subjects.
    pub scans: u64,
    /// Subjects past their limit (being throttled).
    pub throttled_subjects: u64,
    /// Subjects at or past the reminder threshold.
    pub reminded_subjects: u64,
    /// The limits applied.
    pub limits: QuotaLimits,
}

/// The open, locked ledger of a root.
pub struct Ledger {
    db: Database,
    path: PathBuf,
    salt: [u8; 32],
    _lock: File,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn flock_exclusive(file: &File) -> std::io::Result<()> {
    loop {
        // SAFETY: flock on a valid descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Read the salt, creating it when absent (the caller holds the ledger lock).
fn load_or_create_salt(root: &Path) -> Result<[u8; 32], QuotaError> {
    let path = salt_path(root);
    match File::open(&path) {
        Ok(mut f) => {
            let mut bytes = Vec::with_capacity(33);
            Read::by_ref(&mut f)
                .take(33)
                .read_to_end(&mut bytes)
                .ctx(|| format!("read {}", path.display()))?;
            bytes.try_into().map_err(|b: Vec<u8>| QuotaError::Damaged {
                path: path.clone(),
                message: format!("the salt is {} bytes, not 32", b.len()),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut salt = [0u8; 32];
            getrandom::fill(&mut salt).map_err(|e| QuotaError::Io {
                context: "draw the quota salt from the OS".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
            ouk_store::fsutil::write_atomic_with_mode(&path, &salt, 0o600).map_err(|e| {
                QuotaError::Io {
                    context: e.context,
                    source: e.source,
                }
            })?;
            Ok(salt)
        }
        Err(e) => Err(QuotaError::Io {
            context: format!("open {}", path.display()),
            source: e,
        }),
    }
}

impl Ledger {
    /// Open (creating when absent) the ledger of `root`, waiting for another process that
    /// has it open.
    pub fn open(root: &Path) -> Result<Ledger, QuotaError> {
        fs::create_dir_all(root).ctx(|| format!("create root {}", root.display()))?;
        let lock_file = lock_path(root);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_file)
            .ctx(|| format!("open {}", lock_file.display()))?;
        flock_exclusive(&lock).ctx(|| format!("lock {}", lock_file.display()))?;
        let salt = load_or_create_salt(root)?;
        let path = ledger_path(root);
        let db = Database::create(&path).map_err(|e| QuotaError::Ledger {
            path: path.clone(),
            source: e.into(),
        })?;
        let ledger = Ledger {
            db,
            path,
            salt,
            _lock: lock,
        };
        ledger.check_format()?;
        Ok(ledger)
    }

    fn err(&self) -> impl Fn(redb::Error) -> QuotaError + '_ {
        |source| QuotaError::Ledger {
            path: self.path.clone(),
            source,
        }
    }

    /// Write the format version into a new ledger; refuse one of another version.
    fn check_format(&self) -> Result<(), QuotaError> {
        let e = self.err();
        let txn = self.db.begin_write().map_err(|x| e(x.into()))?;
        {
            let mut meta = txn.open_table(META).map_err(|x| e(x.into()))?;
            let found = meta
                .get(FORMAT_KEY)
                .map_err(|x| e(x.into()))?
                .map(|v| v.value());
            match found {
                Some(FORMAT_VERSION) => {}
                None => {
                    meta.insert(FORMAT_KEY, FORMAT_VERSION)
                        .map_err(|x| e(x.into()))?;
                }
                Some(other) => {
                    return Err(QuotaError::Damaged {
                        path: self.path.clone(),
                        message: format!("format version {other}, this ouk reads {FORMAT_VERSION}"),
                    });
                }
            }
            txn.open_table(COUNTS).map_err(|x| e(x.into()))?;
        }
        txn.commit().map_err(|x| e(x.into()))
    }

    /// Count one scan of `subject` at `now`; returns the verdict on it.
    pub fn consume(
        &self,
        subject: &ResolvedSubject,
        now: i64,
        limits: &QuotaLimits,
    ) -> Result<SubjectReport, QuotaError> {
        let e = self.err();
        let day = utc_day(now);
        let key = subject_hash(&self.salt, subject);
        let txn = self.db.begin_write().map_err(|x| e(x.into()))?;
        let scans = {
            let mut counts = txn.open_table(COUNTS).map_err(|x| e(x.into()))?;
            let before = counts
                .get((day, &key))
                .map_err(|x| e(x.into()))?
                .map_or(0, |v| v.value().1);
            let scans = before.saturating_add(1);
            counts
                .insert((day, &key), (subject.class.code(), scans))
                .map_err(|x| e(x.into()))?;

            let mut meta = txn.open_table(META).map_err(|x| e(x.into()))?;
            let keep_from = day.saturating_sub(RETAINED_DAYS - 1);
            let pruned_before = meta
                .get(PRUNED_KEY)
                .map_err(|x| e(x.into()))?
                .map_or(i64::MIN, |v| v.value());
            if pruned_before < keep_from {
                counts
                    .retain(|(d, _), _| d >= keep_from)
                    .map_err(|x| e(x.into()))?;
                meta.insert(PRUNED_KEY, keep_from)
                    .map_err(|x| e(x.into()))?;
            }
            scans
        };
        txn.commit().map_err(|x| e(x.into()))?;
        Ok(report(
            subject,
            &key,
            now,
            scans,
            limits.assess(subject.class, scans),
        ))
    }

    /// Scans of `subject` today, and the verdict the next scan would get.
    pub fn status(
        &self,
        subject: &ResolvedSubject,
        now: i64,
        limits: &QuotaLimits,
    ) -> Result<SubjectReport, QuotaError> {
        let e = self.err();
        let key = subject_hash(&self.salt, subject);
        let txn = self.db.begin_read().map_err(|x| e(x.into()))?;
        let counts = txn.open_table(COUNTS).map_err(|x| e(x.into()))?;
        let scans = counts
            .get((utc_day(now), &key))
            .map_err(|x| e(x.into()))?
            .map_or(0, |v| v.value().1);
        let mut next = limits.assess(subject.class, scans.saturating_add(1));
        next.message = format!("{scans} scan(s) today; next: {}", next.message);
        Ok(report(subject, &key, now, scans, next))
    }

    /// Today's counts over all subjects.
    pub fn summary(&self, now: i64, limits: &QuotaLimits) -> Result<LedgerSummary, QuotaError> {
        let e = self.err();
        let day = utc_day(now);
        let txn = self.db.begin_read().map_err(|x| e(x.into()))?;
        let counts = txn.open_table(COUNTS).map_err(|x| e(x.into()))?;
        let (lo, hi) = ([0u8; 32], [0xffu8; 32]);
        let mut s = LedgerSummary {
            day: day_label(day),
            resets_at: resets_at(now),
            subjects: 0,
            anonymous_subjects: 0,
            token_subjects: 0,
            scans: 0,
            throttled_subjects: 0,
            reminded_subjects: 0,
            limits: *limits,
        };
        for row in counts
            .range((day, &lo)..=(day, &hi))
            .map_err(|x| e(x.into()))?
        {
            let (_, value) = row.map_err(|x| e(x.into()))?;
            let (code, scans) = value.value();
            let class = SubjectClass::from_code(code).ok_or_else(|| QuotaError::Damaged {
                path: self.path.clone(),
                message: format!("unknown subject class {code}"),
            })?;
            s.subjects += 1;
            match class {
                SubjectClass::Anonymous => s.anonymous_subjects += 1,
                SubjectClass::Token => s.token_subjects += 1,
            }
            s.scans = s.scans.saturating_add(scans);
            if scans > limits.limit(class) {
                s.throttled_subjects += 1;
            }
            if scans >= limits.reminder_at {
                s.reminded_subjects += 1;
            }
        }
        Ok(s)
    }
}

fn report(
    subject: &ResolvedSubject,
    key: &[u8; 32],
    now: i64,
    scans: u64,
    assessment: super::Assessment,
) -> SubjectReport {
    SubjectReport {
        class: subject.class,
        subject_id: hex::encode(key),
        kid: subject.kid.clone(),
        fallback_reason: subject.fallback_reason.clone(),
        day: day_label(utc_day(now)),
        resets_at: resets_at(now),
        scans_today: scans,
        assessment,
    }
}
