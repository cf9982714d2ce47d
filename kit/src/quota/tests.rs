//! Tests of the quota ledger.
