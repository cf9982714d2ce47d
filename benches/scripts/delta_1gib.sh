#!/usr/bin/env bash
# Daily delta of a ~1 GiB kit (issue 5): make time and peak RSS, delta size, apply time and
# peak RSS against a full import of the target kit, and the check that both end on the same
# generation.
#
# usage: benches/scripts/delta_1gib.sh [WORKDIR]
#   WORKDIR  default /tmp/impbench. Reused between runs (and shared with import_vs_tar.sh):
#              WORKDIR/trees/day0-SIZE, day1-SIZE   `ouk-testdata tree --seed 1 --day D --size SIZE`
#              WORKDIR/kits/2025.10.0-SIZE, 2025.10.1-SIZE   signed kits built from them
#            made when missing (kits are rebuilt when OUK_BIN changes). Deltas and roots go
#            to a fresh WORKDIR/delta-runs.XXXXXX, removed on exit.
#
# environment:
#   OUK_BIN           ouk binary          (default REPO/target/release/ouk)
#   OUK_TESTDATA_BIN  ouk-testdata binary (default REPO/target/release/ouk-testdata)
#   SIGNING_KEY       signing key         (default REPO/testdata/cosign/fixture.key)
#   TRUST_KEY         its public key      (default REPO/testdata/cosign/fixture.pub)
#   COSIGN_PASSWORD   its password        (default hello, the fixture's)
#   SIZE              tree size (default 1GiB)
#   COMPRESSED        1: trees with compressed content (`ouk-testdata tree --compressed`: gzip
#                     image layers, .json.gz feeds, all.zip, a wheel, a .zst feed), kept as
#                     WORKDIR/trees/dayD-SIZE-compressed (default 0: the plain trees)
#   MAKE_RUNS         timed `delta make` runs (default 1)
#   RUNS              timed apply / full-import pairs, alternating (default 3); each on a
#                     fresh root that imported K0 first (untimed)
#
# Timed (with /usr/bin/time -f '%e %U %S %M'):
#   ouk delta make --from K0 --to K1 --output stella-ouk-2025-10-24.delta.tgz --signing-key KEY
#   ouk --root R_A kit import DELTA --trust-key PUB --free-margin 0    # R_A imported K0
#   ouk --root R_B kit import K1    --trust-key PUB --free-margin 0    # R_B imported K0
# (plus `--max-kit-age 0` when this ouk has that option). The page cache is not dropped.
# Exit status: 0 when every apply and full import ends on K1's generation (and a second
# apply is a no-op), 1 otherwise; the time, size and memory goals are reported, not enforced.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORKROOT="${1:-/tmp/impbench}"
OUK_BIN="${OUK_BIN:-$REPO/target/release/ouk}"
OUK_TESTDATA_BIN="${OUK_TESTDATA_BIN:-$REPO/target/release/ouk-testdata}"
SIGNING_KEY="${SIGNING_KEY:-$REPO/testdata/cosign/fixture.key}"
TRUST_KEY="${TRUST_KEY:-$REPO/testdata/cosign/fixture.pub}"
export COSIGN_PASSWORD="${COSIGN_PASSWORD:-hello}"
SIZE="${SIZE:-1GiB}"
COMPRESSED="${COMPRESSED:-0}"
MAKE_RUNS="${MAKE_RUNS:-1}"
RUNS="${RUNS:-3}"
V0=2025.10.0
V1=2025.10.1
CHANNEL=edge
DELTA_NAME=stella-ouk-2025-10-24.delta.tgz

die() { echo "delta_1gib: $*" >&2; exit 2; }

[[ "$COMPRESSED" == 0 || "$COMPRESSED" == 1 ]] || die "COMPRESSED must be 0 or 1, got '$COMPRESSED'"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
[[ "$MAKE_RUNS" =~ ^[1-9][0-9]*$ ]] || die "MAKE_RUNS must be a positive integer, got '$MAKE_RUNS'"
[[ -x "$OUK_BIN" ]] || die "ouk binary not found at $OUK_BIN
  build it: cargo build --release -p ouk-cli -p ouk-testdata   (or set OUK_BIN)"
[[ -f "$SIGNING_KEY" ]] || die "signing key not found: $SIGNING_KEY (set SIGNING_KEY)"
[[ -f "$TRUST_KEY" ]] || die "public key not found: $TRUST_KEY (set TRUST_KEY)"
for tool in tar sha256sum awk sort du python3; do
    command -v "$tool" >/dev/null || die "'$tool' is required"
done
[[ -x /usr/bin/time ]] && /usr/bin/time -f '%e' -o /dev/null true 2>/dev/null \
    || die "GNU time (/usr/bin/time) is required for peak RSS (apt-get install time)"

