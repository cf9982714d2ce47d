#!/usr/bin/env bash
# Side-by-side benchmark of `ouk kit import` against `tar -xzf` of the same bundle into an
# empty directory (issue 4: ouk <= 1.25 x tar, peak memory bounded independent of kit size).
#
# usage: benches/scripts/import_vs_tar.sh [WORKDIR]
#   WORKDIR  default /tmp/impbench. Reused between runs (and shared with delta_1gib.sh):
#              WORKDIR/trees/day0-SIZE     `ouk-testdata tree --seed 1 --day 0 --size SIZE`
#              WORKDIR/kits/2025.10.0-SIZE the signed kit built from it
#            both made when missing (the kit is rebuilt when OUK_BIN changes). Each timed run
#            extracts / imports into a fresh directory under WORKDIR/import-runs.XXXXXX,
#            removed after the run and on exit.
#
# environment:
#   OUK_BIN           ouk binary          (default REPO/target/release/ouk)
#   OUK_TESTDATA_BIN  ouk-testdata binary (default REPO/target/release/ouk-testdata)
#   SIGNING_KEY       signing key         (default REPO/testdata/cosign/fixture.key)
#   TRUST_KEY         its public key      (default REPO/testdata/cosign/fixture.pub)
#   COSIGN_PASSWORD   its password        (default hello, the fixture's)
#   RUNS              timed runs of each command (default 3; one untimed warm-up of each first)
#   SIZE              size of the main kit's tree (default 1GiB)
#   SMALL_SIZE        size of the second kit, imported once to show that peak RSS does not
#                     grow with the kit (default 256MiB; empty to skip)
#
# Commands timed (with /usr/bin/time -f '%e %U %S %M'), alternating so background noise hits
# both alike; the page cache is not dropped (that needs root and would disturb other jobs),
# so both read a warm bundle:
#   tar -xzf BUNDLE -C FRESH_EMPTY_DIR
#   ouk --root FRESH_ROOT kit import BUNDLE --trust-key PUB --free-margin 0
# (plus `--max-kit-age 0` when this ouk has that option, so a reused kit is never stale).
# Compare the ratio, not the absolute times. Exit status: 0 when every import activated the
# kit's generation, 1 otherwise (the timing goal is reported, not enforced).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORKROOT="${1:-/tmp/impbench}"
OUK_BIN="${OUK_BIN:-$REPO/target/release/ouk}"
OUK_TESTDATA_BIN="${OUK_TESTDATA_BIN:-$REPO/target/release/ouk-testdata}"
SIGNING_KEY="${SIGNING_KEY:-$REPO/testdata/cosign/fixture.key}"
TRUST_KEY="${TRUST_KEY:-$REPO/testdata/cosign/fixture.pub}"
export COSIGN_PASSWORD="${COSIGN_PASSWORD:-hello}"
RUNS="${RUNS:-3}"
SIZE="${SIZE:-1GiB}"
SMALL_SIZE="${SMALL_SIZE-256MiB}"
VERSION=2025.10.0
CHANNEL=edge
BUNDLE_NAME="stella-ops-offline-kit-$VERSION-$CHANNEL.tar.gz"

die() { echo "import_vs_tar: $*" >&2; exit 2; }

