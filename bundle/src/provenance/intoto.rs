//! `provenance/provenance.intoto.json`: a DSSE envelope (payload type
//! `application/vnd.in-toto+json`) over an in-toto Statement v1 whose predicate is SLSA
//! Provenance v1.
//!
//! ```text
//! { "_type": "https://in-toto.io/Statement/v1",
//!   "subject": [{"name": <path>, "digest": {"sha256": <hex>}}...],     sorted by name
//!   "predicateType": "https://slsa.dev/provenance/v1",
//!   "predicate": {
//!     "buildDefinition": {
//!       "buildType": "https://stella-ops.org/ouk/kit-build/v1",
//!       "externalParameters": {"version", "channel", "releaseDir"?, ...},
//!       "internalParameters"?: {...}, "resolvedDependencies"?: [ResourceDescriptor...] },
//!     "runDetails": {
//!       "builder": {"id", "version"?: {...}},
//!       "metadata"?: {"invocationId"?, "startedOn"?, "finishedOn"?} } } }
//! ```
//!
//! Determinism: the statement is serialized compactly with members in the order above
//! (maps sorted by key), times are the caller's (normalized to `YYYY-MM-DDThh:mm:ssZ`),
//! and DSSE signing is deterministic (RFC 6979), so the same inputs and key give the same
//! file bytes. Verification ([`verify_provenance`]) checks the DSSE signature against the
//! trusted keys first and only then parses the (verified) payload, requiring the payload
//! type, statement type and predicate type above.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ProvenanceError, normalize_time};
use crate::sign::{Envelope, SigningKey, VerifyingKey, dsse_sign, dsse_verify};

/// DSSE payload type of in-toto statements.
pub const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// SLSA Provenance v1.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// The build type of an `ouk kit build`.
pub const KIT_BUILD_TYPE: &str = "https://stella-ops.org/ouk/kit-build/v1";
/// The default builder id.
pub const DEFAULT_BUILDER_ID: &str = "https://stella-ops.org/ouk/builder/ouk-cli";

/// An in-toto Statement v1 with an SLSA Provenance v1 predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: SlsaProvenance,
}

