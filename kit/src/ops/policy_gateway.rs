//! The Policy Gateway configuration bundle of a kit.
//!
//! From the seed: the build copies `etc/policy-gateway.yaml` (or, when absent, the
//! `etc/policy-gateway.yaml.sample` template) to `config/policy-gateway/policy-gateway.yaml`
//! in the kit; the gateway's DPoP private key travels at
//! `secrets/policy-gateway/policy-gateway-dpop.pem` with mode 0600 (the layout rule of
//! [`crate::layout::secrets`] refuses a broader mode at build and import, naming the file
//! and the mode) and its location is recorded in the manifest notes; `docs/policy/gateway.md`
//! is bundled when present (and named in a note).
//!
//! [`plan`] is pure over the release tree's path list (it reads the two YAML files only to
//! compare them when both the source and the destination exist). Invariants: it never
//! writes anything; the copy is planned only when the destination is not already in the
//! tree (an identical one is kept as is, a different one is an error: two gateway configs
//! and no way to tell which one is meant).

use std::path::{Path, PathBuf};

use crate::manifest::Note;

/// Where the configuration lands in the kit.
pub const CONFIG_PATH: &str = "config/policy-gateway/policy-gateway.yaml";
/// Where the configuration is taken from in the release tree, in order of preference.
pub const CONFIG_SOURCES: [&str; 2] = ["etc/policy-gateway.yaml", "etc/policy-gateway.yaml.sample"];
/// The gateway's DPoP private key (mode 0600).
pub const DPOP_KEY_PATH: &str = "secrets/policy-gateway/policy-gateway-dpop.pem";
/// The operator's guide bundled with the kit.
pub const GUIDE_PATH: &str = "docs/policy/gateway.md";
/// The topic of the manifest notes written here.
pub const NOTE_TOPIC: &str = "policy-gateway";
/// Largest configuration file compared, bytes.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// What the build does for the Policy Gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayPlan {
    /// `(kit path, release file)` to add: the configuration copy, when one is needed.
    pub copy: Option<(String, PathBuf)>,
    /// Manifest notes.
    pub notes: Vec<Note>,
    /// Things worth telling the operator.
    pub warnings: Vec<String>,
}

/// Why the gateway bundle cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The tree has a configuration at the destination that differs from the source.
    #[error(
        "{CONFIG_PATH}: the release tree has it and also {source_path}, with different content; keep one of them"
    )]
    Conflict {
        /// The source found.
        source_path: String,
    },
    /// A configuration file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn read_capped(root: &Path, rel: &str) -> Result<Vec<u8>, GatewayError> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(root.join(rel))
        .and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut out))
        .map_err(|source| GatewayError::Io {
            path: rel.to_string(),
            source,
        })?;
    Ok(out)
}

/// Plan the gateway bundle for the release tree at `root` whose files are `paths`
/// (tree-relative).
pub fn plan<'a>(
    root: &Path,
    paths: impl IntoIterator<Item = &'a str>,
) -> Result<GatewayPlan, GatewayError> {
    let have: std::collections::BTreeSet<&str> = paths.into_iter().collect();
    let mut out = GatewayPlan::default();
    let source = CONFIG_SOURCES.iter().find(|s| have.contains(*s));
    let config_in_kit = match source {
        Some(src) if have.contains(CONFIG_PATH) => {
            if read_capped(root, src)? != read_capped(root, CONFIG_PATH)? {
                return Err(GatewayError::Conflict {
                    source_path: src.to_string(),
                });
            }
            Some(*src)
        }
        Some(src) => {
            out.copy = Some((CONFIG_PATH.to_string(), root.join(src)));
            Some(*src)
        }
        None if have.contains(CONFIG_PATH) => Some(CONFIG_PATH),
        None => None,
    };
    if let Some(src) = config_in_kit {
        out.notes.push(Note {
            topic: NOTE_TOPIC.into(),
            path: Some(CONFIG_PATH.into()),
            text: format!(
                "Policy Gateway configuration (from {src}); install as the gateway's policy-gateway.yaml"
            ),
        });
    }
    if have.contains(DPOP_KEY_PATH) {
        out.notes.push(Note {
            topic: NOTE_TOPIC.into(),
            path: Some(DPOP_KEY_PATH.into()),
            text: "Policy Gateway DPoP private key, mode 0600: only the kit importer may read it; the importer refuses a broader mode".into(),
        });
    } else if config_in_kit.is_some() {
        out.warnings.push(format!(
            "{DPOP_KEY_PATH}: no Policy Gateway DPoP key in the release tree; the gateway cannot sign DPoP proofs offline"
        ));
    }
    if have.contains(GUIDE_PATH) {
        out.notes.push(Note {
            topic: NOTE_TOPIC.into(),
            path: Some(GUIDE_PATH.into()),
            text: "Policy Gateway base URL and activation checks (curl smoke tests)".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (p, body) in files {
            let f = d.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, body).unwrap();
        }
        d
    }

    fn plan_of(files: &[(&str, &str)]) -> Result<GatewayPlan, GatewayError> {
        let d = tree(files);
        plan(d.path(), files.iter().map(|(p, _)| *p))
    }

    #[test]
    fn the_yaml_wins_over_the_sample_and_is_copied() {
        let p = plan_of(&[
            ("etc/policy-gateway.yaml", "a"),
            ("etc/policy-gateway.yaml.sample", "b"),
            (DPOP_KEY_PATH, "k"),
            (GUIDE_PATH, "g"),
        ])
        .unwrap();
        let (to, from) = p.copy.unwrap();
        assert_eq!(to, CONFIG_PATH);
        assert!(from.ends_with("etc/policy-gateway.yaml"));
        let paths: Vec<_> = p.notes.iter().filter_map(|n| n.path.as_deref()).collect();
        assert_eq!(paths, [CONFIG_PATH, DPOP_KEY_PATH, GUIDE_PATH]);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn the_sample_is_used_when_the_yaml_is_absent() {
        let p = plan_of(&[("etc/policy-gateway.yaml.sample", "b")]).unwrap();
        assert!(
            p.copy
                .unwrap()
                .1
                .ends_with("etc/policy-gateway.yaml.sample")
        );
        assert!(p.warnings[0].contains(DPOP_KEY_PATH));
    }

    #[test]
    fn an_existing_destination_is_kept_or_conflicts() {
        let same = plan_of(&[("etc/policy-gateway.yaml", "a"), (CONFIG_PATH, "a")]).unwrap();
        assert!(same.copy.is_none());
        let e = plan_of(&[("etc/policy-gateway.yaml", "a"), (CONFIG_PATH, "b")]).unwrap_err();
        assert!(e.to_string().contains("etc/policy-gateway.yaml"), "{e}");
        let none = plan_of(&[("feeds/x", "x")]).unwrap();
        assert_eq!(none, GatewayPlan::default());
    }
}
