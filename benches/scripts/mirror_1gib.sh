#!/usr/bin/env bash
# Mirror add and export at 1 GiB (issue 24): `mirror add` of the signed 1 GiB kits of days 0
# and 1 (the first stored as chunks, the second as a delta against it) into a fresh mirror
# root that trusts TRUST_KEY, then `mirror export` of each, compared byte for byte with the
# bundle. Prints a markdown table: wall, user, sys, max RSS, the load before each step, how
# each bundle is stored, and whether each export is identical.
#
# usage: benches/scripts/mirror_1gib.sh [WORKDIR]
#   WORKDIR  default /tmp/impbench: the kits made by benches/scripts/delta_1gib.sh
#            (WORKDIR/kits/2025.10.{0,1}-1GiB); run that script first.
# environment: OUK_BIN (default REPO/target/release/ouk), TRUST_KEY (the fixture's public key)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUK=${OUK_BIN:-$REPO/target/release/ouk}
TRUST_KEY="${TRUST_KEY:-$REPO/testdata/cosign/fixture.pub}"
K="${1:-/tmp/impbench}/kits"
[[ -d "$K/2025.10.0-1GiB" && -d "$K/2025.10.1-1GiB" ]] || { echo "mirror_1gib: no 1 GiB kits under $K (run benches/scripts/delta_1gib.sh first)" >&2; exit 2; }
M=$(mktemp -d /tmp/m1g.XXXXXX)
E=$(mktemp -d /tmp/m1g-exp.XXXXXX)
trap 'rm -rf -- "$M" "$E"' EXIT
$OUK -q --root "$M/root" trust add "$TRUST_KEY"
echo "| step | wall s | user s | sys s | max RSS MiB | load before | stored as |"
echo "|---|---:|---:|---:|---:|---:|---|"
for d in 0 1; do
  k=$K/2025.10.$d-1GiB/stella-ops-offline-kit-2025.10.$d-edge.tar.gz
  l=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f '%e %U %S %M' -o "$M/t" $OUK --json --root "$M/root" mirror add "$k" > "$M/add$d.json"
  read -r w u s r < "$M/t"
  sa=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bundle"]["storedAs"])' "$M/add$d.json")
  echo "| add day $d | $w | $u | $s | $((r/1024)) | $l | $sa |"
done
for d in 0 1; do
  k=$K/2025.10.$d-1GiB/stella-ops-offline-kit-2025.10.$d-edge.tar.gz
  l=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f '%e %U %S %M' -o "$M/t" $OUK -q --root "$M/root" mirror export 2025.10.$d --output-dir "$E/$d"
  read -r w u s r < "$M/t"
  same=$(cmp -s "$k" "$E/$d/$(basename "$k")" && echo identical || echo DIFFERENT)
  echo "| export day $d | $w | $u | $s | $((r/1024)) | $l | $same |"
done
$OUK --root "$M/root" mirror stats | tail -5
du -sh "$M/root/store"