[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
[[ -x "$OUK_BIN" ]] || die "ouk binary not found at $OUK_BIN
  build it: cargo build --release -p ouk-cli -p ouk-testdata   (or set OUK_BIN)"
[[ -f "$SIGNING_KEY" ]] || die "signing key not found: $SIGNING_KEY (set SIGNING_KEY)"
[[ -f "$TRUST_KEY" ]] || die "public key not found: $TRUST_KEY (set TRUST_KEY)"
for tool in tar gzip sha256sum awk sort du python3; do
    command -v "$tool" >/dev/null || die "'$tool' is required"
done
[[ -x /usr/bin/time ]] && /usr/bin/time -f '%e' -o /dev/null true 2>/dev/null \
    || die "GNU time (/usr/bin/time) is required for peak RSS (apt-get install time)"

mkdir -p "$WORKROOT/trees" "$WORKROOT/kits"
WORKROOT="$(cd "$WORKROOT" && pwd)"
WORK="$(mktemp -d "$WORKROOT/import-runs.XXXXXX")"
cleanup() { rm -rf -- "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

IMPORT_EXTRA=(--free-margin 0)
if "$OUK_BIN" kit import --help 2>/dev/null | grep -q -- '--max-kit-age'; then
    IMPORT_EXTRA+=(--max-kit-age 0)
fi

# tree DAY SIZE -> path of the release tree, generated (atomically) when missing.
tree() {
    local day="$1" size="$2" dir="$WORKROOT/trees/day$1-$2"
    if [[ ! -d "$dir" ]]; then
        [[ -x "$OUK_TESTDATA_BIN" ]] || die "ouk-testdata not found at $OUK_TESTDATA_BIN (set OUK_TESTDATA_BIN)"
        echo "generating day-$day tree of $size in $dir" >&2
        rm -rf -- "$dir.tmp"
        "$OUK_TESTDATA_BIN" tree --seed 1 --day "$day" --size "$size" "$dir.tmp" >&2
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

# timed TIMEFILE LOG CMD...: runs CMD (output to LOG) under GNU time; TIMEFILE gets
# "wall_s user_s sys_s peak_rss_kib".
timed() {
    local tf="$1" log="$2"; shift 2
    /usr/bin/time -f '%e %U %S %M' -o "$tf" "$@" >"$log" 2>&1
}

# The generation id `ouk --json status` reports for ROOT.
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

median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

ok=1
# run_tar BUNDLE TAG RUN: one timed extraction into a fresh empty directory.
run_tar() {
    local bundle="$1" tag="$2" i="$3" d="$WORK/tar-$3"
    rm -rf -- "$d"; mkdir "$d"
    timed "$WORK/t" "$WORK/tar.log" tar -xzf "$bundle" -C "$d" || { cat "$WORK/tar.log" >&2; die "tar -xzf failed"; }
    echo "tar $tag $i $(cat "$WORK/t") $(du -sb "$d" | cut -f1)" >>"$WORK/rows"
    rm -rf -- "$d"
}
# run_ouk BUNDLE KITDIR TAG RUN: one timed import into a fresh root.
run_ouk() {
    local bundle="$1" kitdir="$2" tag="$3" i="$4" r="$WORK/root-$4"
    rm -rf -- "$r"
    if ! timed "$WORK/t" "$WORK/ouk-$tag-$i.log" "$OUK_BIN" --root "$r" kit import "$bundle" \
        --trust-key "$TRUST_KEY" "${IMPORT_EXTRA[@]}"; then
        cat "$WORK/ouk-$tag-$i.log" >&2
        die "ouk kit import failed ($tag run $i)"
    fi
    local got want; got="$(current_gen "$r")"; want="$(manifest_gen "$kitdir")"
    if [[ "$got" != "$want" ]]; then
        echo "run $tag $i: current generation $got, the kit's is $want" >&2
        ok=0
    fi
    echo "ouk $tag $i $(cat "$WORK/t") $(du -sb "$r" | cut -f1)" >>"$WORK/rows"
    rm -rf -- "$r"
}

tree_big="$(tree 0 "$SIZE")"
kit_big="$(kit "$VERSION" "$tree_big" "$SIZE")"
bundle_big="$kit_big/$BUNDLE_NAME"
if [[ -n "$SMALL_SIZE" ]]; then
    tree_small="$(tree 0 "$SMALL_SIZE")"
    kit_small="$(kit "$VERSION" "$tree_small" "$SMALL_SIZE")"
    bundle_small="$kit_small/$BUNDLE_NAME"
fi

tree_bytes=$(find "$tree_big" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
echo "kit:     $bundle_big ($(stat -c %s "$bundle_big") bytes; tree $tree_bytes bytes in $(find "$tree_big" -type f | wc -l) files)"
echo "ouk:     $OUK_BIN (sha256 $(sha256sum <"$OUK_BIN" | cut -c1-16)...)"
echo "import:  ouk --root FRESH kit import BUNDLE --trust-key $TRUST_KEY ${IMPORT_EXTRA[*]}"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo

: >"$WORK/rows"
echo "warm-up ..." >&2
run_tar "$bundle_big" warm 0
run_ouk "$bundle_big" "$kit_big" warm 0
: >"$WORK/rows"
for ((i = 1; i <= RUNS; i++)); do
    echo "run $i/$RUNS ..." >&2
    run_tar "$bundle_big" "$SIZE" "$i"
    run_ouk "$bundle_big" "$kit_big" "$SIZE" "$i"
done
if [[ -n "$SMALL_SIZE" ]]; then
    echo "small kit ($SMALL_SIZE) ..." >&2
    run_tar "$bundle_small" "$SMALL_SIZE" 1
    run_ouk "$bundle_small" "$kit_small" "$SMALL_SIZE" 1
fi

awk '
BEGIN {
    printf "| command | kit | run | wall s | user s | sys s | peak RSS MiB | bytes on disk after |\n"
    printf "|---|---|---|---|---|---|---|---|\n"
}
{
    name = ($1 == "ouk" ? "ouk kit import" : "tar -xzf")
    printf "| %s | %s | %s | %.2f | %.2f | %.2f | %.1f | %d |\n", name, $2, $3, $4, $5, $6, $7 / 1024, $8
}' "$WORK/rows"

med() { awk -v c="$1" -v t="$2" -v f="$3" '$1 == c && $2 == t {print $f}' "$WORK/rows" | median; }
ouk_wall=$(med ouk "$SIZE" 4); tar_wall=$(med tar "$SIZE" 4)
ouk_cpu=$(awk -v t="$SIZE" '$1 == "ouk" && $2 == t {print $5 + $6}' "$WORK/rows" | median)
tar_cpu=$(awk -v t="$SIZE" '$1 == "tar" && $2 == t {print $5 + $6}' "$WORK/rows" | median)
ratio=$(awk -v a="$ouk_wall" -v b="$tar_wall" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
rss_big=$(awk -v t="$SIZE" '$1 == "ouk" && $2 == t {if ($7 > m) m = $7} END {print m + 0}' "$WORK/rows")

echo
echo "median of $RUNS ($SIZE kit):"
printf '  ouk kit import  wall %6.2f s  user+sys %6.2f s\n' "$ouk_wall" "$ouk_cpu"
printf '  tar -xzf        wall %6.2f s  user+sys %6.2f s\n' "$tar_wall" "$tar_cpu"
echo "ratio ouk/tar (median wall): $ratio  (goal <= 1.25: $(awk -v r="$ratio" 'BEGIN {print (r <= 1.25 ? "met" : "NOT met")}'))"
echo "ratio ouk/tar (median user+sys): $(awk -v a="$ouk_cpu" -v b="$tar_cpu" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')"
echo "peak RSS of ouk kit import, $SIZE kit (max over runs): $(awk -v k="$rss_big" 'BEGIN {printf "%.1f", k / 1024}') MiB"
if [[ -n "$SMALL_SIZE" ]]; then
    rss_small=$(awk -v t="$SMALL_SIZE" '$1 == "ouk" && $2 == t {print $7}' "$WORK/rows")
    echo "peak RSS of ouk kit import, $SMALL_SIZE kit: $(awk -v k="$rss_small" 'BEGIN {printf "%.1f", k / 1024}') MiB"
    r_small=$(awk -v t="$SMALL_SIZE" '$2 == t {w[$1] = $4} END {printf "%.2f", (w["tar"] > 0 ? w["ouk"] / w["tar"] : 0)}' "$WORK/rows")
    echo "ratio ouk/tar, $SMALL_SIZE kit (1 run): $r_small"
fi
if (( ok )); then
    echo "every import activated the kit's generation ($(manifest_gen "$kit_big")): PASS"
else
    echo "generation check: FAIL"
    exit 1
fi
