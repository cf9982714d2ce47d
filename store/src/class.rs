//! The class of a failure: what kind of refusal or breakage an error is, independent of
//! which crate raised it.
//!
//! Job: give every library error one answer to "what went wrong, in the terms an operator
//! acts on" ([`ErrorClass`]), so that the binary's exit code, the import API's HTTP status
//! and a quarantine entry's `reason.json` all follow from one value, and no library needs
//! a callback from the binary to learn how its errors are reported.
//!
//! Invariants:
//! - every library error type answers `class()`; an error that wraps another answers its
//!   inner error's class (a full disk deep inside the store is still [`ErrorClass::NoSpace`]);
//! - an `io::Error` is classed by [`ErrorClass::of_io`] alone (`ENOSPC`/`EDQUOT` no space,
//!   `EINTR` interrupted, anything else other), wherever it is wrapped;
//! - [`ErrorClass::exit_code`] is the one table from class to number. The numbers are part
//!   of ouk's documented formats (the exit status, `reason.json`'s `code`, the import API's
//!   `exitCode`), so the table lives with the class, below every crate that reports them;
//!   the binary decodes it into its `ExitCode` and never keeps a second copy.

use std::io;

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Bytes do not match their digest, or stored data is damaged or missing.
    Digest,
    /// A signature is missing, invalid, or from a key that is not trusted.
    Signature,
    /// The kit is not newer than the active one (or is older than the staleness window).
    NotNewer,
    /// The input or the configuration does not validate.
    Validation,
    /// Not enough disk space (or quota).
    NoSpace,
    /// Another process holds the lock.
    Locked,
    /// A signal interrupted the operation.
    Interrupted,
    /// An input that was named does not exist.
    NotFound,
    /// Any other failure.
    Other,
}

impl ErrorClass {
    /// Every class, for tables and tests that must cover them all.
    pub const ALL: [ErrorClass; 9] = [
        ErrorClass::Digest,
        ErrorClass::Signature,
        ErrorClass::NotNewer,
        ErrorClass::Validation,
        ErrorClass::NoSpace,
        ErrorClass::Locked,
        ErrorClass::Interrupted,
        ErrorClass::NotFound,
        ErrorClass::Other,
    ];

    /// The class of an I/O error: the OS error number alone decides it.
    pub fn of_io(e: &io::Error) -> ErrorClass {
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => ErrorClass::NoSpace,
            Some(libc::EINTR) => ErrorClass::Interrupted,
            _ => ErrorClass::Other,
        }
    }

    /// The process exit code (and `reason.json`'s `code`, the import API's `exitCode`) of
    /// this class. The one class-to-number table; see the module invariants.
    pub const fn exit_code(self) -> u8 {
        match self {
            ErrorClass::Digest => 2,
            ErrorClass::Signature => 5,
            ErrorClass::NotNewer => 8,
            ErrorClass::Validation => 11,
            ErrorClass::NoSpace => 12,
            ErrorClass::Locked => 13,
            ErrorClass::Interrupted => 130,
            ErrorClass::NotFound | ErrorClass::Other => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_classed_by_their_os_error() {
        let of = |n| ErrorClass::of_io(&io::Error::from_raw_os_error(n));
        assert_eq!(of(libc::ENOSPC), ErrorClass::NoSpace);
        assert_eq!(of(libc::EDQUOT), ErrorClass::NoSpace);
        assert_eq!(of(libc::EINTR), ErrorClass::Interrupted);
        assert_eq!(of(libc::EACCES), ErrorClass::Other);
        assert_eq!(
            ErrorClass::of_io(&io::Error::other("no OS error")),
            ErrorClass::Other
        );
    }

    #[test]
    fn exit_codes_are_the_documented_ones() {
        let codes: Vec<u8> = ErrorClass::ALL.iter().map(|c| c.exit_code()).collect();
        assert_eq!(codes, [2, 5, 8, 11, 12, 13, 130, 1, 1]);
    }
}
