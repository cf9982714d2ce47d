//! `ouk trust {init|add|remove|revoke|renew|status|chain|update|list}` and `ouk kit sign`:
//! the root's signed trust document (ouk-kit's `trust_root`, ouk-trust's rules) and
//! threshold signatures over kits.
//!
//! On the connected side, `init` makes version 1 and every change makes the next version,
//! signed by the `--signing-key`s given (a threshold of the current trust keys and of the
//! new ones must be among them, or nothing is written, exit 5); `chain` writes the versions
//! a kit carries (`kit build --trust-chain`). On a host, `init --from` installs a first
//! document and `update` applies a chain file; kits apply theirs on import. `add`/`remove`
//! without a signing key keep their old meaning on a root whose trust is still the flat key
//! list (or the local document migrated from it).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use ouk_kit::sign::SigningKey;
use ouk_kit::trust_root::{self, InitSpec, sigset};
use ouk_root::trust::document as trust_doc;
use ouk_trust::Role;

use crate::exit::ExitCode;
use crate::shared::{kit_failure, load_public_keys};
use crate::{Context, Failure};

/// Signing keys of a trust change, a build or a countersignature.
#[derive(Debug, Clone, Args, Default)]
pub struct SigningArgs {
    /// Private key (cosign encrypted format or PKCS#8 PEM) to sign with; repeatable: a
    /// threshold of keys signs together. `--cosign-key` is an alias.
    #[arg(long = "signing-key", alias = "cosign-key", value_name = "KEY")]
    pub signing_key: Vec<PathBuf>,
    /// Password of the encrypted keys (default: COSIGN_PASSWORD). `--cosign-password` is an
    /// alias.
    #[arg(
        long = "signing-password",
        alias = "cosign-password",
        value_name = "PASSWORD"
    )]
    pub signing_password: Option<String>,
}

impl SigningArgs {
    /// Load every key (the password from the flag, else COSIGN_PASSWORD, else asked on the
    /// terminal; a public key given here is a usage error naming the file to give).
    pub fn load(&self) -> Result<Vec<SigningKey>, Failure> {
        let given = self.signing_password.as_ref().map(|p| p.as_bytes());
        self.signing_key
            .iter()
            .map(|path| crate::shared::load_signing_key_with(path, given))
            .collect()
    }
}

fn roles(names: &[String]) -> Result<Vec<Role>, Failure> {
    names
        .iter()
        .map(|n| {
            Role::from_name(n).ok_or_else(|| {
                Failure::new(
                    ExitCode::Failure,
                    format!("unknown role {n:?} (kits, plugins, packages, trust)"),
                )
            })
        })
        .collect()
}

