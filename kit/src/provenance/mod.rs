//! Provenance: SPDX SBOM and in-toto SLSA statement (being written).
