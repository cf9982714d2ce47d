//! The Authority scope sanity check (`ouk authority check`, and `ouk kit build` when the
//! release tree has `etc/authority.yaml` or `etc/authority.yaml.sample`).
//!
//! Offline installs rely on the bundled Authority sample, so the build refuses one that
//! breaks the Aggregation-Only guardrails the seed states:
//! 1. a client that requests `advisory:read`, `vex:read` or any `signals:*` scope must also
//!    request `aoc:verify`;
//! 2. a client that requests any `airgap:*` scope must have an explicit, non-empty
//!    `tenant`;
//! 3. the named sample clients keep their listed scopes ([`SAMPLE_CLIENTS`]): a missing
//!    client or a missing scope is an error (extra scopes are allowed, as long as the
//!    other rules hold).
//!
//! The document shape read is the sample's: `clients: [{clientId, tenant, allowedScopes}]`
//! (`scopes` is accepted as another name of `allowedScopes`, `id`/`name` of `clientId`);
//! other keys are ignored. Every violation names the client and the scope; a YAML error
//! names its line. Invariants: no panics on any input; violations come in document order
//! (rules 1 and 2 per client), then rule 3 in [`SAMPLE_CLIENTS`] order.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The Authority configuration paths a release tree may carry, in the order the build
/// looks for them (each one present is checked).
pub const AUTHORITY_PATHS: [&str; 2] = ["etc/authority.yaml", "etc/authority.yaml.sample"];
/// Largest Authority file accepted, bytes.
pub const MAX_AUTHORITY_BYTES: u64 = 4 << 20;
/// The scope every aggregation reader must also request.
pub const AOC_VERIFY: &str = "aoc:verify";

/// The seed's sample clients and the scopes each must keep.
pub const SAMPLE_CLIENTS: &[(&str, &[&str])] = &[
    ("aoc-verifier", &["aoc:verify", "advisory:read", "vex:read"]),
    (
        "signals-uploader",
        &["signals:write", "signals:read", "aoc:verify"],
    ),
    (
        "airgap-operator",
        &["airgap:status:read", "airgap:import", "airgap:seal"],
    ),
    ("task-runner", &["packs.run", "packs.read"]),
    ("pack-approver", &["packs.approve", "packs.read"]),
    ("packs-registry", &["packs.write", "packs.read"]),
];

/// One client of the document.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClientDoc {
    #[serde(alias = "id", alias = "name")]
    client_id: Option<String>,
    tenant: Option<String>,
    #[serde(default, alias = "scopes")]
    allowed_scopes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct AuthorityDoc {
    #[serde(default)]
    clients: Vec<ClientDoc>,
}

/// A broken guardrail. Every variant names the client and the scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum Guardrail {
    /// Rule 1.
    #[error("client {client:?} requests {scope:?} without {AOC_VERIFY:?}")]
    MissingAocVerify { client: String, scope: String },
    /// Rule 2.
    #[error("client {client:?} requests {scope:?} without an explicit tenant")]
    AirgapWithoutTenant { client: String, scope: String },
    /// Rule 3: a sample client is missing.
    #[error("sample client {client:?} is missing (it must request {scope:?})")]
    SampleClientMissing { client: String, scope: String },
    /// Rule 3: a sample client lost one of its scopes.
    #[error("sample client {client:?} no longer requests {scope:?}")]
    SampleScopeMissing { client: String, scope: String },
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorityReport {
    /// The file checked (as given).
    pub path: String,
    /// Clients in it.
    pub clients: usize,
    /// Broken guardrails (empty: the file passes).
    pub violations: Vec<Guardrail>,
}

impl AuthorityReport {
    /// `Ok(self)` when nothing is broken, else [`AuthorityError::Guardrails`].
    pub fn into_result(self) -> Result<AuthorityReport, AuthorityError> {
        if self.violations.is_empty() {
            Ok(self)
        } else {
            Err(AuthorityError::Guardrails {
                path: self.path,
                violations: self.violations,
            })
        }
    }
}

