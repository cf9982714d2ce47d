#!/usr/bin/env bash
# Side-by-side delta comparison: ouk vs xdelta3, zstd --patch-from, bsdiff and casync.
#
# For each pair of trees (real successive releases from ../shared/corpus, and the synthetic
# testdata day0 -> day1 trees) this builds the two kits with ouk (the same inputs every tool
# sees), then:
#   ouk      ouk delta make --from OLD.kit --to NEW.kit   (apply: ouk kit import of the delta)
#   peers    run on the deterministic tars inside the same two kits (gunzipped bundles):
#            xdelta3 -9, zstd -19 --long=31 --patch-from, bsdiff, casync (chunk store delta)
# and prints one table per pair: size, make time, apply time, peak RSS, and ouk's size
# relative to the smallest peer.
#
# usage: benches/peers/run.sh [--corpus DIR] [--testdata-size SIZE] [--work DIR] [--only NAME]
# needs: xdelta3 zstd bsdiff casync /usr/bin/time (apt-get install xdelta3 zstd bsdiff casync time)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
corpus=${OUK_CORPUS:-$HOME/.cache/ouk-corpus}
size=64MiB
work=${TMPDIR:-/tmp}/ouk-peers
only=
while [ $# -gt 0 ]; do
  case $1 in
    --corpus) corpus=$2; shift 2 ;;
    --testdata-size) size=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for t in xdelta3 zstd bsdiff bspatch casync /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "missing $t: apt-get install xdelta3 zstd bsdiff casync time" >&2; exit 1; }
done
ouk=$here/target/release/ouk
gen=$here/target/release/ouk-testdata
if [ ! -x "$ouk" ] || [ ! -x "$gen" ]; then
  (cd "$here" && cargo build -q --release -p ouk-cli -p ouk-testdata)
fi
key=$here/testdata/cosign/fixture.key
export COSIGN_PASSWORD=hello
mkdir -p "$work"

# time_cmd OUTVAR CMD...: run, store "seconds peakKB" in OUTVAR
time_cmd() {
  local var=$1; shift
  local tf; tf=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$tf" "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; cat "$tf" >&2; rm -f "$tf"; return 1; }
  printf -v "$var" '%s' "$(tail -n 1 "$tf")"
  rm -f "$tf"
}

kit() { # kit TREE VERSION OUTDIR
  rm -rf "$3"
  "$ouk" -q kit build --version "$2" --channel bench --release-dir "$1" --output-dir "$3" \
    --signing-key "$key" --allow-missing-debug --created-at 2025-10-23T00:00:00Z --captured-at 2025-10-23T00:00:00Z
}

