//! Hostile and corrupted inputs for the import pipeline, and the sandbox that checks what an
//! import did with them. One module per job:
//!
//! - [`fixture`]: the cosign test key, and the `ouk` runs that build kits, make deltas and
//!   import (plus gzip both ways);
//! - [`tar`]: a hand-written tar codec (headers with any field value, GNU long names, pax
//!   records, member boundaries of a real archive), so tests can build archives the
//!   bundle writer would never produce;
//! - [`corpus`]: real signed kits (three consecutive days) and deltas between them, built
//!   with the `ouk` binary, each with its decompressed tar and member table;
//! - [`mutants`]: the generator. Structured mutants are named, one per attack (truncation
//!   at every structural boundary, swapped members, mix-and-match manifests, foreign
//!   signatures, `../` names, links, devices, bombs...) with the exact exit code they must
//!   get; random mutants (bit flips, cuts, header edits, manifest and delta-header edits,
//!   inserted hostile members) are drawn from a seeded RNG and must get one of a small set
//!   of codes;
//! - [`sandbox`]: a root with an active generation, snapshotted before every case. Each
//!   import runs under a generous CPU bound and wall deadline ([`super::bounded`]):
//!   overrunning either fails the case, named. Afterwards it checks the exit code, that
//!   nothing changed outside `staging/` and `quarantine/`, that staging is empty, that a
//!   refusal was quarantined with a `reason.json` carrying the same code, and that an
//!   accepted input produced exactly the genuine target generation;
//! - [`tally`]: outcome counts per family and code, and the report;
//! - [`scratch`]: scratch directories removed at exit, and small mounted filesystems.
//!
//! Every public name is also re-exported here, so tests say `hostile::Corpus`.

// Each test binary uses its own subset of the re-exports below.
#![allow(unused_imports)]

pub mod corpus;
pub mod fixture;
pub mod mutants;
pub mod sandbox;
pub mod scratch;
pub mod tally;
pub mod tar;

pub use corpus::{Corpus, Kit, fat_kit, small_corpus};
pub use fixture::{
    build_kit, fixture, gunzip, gz_writer, gzip, import, make_delta, make_delta_with, sha256_hex,
    sign, signing_key,
};
pub use mutants::pieces::piece_mutants;
pub use mutants::random::{random_mutant, random_mutant_of};
pub use mutants::structured::structured_mutants;
pub use mutants::{Mutant, Payload, hostile_members};
pub use sandbox::{CaseResult, Sandbox, Snapshot, copy_tree, snapshot};
pub use scratch::{SmallFs, scratch, statvfs};
pub use tally::Tally;
