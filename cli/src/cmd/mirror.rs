//! `ouk mirror {add|list|verify|export|remove|stats}`: a root that keeps many bundles deduplicated and
//! gives each back byte-identical (the logic is `ouk_kit::mirror`).

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::exit::ExitCode;
use crate::output::{WithRequests, bytes, rfc3339};
use crate::shared::kit_failure;
use crate::{Context, Failure};

#[derive(Debug, Subcommand)]
pub enum MirrorCommand {
    /// Verify a bundle (digest, signature against the trust store, manifest) and keep it
    /// with its sidecars; a bundle already mirrored is a no-op.
    Add {
        /// The bundle (kit or delta); sidecars are found next to it.
        bundle: PathBuf,
        /// Keep the bundle even though its signature cannot be checked because the root
        /// trusts no key (without it, such a bundle is refused with exit 5).
        #[arg(long)]
        allow_unsigned: bool,
        /// Deepest delta chain the bundle may end: it is stored as a delta against the
        /// channel's previous bundle when that costs less than its new chunks and the chain
        /// stays this deep (a full snapshot every N+1 bundles); 0 never stores a delta.
        #[arg(long, default_value_t = ouk_kit::mirror::deltastore::DEFAULT_MAX_CHAIN_DEPTH,
              value_parser = clap::value_parser!(u32).range(0..=i64::from(ouk_kit::mirror::deltastore::MAX_CHAIN_WALK)))]
        max_chain_depth: u32,
    },
    /// The mirrored bundles, with who signed each when it was added.
    List,
    /// Re-check the stored bundles' signatures against the keys this root trusts now
    /// (after a rotation or a revocation): exit 5 when any bundle is no longer authorized.
    Verify {
        /// Only this bundle: version, bundle file name, or sha256 prefix (8+ hex digits).
        version: Option<String>,
        /// Only bundles of this channel.
        #[arg(long)]
        channel: Option<String>,
        /// Only bundles of this kind (kit, delta).
        #[arg(long)]
        kind: Option<String>,
    },
    /// Re-create a mirrored bundle and its sidecars, byte-identical, in a directory.
    Export {
        /// Version, bundle file name, or sha256 prefix (8+ hex digits).
        version: String,
        /// Where the bundle and its sidecars go.
        #[arg(long)]
        output_dir: PathBuf,
        /// Only bundles of this channel.
        #[arg(long)]
        channel: Option<String>,
        /// Only bundles of this kind (kit, delta).
        #[arg(long)]
        kind: Option<String>,
    },
    /// Drop a mirrored bundle; bundles stored as deltas against it are re-based first
    /// (its content goes at the next `ouk store gc`). Local stores only.
    Remove {
        /// Version, bundle file name, or sha256 prefix (8+ hex digits).
        version: String,
        /// Only bundles of this channel.
        #[arg(long)]
        channel: Option<String>,
        /// Only bundles of this kind (kit, delta).
        #[arg(long)]
        kind: Option<String>,
    },
    /// Bundles, their bytes, what the store takes for them, dedup ratio; per bundle how
    /// it is stored (chunks, or a delta against which bundle, chain depth) and its cost.
    Stats,
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn run(ctx: &Context, cmd: MirrorCommand) -> Result<ExitCode, Failure> {
    let root = ctx.open_root()?;
    match cmd {
        MirrorCommand::Add {
            bundle,
            allow_unsigned,
            max_chain_depth,
        } => add(ctx, &root, &bundle, allow_unsigned, max_chain_depth)?,
        MirrorCommand::List => list(ctx, &root)?,
        MirrorCommand::Verify {
            version,
            channel,
            kind,
        } => {
            return verify(ctx, &root, version, channel, kind);
        }
        MirrorCommand::Export {
            version,
            output_dir,
            channel,
            kind,
        } => export(ctx, &root, version, &output_dir, channel, kind)?,
        MirrorCommand::Remove {
            version,
            channel,
            kind,
        } => remove(ctx, &root, version, channel, kind)?,
        MirrorCommand::Stats => stats(ctx, &root)?,
    }
    Ok(ExitCode::Ok)
}

