#!/usr/bin/env bash
# dsse_payload_ab.sh NAME OLD_TREE NEW_TREE (issue 23, "DSSE payload derived on the host").
# Kits 1.0.0 and 1.0.1 of the two trees, built once with $AFTER (same --created-at, signed
# with the fixture key); a delta between them made with $BEFORE and with $AFTER (same
# kits, so only the delta maker differs); per binary: bundle size, format, payload, header
# raw/deflated, make CPU user/sys, wall, peak KiB; `delta show --json` kept in $WORK/NAME;
# then the $AFTER delta imported onto the baseline kit in a fresh root (must activate).
set -euo pipefail
name=$1 old=$2 new=$3
after=${AFTER:?release ouk to measure} before=${BEFORE:?release ouk to compare with}
here=$(cd "$(dirname "$0")/../.." && pwd)
key=$here/testdata/cosign/fixture.key
export COSIGN_PASSWORD=hello
d=${WORK:-/tmp/dsse-ab}/$name; rm -rf "$d"; mkdir -p "$d"
for v in 0 1; do
  t=$old; [ $v = 1 ] && t=$new
  "$after" -q kit build --version 1.0.$v --channel bench --release-dir "$t" --output-dir "$d/k$v" \
    --signing-key "$key" --allow-missing-debug --created-at 2025-10-23T00:00:00Z --captured-at 2025-10-23T00:00:00Z
done
b0=$(ls "$d"/k0/*.tar.gz) b1=$(ls "$d"/k1/*.tar.gz)
for bin in before after; do
  exe=$before; [ $bin = after ] && exe=$after
  mkdir -p "$d/$bin"
  /usr/bin/time -f '%U %S %e %M' -o "$d/$bin.time" "$exe" -q delta make --from "$b0" --to "$b1" \
    --output "$d/$bin/pair.delta.tgz" --signing-key "$key"
  "$exe" --json delta show "$d/$bin/pair.delta.tgz" > "$d/$bin.show.json"
  tar -xzf "$d/$bin/pair.delta.tgz" -C "$d/$bin" delta/delta.json
  echo "$bin: $(stat -c %s "$d/$bin/pair.delta.tgz") B; format $(python3 -c "import json;print(json.load(open('$d/$bin/delta/delta.json'))['format'])"); payload $(python3 -c "import json;print(json.load(open('$d/$bin/delta/delta.json'))['payloadSize'])"); header raw $(stat -c %s "$d/$bin/delta/delta.json") deflated $(gzip -9c "$d/$bin/delta/delta.json" | wc -c); time $(cat "$d/$bin.time")"
done
# Import check with the after binary: baseline kit, then the delta; ends on the target generation.
root=$d/root; rm -rf "$root"
"$after" --root "$root" -q trust add $here/testdata/cosign/fixture.pub
"$after" --root "$root" -q kit import "$b0" --free-margin 0 --max-kit-age 0
"$after" --root "$root" --json kit import "$d/after/pair.delta.tgz" --free-margin 0 --max-kit-age 0 > "$d/import.json"
echo "import: $(python3 -c "import json;j=json.load(open('$d/import.json'));print({k:j[k] for k in j if k in ('generation','version','outcome','status')})")"