/// Why a check failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is too large.
    #[error("{path}: {size} bytes is past the {MAX_AUTHORITY_BYTES}-byte limit")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
    },
    /// The YAML does not parse (or has the wrong shape).
    #[error("{path}:{}: invalid Authority YAML: {message}", line.map_or("?".to_string(), |l| l.to_string()))]
    Yaml {
        /// The file.
        path: String,
        /// 1-based line, when the parser knows it.
        line: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// Guardrails are broken.
    #[error("{}", GuardrailList { path, violations })]
    Guardrails {
        /// The file.
        path: String,
        /// What is broken.
        violations: Vec<Guardrail>,
    },
}

struct GuardrailList<'a> {
    path: &'a str,
    violations: &'a [Guardrail],
}

impl fmt::Display for GuardrailList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: breaks {} Authority scope guardrail(s):",
            self.path,
            self.violations.len()
        )?;
        for v in self.violations {
            write!(f, "\n  {v}")?;
        }
        Ok(())
    }
}

fn needs_aoc_verify(scope: &str) -> bool {
    scope == "advisory:read" || scope == "vex:read" || scope.starts_with("signals:")
}

/// Check the Authority YAML `text`; `path` names it in the report and in errors. A YAML
/// error is an error; broken guardrails are in the report (see
/// [`AuthorityReport::into_result`]).
pub fn check_text(path: &str, text: &str) -> Result<AuthorityReport, AuthorityError> {
    let doc: AuthorityDoc = serde_norway::from_str(text).map_err(|e| AuthorityError::Yaml {
        path: path.to_string(),
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    })?;
    let mut violations = Vec::new();
    for (i, c) in doc.clients.iter().enumerate() {
        let name = c
            .client_id
            .clone()
            .unwrap_or_else(|| format!("clients[{i}]"));
        let has_aoc = c.allowed_scopes.iter().any(|s| s == AOC_VERIFY);
        let has_tenant = c.tenant.as_deref().is_some_and(|t| !t.trim().is_empty());
        for s in &c.allowed_scopes {
            if needs_aoc_verify(s) && !has_aoc {
                violations.push(Guardrail::MissingAocVerify {
                    client: name.clone(),
                    scope: s.clone(),
                });
            }
            if s.starts_with("airgap:") && !has_tenant {
                violations.push(Guardrail::AirgapWithoutTenant {
                    client: name.clone(),
                    scope: s.clone(),
                });
            }
        }
    }
    for (client, scopes) in SAMPLE_CLIENTS {
        match doc
            .clients
            .iter()
            .find(|c| c.client_id.as_deref() == Some(client))
        {
            None => violations.push(Guardrail::SampleClientMissing {
                client: client.to_string(),
                scope: scopes.join(", "),
            }),
            Some(c) => {
                for s in *scopes {
                    if !c.allowed_scopes.iter().any(|have| have == s) {
                        violations.push(Guardrail::SampleScopeMissing {
                            client: client.to_string(),
                            scope: s.to_string(),
                        });
                    }
                }
            }
        }
    }
    Ok(AuthorityReport {
        path: path.to_string(),
        clients: doc.clients.len(),
        violations,
    })
}