mkdir -p "$WORKROOT/trees" "$WORKROOT/kits"
WORKROOT="$(cd "$WORKROOT" && pwd)"
WORK="$(mktemp -d "$WORKROOT/delta-runs.XXXXXX")"
cleanup() { rm -rf -- "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

IMPORT_EXTRA=(--free-margin 0)
if "$OUK_BIN" kit import --help 2>/dev/null | grep -q -- '--max-kit-age'; then
    IMPORT_EXTRA+=(--max-kit-age 0)
fi

# tree DAY SIZE -> path of the release tree, generated (atomically) when missing.
VARIANT=""
TREE_FLAGS=()
if [[ "$COMPRESSED" == 1 ]]; then
    VARIANT="-compressed"
    TREE_FLAGS=(--compressed)
fi
tree() {
    local day="$1" size="$2" dir="$WORKROOT/trees/day$1-$2$VARIANT"
    if [[ ! -d "$dir" ]]; then
        [[ -x "$OUK_TESTDATA_BIN" ]] || die "ouk-testdata not found at $OUK_TESTDATA_BIN (set OUK_TESTDATA_BIN)"
        echo "generating day-$day tree of $size in $dir" >&2
        rm -rf -- "$dir.tmp"
        "$OUK_TESTDATA_BIN" tree --seed 1 --day "$day" --size "$size" "${TREE_FLAGS[@]}" "$dir.tmp" >&2
        mv -- "$dir.tmp" "$dir"
    fi
    echo "$dir"
}

# kit VERSION TREE SIZE -> directory holding the signed kit (bundle + sidecars + manifest).
# Rebuilt when missing or built by another ouk binary.
kit() {
    local version="$1" tree="$2" size="$3" dir="$WORKROOT/kits/$1-$3"
    local stamp; stamp="$(sha256sum <"$OUK_BIN" | cut -d' ' -f1) $tree"
    if [[ ! -f "$dir/stella-ops-offline-kit-$version-$CHANNEL.tar.gz" || "$(cat "$dir/.built-by" 2>/dev/null)" != "$stamp" ]]; then
        echo "building kit $version from $tree" >&2
        rm -rf -- "$dir" "$dir.tmp"
        "$OUK_BIN" -q kit build --version "$version" --channel "$CHANNEL" --release-dir "$tree" \
            --output-dir "$dir.tmp" --signing-key "$SIGNING_KEY" >&2
        echo "$stamp" >"$dir.tmp/.built-by"
        mv -- "$dir.tmp" "$dir"
    fi
    echo "$dir"
}

# timed TIMEFILE LOG CMD...: runs CMD under GNU time, stdout to LOG, stderr to LOG.err;
# TIMEFILE gets "wall_s user_s sys_s peak_rss_kib".
timed() {
    local tf="$1" log="$2"; shift 2
    /usr/bin/time -f '%e %U %S %M' -o "$tf" "$@" >"$log" 2>"$log.err"
}

current_gen() {
    local out rc=0
    out="$("$OUK_BIN" --root "$1" --json status)" || rc=$?
    # 9: nothing active or the active kit is stale (old test kits are); the JSON still
    # names what is active.
    [[ $rc == 0 || $rc == 9 ]] || return "$rc"
    python3 -c 'import json,sys; print((lambda d: d.get("generation") or d.get("current"))(json.load(sys.stdin)) or "-")' <<<"$out"
}
manifest_gen() {
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["generationId"])' \
        "$1/manifest/offline-manifest.json"
}
import_outcome() { # LOG (of an import run with --json) -> outcome
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("outcome", "?"))' "$1" 2>/dev/null || echo "?"
}
median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

tree0="$(tree 0 "$SIZE")"
tree1="$(tree 1 "$SIZE")"
kit0="$(kit "$V0" "$tree0" "$SIZE$VARIANT")"
kit1="$(kit "$V1" "$tree1" "$SIZE$VARIANT")"
K0="$kit0/stella-ops-offline-kit-$V0-$CHANNEL.tar.gz"
K1="$kit1/stella-ops-offline-kit-$V1-$CHANNEL.tar.gz"
gen0="$(manifest_gen "$kit0")"
gen1="$(manifest_gen "$kit1")"

echo "K0:      $K0 ($(stat -c %s "$K0") bytes, generation $gen0)"
echo "K1:      $K1 ($(stat -c %s "$K1") bytes, generation $gen1)"
echo "ouk:     $OUK_BIN (sha256 $(sha256sum <"$OUK_BIN" | cut -c1-16)...)"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo

: >"$WORK/rows"
ok=1

# 1. delta make.
DELTA="$WORK/$DELTA_NAME"
for ((i = 1; i <= MAKE_RUNS; i++)); do
    echo "delta make $i/$MAKE_RUNS ..." >&2
    rm -f -- "$WORK"/stella-ouk-*
    if ! timed "$WORK/t" "$WORK/make-$i.log" "$OUK_BIN" delta make --from "$K0" --to "$K1" \
        --output "$DELTA" --signing-key "$SIGNING_KEY"; then
        cat "$WORK/make-$i.log" "$WORK/make-$i.log.err" >&2
        die "ouk delta make failed"
    fi
    echo "make $i $(cat "$WORK/t") $(stat -c %s "$DELTA")" >>"$WORK/rows"
done
delta_bytes=$(stat -c %s "$DELTA")
"$OUK_BIN" delta show "$DELTA" >"$WORK/show.txt" 2>&1 || true