fn parse_time(text: &str) -> Result<i64, Failure> {
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|e| Failure::new(ExitCode::Failure, format!("{text:?}: {e}")))
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Make the first signed trust document from the signing keys (and --key public keys),
    /// or install one made elsewhere (--from).
    Init {
        #[command(flatten)]
        signing: SigningArgs,
        /// Another public key (PKIX PEM) of the kits and trust roles; repeatable.
        #[arg(long)]
        key: Vec<PathBuf>,
        /// Signatures a trust change needs.
        #[arg(long, default_value_t = 1)]
        threshold: u32,
        /// Signatures a kit or delta needs.
        #[arg(long, default_value_t = 1)]
        kits_threshold: u32,
        /// Days until it expires.
        #[arg(long, default_value_t = trust_root::DEFAULT_EXPIRES_DAYS)]
        expires_days: u64,
        /// Issue time (RFC 3339; default now).
        #[arg(long)]
        issued_at: Option<String>,
        /// Expiry (RFC 3339; default issued + --expires-days).
        #[arg(long)]
        expires_at: Option<String>,
        /// Install this signed document (trust.json from the connected side) instead.
        #[arg(long, conflicts_with_all = ["signing_key", "key"])]
        from: Option<PathBuf>,
    },
    /// Trust a public key: with --signing-key, the next signed version adds it to --role;
    /// without, on a flat key list, the key is added to the list.
    Add {
        /// The public key (PKIX PEM).
        key: PathBuf,
        #[command(flatten)]
        signing: SigningArgs,
        /// Roles to add it to (default kits); repeatable.
        #[arg(long)]
        role: Vec<String>,
        /// Set the threshold of these roles.
        #[arg(long)]
        threshold: Option<u32>,
        /// Days the new version stays valid (default: as long as the current one did).
        #[arg(long)]
        expires_days: Option<u64>,
    },
    /// List trusted keys (of the flat list, or the kits role of the trust document).
    List,
    /// Stop trusting a key (every role, or --role); --revoke also revokes it for good.
    Remove {
        /// Key id (RFC 7638 thumbprint) from `ouk trust status` or `list`. A base64url
        /// kid may start with `-`: it is still the kid, not an option.
        #[arg(allow_hyphen_values = true)]
        kid: String,
        #[command(flatten)]
        signing: SigningArgs,
        /// Only from this role.
        #[arg(long)]
        role: Option<String>,
        /// Revoke it: its signatures never count again, on anything.
        #[arg(long)]
        revoke: bool,
        /// Set the threshold of the role(s) it leaves.
        #[arg(long)]
        threshold: Option<u32>,
        /// Days the new version stays valid.
        #[arg(long)]
        expires_days: Option<u64>,
    },
    /// Revoke keys (by kid) and kits (by bundle SHA-256) in the next signed version.
    Revoke {
        #[command(flatten)]
        signing: SigningArgs,
        /// A key id to revoke; repeatable.
        #[arg(long = "key", value_name = "KID")]
        keys: Vec<String>,
        /// A bundle SHA-256 to revoke; repeatable.
        #[arg(long = "kit", value_name = "SHA256")]
        kits: Vec<String>,
        /// Days the new version stays valid.
        #[arg(long)]
        expires_days: Option<u64>,
    },
    /// Sign the next version with nothing changed but its validity (before it expires).
    Renew {
        #[command(flatten)]
        signing: SigningArgs,
        /// Days the new version stays valid.
        #[arg(long, default_value_t = trust_root::DEFAULT_EXPIRES_DAYS)]
        expires_days: u64,
    },
    /// Version, expiry, keys, thresholds, revocations, and this host's clock.
    Status,
    /// Write the signed versions after --after (a chain for `kit build --trust-chain`).
    Chain {
        /// Versions the hosts already have (default: 0, every version).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Where to write it.
        #[arg(long)]
        output: PathBuf,
    },
    /// Apply a chain file to this root (what an import does with the chain a kit carries).
    Update {
        /// The chain (a JSON array of signed trust documents).
        #[arg(long)]
        chain: PathBuf,
    },
}

/// `ouk kit sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The bundle to countersign.
    pub bundle: PathBuf,
    #[command(flatten)]
    pub signing: SigningArgs,
}

fn now() -> i64 {
    ouk_root::now_unix()
}

pub fn run_trust(ctx: &Context, cmd: TrustCommand) -> Result<ExitCode, Failure> {
    match cmd {
        TrustCommand::List => {
            // Read-only, without the lock (see list_trusted).
            ctx.require_root()?;
            list_trusted(ctx, &ctx.root)?;
            return Ok(ExitCode::Ok);
        }
        TrustCommand::Status => {
            ctx.require_root()?;
            let s =
                trust_doc::status(&ctx.root, now(), false).map_err(|e| kit_failure(e.into()))?;
            ctx.out.emit(&s, || status_text(&s));
            return Ok(if s.expired {
                ExitCode::Signature
            } else {
                ExitCode::Ok
            });
        }
        TrustCommand::Chain { after, output } => {
            ctx.require_root()?;
            let bytes =
                trust_doc::export_chain(&ctx.root, after).map_err(|e| kit_failure(e.into()))?;
            ouk_kit::build::write_atomic(&output, &bytes).map_err(kit_failure)?;
            ctx.out.note(&format!("wrote {}", output.display()));
            return Ok(ExitCode::Ok);
        }
        _ => {}
    }
    // Hold the root lock to change trust: an import reads it while it runs.
    let root = ctx.open_root()?;
    let Some(changed) = change(ctx, root.dir(), cmd)? else {
        return Ok(ExitCode::Ok);
    };
    drop(root);
    let s = trust_doc::status(&ctx.root, now(), false).map_err(|e| kit_failure(e.into()))?;
    ctx.out.emit(&s, || {
        format!(
            "trust document version {} ({})\n{}",
            changed.document.version,
            trust_root::root_file(&ctx.root).display(),
            status_text(&s)
        )
    });
    Ok(ExitCode::Ok)
}

