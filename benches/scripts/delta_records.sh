#!/usr/bin/env bash
# The record tier's goals, side by side in one run (issue 23): for each JSON-heavy pair,
# ouk's delta between the two kits vs xdelta3 -9, zstd -19 --long=31 --patch-from and
# bsdiff on the deterministic tars inside the same two kits (the gunzipped bundles, as in
# benches/peers/run.sh), and whether ouk meets the goal (<= 0.9 x the best peer; <= best +
# 400 B where the best is under 4 KiB).
#
# Pairs:
#   caniuse-lite, prettier   DIR/<name>/{old,new} from ../shared/corpus/fetch-real-pairs.sh
#   bcd                      @mdn/browser-compat-data 8.1.7 -> 8.1.9 (a 20 MB JSON object
#                            database; the two published releases in a row), `npm pack`
#   testdata-64MiB           ouk-testdata tree --seed 1 --day 0/1 --size 64MiB
#   sorted-feeds             benches/scripts/gen_sorted_feeds.py --seed 1 --day 0/1 (a
#                            second generator: sort_keys JSON lines, 20-26 MB feeds, 3 %
#                            of rows modified, no image layer)
#   sorted-feeds-heavy       the same generator, another setting: --seed 2 --modify-pct 8
#                            --new-per-mille 12 (so a result is not tuned to one setting)
#   testdata-64MiB-s2        ouk-testdata tree --seed 2 --day 0/1 --size 64MiB
#
# ouk's delta is made with the default options (the host derives the feed index: format
# ouk-delta/5); EXTRA_MAKE_ARGS (e.g. --no-derive) are passed to `delta make`, to measure
# the format before.
#
# usage: benches/scripts/delta_records.sh [--corpus DIR] [--work DIR] [--only NAME]
# needs: xdelta3 zstd bsdiff npm python3 /usr/bin/time
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
corpus=/work/corpus-real
work=${TMPDIR:-/tmp}/ouk-delta-records
only=
while [ $# -gt 0 ]; do
  case $1 in
    --corpus) corpus=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
ouk=$here/target/release/ouk
gen=$here/target/release/ouk-testdata
key=$here/testdata/cosign/fixture.key
export COSIGN_PASSWORD=hello
mkdir -p "$work"

kit() { # kit TREE VERSION OUTDIR
  rm -rf "$3"
  "$ouk" -q kit build --version "$2" --channel bench --release-dir "$1" --output-dir "$3" \
    --signing-key "$key" --allow-missing-debug --created-at 2025-10-23T00:00:00Z --captured-at 2025-10-23T00:00:00Z
}

trees() { # trees NAME -> prints OLD NEW
  local name=$1 t=$work/trees/$1
  case $name in
    caniuse-lite|prettier) echo "$corpus/$name/old $corpus/$name/new" ;;
    bcd)
      for v in 8.1.7 8.1.9; do
        if [ ! -f "$t/$v/.done" ]; then
          rm -rf "$t/$v" && mkdir -p "$t/$v"
          (cd "$t/$v" && npm pack --silent "@mdn/browser-compat-data@$v" >/dev/null && tar -xzf ./*.tgz && rm ./*.tgz)
          touch "$t/$v/.done"
        fi
      done
      echo "$t/8.1.7/package $t/8.1.9/package" ;;
    testdata-64MiB)
      for d in 0 1; do
        [ -d "$t/d$d" ] || "$gen" tree --seed 1 --day $d --size 64MiB "$t/d$d" >/dev/null
      done
      echo "$t/d0 $t/d1" ;;
    sorted-feeds)
      for d in 0 1; do
        [ -d "$t/d$d" ] || python3 "$here/benches/scripts/gen_sorted_feeds.py" --seed 1 --day $d "$t/d$d"
      done
      echo "$t/d0 $t/d1" ;;
    sorted-feeds-heavy)
      for d in 0 1; do
        [ -d "$t/d$d" ] || python3 "$here/benches/scripts/gen_sorted_feeds.py" --seed 2 --day $d \
          --modify-pct 8 --new-per-mille 12 "$t/d$d"
      done
      echo "$t/d0 $t/d1" ;;
    testdata-64MiB-s2)
      for d in 0 1; do
        [ -d "$t/d$d" ] || "$gen" tree --seed 2 --day $d --size 64MiB "$t/d$d" >/dev/null
      done
      echo "$t/d0 $t/d1" ;;
  esac
}

printf '| pair | ouk | xdelta3 -9 | zstd -19 --long=31 --patch-from | bsdiff | best peer | ouk / best | goal | met | ouk make s / peak MiB |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|---|---:|\n'
for name in caniuse-lite prettier bcd testdata-64MiB sorted-feeds sorted-feeds-heavy testdata-64MiB-s2; do
  [ -n "$only" ] && [ "$only" != "$name" ] && continue
  read -r old new < <(trees "$name")
  d=$work/$name
  rm -rf "$d/k0" "$d/k1" "$d/ouk" && mkdir -p "$d"
  kit "$old" 1.0.0 "$d/k0"; kit "$new" 1.0.1 "$d/k1"
  b0=$d/k0/stella-ops-offline-kit-1.0.0-bench.tar.gz b1=$d/k1/stella-ops-offline-kit-1.0.1-bench.tar.gz
  gzip -dc "$b0" > "$d/old.tar"; gzip -dc "$b1" > "$d/new.tar"
  /usr/bin/time -f '%e %M' -o "$d/ouk.time" "$ouk" -q delta make --from "$b0" --to "$b1" \
    --output "$d/ouk/pair.delta.tgz" --signing-key "$key" ${EXTRA_MAKE_ARGS:-}
  read -r ouk_s ouk_kb < "$d/ouk.time"
  o=$(stat -c %s "$d/ouk/pair.delta.tgz")
  xdelta3 -9 -e -f -s "$d/old.tar" "$d/new.tar" "$d/x.xd3"; x=$(stat -c %s "$d/x.xd3")
  zstd -q -f -19 --long=31 --patch-from="$d/old.tar" "$d/new.tar" -o "$d/x.zst"; z=$(stat -c %s "$d/x.zst")
  bsdiff "$d/old.tar" "$d/new.tar" "$d/x.bsdiff"; b=$(stat -c %s "$d/x.bsdiff")
  best=$x; [ "$z" -lt "$best" ] && best=$z; [ "$b" -lt "$best" ] && best=$b
  if [ "$best" -lt 4096 ]; then goal=$((best + 400)); else goal=$((best * 9 / 10)); fi
  met=no; [ "$o" -le "$goal" ] && met=yes
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n' "$name" "$o" "$x" "$z" "$b" "$best" \
    "$(python3 -c "print(f'{$o/$best:.3f}')")" "$goal" "$met" "$ouk_s" "$((ouk_kb / 1024))"
  rm -f "$d/old.tar" "$d/new.tar" "$d/x.xd3" "$d/x.zst" "$d/x.bsdiff"
done