/// `ouk mirror add`: verify and keep a bundle, and say how it is stored.
fn add(
    ctx: &Context,
    root: &ouk_root::Root,
    bundle: &Path,
    allow_unsigned: bool,
    max_chain_depth: u32,
) -> Result<(), Failure> {
    let policy = ouk_kit::mirror::AddPolicy { max_chain_depth };
    let r = ouk_kit::mirror::add_with(root, bundle, threads(), allow_unsigned, &policy)
        .map_err(kit_failure)?;
    ctx.out.emit(&WithRequests::of(&r, root.store()), || {
        let b = &r.bundle;
        let how = match (&b.recipe, &b.see_through) {
            (Some(recipe), _) if b.stored_as == "delta" => format!(
                "as a delta of {} against sha256:{} ({recipe} on export)",
                bytes(b.delta_size.unwrap_or(0)),
                b.delta_base.map(|d| d.to_hex()[..12].to_string()).unwrap_or_default()
            ),
            (Some(recipe), Some(st)) => format!(
                "as its tar stream ({recipe}) with {} compressed member(s) seen through ({} plain for {} compressed)",
                st.members,
                bytes(st.plain_bytes),
                bytes(st.original_bytes)
            ),
            (Some(recipe), None) => format!("as its tar stream ({recipe})"),
            (None, _) => "as its compressed bytes (its gzip stream could not be reproduced)"
                .to_string(),
        };
        let mut s = if r.outcome == "added" {
            format!(
                "mirrored {} {} {} ({}) {how}; {} new in packs",
                b.kind,
                b.version,
                b.channel,
                bytes(b.size),
                bytes(r.new_stored_bytes)
            )
        } else {
            format!("{} is already mirrored; nothing changed", b.name)
        };
        s.push_str(&format!("\n  sha256 {}", b.sha256));
        match &b.signed_by {
            Some(k) => s.push_str(&format!("\n  signature verified (kid {k})")),
            None => s.push_str("\n  signature not checked (no trusted keys)"),
        }
        s
    });
    Ok(())
}

/// `ouk mirror list`: the mirrored bundles, with who signed each when it was added.
fn list(ctx: &Context, root: &ouk_root::Root) -> Result<(), Failure> {
    let listing: Vec<ouk_kit::mirror::BundleListing> = ouk_kit::mirror::list(root)
        .map_err(kit_failure)?
        .iter()
        .map(Into::into)
        .collect();
    ctx.out.emit(&listing, || {
        if listing.is_empty() {
            return "no mirrored bundles (ouk mirror add BUNDLE)".into();
        }
        let mut s = format!(
            "{:<6} {:<14} {:<8} {:>10} {:<11} {:<12} {:<20} {:<12} NAME\n",
            "KIND", "VERSION", "CHANNEL", "SIZE", "STORED AS", "SHA256", "ADDED", "SIGNED BY"
        );
        for b in &listing {
            // Who signed it when it was added (`mirror verify` judges it under the
            // keys trusted now).
            let signer = b
                .signed_by
                .as_deref()
                .map_or_else(|| "unchecked".to_string(), |k| k.chars().take(12).collect());
            s.push_str(&format!(
                "{:<6} {:<14} {:<8} {:>10} {:<11} {:<12} {:<20} {:<12} {}\n",
                b.kind,
                b.version,
                b.channel,
                bytes(b.size),
                b.stored_as,
                &b.sha256.to_hex()[..12],
                rfc3339(b.added_at),
                signer,
                b.name
            ));
        }
        s
    });
    Ok(())
}

/// `ouk mirror export`: one bundle and its sidecars, byte-identical, into `output_dir`.
fn export(
    ctx: &Context,
    root: &ouk_root::Root,
    version: String,
    output_dir: &Path,
    channel: Option<String>,
    kind: Option<String>,
) -> Result<(), Failure> {
    let selector = ouk_kit::mirror::Selector {
        what: version,
        channel,
        kind,
    };
    let r = ouk_kit::mirror::export(root, &selector, output_dir, threads()).map_err(kit_failure)?;
    ctx.out.emit(&WithRequests::of(&r, root.store()), || {
        format!(
            "exported {} ({}, sha256 {} verified) and {} sidecar(s) to {}",
            r.bundle.name,
            bytes(r.bundle.size),
            r.bundle.sha256,
            r.files.len() - 1,
            output_dir.display()
        )
    });
    Ok(())
}