/// A change of the root's trust (the lock held); `None` when the flat key list was edited
/// (and reported) instead.
fn change(
    ctx: &Context,
    dir: &Path,
    cmd: TrustCommand,
) -> Result<Option<trust_root::ActiveTrust>, Failure> {
    let changed = match cmd {
        TrustCommand::Init {
            signing,
            key,
            threshold,
            kits_threshold,
            expires_days,
            issued_at,
            expires_at,
            from,
        } => {
            if let Some(path) = from {
                let bytes = std::fs::read(&path).map_err(|e| {
                    Failure::new(ExitCode::Failure, format!("{}: {e}", path.display()))
                })?;
                trust_doc::install(dir, &bytes).map_err(|e| kit_failure(e.into()))?
            } else {
                let signers = signing.load()?;
                if signers.is_empty() {
                    return Err(Failure::new(
                        ExitCode::Failure,
                        "trust init needs --signing-key (or --from FILE)",
                    ));
                }
                let issued = issued_at
                    .as_deref()
                    .map(parse_time)
                    .transpose()?
                    .unwrap_or(now());
                let days = match expires_at.as_deref().map(parse_time).transpose()? {
                    Some(e) => ((e - issued).max(1) as u64).div_ceil(86_400),
                    None => expires_days,
                };
                let spec = InitSpec {
                    keys: load_public_keys(&key)?,
                    trust_threshold: threshold,
                    kits_threshold,
                    expires_days: days,
                };
                trust_root::init(dir, &signers, &spec, issued).map_err(kit_failure)?
            }
        }
        TrustCommand::Add {
            key,
            signing,
            role,
            threshold,
            expires_days,
        } => {
            if signing.signing_key.is_empty() && !signed(dir)? {
                // The flat list's meaning, unchanged.
                let t = ouk_root::trust::keys::add(dir, &key).map_err(|e| kit_failure(e.into()))?;
                ctx.out
                    .emit(&t, || format!("trusted {} ({})", t.kid, t.path.display()));
                return Ok(None);
            }
            let pubkey = load_public_keys(std::slice::from_ref(&key))?.remove(0);
            let pubkey = ouk_trust::PublicKey::from_p256(*pubkey.as_p256());
            let roles = if role.is_empty() {
                vec![Role::Kits]
            } else {
                roles(&role)?
            };
            trust_root::next_version(dir, &signing.load()?, expires_days, now(), |doc| {
                for r in &roles {
                    doc.add_key(*r, &pubkey);
                    if let (Some(t), Some(spec)) = (threshold, doc.roles.get_mut(r.name())) {
                        spec.threshold = t;
                    }
                }
            })
            .map_err(kit_failure)?
        }
        TrustCommand::Remove {
            kid,
            signing,
            role,
            revoke,
            threshold,
            expires_days,
        } => {
            if signing.signing_key.is_empty() && !signed(dir)? && !revoke {
                let t =
                    ouk_root::trust::keys::remove(dir, &kid).map_err(|e| kit_failure(e.into()))?;
                ctx.out.emit(&t, || format!("removed {}", t.kid));
                return Ok(None);
            }
            let role = role.map(|r| roles(&[r])).transpose()?.map(|r| r[0]);
            trust_root::next_version(dir, &signing.load()?, expires_days, now(), |doc| {
                doc.remove_key(role, &kid, revoke);
                if let Some(t) = threshold {
                    for (name, spec) in doc.roles.iter_mut() {
                        if role.is_none_or(|r| r.name() == name) {
                            spec.threshold = t;
                        }
                    }
                }
            })
            .map_err(kit_failure)?
        }
        TrustCommand::Revoke {
            signing,
            keys,
            kits,
            expires_days,
        } => trust_root::next_version(dir, &signing.load()?, expires_days, now(), |doc| {
            for k in &keys {
                doc.remove_key(None, k, true);
            }
            for k in &kits {
                doc.revoke_kit(k);
            }
        })
        .map_err(kit_failure)?,
        TrustCommand::Renew {
            signing,
            expires_days,
        } => trust_root::next_version(dir, &signing.load()?, Some(expires_days), now(), |_| {})
            .map_err(kit_failure)?,
        TrustCommand::Update { chain } => {
            let applied = trust_root::update_from_chain(dir, &chain, now()).map_err(kit_failure)?;
            ctx.out
                .note(&format!("applied trust version(s) {:?}", applied));
            trust_doc::load(dir)
                .map_err(|e| kit_failure(e.into()))?
                .ok_or_else(|| Failure::new(ExitCode::Failure, "no trust document"))?
        }
        TrustCommand::List | TrustCommand::Status | TrustCommand::Chain { .. } => {
            unreachable!("answered above")
        }
    };
    Ok(Some(changed))
}

