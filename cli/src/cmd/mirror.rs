//! `ouk mirror {add|list|export|remove|stats}`: a root that keeps many bundles deduplicated and
//! gives each back byte-identical (the logic is `ouk_kit::mirror`).

use std::path::PathBuf;

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
    /// The mirrored bundles.
    List,
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
        } => {
            let policy = ouk_kit::mirror::AddPolicy { max_chain_depth };
            let r = ouk_kit::mirror::add_with(&root, &bundle, threads(), allow_unsigned, &policy)
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
        }
        MirrorCommand::List => {
            let listing: Vec<ouk_kit::mirror::BundleListing> = ouk_kit::mirror::list(&root)
                .map_err(kit_failure)?
                .iter()
                .map(Into::into)
                .collect();
            ctx.out.emit(&listing, || {
                if listing.is_empty() {
                    return "no mirrored bundles (ouk mirror add BUNDLE)".into();
                }
                let mut s = format!(
                    "{:<6} {:<14} {:<8} {:>10} {:<11} {:<12} {:<20} NAME\n",
                    "KIND", "VERSION", "CHANNEL", "SIZE", "STORED AS", "SHA256", "ADDED"
                );
                for b in &listing {
                    s.push_str(&format!(
                        "{:<6} {:<14} {:<8} {:>10} {:<11} {:<12} {:<20} {}\n",
                        b.kind,
                        b.version,
                        b.channel,
                        bytes(b.size),
                        b.stored_as,
                        &b.sha256.to_hex()[..12],
                        rfc3339(b.added_at),
                        b.name
                    ));
                }
                s
            });
        }
        MirrorCommand::Export {
            version,
            output_dir,
            channel,
            kind,
        } => {
            let selector = ouk_kit::mirror::Selector {
                what: version,
                channel,
                kind,
            };
            let r = ouk_kit::mirror::export(&root, &selector, &output_dir, threads())
                .map_err(kit_failure)?;
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
        }
        MirrorCommand::Remove {
            version,
            channel,
            kind,
        } => {
            let selector = ouk_kit::mirror::Selector {
                what: version,
                channel,
                kind,
            };
            let r = ouk_kit::mirror::remove(&root, &selector).map_err(kit_failure)?;
            ctx.out.emit(&r, || {
                let mut s = format!("removed {} from the mirror", r.removed);
                for (name, how) in &r.rebased {
                    s.push_str(&format!("\n  re-based {name} (now stored as {how})"));
                }
                s.push_str("\n  its content goes at the next `ouk store gc`");
                s
            });
        }
        MirrorCommand::Stats => {
            let s = ouk_kit::mirror::stats(&root).map_err(kit_failure)?;
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
        }
    }
    Ok(ExitCode::Ok)
}
