//! `ouk inventory export`: what a host has (its current and retained generations), a few
//! hundred bytes a connected site reads to pick a delta's baseline.

use ouk_delta::GenerationId;
use ouk_root::Root;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// What a host has: enough for a connected site to pick a baseline (a few hundred bytes).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    /// `ouk-inventory/1`.
    pub format: String,
    /// Active generation.
    pub current: Option<GenerationId>,
    /// Retained generations, most recently activated first.
    pub generations: Vec<InventoryGeneration>,
}

/// One retained generation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryGeneration {
    /// Id.
    pub generation: GenerationId,
    /// Kit version.
    pub version: Option<String>,
    /// Channel.
    pub channel: Option<String>,
    /// File count.
    pub files: u64,
    /// Bytes.
    pub bytes: u64,
}

/// `ouk inventory export`.
pub fn inventory(root: &Root) -> Result<Inventory> {
    let generations = root
        .generations()?
        .into_iter()
        .map(|g| InventoryGeneration {
            generation: g.id,
            version: g.record.labels.get("version").cloned(),
            channel: g.record.labels.get("channel").cloned(),
            files: g.record.files,
            bytes: g.record.bytes,
        })
        .collect();
    Ok(Inventory {
        format: "ouk-inventory/1".into(),
        current: root.current()?,
        generations,
    })
}