/// A statement subject: a name and its digests (algorithm -> lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    /// A subject identified by its SHA-256.
    pub fn sha256(name: impl Into<String>, sha256: &[u8; 32]) -> Subject {
        Subject {
            name: name.into(),
            digest: BTreeMap::from([("sha256".to_owned(), hex::encode(sha256))]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlsaProvenance {
    pub build_definition: BuildDefinition,
    pub run_details: RunDetails,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    pub build_type: String,
    pub external_parameters: ExternalParameters,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_parameters: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

/// The build's user-controlled inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalParameters {
    pub version: String,
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_dir: Option<String>,
    /// Any further parameters, serialized after the named ones, sorted by key.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// An SLSA v1 ResourceDescriptor (the members `ouk` uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDescriptor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDetails {
    pub builder: Builder,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BuildMetadata>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Builder {
    pub id: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub version: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct BuildMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_on: Option<String>,
}

/// Everything the provenance says; times are RFC 3339 and passed in, never read from
/// the clock.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvenanceInput {
    /// The kit's files or its manifest (any order; sorted by name in the statement).
    pub subjects: Vec<Subject>,
    pub version: String,
    pub channel: String,
    /// Recorded as given; a path local to the build machine makes the provenance depend
    /// on it, so callers that want machine-independent output pass a relative path.
    pub release_dir: Option<String>,
    pub extra_parameters: BTreeMap<String, Value>,
    pub internal_parameters: Option<BTreeMap<String, Value>>,
    pub resolved_dependencies: Vec<ResourceDescriptor>,
    pub builder_id: String,
    /// E.g. `{"ouk": "0.1.0"}`.
    pub builder_version: BTreeMap<String, String>,
    pub invocation_id: Option<String>,
    pub started_on: Option<String>,
    pub finished_on: Option<String>,
}

impl ProvenanceInput {
    /// Minimal input: builder [`DEFAULT_BUILDER_ID`] at this crate's version, no times.
    pub fn new(
        version: impl Into<String>,
        channel: impl Into<String>,
        subjects: Vec<Subject>,
    ) -> ProvenanceInput {
        ProvenanceInput {
            subjects,
            version: version.into(),
            channel: channel.into(),
            release_dir: None,
            extra_parameters: BTreeMap::new(),
            internal_parameters: None,
            resolved_dependencies: Vec::new(),
            builder_id: DEFAULT_BUILDER_ID.to_owned(),
            builder_version: BTreeMap::from([(
                "ouk".to_owned(),
                env!("CARGO_PKG_VERSION").to_owned(),
            )]),
            invocation_id: None,
            started_on: None,
            finished_on: None,
        }
    }
}

/// Builds the statement: validates subjects (at least one; unique names; every digest
/// value lowercase hex; a `sha256` digest of 64 digits present), sorts them by name, and
/// normalizes the times.
pub fn statement(input: &ProvenanceInput) -> Result<Statement, ProvenanceError> {
    if input.subjects.is_empty() {
        return Err(ProvenanceError::NoSubjects);
    }
    let mut names = BTreeSet::new();
    for s in &input.subjects {
        if s.name.is_empty() || !names.insert(s.name.as_str()) {
            return Err(ProvenanceError::InvalidSubject {
                name: s.name.clone(),
                reason: "empty or duplicate name".to_owned(),
            });
        }
        let sha = s.digest.get("sha256").map(String::as_str).unwrap_or("");
        let lower_hex = |v: &str| {
            !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if sha.len() != 64 || !s.digest.values().all(|v| lower_hex(v)) {
            return Err(ProvenanceError::InvalidSubject {
                name: s.name.clone(),
                reason: "needs a sha256 digest of 64 lowercase hex digits".to_owned(),
            });
        }
    }
    if let Some(k) = input
        .extra_parameters
        .keys()
        .find(|k| matches!(k.as_str(), "version" | "channel" | "releaseDir"))
    {
        return Err(ProvenanceError::ReservedParameter(k.clone()));
    }
    let mut subject = input.subjects.clone();
    subject.sort_by(|a, b| a.name.cmp(&b.name));

    let time = |field: &'static str, v: &Option<String>| {
        v.as_deref().map(|t| normalize_time(field, t)).transpose()
    };
    let metadata = BuildMetadata {
        invocation_id: input.invocation_id.clone(),
        started_on: time("startedOn", &input.started_on)?,
        finished_on: time("finishedOn", &input.finished_on)?,
    };
    Ok(Statement {
        type_: STATEMENT_TYPE.to_owned(),
        subject,
        predicate_type: SLSA_PROVENANCE_V1.to_owned(),
        predicate: SlsaProvenance {
            build_definition: BuildDefinition {
                build_type: KIT_BUILD_TYPE.to_owned(),
                external_parameters: ExternalParameters {
                    version: input.version.clone(),
                    channel: input.channel.clone(),
                    release_dir: input.release_dir.clone(),
                    extra: input.extra_parameters.clone(),
                },
                internal_parameters: input.internal_parameters.clone(),
                resolved_dependencies: input.resolved_dependencies.clone(),
            },
            run_details: RunDetails {
                builder: Builder {
                    id: input.builder_id.clone(),
                    version: input.builder_version.clone(),
                },
                metadata: (metadata != BuildMetadata::default()).then_some(metadata),
            },
        },
    })
}

/// Signs a statement into a DSSE envelope (compact JSON payload).
pub fn sign_statement(
    key: &SigningKey,
    statement: &Statement,
) -> Result<Envelope, ProvenanceError> {
    let payload = serde_json::to_vec(statement).map_err(ProvenanceError::Json)?;
    dsse_sign(key, INTOTO_PAYLOAD_TYPE, &payload).map_err(ProvenanceError::Dsse)
}

/// The bytes of `provenance/provenance.intoto.json`: the signed envelope of the statement
/// of `input`, pretty JSON with a final newline.
pub fn provenance_json(
    key: &SigningKey,
    input: &ProvenanceInput,
) -> Result<Vec<u8>, ProvenanceError> {
    let env = sign_statement(key, &statement(input)?)?;
    let mut out = serde_json::to_vec_pretty(&env).map_err(ProvenanceError::Json)?;
    out.push(b'\n');
    Ok(out)
}

/// Verifies a provenance envelope (the file's bytes) against `keys` and returns its
/// statement. Refuses an envelope no trusted key signed, another payload type, another
/// statement type, or another predicate type.
pub fn verify_provenance(
    keys: &[VerifyingKey],
    envelope_json: &[u8],
) -> Result<Statement, ProvenanceError> {
    let env: Envelope = serde_json::from_slice(envelope_json).map_err(ProvenanceError::Json)?;
    let verified = dsse_verify(keys, &env).map_err(ProvenanceError::Dsse)?;
    if verified.payload_type != INTOTO_PAYLOAD_TYPE {
        return Err(ProvenanceError::Unexpected {
            what: "payloadType",
            found: verified.payload_type,
        });
    }
    let raw: Value = serde_json::from_slice(&verified.payload).map_err(ProvenanceError::Json)?;
    for (what, want) in [
        ("_type", STATEMENT_TYPE),
        ("predicateType", SLSA_PROVENANCE_V1),
    ] {
        let found = raw.get(what).and_then(Value::as_str).unwrap_or_default();
        if found != want {
            return Err(ProvenanceError::Unexpected {
                what,
                found: found.to_owned(),
            });
        }
    }
    serde_json::from_value(raw).map_err(ProvenanceError::Json)
}
