#!/usr/bin/env bash
# Side-by-side benchmark of `ouk kit build` against
#   tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C TREE -cf - . | gzip -6
# on the same release tree, in the same run (issue 3: ouk <= 1.5 x tar|gzip -6).
# Also checks that two builds of the same tree give byte-identical outputs.
#
# usage: benches/scripts/kit_build_vs_tar.sh [TREE] [WORKDIR]
#   TREE     release tree (default /tmp/kitbench/release); generated with
#            `ouk-testdata tree --seed 1 --day 0 --size $TREE_SIZE` when missing
#   WORKDIR  where outputs are written (default /tmp/kitbench); the script works in a
#            fresh subdirectory of it and removes that subdirectory on exit
#
# environment:
#   OUK_BIN           ouk binary          (default REPO/target/release/ouk)
#   OUK_TESTDATA_BIN  ouk-testdata binary (default REPO/target/release/ouk-testdata)
#   SIGNING_KEY       signing key         (default REPO/testdata/cosign/fixture.key)
#   COSIGN_PASSWORD   its password        (default hello, the fixture's)
#   RUNS              timed runs of each command (default 3; one untimed warm-up first)
#   TREE_SIZE         size of a generated tree (default 1GiB)
#   GZIP_LEVEL        gzip level of the reference (default 6)
#
# The page cache is not dropped (that needs root): both commands read a warm tree. Runs
# alternate (ouk, tar, ouk, tar, ...) so background noise hits both alike; compare the
# ratio, not the absolute times. Exit status: 0 when the outputs are byte-identical,
# 1 otherwise (the timing goal is reported, not enforced).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TREE="${1:-/tmp/kitbench/release}"
WORKROOT="${2:-/tmp/kitbench}"
OUK_BIN="${OUK_BIN:-$REPO/target/release/ouk}"
OUK_TESTDATA_BIN="${OUK_TESTDATA_BIN:-$REPO/target/release/ouk-testdata}"
SIGNING_KEY="${SIGNING_KEY:-$REPO/testdata/cosign/fixture.key}"
export COSIGN_PASSWORD="${COSIGN_PASSWORD:-hello}"
RUNS="${RUNS:-3}"
TREE_SIZE="${TREE_SIZE:-1GiB}"
GZIP_LEVEL="${GZIP_LEVEL:-6}"
VERSION=2025.10.0
CHANNEL=edge
BUNDLE="stella-ops-offline-kit-$VERSION-$CHANNEL.tar.gz"

die() { echo "kit_build_vs_tar: $*" >&2; exit 2; }