pair() { # pair NAME OLD_TREE NEW_TREE
  local name=$1 old=$2 new=$3 d=$work/$1
  [ -n "$only" ] && [ "$only" != "$name" ] && return 0
  rm -rf "$d" && mkdir -p "$d"
  kit "$old" 1.0.0 "$d/k0"; kit "$new" 1.0.1 "$d/k1"
  local b0=$d/k0/stella-ops-offline-kit-1.0.0-bench.tar.gz b1=$d/k1/stella-ops-offline-kit-1.0.1-bench.tar.gz
  gzip -dc "$b0" > "$d/old.tar"; gzip -dc "$b1" > "$d/new.tar"
  local rows=() t a sz

  # ouk
  time_cmd t "$ouk" -q delta make --from "$b0" --to "$b1" --output "$d/ouk/pair.delta.tgz" --signing-key "$key"
  sz=$(stat -c %s "$d/ouk/pair.delta.tgz")
  "$ouk" -q --root "$d/root" trust add "${key%.key}.pub"
  "$ouk" -q --root "$d/root" kit import "$b0" --free-margin 0 --max-kit-age 0
  time_cmd a "$ouk" -q --root "$d/root" kit import "$d/ouk/pair.delta.tgz" --free-margin 0 --max-kit-age 0
  rows+=("ouk $sz $t $a")

  time_cmd t xdelta3 -9 -e -f -s "$d/old.tar" "$d/new.tar" "$d/x.xd3"
  time_cmd a xdelta3 -d -f -s "$d/old.tar" "$d/x.xd3" "$d/x.out"
  cmp -s "$d/x.out" "$d/new.tar" || echo "xdelta3 round trip differs" >&2
  rows+=("xdelta3-9 $(stat -c %s "$d/x.xd3") $t $a")

  time_cmd t zstd -q -f -19 --long=31 --patch-from="$d/old.tar" "$d/new.tar" -o "$d/x.zst"
  time_cmd a zstd -q -f -d --long=31 --patch-from="$d/old.tar" "$d/x.zst" -o "$d/x.out"
  cmp -s "$d/x.out" "$d/new.tar" || echo "zstd round trip differs" >&2
  rows+=("zstd-19-long-patch-from $(stat -c %s "$d/x.zst") $t $a")

  time_cmd t bsdiff "$d/old.tar" "$d/new.tar" "$d/x.bsdiff"
  time_cmd a bspatch "$d/old.tar" "$d/x.out" "$d/x.bsdiff"
  cmp -s "$d/x.out" "$d/new.tar" || echo "bsdiff round trip differs" >&2
  rows+=("bsdiff $(stat -c %s "$d/x.bsdiff") $t $a")

  # casync: chunk store of the old tar, then what the new tar's index adds to it.
  rm -rf "$d/cas" && mkdir -p "$d/cas"
  casync make --store="$d/cas/store" "$d/cas/old.caibx" "$d/old.tar" >/dev/null
  local before; before=$(du -sb "$d/cas/store" | cut -f1)
  time_cmd t casync make --store="$d/cas/store" "$d/cas/new.caibx" "$d/new.tar"
  local after; after=$(du -sb "$d/cas/store" | cut -f1)
  sz=$(( after - before + $(stat -c %s "$d/cas/new.caibx") ))
  rm -f "$d/x.out"
  time_cmd a casync extract --store="$d/cas/store" "$d/cas/new.caibx" "$d/x.out"
  cmp -s "$d/x.out" "$d/new.tar" || echo "casync round trip differs" >&2
  rows+=("casync $sz $t $a")

  local best; best=$(printf '%s\n' "${rows[@]:1}" | awk '{print $2}' | sort -n | head -1)
  echo
  echo "### $name  (old kit $(stat -c %s "$b0") B, new kit $(stat -c %s "$b1") B, new tar $(stat -c %s "$d/new.tar") B)"
  echo
  echo "| tool | delta bytes | vs best peer | make s | make peak MiB | apply s | apply peak MiB |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for r in "${rows[@]}"; do
    set -- $r
    awk -v n="$1" -v s="$2" -v b="$best" -v mt="$3" -v mm="$4" -v at="$5" -v am="$6" \
      'BEGIN { printf "| %s | %d | %.3f | %.2f | %.0f | %.2f | %.0f |\n", n, s, s/b, mt, mm/1024, at, am/1024 }'
  done
}

if [ -d "$corpus" ]; then
  for p in "$corpus"/*/; do
    name=$(basename "$p")
    [ -d "$p/old" ] && [ -d "$p/new" ] && pair "$name" "$p/old" "$p/new"
  done
else
  echo "no corpus at $corpus (run ../shared/corpus/fetch-real-pairs.sh $corpus)" >&2
fi
td=$work/trees-$size   # not $work/<pair name>: pair() wipes that
if [ ! -f "$td/trees.complete" ]; then
  rm -rf "$td"; mkdir -p "$td"
  "$gen" tree --seed 1 --day 0 --size "$size" "$td/day0" >/dev/null
  "$gen" tree --seed 1 --day 1 --size "$size" "$td/day1" >/dev/null
  # The marker sits outside the trees, so it is not part of the kits.
  touch "$td/trees.complete"
fi
pair "testdata-$size" "$td/day0" "$td/day1"