/// Whether the root's trust is a signed document.
fn signed(dir: &Path) -> Result<bool, Failure> {
    Ok(trust_doc::load(dir)
        .map_err(|e| kit_failure(e.into()))?
        .is_some_and(|t| !t.is_local()))
}

fn status_text(s: &trust_root::TrustStatus) -> String {
    let Some(version) = s.version else {
        return "no trusted keys (ouk trust init --signing-key KEY, or ouk trust add PUB)".into();
    };
    let mut out = format!(
        "trust: {} document, version {version}\n  issued  {}\n  expires {} ({})",
        s.kind,
        s.issued.as_deref().unwrap_or("?"),
        s.expires.as_deref().unwrap_or("?"),
        if s.expired {
            "EXPIRED: imports fail until a kit brings a newer trust document".to_string()
        } else {
            format!("{} days left", s.days_left.unwrap_or(0))
        }
    );
    match s.clock.as_str() {
        "behind" => out.push_str(&format!(
            "\n  clock   {} is BEHIND: before this document was issued; correct this host's clock",
            s.now
        )),
        "ahead" => out.push_str(&format!(
            "\n  clock   {} is past the expiry: either the document expired or this host's clock is AHEAD",
            s.now
        )),
        _ => out.push_str(&format!("\n  clock   {} ok", s.now)),
    }
    for (name, spec) in &s.roles {
        out.push_str(&format!(
            "\n  role {name}: {} of {}",
            spec.threshold,
            spec.keyids.len()
        ));
        for k in &spec.keyids {
            out.push_str(&format!("\n    {k}"));
        }
    }
    if !s.revoked.keys.is_empty() || !s.revoked.kits.is_empty() {
        out.push_str("\n  revoked:");
        for k in &s.revoked.keys {
            out.push_str(&format!("\n    key {k}"));
        }
        for k in &s.revoked.kits {
            out.push_str(&format!("\n    kit {k}"));
        }
    }
    if !s.signed_by.is_empty() {
        out.push_str(&format!("\n  signed by {}", s.signed_by.join(", ")));
    }
    out
}

/// Print the trust store of the root at `dir` (`trust list`): the kits role of a signed
/// document, else the flat list.
/// One key in `trust list`: its roles, when it came to this root, and the kits it signed
/// here (from the generations' `signedBy` labels, which imports record).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ListedKey {
    kid: String,
    /// Roles of the trust document that name it (a flat key list: every role).
    roles: Vec<String>,
    /// The `.pub` file, for a flat key list.
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    /// When it came to this root: the issue time of the first trust version naming it, or
    /// for a flat list when its `.pub` file was written.
    added_at: Option<String>,
    /// The first trust version naming it (signed or migrated documents).
    #[serde(skip_serializing_if = "Option::is_none")]
    added_in_version: Option<u64>,
    /// Generations on this root whose kit this key signed, most recently activated first.
    kits_signed: Vec<SignedKit>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SignedKit {
    version: Option<String>,
    channel: Option<String>,
    generation: ouk_delta::GenerationId,
    current: bool,
}

fn kits_signed_by(gens: &[ouk_root::GenerationSummary], kid: &str) -> Vec<SignedKit> {
    gens.iter()
        .filter(|g| {
            g.record
                .labels
                .get("signedBy")
                .is_some_and(|s| s.split(',').any(|k| k == kid))
        })
        .map(|g| SignedKit {
            version: g.record.labels.get("version").cloned(),
            channel: g.record.labels.get("channel").cloned(),
            generation: g.id,
            current: g.current,
        })
        .collect()
}