[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
[[ -x "$OUK_BIN" ]] || die "ouk binary not found at $OUK_BIN
  build it: cargo build --release -p ouk-cli -p ouk-testdata   (or set OUK_BIN)"
[[ -f "$SIGNING_KEY" ]] || die "signing key not found: $SIGNING_KEY (set SIGNING_KEY)"
for tool in tar gzip sha256sum awk sort; do
    command -v "$tool" >/dev/null || die "'$tool' is required"
done
tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar is required (--sort=name)"

if [[ ! -d "$TREE" ]]; then
    [[ -x "$OUK_TESTDATA_BIN" ]] || die "tree $TREE missing and ouk-testdata not found at $OUK_TESTDATA_BIN
  build it: cargo build --release -p ouk-testdata   (or set OUK_TESTDATA_BIN)"
    echo "generating $TREE_SIZE release tree in $TREE" >&2
    mkdir -p "$(dirname "$TREE")"
    "$OUK_TESTDATA_BIN" tree --seed 1 --day 0 --size "$TREE_SIZE" "$TREE" >&2
fi
TREE="$(cd "$TREE" && pwd)"

mkdir -p "$WORKROOT"
WORK="$(mktemp -d "$WORKROOT/kit-vs-tar.XXXXXX")"
cleanup() { rm -rf -- "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# Timer: GNU time gives wall, peak RSS, user and sys; else bash's `time` (no RSS).
if [[ -x /usr/bin/time ]] && /usr/bin/time -f '%e' -o /dev/null true 2>/dev/null; then
    HAVE_GNU_TIME=1
else
    HAVE_GNU_TIME=0
fi

# timed TIMEFILE CMD...: runs CMD, writes "wall_s peak_rss_kib user_s sys_s" to TIMEFILE.
timed() {
    local tf="$1"; shift
    if (( HAVE_GNU_TIME )); then
        /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@"
    else
        local TIMEFORMAT='%R - %U %S'
        { time "$@" ; } 2>"$tf.bash"
        tail -n 1 "$tf.bash" >"$tf"
    fi
}

run_ouk() { # OUT LOG
    local out="$1" log="$2"
    rm -rf -- "$out"
    "$OUK_BIN" kit build --version "$VERSION" --channel "$CHANNEL" --release-dir "$TREE" \
        --output-dir "$out" --signing-key "$SIGNING_KEY" >"$log" 2>&1
}

run_tar() { # OUTFILE
    set -o pipefail
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$TREE" -cf - . \
        | gzip "-$GZIP_LEVEL" >"$1"
}
# `timed` runs them in a child bash (GNU time cannot run a shell function).
export -f run_ouk run_tar
export OUK_BIN TREE SIGNING_KEY VERSION CHANNEL GZIP_LEVEL

# Files of a kit output set whose bytes must not change between builds. The .sig and
# .jws hold ECDSA signatures, which may be randomized; their signed content is the
# bundle and the manifest, compared here.
DETERMINISTIC=(
    "$BUNDLE" "$BUNDLE.sha256" "$BUNDLE.metadata.json"
    manifest/offline-manifest.json manifest/offline-manifest.json.sha256
)
digest_set() { # OUT -> one line per file: sha256 name
    local out="$1" f
    for f in "${DETERMINISTIC[@]}"; do
        if [[ -f "$out/$f" ]]; then
            (cd "$out" && sha256sum -- "$f")
        else
            echo "MISSING  $f"
        fi
    done
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

tree_bytes=$(find "$TREE" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
tree_files=$(find "$TREE" -type f | wc -l)
echo "tree:    $TREE ($tree_files files, $tree_bytes bytes)"
echo "ouk:     $OUK_BIN"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "timer:   $([[ $HAVE_GNU_TIME == 1 ]] && echo '/usr/bin/time -f "%e %M %U %S"' || echo 'bash time (no peak RSS)')"
echo

# Warm-up (untimed): also the first of the reproducibility builds.
echo "warm-up ..." >&2
if ! run_ouk "$WORK/ouk-ref" "$WORK/ouk-ref.log"; then
    cat "$WORK/ouk-ref.log" >&2
    die "ouk kit build failed (warm-up)"
fi
digest_set "$WORK/ouk-ref" >"$WORK/ref.sums"
ref_bundle_sha=$(sha256sum <"$WORK/ouk-ref/$BUNDLE" | cut -d' ' -f1)
rm -rf -- "$WORK/ouk-ref"
bash -c 'run_tar "$1"' _ "$WORK/tar.tar.gz" || die "tar | gzip failed (warm-up)"
rm -f -- "$WORK/tar.tar.gz"

: >"$WORK/rows"
identical=1
for ((i = 1; i <= RUNS; i++)); do
    echo "run $i/$RUNS ..." >&2
    out="$WORK/ouk-$i"
    if ! timed "$WORK/t" bash -c 'run_ouk "$1" "$2"' _ "$out" "$WORK/ouk-$i.log"; then
        cat "$WORK/ouk-$i.log" >&2
        die "ouk kit build failed (run $i)"
    fi
    size=$(stat -c %s "$out/$BUNDLE")
    echo "ouk $i $(cat "$WORK/t") $size" >>"$WORK/rows"
    if ! digest_set "$out" | cmp -s - "$WORK/ref.sums"; then
        identical=0
        echo "run $i differs from the warm-up build:" >&2
        digest_set "$out" | diff "$WORK/ref.sums" - >&2 || true
    fi
    rm -rf -- "$out"

    if ! timed "$WORK/t" bash -c 'run_tar "$1"' _ "$WORK/tar.tar.gz"; then
        die "tar | gzip failed (run $i)"
    fi
    size=$(stat -c %s "$WORK/tar.tar.gz")
    echo "tar $i $(cat "$WORK/t") $size" >>"$WORK/rows"
    rm -f -- "$WORK/tar.tar.gz"
done

# Table: one line per run, then medians.
awk -v gnu="$HAVE_GNU_TIME" '
function mib(k) { return (k == "-" ? "-" : sprintf("%.1f", k / 1024)) }
BEGIN {
    printf "| command | run | wall s | user+sys s | peak RSS MiB | output bytes |\n"
    printf "|---|---|---|---|---|---|\n"
}
{
    name = ($1 == "ouk" ? "ouk kit build" : "tar \\| gzip -" ENVIRON["GZIP_LEVEL"])
    printf "| %s | %s | %.2f | %.2f | %s | %d |\n", name, $2, $3, $5 + $6, mib($4), $7
}' "$WORK/rows"

med() { awk -v c="$1" -v f="$2" '$1 == c {print $f}' "$WORK/rows" | median; }
ouk_wall=$(med ouk 3); tar_wall=$(med tar 3)
ouk_rss=$(med ouk 4); tar_rss=$(med tar 4)
ouk_cpu=$(awk '$1 == "ouk" {print $5 + $6}' "$WORK/rows" | median)
tar_cpu=$(awk '$1 == "tar" {print $5 + $6}' "$WORK/rows" | median)
ouk_size=$(med ouk 7); tar_size=$(med tar 7)
max_rss=$(awk '$1 == "ouk" && $4 != "-" {if ($4 > m) m = $4} END {print (m == "" ? "-" : m)}' "$WORK/rows")
ratio=$(awk -v a="$ouk_wall" -v b="$tar_wall" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')

echo
echo "median of $RUNS:"
printf '  ouk kit build   wall %6.2f s  cpu %6.2f s  rss %7s KiB  bundle %d bytes\n' \
    "$ouk_wall" "$ouk_cpu" "$ouk_rss" "$ouk_size"
printf '  tar | gzip -%s   wall %6.2f s  cpu %6.2f s  rss %7s KiB  output %d bytes\n' \
    "$GZIP_LEVEL" "$tar_wall" "$tar_cpu" "$tar_rss" "$tar_size"
echo "  ouk peak RSS over all runs: $max_rss KiB"
echo "ratio ouk/tar (median wall): $ratio  (goal <= 1.5: $(awk -v r="$ratio" 'BEGIN {print (r <= 1.5 ? "met" : "NOT met")}'))"
echo "ratio ouk/tar (median user+sys CPU): $(awk -v a="$ouk_cpu" -v b="$tar_cpu" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')  (ouk: $(nproc) compression thread(s); gzip: 1)"
echo
echo "reproducibility: warm-up + $RUNS builds of the same tree, bundle sha256 $ref_bundle_sha"
sed 's/^/  /' "$WORK/ref.sums"
if (( identical )); then
    echo "byte-identical: PASS"
else
    echo "byte-identical: FAIL"
    exit 1
fi