/// Read and check the Authority file at `file` (`path` names it in messages).
pub fn check_file(path: &str, file: &Path) -> Result<AuthorityReport, AuthorityError> {
    let io = |source| AuthorityError::Io {
        path: path.to_string(),
        source,
    };
    let size = std::fs::metadata(file).map_err(io)?.len();
    if size > MAX_AUTHORITY_BYTES {
        return Err(AuthorityError::TooLarge {
            path: path.to_string(),
            size,
        });
    }
    let bytes = std::fs::read(file).map_err(io)?;
    let text = String::from_utf8(bytes).map_err(|e| AuthorityError::Yaml {
        path: path.to_string(),
        line: None,
        message: format!("not UTF-8 ({e})"),
    })?;
    check_text(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
schemaVersion: 1
tenants:
  - name: default
clients:
  - clientId: aoc-verifier
    tenant: default
    allowedScopes: [\"aoc:verify\", \"advisory:read\", \"vex:read\"]
  - clientId: signals-uploader
    tenant: default
    allowedScopes: [\"signals:write\", \"signals:read\", \"aoc:verify\"]
  - clientId: airgap-operator
    tenant: default
    allowedScopes: [\"airgap:status:read\", \"airgap:import\", \"airgap:seal\"]
  - clientId: task-runner
    allowedScopes: [\"packs.run\", \"packs.read\"]
  - clientId: pack-approver
    allowedScopes: [\"packs.approve\", \"packs.read\"]
  - clientId: packs-registry
    allowedScopes: [\"packs.write\", \"packs.read\"]
";

    fn violations(text: &str) -> Vec<Guardrail> {
        check_text("etc/authority.yaml.sample", text)
            .unwrap()
            .violations
    }

    #[test]
    fn the_sample_passes() {
        let r = check_text("a.yaml", SAMPLE).unwrap();
        assert_eq!(r.clients, 6);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
    }

    #[test]
    fn readers_without_aoc_verify_are_refused() {
        let extra = format!(
            "{SAMPLE}  - clientId: reader\n    tenant: default\n    allowedScopes: [\"advisory:read\", \"vex:read\", \"signals:read\", \"packs.read\"]\n"
        );
        let v = violations(&extra);
        assert_eq!(
            v,
            ["advisory:read", "vex:read", "signals:read"]
                .iter()
                .map(|s| Guardrail::MissingAocVerify {
                    client: "reader".into(),
                    scope: s.to_string()
                })
                .collect::<Vec<_>>()
        );
        assert!(v[0].to_string().contains("\"reader\""));
        assert!(v[0].to_string().contains("\"advisory:read\""));
        // The sample's own client loses aoc:verify: two readers flagged, and the sample rule.
        let lost = SAMPLE.replace(
            "[\"aoc:verify\", \"advisory:read\", \"vex:read\"]",
            "[\"advisory:read\", \"vex:read\"]",
        );
        let v = violations(&lost);
        assert!(v.contains(&Guardrail::MissingAocVerify {
            client: "aoc-verifier".into(),
            scope: "vex:read".into()
        }));
        assert!(v.contains(&Guardrail::SampleScopeMissing {
            client: "aoc-verifier".into(),
            scope: "aoc:verify".into()
        }));
    }

    #[test]
    fn airgap_scopes_need_a_tenant() {
        let no_tenant = SAMPLE.replacen(
            "  - clientId: airgap-operator\n    tenant: default\n",
            "  - clientId: airgap-operator\n",
            1,
        );
        let v = violations(&no_tenant);
        assert_eq!(v.len(), 3, "{v:?}");
        assert_eq!(
            v[0],
            Guardrail::AirgapWithoutTenant {
                client: "airgap-operator".into(),
                scope: "airgap:status:read".into()
            }
        );
        let blank = SAMPLE.replacen(
            "  - clientId: airgap-operator\n    tenant: default\n",
            "  - clientId: airgap-operator\n    tenant: \"  \"\n",
            1,
        );
        assert_eq!(violations(&blank).len(), 3);
    }

    #[test]
    fn sample_clients_keep_their_scopes() {
        let gone = SAMPLE.replace("packs-registry", "registry-renamed");
        let v = violations(&gone);
        assert_eq!(
            v,
            vec![Guardrail::SampleClientMissing {
                client: "packs-registry".into(),
                scope: "packs.write, packs.read".into()
            }]
        );
        let fewer = SAMPLE.replace("[\"packs.approve\", \"packs.read\"]", "[\"packs.read\"]");
        assert_eq!(
            violations(&fewer),
            vec![Guardrail::SampleScopeMissing {
                client: "pack-approver".into(),
                scope: "packs.approve".into()
            }]
        );
    }

    #[test]
    fn yaml_errors_name_the_line() {
        let broken = SAMPLE.replacen(
            "    tenant: default\n    allowedScopes: [\"signals:write\"",
            "    tenant: default\n   allowedScopes: [\"signals:write\"",
            1,
        );
        let e = check_text("etc/authority.yaml.sample", &broken).unwrap_err();
        match &e {
            AuthorityError::Yaml { line, .. } => assert_eq!(*line, Some(10), "{e}"),
            other => panic!("{other}"),
        }
        assert!(
            e.to_string().starts_with("etc/authority.yaml.sample:10: "),
            "{e}"
        );
        // The wrong shape (a scope list that is a string) also names its line.
        let shape = SAMPLE.replacen(
            "allowedScopes: [\"packs.run\", \"packs.read\"]",
            "allowedScopes: {a: b}",
            1,
        );
        match check_text("x", &shape).unwrap_err() {
            AuthorityError::Yaml { line, .. } => assert_eq!(line, Some(15)),
            other => panic!("{other}"),
        }
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(text in ".{0,300}") {
            let _ = check_text("x", &text);
        }
    }
}
