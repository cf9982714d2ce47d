//! The trust store's face in the kit crate: `ouk_root::trust::keys` (`ROOT/trust/<kid>.pub`,
//! which owns the files and their rules) with its keys as [`VerifyingKey`]s, the type the
//! kit's signature checks take. Adding and removing a key give no kit type: callers call
//! `ouk_root::trust::keys::{add, remove}` directly. Nothing here reads or writes a file
//! itself.

use std::path::Path;

pub use ouk_root::trust::keys::{TrustedKey, trust_dir};

use crate::error::Result;
use crate::sign::VerifyingKey;

/// Every trusted key, sorted by kid; a file that does not parse is an error.
pub fn list(root: &Path) -> Result<Vec<(TrustedKey, VerifyingKey)>> {
    Ok(ouk_root::trust::keys::list(root)?
        .into_iter()
        .map(|(t, k)| (t, VerifyingKey::from_p256(*k.as_p256())))
        .collect())
}
