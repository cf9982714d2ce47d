#!/usr/bin/env bash
# Apply of a delta against a full import of its target kit (issue 23), alternated in one
# run, each on a fresh root that imported the baseline kit first (untimed), then `store gc`
# on that root: wall/user/sys/peak RSS, the load average before each step, pack bytes
# before and after gc, and the generation reached. With BASE_BIN set, the apply is timed
# with that binary too, between the new apply and the full import (A/B in the same run).
# Inputs are read only; roots go to WORK and are removed on exit.
#
# usage: benches/scripts/apply_vs_import.sh K0 K1 DELTA [RUNS]
# environment: OUK_BIN (default REPO/target/release/ouk), BASE_BIN (optional), TRUST_KEY,
#              WORK (default a new directory under /tmp)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
K0="$1"; K1="$2"; DELTA="$3"; RUNS="${4:-1}"
OUK_BIN="${OUK_BIN:-$REPO/target/release/ouk}"
BASE_BIN="${BASE_BIN:-}"
TRUST_KEY="${TRUST_KEY:-$REPO/testdata/cosign/fixture.pub}"
WORK="${WORK:-$(mktemp -d /tmp/apply-vs-import.XXXXXX)}"
trap 'rm -rf -- "$WORK"' EXIT
X=(--trust-key "$TRUST_KEY" --free-margin 0 --max-kit-age 0)
steps=("apply $OUK_BIN")
[[ -n "$BASE_BIN" ]] && steps+=("apply $BASE_BIN")
steps+=("full $OUK_BIN")
echo "$(nproc) cores; $(date -u +%FT%TZ)"
echo "| run | step | binary | wall s | user s | sys s | peak RSS MiB | load before | packs B | packs B after gc | generation |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
for ((i = 1; i <= RUNS; i++)); do
    for spec in "${steps[@]}"; do
        read -r kind bin <<<"$spec"
        r="$WORK/root"; rm -rf -- "$r"
        "$bin" -q --root "$r" kit import "$K0" "${X[@]}"
        in="$DELTA"; [[ $kind == full ]] && in="$K1"
        # The baseline import's pages reach the disk before the clock starts: each timed
        # step pays for its own writes only.
        sync; sleep 1
        load="$(cut -d' ' -f1 /proc/loadavg)"
        /usr/bin/time -f '%e %U %S %M' -o "$WORK/t" "$bin" -q --root "$r" kit import "$in" "${X[@]}" >/dev/null
        read -r w u s m <"$WORK/t"
        # status exits 9 for a stale kit (test kits are); its JSON still names the current.
        gen="$("$bin" --root "$r" --json status 2>/dev/null \
            | python3 -c 'import json,sys; print(((lambda d: d.get("generation") or d.get("current"))(json.load(sys.stdin)) or "-")[:12])' || true)"
        before="$(du -sb "$r/store/packs" | cut -f1)"
        "$OUK_BIN" -q --root "$r" store gc >/dev/null
        echo "| $i | $kind | $(basename "$bin") | $w | $u | $s | $((m / 1024)) | $load | $before | $(du -sb "$r/store/packs" | cut -f1) | $gen |"
    done
done
