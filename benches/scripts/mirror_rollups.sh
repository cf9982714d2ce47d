#!/usr/bin/env bash
# Mirror of weekly roll-ups: 8 successive weekly kits (days 0, 7, ..., 49 of the synthetic
# release tree) added to one `ouk mirror`, its disk use against the sum of the bundles and
# against a casync store of the same roll-ups; every export checked byte-identical.
#
# usage: benches/scripts/mirror_rollups.sh [WORKDIR]
#   WORKDIR  default /tmp/mirrorbench. Reused between runs:
#              WORKDIR/trees/dayD-SIZE       `ouk-testdata tree --seed 1 --day D --size SIZE`
#              WORKDIR/kits/2025.11.D-SIZE   signed kits built from them (own directory each,
#                                            so each keeps its own manifest/ sidecar)
#            made when missing (kits are rebuilt when OUK_BIN changes). Roots, casync stores
#            and exports go to a fresh WORKDIR/mirror-runs.XXXXXX, removed on exit.
#
# environment:
#   OUK_BIN           ouk binary          (default REPO/target/release/ouk)
#   OUK_TESTDATA_BIN  ouk-testdata binary (default REPO/target/release/ouk-testdata)
#   SIGNING_KEY       signing key         (default REPO/testdata/cosign/fixture.key)
#   TRUST_KEY         its public key      (default REPO/testdata/cosign/fixture.pub)
#   COSIGN_PASSWORD   its password        (default hello, the fixture's)
#   SIZE              tree size (default 64MiB)
#   WEEKS             roll-ups (default 8)
#   COMPRESSED        1: trees made with `ouk-testdata tree --compressed` (OCI layers as
#                     tar+gzip, `.json.gz` feeds, a zip, a wheel, a `.jsonl.zst`: what the
#                     mirror sees through); cached as WORKDIR/trees/dayD-SIZE-c (default 0)
#   CHURN             a probability P: the second generator setting, `ouk-testdata churn
#                     --row-p P` on each plain tree (scattered row edits on every feed
#                     chunk, issue 24); cached as WORKDIR/trees/dayD-SIZE-churnP (default: off)
#   MAX_CHAIN_DEPTH   passed to `ouk mirror add --max-chain-depth` (default: ouk's own)
#   EXPORT_BASE_BIN   another ouk binary: every export is also made with it from the same
#                     root, right after OUK_BIN's (A/B of export in one run; default: none)
#
# Measured:
#   ouk --root M mirror add K_w          (timed; M trusts TRUST_KEY, so signatures are checked)
#   ouk --root M mirror export V_w --output-dir E_w    (timed; sha256 compared with K_w)
#   casync make --store=S_tar  w.caibx  K_w.tar    (the uncompressed tar inside K_w: the
#                                                   same content the mirror stores)
#   casync make --store=S_gz   w.caibx  K_w        (the .tar.gz itself, for reference)
# Disk use is `du -sB1` (allocated blocks) and `du -sb` (apparent bytes) of ROOT/store and of
# the casync stores; casync uses its default chunk sizes (16/64/256 KiB, like ouk's) and
# compressor. Exit status: 0 when every export is byte-identical, 1 otherwise.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORKROOT="${1:-/tmp/mirrorbench}"
OUK_BIN="${OUK_BIN:-$REPO/target/release/ouk}"
OUK_TESTDATA_BIN="${OUK_TESTDATA_BIN:-$REPO/target/release/ouk-testdata}"
SIGNING_KEY="${SIGNING_KEY:-$REPO/testdata/cosign/fixture.key}"
TRUST_KEY="${TRUST_KEY:-$REPO/testdata/cosign/fixture.pub}"
export COSIGN_PASSWORD="${COSIGN_PASSWORD:-hello}"
SIZE="${SIZE:-64MiB}"
WEEKS="${WEEKS:-8}"
COMPRESSED="${COMPRESSED:-0}"
CHURN="${CHURN:-}"
MAX_CHAIN_DEPTH="${MAX_CHAIN_DEPTH:-}"
EXPORT_BASE_BIN="${EXPORT_BASE_BIN:-}"
ADD_FLAGS=()
[[ -n "$MAX_CHAIN_DEPTH" ]] && ADD_FLAGS=(--max-chain-depth "$MAX_CHAIN_DEPTH")
CHANNEL=edge

die() { echo "mirror_rollups: $*" >&2; exit 2; }

[[ "$WEEKS" =~ ^[1-9][0-9]*$ ]] || die "WEEKS must be a positive integer, got '$WEEKS'"
case "$COMPRESSED" in
    0) TREE_FLAGS=(); SUFFIX="" ;;
    1) TREE_FLAGS=(--compressed); SUFFIX="-c" ;;
    *) die "COMPRESSED must be 0 or 1, got '$COMPRESSED'" ;;
esac
if [[ -n "$CHURN" ]]; then
    [[ "$COMPRESSED" == 0 ]] || die "CHURN applies to plain trees (COMPRESSED=0)"
    SUFFIX="-churn$CHURN"
