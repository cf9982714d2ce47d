//! The release calendar: which component (analyzer plug-in, image app layer) is rebuilt
//! on which day. Day `k >= 1` rebuilds exactly one component of each kind, chosen by
//! hashing `(seed, kind, k)`, so the state at any day is computable without the days before.

use crate::rng::{Sm, h};
use crate::text::{DAY, day_start};

/// Domain tag for analyzer plug-in rebuilds.
pub const PLUGIN_REBUILDS: u64 = 0x706c_7567;
/// Domain tag for image app-layer rebuilds.
pub const LAYER_REBUILDS: u64 = 0x6c61_7972;

/// The slot (in `0..slots`) rebuilt on day `k`.
pub fn picked(seed: u64, tag: u64, slots: u64, k: u32) -> u64 {
    Sm::new(h(&[seed, tag, u64::from(k)])).below(slots)
}

/// The days in `1..=day` on which `slot` was rebuilt, ascending. Costs `O(day)`.
pub fn rebuild_days(seed: u64, tag: u64, slots: u64, slot: u64, day: u32) -> Vec<u32> {
    (1..=day)
        .filter(|&k| picked(seed, tag, slots, k) == slot)
        .collect()
}

/// The instant of a rebuild that lands in the tree of day `k` (during the day before).
pub fn rebuild_time(seed: u64, tag: u64, k: u32) -> i64 {
    day_start(k) - DAY + 3600 + Sm::new(h(&[seed, tag, u64::from(k), 1])).below(20 * 3600) as i64
}