/// `ouk mirror remove`: drop one bundle, re-basing the deltas stored against it.
fn remove(
    ctx: &Context,
    root: &ouk_root::Root,
    version: String,
    channel: Option<String>,
    kind: Option<String>,
) -> Result<(), Failure> {
    let selector = ouk_kit::mirror::Selector {
        what: version,
        channel,
        kind,
    };
    let r = ouk_kit::mirror::remove(root, &selector).map_err(kit_failure)?;
    ctx.out.emit(&r, || {
        let mut s = format!("removed {} from the mirror", r.removed);
        for (name, how) in &r.rebased {
            s.push_str(&format!("\n  re-based {name} (now stored as {how})"));
        }
        s.push_str("\n  its content goes at the next `ouk store gc`");
        s
    });
    Ok(())
}

/// `ouk mirror stats`: totals, dedup ratio, and how each bundle is stored.
fn stats(ctx: &Context, root: &ouk_root::Root) -> Result<(), Failure> {
    let s = ouk_kit::mirror::stats(root).map_err(kit_failure)?;
    ctx.out.emit(&s, || {
        let mut table = format!(
            "\n{:<14} {:<8} {:>10} {:<10} {:>5} {:>10}  BASE\n",
            "VERSION", "CHANNEL", "SIZE", "STORED AS", "DEPTH", "COST"
        );
        for b in &s.per_bundle {
            table.push_str(&format!(
                "{:<14} {:<8} {:>10} {:<10} {:>5} {:>10}  {}\n",
                b.version,
                b.channel,
                bytes(b.size),
                b.stored_as,
                b.chain_depth,
                bytes(b.cost_bytes),
                b.delta_base.as_deref().unwrap_or("-")
            ));
        }
        format!(
            "bundles         {} ({} kits, {} deltas; {} as tar + recipe, {} as compressed bytes)\nbundle bytes    {}\nmirror stored   {} in packs ({} chunks, {} raw)\nstore on disk   {} (packs and index, everything in the root)\ndedup ratio     {:.2}x (bundle bytes / mirror stored)\nsee-through     {} bundle(s), {} compressed member(s) stored as {} plain for {} compressed",
            s.bundles,
            s.kits,
            s.deltas,
            s.stored_as_tar,
            s.stored_as_compressed,
            bytes(s.bundle_bytes),
            bytes(s.stored_bytes),
            s.chunks,
            bytes(s.unique_bytes),
            bytes(s.store_disk_bytes),
            s.dedup_ratio,
            s.stored_see_through,
            s.see_through_members,
            bytes(s.member_plain_bytes),
            bytes(s.member_original_bytes)
        ) + &format!(
            "\ndeltas          {} bundle(s) stored as deltas, deepest chain {}",
            s.stored_as_delta, s.max_chain_depth
        ) + &table
    });
    Ok(())
}
/// `ouk mirror verify`: every (or the selected) bundle judged under the trust of now.
fn verify(
    ctx: &Context,
    root: &ouk_root::Root,
    version: Option<String>,
    channel: Option<String>,
    kind: Option<String>,
) -> Result<ExitCode, Failure> {
    // One bundle named: resolve it as export does (a name that matches nothing is exit 1).
    let only = match version {
        Some(what) => {
            let selector = ouk_kit::mirror::Selector {
                what,
                channel: channel.clone(),
                kind: kind.clone(),
            };
            Some(
                ouk_kit::mirror::select(root, &selector)
                    .map_err(kit_failure)?
                    .sha256,
            )
        }
        None => None,
    };
    let keep = |b: &ouk_kit::mirror::MirroredBundle| {
        only.is_none_or(|sha| b.sha256 == sha)
            && channel.as_ref().is_none_or(|c| *c == b.channel)
            && kind.as_ref().is_none_or(|k| *k == b.kind)
    };
    let r = ouk_kit::mirror::reverify::verify(root, ouk_root::now_unix(), &keep)
        .map_err(kit_failure)?;
    ctx.out.emit(&r, || {
        let mut s = match r.trust_version {
            Some(v) => format!("judged under trust document version {v}\n"),
            None => "this root trusts no key: nothing can be verified\n".to_string(),
        };
        for b in &r.bundles {
            s.push_str(&format!(
                "{:<8} {} {} {} ({})",
                b.verdict, b.kind, b.version, b.channel, b.name
            ));
            if !b.signed_by.is_empty() {
                s.push_str(&format!(" signed by {}", b.signed_by.join(", ")));
            }
            if let Some(why) = &b.reason {
                s.push_str(&format!(": {why}"));
            }
            s.push('\n');
        }
        s.push_str(&format!("{} valid, {} not", r.valid, r.failed));
        s
    });
    Ok(if r.failed == 0 {
        ExitCode::Ok
    } else {
        ExitCode::Signature
    })
}
