#!/usr/bin/env bash
# Measure what LTO buys the packaged `ouk` (issue 27): one `packaging/build.sh host` per
# setting of the `dist` profile, side by side, each timed (wall, user and system CPU of the
# whole build), then one runtime figure per binary: `ouk kit import` of the same kit into a
# fresh root, alternating between the binaries so background load hits them alike.
#
#   packaging/measure-lto.sh RELEASE_TREE [SETTING...]
#
#   RELEASE_TREE  the tree the kit is built from (e.g. 256 MiB of
#                 `ouk-testdata tree --seed 1 --day 0`); the kit is built once, by the first
#                 setting's binary, and imported by every binary.
#   SETTING       NAME or NAME:LTO:CODEGEN_UNITS, default: base thin:thin:16 fat:fat:1.
#                 `base` is the profile as committed; the others override it through
#                 CARGO_PROFILE_DIST_LTO / CARGO_PROFILE_DIST_CODEGEN_UNITS (no edit).
#
# Environment: WORK (default /tmp/ouk-measure-lto; builds' packages and binaries, the kit,
# the roots), RUNS (imports per binary, default 3), NICE (default 10: these are full release
# builds of every dependency; on a shared machine keep them behind the others' work).
#
# Each setting rebuilds every dependency (the profile is part of their hashes), so this is
# one full build per setting, run one at a time. Output: a markdown table on stdout (bytes,
# seconds), the raw logs under WORK/logs.
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -ge 1 ] || { echo "usage: packaging/measure-lto.sh RELEASE_TREE [SETTING...]" >&2; exit 2; }
tree=$(cd "$1" && pwd)
shift
settings=("$@")
[ ${#settings[@]} -gt 0 ] || settings=(base thin:thin:16 fat:fat:1)
work=${WORK:-/tmp/ouk-measure-lto}
runs=${RUNS:-3}
nice_level=${NICE:-10}
mkdir -p "$work/logs" "$work/bin"
export COSIGN_PASSWORD=${COSIGN_PASSWORD:-hello}
key=testdata/cosign/fixture.key
pub=testdata/cosign/fixture.pub

# build NAME LTO CGU: one packaging/build.sh host; the figures go to WORK/NAME.build.
build() {
  local name=$1 lto=$2 cgu=$3 env=()
  [ -n "$lto" ] && env+=("CARGO_PROFILE_DIST_LTO=$lto")
  [ -n "$cgu" ] && env+=("CARGO_PROFILE_DIST_CODEGEN_UNITS=$cgu")
  local out="$work/packages-$name"
  rm -rf "$out"
  echo "building $name (${env[*]:-profile as committed})" >&2
  env "${env[@]}" OUK_PACKAGE_OUT="$out" nice -n "$nice_level" \
    /usr/bin/time -f '%e %U %S' -o "$work/logs/$name.time" \
    packaging/build.sh host >"$work/logs/$name.out" 2>"$work/logs/$name.err"
  local deb rpm
  deb=$(sed -n 1p "$out/built.txt")
  rpm=$(sed -n 2p "$out/built.txt")
  # The packaged binary, as installed (stripped).
  dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/ouk >"$work/bin/ouk-$name"
  chmod 755 "$work/bin/ouk-$name"
  echo "$(cat "$work/logs/$name.time") $(stat -c %s "$work/bin/ouk-$name") $(stat -c %s "$deb") $(stat -c %s "$rpm")" \
    >"$work/$name.build"
}

names=()
for s in "${settings[@]}"; do
  IFS=: read -r name lto cgu <<<"$s"
  names+=("$name")
  build "$name" "${lto:-}" "${cgu:-}"
done

# The kit: built once, imported by every binary.
kit="$work/kit"
if [ ! -f "$kit/.done" ]; then
  rm -rf "$kit"
  "$work/bin/ouk-${names[0]}" -q kit build --version 2025.10.0 --channel edge --release-dir "$tree" \
    --output-dir "$kit" --signing-key "$key" >&2
  touch "$kit/.done"
fi
bundle=$(ls "$kit"/*.tar.gz)
for i in $(seq 1 "$runs"); do
  for name in "${names[@]}"; do
    root="$work/root-$name"
    rm -rf "$root"
    /usr/bin/time -f '%e %U %S %M' -o "$work/logs/import-$name-$i.time" \
      "$work/bin/ouk-$name" -q --root "$root" kit import "$bundle" --trust-key "$pub" \
      --free-margin 0 --max-kit-age 0 >"$work/logs/import-$name-$i.log" 2>&1
    rm -rf "$root"
  done
done

echo "| setting | build wall s | build user s | build sys s | ouk stripped B | .deb B | .rpm B | import wall s (median) | import user+sys s (median) | peak RSS KiB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for name in "${names[@]}"; do
  read -r wall user sys bin deb rpm <"$work/$name.build"
  imp=$(cat "$work/logs/import-$name-"*.time | sort -n | awk -v n="$runs" 'NR == int((n + 1) / 2) {print $1}')
  cpu=$(cat "$work/logs/import-$name-"*.time | awk '{print $2 + $3}' | sort -n | awk -v n="$runs" 'NR == int((n + 1) / 2)')
  rss=$(cat "$work/logs/import-$name-"*.time | awk '{print $4}' | sort -n | tail -n 1)
  echo "| $name | $wall | $user | $sys | $bin | $deb | $rpm | $imp | $cpu | $rss |"
done