fi
[[ -x "$OUK_BIN" ]] || die "ouk binary not found at $OUK_BIN
  build it: cargo build --release -p ouk-cli -p ouk-testdata   (or set OUK_BIN)"
[[ -f "$SIGNING_KEY" ]] || die "signing key not found: $SIGNING_KEY (set SIGNING_KEY)"
[[ -f "$TRUST_KEY" ]] || die "public key not found: $TRUST_KEY (set TRUST_KEY)"
for tool in casync gzip sha256sum awk du python3; do
    command -v "$tool" >/dev/null || die "'$tool' is required"
done
[[ -x /usr/bin/time ]] && /usr/bin/time -f '%e' -o /dev/null true 2>/dev/null \
    || die "GNU time (/usr/bin/time) is required (apt-get install time)"

mkdir -p "$WORKROOT/trees" "$WORKROOT/kits"
WORKROOT="$(cd "$WORKROOT" && pwd)"
WORK="$(mktemp -d "$WORKROOT/mirror-runs.XXXXXX")"
cleanup() { rm -rf -- "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

tree() { # DAY -> release tree, generated (atomically) when missing
    local day="$1" dir="$WORKROOT/trees/day$1-$SIZE$SUFFIX"
    if [[ ! -d "$dir" ]]; then
        [[ -x "$OUK_TESTDATA_BIN" ]] || die "ouk-testdata not found at $OUK_TESTDATA_BIN"
        echo "generating day-$day tree of $SIZE" >&2
        rm -rf -- "$dir.tmp"
        "$OUK_TESTDATA_BIN" tree --seed 1 --day "$day" --size "$SIZE" "${TREE_FLAGS[@]}" "$dir.tmp" >&2
        if [[ -n "$CHURN" ]]; then
            "$OUK_TESTDATA_BIN" churn --seed 1 --day "$day" --row-p "$CHURN" "$dir.tmp" >&2
        fi
        mv -- "$dir.tmp" "$dir"
    fi
    echo "$dir"
}
kit() { # VERSION TREE -> directory of the signed kit, rebuilt when built by another ouk
    local version="$1" tree="$2" dir="$WORKROOT/kits/$1-$SIZE$SUFFIX"
    local stamp; stamp="$(sha256sum <"$OUK_BIN" | cut -d' ' -f1) $tree"
    if [[ ! -f "$dir/stella-ops-offline-kit-$version-$CHANNEL.tar.gz" || "$(cat "$dir/.built-by" 2>/dev/null)" != "$stamp" ]]; then
        echo "building kit $version" >&2
        rm -rf -- "$dir" "$dir.tmp"
        "$OUK_BIN" -q kit build --version "$version" --channel "$CHANNEL" --release-dir "$tree" \
            --output-dir "$dir.tmp" --signing-key "$SIGNING_KEY" \
            --created-at "2025-11-01T00:00:00Z" >&2
        echo "$stamp" >"$dir.tmp/.built-by"
        mv -- "$dir.tmp" "$dir"
    fi
    echo "$dir"
}
disk() { du -sB1 "$1" | cut -f1; }
apparent() { du -sb "$1" | cut -f1; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$@"; }

M="$WORK/mirror"
"$OUK_BIN" -q --root "$M" trust add "$TRUST_KEY"
mkdir -p "$WORK/casync-tar" "$WORK/casync-gz" "$WORK/idx"
ok=1
sum=0
add_all=()
add_cpu=()
sum_tar=0
printf '| week | day | bundle MiB | tar MiB | add s | mirror stored MiB (cum.) | ROOT/store on disk MiB | casync (tar) MiB | casync (.tar.gz) MiB | stored as |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
for ((w = 0; w < WEEKS; w++)); do
    day=$((w * 7))
    version="2025.11.$day"
    dir="$(kit "$version" "$(tree "$day")")"
    K="$dir/stella-ops-offline-kit-$version-$CHANNEL.tar.gz"
    size=$(stat -c %s "$K")
    sum=$((sum + size))
    /usr/bin/time -f '%e %U %S' -o "$WORK/t" "$OUK_BIN" --json --root "$M" mirror add "${ADD_FLAGS[@]}" "$K" >"$WORK/add-$w.json" \
        || { cat "$WORK/add-$w.json" >&2; die "mirror add $K failed"; }
    add_s=$(cut -d' ' -f1 "$WORK/t")
    add_all+=("$add_s")
    add_cpu+=("$(awk '{printf "%.2f", $2 + $3}' "$WORK/t")")
    stored_as=$(json "$WORK/add-$w.json" 'd["bundle"]["storedAs"]')
    "$OUK_BIN" --json --root "$M" mirror stats >"$WORK/stats.json"
    stored=$(json "$WORK/stats.json" 'd["storedBytes"]')
    gzip -dc "$K" >"$WORK/w.tar"
    tar_bytes=$(stat -c %s "$WORK/w.tar")
    sum_tar=$((sum_tar + tar_bytes))
    casync make --store="$WORK/casync-tar" "$WORK/idx/tar-$w.caibx" "$WORK/w.tar" >/dev/null
    casync make --store="$WORK/casync-gz" "$WORK/idx/gz-$w.caibx" "$K" >/dev/null
    rm -f -- "$WORK/w.tar"
    printf '| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$((w + 1))" "$day" "$(mib "$size")" \
        "$(mib "$tar_bytes")" "$add_s" "$(mib "$stored")" "$(mib "$(disk "$M/store")")" \
        "$(mib "$(disk "$WORK/casync-tar")")" "$(mib "$(disk "$WORK/casync-gz")")" "$stored_as"
done
echo

# Every roll-up back, byte-identical.
export_s=()
export_cpu=()
base_s=()
base_cpu=()
export_with() { # BIN VERSION K -> appends "wall cpu" of the export to $WORK/t, checks it
    local E="$WORK/export"
    rm -rf -- "$E"
    /usr/bin/time -f '%e %U %S' -o "$WORK/t" "$1" -q --root "$M" mirror export "$2" --output-dir "$E" \
        || die "mirror export $2 with $1 failed"
    if [[ "$(sha256sum <"$E/$(basename "$3")")" != "$(sha256sum <"$3")" ]]; then
        echo "export of $2 with $1 differs from the original" >&2
        ok=0
    fi
    rm -rf -- "$E"
}
for ((w = 0; w < WEEKS; w++)); do
    day=$((w * 7))
    version="2025.11.$day"
    K="$WORKROOT/kits/$version-$SIZE$SUFFIX/stella-ops-offline-kit-$version-$CHANNEL.tar.gz"
    export_with "$OUK_BIN" "$version" "$K"
    export_s+=("$(cut -d' ' -f1 "$WORK/t")")
    export_cpu+=("$(awk '{printf "%.2f", $2 + $3}' "$WORK/t")")
    if [[ -n "$EXPORT_BASE_BIN" ]]; then
        export_with "$EXPORT_BASE_BIN" "$version" "$K"
        base_s+=("$(cut -d' ' -f1 "$WORK/t")")
        base_cpu+=("$(awk '{printf "%.2f", $2 + $3}' "$WORK/t")")
    fi
done

store_disk=$(disk "$M/store")
store_app=$(apparent "$M/store")
ctar_disk=$(disk "$WORK/casync-tar")
ctar_app=$(apparent "$WORK/casync-tar")
cgz_disk=$(disk "$WORK/casync-gz")
ctar_files=$(find "$WORK/casync-tar" -type f | wc -l)
echo "roll-ups:           $WEEKS weekly kits of a $SIZE tree (days 0..$(((WEEKS - 1) * 7)))$([[ $COMPRESSED == 1 ]] && echo ', --compressed')$([[ -n $CHURN ]] && echo ", churn --row-p $CHURN")"
echo "sum of bundles:     $(mib "$sum") MiB   (uncompressed tars: $(mib "$sum_tar") MiB)"
echo "ouk mirror:         $(mib "$store_disk") MiB on disk ($(mib "$store_app") MiB apparent: packs + index.redb)  = $(awk -v a="$store_disk" -v b="$sum" 'BEGIN {printf "%.3f", a / b}') x the bundles"
echo "casync, tars:       $(mib "$ctar_disk") MiB on disk ($(mib "$ctar_app") MiB apparent, $ctar_files chunk files) = $(awk -v a="$ctar_disk" -v b="$sum" 'BEGIN {printf "%.3f", a / b}') x the bundles"
echo "casync, .tar.gz:    $(mib "$cgz_disk") MiB on disk"
echo "mirror stats:       $(json "$WORK/stats.json" '"%d bundles, dedup ratio %.2fx, %d stored as tar" % (d["bundles"], d["dedupRatio"], d["storedAsTar"])')"
echo "see-through:        $(json "$WORK/stats.json" '"%d bundles, %d members, %.1f MiB plain for %.1f MiB compressed" % (d.get("storedSeeThrough", 0), d.get("seeThroughMembers", 0), d.get("memberPlainBytes", 0) / 1048576, d.get("memberOriginalBytes", 0) / 1048576)')"
echo "per bundle:"
"$OUK_BIN" --root "$M" mirror stats | sed -n '/^VERSION/,$p' | sed 's/^/    /'
echo "add wall s:         ${add_all[*]}"
echo "add cpu s:          ${add_cpu[*]}   (user + sys)"
echo "export wall s:      ${export_s[*]}"
echo "export cpu s:       ${export_cpu[*]}   (user + sys)"
if [[ -n "$EXPORT_BASE_BIN" ]]; then
    echo "base export wall s: ${base_s[*]}   ($EXPORT_BASE_BIN)"
    echo "base export cpu s:  ${base_cpu[*]}"
fi
echo "every export byte-identical: $([[ $ok == 1 ]] && echo yes || echo NO)"
echo "ouk:     $OUK_BIN (sha256 $(sha256sum <"$OUK_BIN" | cut -c1-16)...)"
echo "casync:  $(casync --version 2>&1 | head -1)"
echo "machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
[[ $ok == 1 ]]