fn list_trusted(ctx: &Context, dir: &Path) -> Result<(), Failure> {
    // Generations are read-only here too (no lock): a root without any yet lists none.
    let gens = ctx
        .open_view()
        .and_then(|v| Ok(v.generations()?))
        .unwrap_or_default();
    let mut keys: Vec<ListedKey> = Vec::new();
    if signed(dir)? {
        let s = trust_doc::status(dir, now(), false).map_err(|e| kit_failure(e.into()))?;
        let history = trust_doc::key_history(dir).map_err(|e| kit_failure(e.into()))?;
        let mut kids: Vec<&String> = s.roles.values().flat_map(|r| r.keyids.iter()).collect();
        kids.sort();
        kids.dedup();
        for kid in kids {
            let first = history.get(kid.as_str());
            keys.push(ListedKey {
                kid: kid.clone(),
                roles: s
                    .roles
                    .iter()
                    .filter(|(_, r)| r.keyids.contains(kid))
                    .map(|(name, _)| name.clone())
                    .collect(),
                path: None,
                added_at: first.map(|(_, issued)| issued.clone()),
                added_in_version: first.map(|(v, _)| *v),
                kits_signed: kits_signed_by(&gens, kid),
            });
        }
    } else {
        for (t, _) in ouk_kit::import::trust::list(dir).map_err(kit_failure)? {
            let added = std::fs::metadata(&t.path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| crate::output::rfc3339(d.as_secs() as i64));
            keys.push(ListedKey {
                kits_signed: kits_signed_by(&gens, &t.kid),
                roles: ["kits", "plugins", "trust"].map(String::from).to_vec(),
                path: Some(t.path.display().to_string()),
                added_at: added,
                added_in_version: None,
                kid: t.kid,
            });
        }
    }
    ctx.out.emit(&keys, || {
        if keys.is_empty() {
            return "no trusted keys (ouk trust add PUB)".into();
        }
        keys.iter()
            .map(|k| {
                let kits: Vec<String> = k
                    .kits_signed
                    .iter()
                    .map(|g| g.version.clone().unwrap_or_else(|| g.generation.short()))
                    .collect();
                format!(
                    "{}  roles {}  added {}{}\n  signed here: {}",
                    k.kid,
                    k.roles.join(","),
                    k.added_at.as_deref().unwrap_or("-"),
                    k.added_in_version
                        .map_or_else(String::new, |v| format!(" (trust version {v})")),
                    if kits.is_empty() {
                        "no kit".to_string()
                    } else {
                        kits.join(", ")
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// After `kit build` / `delta make` signed with the first key: every key's signature into
/// the set (when there are several) and the chain beside the bundle.
pub fn finish_signing(
    ctx: &Context,
    bundle: &Path,
    sha256_hex: &str,
    keys: &[SigningKey],
    chain: Option<&Path>,
) -> Result<(), Failure> {
    if keys.len() > 1 {
        let sha = parse_sha(sha256_hex)?;
        for k in keys {
            sigset::countersign(bundle, &sha, k).map_err(kit_failure)?;
        }
        ctx.out.note(&format!(
            "signed by {} keys ({})",
            keys.len(),
            sigset::sigset_path(bundle).display()
        ));
    }
    if let Some(c) = chain {
        let n = sigset::attach_chain(bundle, c).map_err(kit_failure)?;
        ctx.out.note(&format!(
            "carries {n} trust document(s) ({})",
            sigset::chain_path(bundle).display()
        ));
    }
    Ok(())
}

fn parse_sha(hex_text: &str) -> Result<[u8; 32], Failure> {
    let bad = || Failure::new(ExitCode::Failure, format!("not a SHA-256: {hex_text}"));
    let digits = hex_text.as_bytes();
    if digits.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let text = std::str::from_utf8(pair).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// `ouk kit sign BUNDLE --signing-key K`: countersign (the bundle's digest must match its
/// `.sha256`/`.metadata.json` when it has them: a signer signs what was published).
pub fn run_kit_sign(ctx: &Context, args: SignArgs) -> Result<ExitCode, Failure> {
    let keys = args.signing.load()?;
    if keys.is_empty() {
        return Err(Failure::new(
            ExitCode::Failure,
            "kit sign needs --signing-key",
        ));
    }
    let sidecars = ouk_kit::verify::Sidecars::discover(&args.bundle, Default::default());
    let (sha, _, _) =
        ouk_kit::verify::check_digest(&args.bundle, &sidecars).map_err(kit_failure)?;
    let mut set = sigset::SignatureSet::default();
    for k in &keys {
        set = sigset::countersign(&args.bundle, &sha, k).map_err(kit_failure)?;
    }
    ctx.out.emit(&set, || {
        format!(
            "{} signature(s) on {} ({})",
            set.signatures.len(),
            args.bundle.display(),
            set.signatures
                .iter()
                .map(|s| s.keyid.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    Ok(ExitCode::Ok)
}
