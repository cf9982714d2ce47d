//! `ouk mirror {add|list|export|stats}`: a root that keeps many bundles deduplicated and
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
    /// Bundles, their bytes, what the store takes for them, dedup ratio.
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
        } => {
            let r = ouk_kit::mirror::add(&root, &bundle, threads(), allow_unsigned)
                .map_err(kit_failure)?;
            ctx.out.emit(&WithRequests::of(&r, root.store()), || {
                let b = &r.bundle;
                let how = match (&b.recipe, &b.see_through) {
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
        MirrorCommand::Stats => {
            let s = ouk_kit::mirror::stats(&root).map_err(kit_failure)?;
            ctx.out.emit(&s, || {
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
                )
            });
        }
    }
    Ok(ExitCode::Ok)
}
