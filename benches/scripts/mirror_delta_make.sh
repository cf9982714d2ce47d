#!/usr/bin/env bash
# Deltas for any host from a mirror that keeps roll-ups as deltas (issue 24): `delta make
# --mirror --from V_first --to V_last` for roll-ups weeks apart, from a mirror that keeps
# them as delta chains (the default) and from one that keeps every roll-up as chunks
# (`--max-chain-depth 0`, the mirror before delta storage), against `delta make` from the
# two bundle files. Reports wall/user/sys/peak RSS of each make, the delta sizes, and
# whether all three deltas are byte-identical (they must be: the mirror rebuilds the exact
# bundles first).
#
# usage: benches/scripts/mirror_delta_make.sh [WORKDIR]
#   WORKDIR  default /tmp/mirrorbench: the kits made by benches/scripts/mirror_rollups.sh
#            (WORKDIR/kits/2025.11.D-SIZE for D = 0, 7, ..., 7*(WEEKS-1)); run it first.
# environment: OUK_BIN (default REPO/target/release/ouk), SIZE (64MiB), WEEKS (8),
#              TRUST_KEY, SIGNING_KEY, COSIGN_PASSWORD (the fixture's by default)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORKROOT="${1:-/tmp/mirrorbench}"
OUK_BIN="${OUK_BIN:-$REPO/target/release/ouk}"
SIGNING_KEY="${SIGNING_KEY:-$REPO/testdata/cosign/fixture.key}"
TRUST_KEY="${TRUST_KEY:-$REPO/testdata/cosign/fixture.pub}"
export COSIGN_PASSWORD="${COSIGN_PASSWORD:-hello}"
SIZE="${SIZE:-64MiB}"
WEEKS="${WEEKS:-8}"
CHANNEL=edge
die() { echo "mirror_delta_make: $*" >&2; exit 2; }
[[ "$WEEKS" =~ ^[2-9][0-9]*$ ]] || die "WEEKS must be at least 2, got '$WEEKS'"
[[ -x "$OUK_BIN" ]] || die "ouk binary not found at $OUK_BIN (set OUK_BIN)"
kit_of() { echo "$WORKROOT/kits/2025.11.$1-$SIZE/stella-ops-offline-kit-2025.11.$1-$CHANNEL.tar.gz"; }
last=$(((WEEKS - 1) * 7))
for ((w = 0; w < WEEKS; w++)); do
    [[ -f "$(kit_of $((w * 7)))" ]] || die "missing $(kit_of $((w * 7))): run benches/scripts/mirror_rollups.sh $WORKROOT first (same SIZE and WEEKS)"
done
WORK="$(mktemp -d /tmp/mirror-delta-make.XXXXXX)"
trap 'rm -rf -- "$WORK"' EXIT
for kind in chains chunks; do
    M="$WORK/$kind"
    "$OUK_BIN" -q --root "$M" trust add "$TRUST_KEY"
    flags=()
    [[ $kind == chunks ]] && flags=(--max-chain-depth 0)
    for ((w = 0; w < WEEKS; w++)); do
        "$OUK_BIN" -q --root "$M" mirror add "${flags[@]}" "$(kit_of $((w * 7)))" >/dev/null
    done
done
echo "$(nproc) cores; $(date -u +%FT%TZ); $WEEKS weekly roll-ups of a $SIZE tree; delta 2025.11.0 -> 2025.11.$last"
echo "| delta made from | wall s | user s | sys s | peak RSS MiB | load before | delta bytes |"
echo "|---|---:|---:|---:|---:|---:|---:|"
make_delta() { # LABEL OUT ARGS...
    local label="$1" out="$2"; shift 2
    mkdir -p "$(dirname "$out")"
    local load; load="$(cut -d' ' -f1 /proc/loadavg)"
    /usr/bin/time -f '%e %U %S %M' -o "$WORK/t" "$OUK_BIN" -q "$@" --output "$out" \
        --signing-key "$SIGNING_KEY" >/dev/null
    read -r w u s m <"$WORK/t"
    echo "| $label | $w | $u | $s | $((m / 1024)) | $load | $(stat -c %s "$out") |"
}
name="stella-ouk-2025-11-$last.delta.tgz"
make_delta "the two bundle files" "$WORK/files/$name" delta make --from "$(kit_of 0)" --to "$(kit_of $last)"
make_delta "mirror, roll-ups as delta chains" "$WORK/d-chains/$name" --root "$WORK/chains" delta make --mirror --from 2025.11.0 --to "2025.11.$last"
make_delta "mirror, roll-ups as chunks" "$WORK/d-chunks/$name" --root "$WORK/chunks" delta make --mirror --from 2025.11.0 --to "2025.11.$last"
"$OUK_BIN" --root "$WORK/chains" mirror stats | sed -n '/^VERSION/,$p' | sed 's/^/    /'
a="$(sha256sum <"$WORK/files/$name")"
same=yes
for d in d-chains d-chunks; do [[ "$(sha256sum <"$WORK/$d/$name")" == "$a" ]] || same=NO; done
echo "all three deltas byte-identical: $same"
[[ $same == yes ]]
