//! The small text files of a release tree: the Russian trusted CA bundle (real, synthetic
//! X.509 certificates), Policy Gateway configuration (`etc/policy-gateway.yaml`, which
//! `ouk kit build` places at `config/policy-gateway/policy-gateway.yaml`) and DPoP key
//! (mode 0600), the Authority sample, gateway docs and the
//! helper scripts (two of them executable). None of them churn between days.

use crate::fsutil::{create, write_file, write_sidecar};
use crate::rng::{Sm, h};
use std::io::{self, Write};
use std::path::Path;

/// Files written executable (0755), relative to the tree root.
pub const EXECUTABLES: [&str; 2] = [
    "scripts/run-python-analyzer-smoke.sh",
    "scripts/run-rust-analyzer-smoke.sh",
];

/// The secret written with mode 0600.
pub const DPOP_KEY: &str = "secrets/policy-gateway/policy-gateway-dpop.pem";

const TAG_PEM: u64 = 0x7065_6d00;

/// The synthetic root CA of the trusted bundle.
pub const ROOT_CA_PEM: &str = include_str!("../certs/synthetic-root-ca.pem");
/// The synthetic sub CA of the trusted bundle, issued by [`ROOT_CA_PEM`].
pub const SUB_CA_PEM: &str = include_str!("../certs/synthetic-sub-ca.pem");

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A PEM block of `len` pseudo-random DER-looking bytes.
fn pem(label: &str, key: u64, len: usize) -> String {
    let mut r = Sm::new(key);
    let mut der = vec![0x30, 0x82, (len >> 8) as u8, len as u8];
    der.extend((4..len).map(|_| r.next() as u8));
    let b64 = base64(&der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(line));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

const POLICY_GATEWAY_YAML: &str = "\
# Policy Gateway configuration (offline kit)
policyGateway:
  listen: \"0.0.0.0:8084\"
  baseUrl: \"https://policy-gateway.stella-ops.internal\"
  policyEngine:
    baseAddress: \"https://policy-engine.stella-ops.internal\"
    audience: \"api://policy-engine\"
    clientCredentials:
      enabled: true
      clientId: \"policy-gateway\"
      scopes: [\"policy:read\", \"policy:author\", \"policy:activate\"]
  dpop:
    enabled: true
    keyPath: \"/etc/stellaops/secrets/policy-gateway/policy-gateway-dpop.pem\"
    algorithm: \"ES256\"
  resourceServer:
    authority: \"https://authority.stella-ops.internal\"
    requireHttpsMetadata: true
    audiences: [\"api://policy-gateway\"]
  telemetry:
    metrics:
      - policy_gateway_activation_requests_total
";

const AUTHORITY_SAMPLE: &str = "\
# Authority sample configuration shipped with the Offline Kit.
schemaVersion: 1
issuer: \"https://authority.stella-ops.internal\"
tenants:
  - name: default
    roles:
      airgap-viewer: [\"airgap:status:read\"]
      airgap-operator: [\"airgap:status:read\", \"airgap:import\"]
      airgap-admin: [\"airgap:status:read\", \"airgap:import\", \"airgap:seal\"]
clients:
  - clientId: aoc-verifier
    tenant: default
    allowedScopes: [\"aoc:verify\", \"advisory:read\", \"vex:read\"]
  - clientId: signals-uploader
    tenant: default
    allowedScopes: [\"signals:write\", \"signals:read\", \"aoc:verify\"]
  - clientId: airgap-operator
    tenant: default
    allowedScopes: [\"airgap:status:read\", \"airgap:import\", \"airgap:seal\"]
  - clientId: task-runner
    tenant: default
    allowedScopes: [\"packs.run\", \"packs.read\"]
  - clientId: pack-approver
    tenant: default
    allowedScopes: [\"packs.approve\", \"packs.read\"]
  - clientId: packs-registry
    tenant: default
    allowedScopes: [\"packs.write\", \"packs.read\"]
";

const GATEWAY_MD: &str = "\
# Policy Gateway

Base URL: `https://policy-gateway.stella-ops.internal`

## Activation check

```sh
curl -fsS -H \"Authorization: DPoP $TOKEN\" -H \"DPoP: $PROOF\" \\
  https://policy-gateway.stella-ops.internal/api/policy/packs
```

A successful activation increments `policy_gateway_activation_requests_total`.
";

const DUPLICATES_JS: &str = "\
// Reports (vendor, upstream_id, content_hash, tenant) duplicates in advisory_raw.
var LIMIT = typeof LIMIT === 'number' ? LIMIT : 100;
db.advisory_raw.aggregate([
  { $group: { _id: { vendor: '$source.vendor', upstream: '$upstream.upstream_id',
      hash: '$upstream.content_hash', tenant: '$tenant' }, ids: { $push: '$_id' }, n: { $sum: 1 } } },
  { $match: { n: { $gt: 1 } } },
  { $limit: LIMIT },
]).forEach(function (d) { printjson(d); });
";

const VALIDATORS_JS: &str = "\
// Applies the Aggregation-Only Contract validators (run in maintenance mode).
db.runCommand({ collMod: 'advisory_raw', validationLevel: 'moderate',
  validator: { $jsonSchema: { bsonType: 'object', required: ['tenant', 'source', 'upstream'] } } });
";

fn smoke_script(lang: &str) -> String {
    format!(
        "#!/usr/bin/env bash\n\
         # Smoke-tests the {lang} language analyzer plug-in of this kit.\n\
         set -euo pipefail\n\
         root=\"$(cd \"$(dirname \"$0\")/..\" && pwd)\"\n\
         dir=\"$root/plugins/scanner/analyzers/lang/StellaOps.Scanner.Analyzers.Lang.{lang}\"\n\
         test -f \"$dir/manifest.json\"\n\
         dotnet run --project src/Tools/LanguageAnalyzerSmoke --configuration Release -- \\\n  \
         --repo-root \"$root\" --analyzer {lang}\n"
    )
}

/// Writes the small files.
pub fn write_misc(root: &Path, seed: u64) -> io::Result<()> {
    // Real X.509 certificates (synthetic, see testdata/certs/README.md): the kit build
    // parses every certificate it carries.
    let mut bundle = String::new();
    for (cn, pem) in [
        ("Russian Trusted Root CA (synthetic)", ROOT_CA_PEM),
        ("Russian Trusted Sub CA (synthetic)", SUB_CA_PEM),
    ] {
        bundle.push_str(&format!(
            "# Subject: C=RU, O=Synthetic Test Ministry (ouk testdata), CN={cn}\n"
        ));
        bundle.push_str(pem);
    }
    let certs = root.join("certificates/russian_trusted_bundle.pem");
    let d = write_file(&certs, bundle.as_bytes())?;
    write_sidecar(&certs, &d)?;

    write_file(
        &root.join("etc/policy-gateway.yaml"),
        POLICY_GATEWAY_YAML.as_bytes(),
    )?;
    write_file(
        &root.join("etc/authority.yaml.sample"),
        AUTHORITY_SAMPLE.as_bytes(),
    )?;
    write_file(&root.join("docs/policy/gateway.md"), GATEWAY_MD.as_bytes())?;
    write_file(
        &root.join("scripts/check-advisory-raw-duplicates.js"),
        DUPLICATES_JS.as_bytes(),
    )?;
    write_file(
        &root.join("scripts/apply-aoc-validators.js"),
        VALIDATORS_JS.as_bytes(),
    )?;
    write_file(
        &root.join(EXECUTABLES[0]),
        smoke_script("Python").as_bytes(),
    )?;
    write_file(&root.join(EXECUTABLES[1]), smoke_script("Rust").as_bytes())?;

    // The secret is created 0600 from the start, never briefly readable by others.
    let key = pem("EC PRIVATE KEY", h(&[seed, TAG_PEM, 99]), 121);
    let mut f = create(&root.join(DPOP_KEY), 0o600)?;
    f.write_all(key.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
