//! The class of every error this crate returns ([`ErrorClass`]), in one place.
//!
//! Job: answer `class()` for each error type of the bundle crate, so the binary's exit
//! code, the import API's HTTP status and a quarantine entry's `reason.json` follow from
//! one value (see `ouk_store::ErrorClass`).
//!
//! Invariants: an error that wraps another answers the inner error's class, and an
//! `io::Error` is classed by [`ErrorClass::of_io`]; the classes are the ones the binary's
//! exit codes have always reported (the CLI tests pin them).

use ouk_store::ErrorClass;

use crate::codec::{ReadError, WriteError};
use crate::layout::{LayoutError, Violation};
use crate::manifest::ManifestError;
use crate::provenance::ProvenanceError;
use crate::sign::{BlobError, DsseError, EncryptedKeyError, JwsError, KeyError};

impl ManifestError {
    /// A manifest that does not parse is invalid input.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Validation
    }
}

impl ReadError {
    /// A bundle that does not read is invalid; only writing the unpacked tree is local I/O.
    pub fn class(&self) -> ErrorClass {
        match self {
            ReadError::Output { source, .. } => ErrorClass::of_io(source),
            _ => ErrorClass::Validation,
        }
    }
}

impl WriteError {
    /// Bad entries are invalid input; only the output's own I/O is classed as I/O. A source
    /// file that fails to read is invalid input too: the tree changed or is unreadable.
    pub fn class(&self) -> ErrorClass {
        match self {
            WriteError::Output(source) => ErrorClass::of_io(source),
            _ => ErrorClass::Validation,
        }
    }
}

impl LayoutError {
    /// Always validation: the release tree breaks a rule or cannot be walked as one.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Validation
    }
}

impl Violation {
    /// Always validation.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Validation
    }
}

impl ProvenanceError {
    /// Always validation: the inputs to provenance are not what it can describe.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Validation
    }
}

impl KeyError {
    /// Always signature (a key that cannot be read or written).
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Signature
    }
}

impl JwsError {
    /// Always signature.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Signature
    }
}

impl BlobError {
    /// Always signature.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Signature
    }
}

impl EncryptedKeyError {
    /// Always signature.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Signature
    }
}

impl DsseError {
    /// Always signature.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Signature
    }
}