# 2. apply vs full import, alternating, each on a fresh root that imported K0 (untimed).
prepare_root() { # ROOT
    rm -rf -- "$1"
    "$OUK_BIN" -q --root "$1" kit import "$K0" --trust-key "$TRUST_KEY" "${IMPORT_EXTRA[@]}" \
        || die "import of K0 into $1 failed"
    [[ "$(current_gen "$1")" == "$gen0" ]] || die "$1 is not on K0's generation after importing K0"
}
# one KIND ROOT BUNDLE RUN: timed import of BUNDLE into ROOT (which imported K0).
one() {
    local kind="$1" r="$2" bundle="$3" i="$4" log="$WORK/$1-$4.json"
    if ! timed "$WORK/t" "$log" "$OUK_BIN" --json --root "$r" kit import "$bundle" \
        --trust-key "$TRUST_KEY" "${IMPORT_EXTRA[@]}"; then
        cat "$log" "$log.err" >&2
        die "ouk kit import ($kind, run $i) failed"
    fi
    local got; got="$(current_gen "$r")"
    echo "$kind $i $(cat "$WORK/t") - $got $(import_outcome "$log")" >>"$WORK/rows"
    if [[ "$got" != "$gen1" ]]; then
        echo "$kind run $i: current generation $got, K1's is $gen1" >&2
        ok=0
    fi
}
for ((i = 1; i <= RUNS; i++)); do
    echo "apply / full import $i/$RUNS (preparing roots) ..." >&2
    prepare_root "$WORK/root-apply"
    prepare_root "$WORK/root-full"
    one apply "$WORK/root-apply" "$DELTA" "$i"
    one full "$WORK/root-full" "$K1" "$i"
    if (( i == 1 )); then
        # Idempotency: applying the same delta again is a no-op.
        "$OUK_BIN" --json --root "$WORK/root-apply" kit import "$DELTA" --trust-key "$TRUST_KEY" \
            "${IMPORT_EXTRA[@]}" >"$WORK/again.json" 2>/dev/null || true
        again="$(import_outcome "$WORK/again.json")"
        [[ "$again" == "already-active" ]] || { echo "second apply: outcome $again" >&2; ok=0; }
    fi
    rm -rf -- "$WORK/root-apply" "$WORK/root-full"
done

awk '
BEGIN {
    printf "| step | run | wall s | user s | sys s | peak RSS MiB | delta bytes | generation after | outcome |\n"
    printf "|---|---|---|---|---|---|---|---|---|\n"
}
{
    name = ($1 == "make" ? "delta make" : ($1 == "apply" ? "import DELTA (apply)" : "import K1 (full)"))
    if ($1 == "make")
        printf "| %s | %s | %.2f | %.2f | %.2f | %.1f | %d | | |\n", name, $2, $3, $4, $5, $6 / 1024, $7
    else
        printf "| %s | %s | %.2f | %.2f | %.2f | %.1f | | `%s...` | %s |\n", name, $2, $3, $4, $5, $6 / 1024, substr($8, 1, 12), $9
}' "$WORK/rows"

med() { awk -v c="$1" -v f="$2" '$1 == c {print $f}' "$WORK/rows" | median; }
mx() { awk -v c="$1" -v f="$2" '$1 == c {if ($f > m) m = $f} END {print m + 0}' "$WORK/rows"; }
make_wall=$(med make 3); make_rss=$(mx make 6)
apply_wall=$(med apply 3); apply_rss=$(mx apply 6)
full_wall=$(med full 3); full_rss=$(mx full 6)
ratio=$(awk -v a="$apply_wall" -v b="$full_wall" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}')
verdict() { awk -v v="$1" -v g="$2" 'BEGIN {print (v + 0 <= g + 0 ? "met" : "NOT met")}'; }

echo
echo "delta show:"
sed 's/^/  /' "$WORK/show.txt"
echo
echo "delta make   median wall $make_wall s (goal <= 120 s: $(verdict "$make_wall" 120)), peak RSS $(mib "$make_rss") MiB (goal < 1024 MiB: $(verdict "$make_rss" 1048575))"
echo "delta size   $delta_bytes bytes = $(awk -v b="$delta_bytes" 'BEGIN {printf "%.2f MB", b / 1e6}') (goal well under 30 MB: $(verdict "$delta_bytes" 30000000))"
echo "apply        median wall $apply_wall s, peak RSS $(mib "$apply_rss") MiB (goal < 256 MiB: $(verdict "$apply_rss" 262143))"
echo "full import  median wall $full_wall s, peak RSS $(mib "$full_rss") MiB"
# Issue 23 restated the apply goal as <= 0.4 x a full import (issue 5 had asked 0.15).
echo "ratio apply/full import (median wall): $ratio (goal <= 0.4: $(verdict "$ratio" 0.4))"
if (( ok )); then
    echo "same generation: PASS (every apply and full import ended on $gen1; a second apply was a no-op)"
else
    echo "same generation: FAIL"
    exit 1
fi
