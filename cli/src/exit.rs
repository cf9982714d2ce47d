//! Exit codes shared by every command, and how a library error becomes one.
//!
//! Every library error answers `class()` ([`ErrorClass`]); the class's number is
//! [`ErrorClass::exit_code`], the one class-to-number table (it lives beside the class
//! because `reason.json` and the import API report the same numbers). [`class_code`]
//! only decodes that number into this enum, so no mapping is kept here a second time.
//!
//! | code | meaning                                   |
//! |------|-------------------------------------------|
//! | 0    | ok                                        |
//! | 1    | input not found, or another failure       |
//! | 2    | digest mismatch / damaged data            |
//! | 5    | signature invalid or untrusted            |
//! | 8    | version not newer                         |
//! | 9    | `status`: nothing active, or kit stale    |
//! | 11   | validation failed                         |
//! | 12   | not enough disk space                     |
//! | 13   | locked by another importer                |
//! | 64   | usage error (EX_USAGE): bad options       |
//! | 130  | interrupted                               |

use ouk_store::ErrorClass;

/// A process exit code with its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// Input not found or a failure with no code of its own.
    Failure = 1,
    /// A digest did not match.
    DigestMismatch = 2,
    /// A signature did not verify or its key is not trusted.
    Signature = 5,
    /// The kit is not newer than the active one.
    NotNewer = 8,
    /// `status` only: nothing is active, or the active kit is older than the staleness
    /// window (a check for cron and Nagios-style monitors; its own code, so a monitor tells
    /// "not current" from "could not look").
    NotCurrent = 9,
    /// Validation failed.
    Validation = 11,
    /// Out of disk space.
    NoSpace = 12,
    /// Another process holds the root's lock.
    Locked = 13,
    /// The command line could not be parsed (sysexits' EX_USAGE; clap's own 2 is taken by
    /// "digest mismatch").
    Usage = 64,
    /// Interrupted by a signal.
    Interrupted = 130,
}

impl ExitCode {
    /// Every exit code.
    const ALL: [ExitCode; 10] = [
        ExitCode::Ok,
        ExitCode::Failure,
        ExitCode::DigestMismatch,
        ExitCode::Signature,
        ExitCode::NotNewer,
        ExitCode::NotCurrent,
        ExitCode::Validation,
        ExitCode::NoSpace,
        ExitCode::Locked,
        ExitCode::Interrupted,
    ];
}

/// The exit code of an error's class: [`ErrorClass::exit_code`] decoded into this enum
/// (a number with no variant, which a test rules out, would be a plain failure).
pub fn class_code(class: ErrorClass) -> ExitCode {
    let number = class.exit_code();
    ExitCode::ALL
        .into_iter()
        .find(|code| *code as u8 == number)
        .unwrap_or(ExitCode::Failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_its_own_exit_code_variant() {
        for class in ErrorClass::ALL {
            assert_eq!(class_code(class) as u8, class.exit_code(), "{class:?}");
        }
        assert_eq!(class_code(ErrorClass::NoSpace), ExitCode::NoSpace);
        assert_eq!(class_code(ErrorClass::NotFound), ExitCode::Failure);
    }
}
