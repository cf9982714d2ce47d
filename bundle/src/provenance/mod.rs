//! Provenance inside the kit: the SPDX 2.3 SBOM of the kit's files
//! (`provenance/sbom.spdx.json`, [`spdx`]) and the SLSA Provenance v1 in-toto statement in
//! a DSSE envelope (`provenance/provenance.intoto.json`, [`intoto`]).
//!
//! - [`digest`]: SHA-1 + SHA-256 + size of a file in one streaming pass ([`DualHasher`],
//!   [`HashingReader`], [`digest_reader`]); the kit build hashes each file once, while it
//!   writes it into the bundle, and feeds the SBOM, the manifest and the provenance from
//!   that pass.
//! - [`time`]: RFC 3339 parsing and normalization to `YYYY-MM-DDThh:mm:ssZ`.
//!
//! Invariants: every output is a pure function of its inputs (times are passed in, never
//! read from the clock; lists are sorted; ids derive from content), so two builds of the
//! same tree give the same bytes; input-derived data never panics; the envelope is
//! verified with the same trust keys as the rest of the kit ([`verify_provenance`]).

pub mod digest;
pub mod intoto;
pub mod spdx;
pub mod time;

#[cfg(test)]
mod tests;

pub use digest::{DualHasher, FileDigests, HashingReader, digest_reader};
pub use intoto::{
    BuildDefinition, BuildMetadata, Builder, ExternalParameters, INTOTO_PAYLOAD_TYPE,
    KIT_BUILD_TYPE, ProvenanceInput, ResourceDescriptor, RunDetails, SLSA_PROVENANCE_V1,
    STATEMENT_TYPE, SlsaProvenance, Statement, Subject, provenance_json, sign_statement, statement,
    verify_provenance,
};
pub use spdx::{
    SbomFile, SbomInfo, SpdxDocument, package_verification_code, spdx_document, spdx_json,
};
pub use time::normalize_rfc3339;

use crate::sign::DsseError;

/// Where the SBOM goes inside the kit.
pub const SBOM_PATH: &str = "provenance/sbom.spdx.json";
/// Where the provenance envelope goes inside the kit.
pub const PROVENANCE_PATH: &str = "provenance/provenance.intoto.json";
/// The SPDX package name of the kit.
pub const KIT_PACKAGE_NAME: &str = "stella-ops-offline-kit";

/// Why an SBOM or provenance could not be made or did not verify.
#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    #[error("{field}: {value:?} is not an RFC 3339 timestamp (e.g. 2025-10-23T00:00:00Z)")]
    InvalidTime { field: &'static str, value: String },
    #[error("{0}: not a normalized tree-relative path")]
    InvalidPath(String),
    #[error("{0}: listed twice")]
    DuplicatePath(String),
    #[error("provenance needs at least one subject")]
    NoSubjects,
    #[error("subject {name:?}: {reason}")]
    InvalidSubject { name: String, reason: String },
    #[error("external parameter {0:?} is set by ouk itself and cannot be passed as an extra")]
    ReservedParameter(String),
    #[error("JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("provenance signature: {0}")]
    Dsse(#[source] DsseError),
    #[error(
        "provenance has {what} {found:?}, expected the in-toto Statement v1 / SLSA Provenance v1 form"
    )]
    Unexpected { what: &'static str, found: String },
}

/// [`normalize_rfc3339`] or [`ProvenanceError::InvalidTime`].
pub(crate) fn normalize_time(field: &'static str, value: &str) -> Result<String, ProvenanceError> {
    normalize_rfc3339(value).ok_or_else(|| ProvenanceError::InvalidTime {
        field,
        value: value.to_owned(),
    })
}
