#!/usr/bin/env bash
# The mirror on object storage (issue 9): the same weekly roll-ups (days 0, 7, ... of the
# synthetic release tree, signed) added to a local mirror and to a mirror whose store is a
# bucket on s3s-fs on loopback (`--store-url s3://BUCKET/PREFIX`), then every roll-up
# exported from both. Reports ingest and export MiB/s for each backend, and the requests
# the object-storage runs sent (from `--json` output) per GiB ingested; every export is
# checked byte-identical with its original.
#
# usage: benches/scripts/mirror_s3.sh [WORKDIR]
#   WORKDIR  default /tmp/mirrorbench (shared with mirror_rollups.sh: trees and kits made
#            there are reused). Roots, the s3s-fs data directory and exports go to a fresh
#            WORKDIR/s3-runs.XXXXXX, removed on exit.
#
# environment:
#   OUK_BIN, OUK_TESTDATA_BIN, SIGNING_KEY, TRUST_KEY, COSIGN_PASSWORD   as mirror_rollups.sh
#   S3S_FS            s3s-fs binary (default: from PATH or ~/.cargo/bin)
#   SIZE              tree size (default 64MiB)
#   WEEKS             roll-ups (default 4)
#   PACK_SIZE         object-storage pack target (default 32MiB, ouk's default)
#
# Timed with /usr/bin/time (wall seconds):
#   ouk --root L mirror add K_w                        ouk --root L mirror export V_w ...
#   ouk --root R --store-url URL mirror add K_w        ouk --root R --store-url URL mirror export V_w ...
# MiB/s = bundle bytes / wall seconds (what a mirror operator sees: verify + store, or
# rehydrate + re-compress + check). Requests are the `requests` object of each command's
# --json output (GET/PUT/LIST/HEAD sent by that process; retries not counted).
# Exit status: 0 when every export is byte-identical, 1 otherwise.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORKROOT="${1:-/tmp/mirrorbench}"
OUK_BIN="${OUK_BIN:-$REPO/target/release/ouk}"
OUK_TESTDATA_BIN="${OUK_TESTDATA_BIN:-$REPO/target/release/ouk-testdata}"
SIGNING_KEY="${SIGNING_KEY:-$REPO/testdata/cosign/fixture.key}"
TRUST_KEY="${TRUST_KEY:-$REPO/testdata/cosign/fixture.pub}"
export COSIGN_PASSWORD="${COSIGN_PASSWORD:-hello}"
SIZE="${SIZE:-64MiB}"
WEEKS="${WEEKS:-4}"
PACK_SIZE="${PACK_SIZE:-32MiB}"
CHANNEL=edge
BUCKET=ouk-bench
URL="s3://$BUCKET/mirror"

die() { echo "mirror_s3: $*" >&2; exit 2; }

[[ "$WEEKS" =~ ^[1-9][0-9]*$ ]] || die "WEEKS must be a positive integer, got '$WEEKS'"
[[ -x "$OUK_BIN" ]] || die "ouk binary not found at $OUK_BIN
  build it: cargo build --release -p ouk-cli -p ouk-testdata   (or set OUK_BIN)"
S3S_FS="${S3S_FS:-$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")}"
[[ -x "$S3S_FS" ]] || die "s3s-fs not found (cargo install s3s-fs@0.14.1 --features binary --locked)"
for tool in sha256sum awk python3; do
    command -v "$tool" >/dev/null || die "'$tool' is required"
done
[[ -x /usr/bin/time ]] && /usr/bin/time -f '%e' -o /dev/null true 2>/dev/null \
    || die "GNU time (/usr/bin/time) is required (apt-get install time)"

mkdir -p "$WORKROOT/trees" "$WORKROOT/kits"
WORKROOT="$(cd "$WORKROOT" && pwd)"
WORK="$(mktemp -d "$WORKROOT/s3-runs.XXXXXX")"
S3_PID=
cleanup() { [[ -n "$S3_PID" ]] && kill "$S3_PID" 2>/dev/null; rm -rf -- "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

tree() { # DAY -> release tree, generated (atomically) when missing
    local day="$1" dir="$WORKROOT/trees/day$1-$SIZE"
    if [[ ! -d "$dir" ]]; then
        [[ -x "$OUK_TESTDATA_BIN" ]] || die "ouk-testdata not found at $OUK_TESTDATA_BIN"
        echo "generating day-$day tree of $SIZE" >&2
        rm -rf -- "$dir.tmp"
        "$OUK_TESTDATA_BIN" tree --seed 1 --day "$day" --size "$SIZE" "$dir.tmp" >&2
        mv -- "$dir.tmp" "$dir"
    fi
    echo "$dir"
}
kit() { # VERSION TREE -> directory of the signed kit (as mirror_rollups.sh makes them)
    local version="$1" tree="$2" dir="$WORKROOT/kits/$1-$SIZE"
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
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN {printf "%.1f", (s > 0 ? b / 1048576 / s : 0)}'; }
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$@"; }

# s3s-fs on a free loopback port, SigV4 keys, one bucket.
mkdir -p "$WORK/s3-data/$BUCKET"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$S3S_FS" --host 127.0.0.1 --port "$PORT" --access-key bench-access --secret-key bench-secret-0123456789 \
    "$WORK/s3-data" >"$WORK/s3s.log" 2>&1 &
S3_PID=$!
for _ in $(seq 500); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.02
done
export AWS_ACCESS_KEY_ID=bench-access AWS_SECRET_ACCESS_KEY=bench-secret-0123456789 \
    AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true

L="$WORK/local"
R="$WORK/remote"
"$OUK_BIN" -q --root "$L" trust add "$TRUST_KEY"
"$OUK_BIN" -q --root "$R" trust add "$TRUST_KEY"
S3=("$OUK_BIN" --root "$R" --store-url "$URL" --store-pack-size "$PACK_SIZE")

ok=1
sum=0
declare -A secs=([la]=0 [ra]=0 [le]=0 [re]=0)
req_add='{"get":0,"put":0,"list":0,"head":0,"bytesPut":0,"bytesGot":0}'
req_exp="$req_add"
add_req() { python3 -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.load(open(sys.argv[2]))["requests"]; print(json.dumps({k: a[k] + b[k] for k in a}))' "$@"; }
kits=()
printf '| week | bundle MiB | local add s | s3 add s | s3 add GET/PUT/LIST/HEAD | s3 MiB put |\n'
printf '|---|---|---|---|---|---|\n'
for ((w = 0; w < WEEKS; w++)); do
    day=$((w * 7))
    version="2025.11.$day"
    dir="$(kit "$version" "$(tree "$day")")"
    K="$dir/stella-ops-offline-kit-$version-$CHANNEL.tar.gz"
    kits+=("$K")
    size=$(stat -c %s "$K")
    sum=$((sum + size))
    /usr/bin/time -f '%e' -o "$WORK/t" "$OUK_BIN" -q --root "$L" mirror add "$K" || die "local mirror add $K failed"
    la=$(cat "$WORK/t")
    /usr/bin/time -f '%e' -o "$WORK/t" "${S3[@]}" --json mirror add "$K" >"$WORK/add-$w.json" \
        || { cat "$WORK/add-$w.json" >&2; die "s3 mirror add $K failed"; }
    ra=$(cat "$WORK/t")
    secs[la]=$(awk -v a="${secs[la]}" -v b="$la" 'BEGIN {print a + b}')
    secs[ra]=$(awk -v a="${secs[ra]}" -v b="$ra" 'BEGIN {print a + b}')
    req_add=$(add_req "$req_add" "$WORK/add-$w.json")
    printf '| %d | %s | %s | %s | %s | %s |\n' "$((w + 1))" "$(mib "$size")" "$la" "$ra" \
        "$(json "$WORK/add-$w.json" '"%d/%d/%d/%d" % tuple(d["requests"][k] for k in ("get","put","list","head"))')" \
        "$(mib "$(json "$WORK/add-$w.json" 'd["requests"]["bytesPut"]')")"
done
echo

for ((w = 0; w < WEEKS; w++)); do
    version="2025.11.$((w * 7))"
    K="${kits[$w]}"
    for side in l r; do
        E="$WORK/export-$side-$w"
        if [[ $side == l ]]; then
            /usr/bin/time -f '%e' -o "$WORK/t" "$OUK_BIN" -q --root "$L" mirror export "$version" --output-dir "$E" \
                || die "local mirror export $version failed"
        else
            /usr/bin/time -f '%e' -o "$WORK/t" "${S3[@]}" --json mirror export "$version" --output-dir "$E" >"$WORK/exp-$w.json" \
                || die "s3 mirror export $version failed"
            req_exp=$(add_req "$req_exp" "$WORK/exp-$w.json")
        fi
        secs[${side}e]=$(awk -v a="${secs[${side}e]}" -v b="$(cat "$WORK/t")" 'BEGIN {print a + b}')
        if [[ "$(sha256sum <"$E/$(basename "$K")")" != "$(sha256sum <"$K")" ]]; then
            echo "export of $version ($side) differs from the original" >&2
            ok=0
        fi
        rm -rf -- "$E"
    done
done

# A fresh root rebuilt from the bucket alone.
/usr/bin/time -f '%e' -o "$WORK/t" "$OUK_BIN" --json --root "$WORK/reindexed" --store-url "$URL" store reindex >"$WORK/reindex.json"
reindex_s=$(cat "$WORK/t")

gib=$(awk -v b="$sum" 'BEGIN {print b / 1073741824}')
per_gib() { python3 -c 'import json,sys; r=json.loads(sys.argv[1]); g=float(sys.argv[2]); print(", ".join("%s %.0f" % (k, r[k] / g) for k in ("get","put","list","head")))' "$1" "$gib"; }
bucket_bytes=$(du -sb "$WORK/s3-data/$BUCKET" | cut -f1)
echo "roll-ups:            $WEEKS weekly kits of a $SIZE tree, $(mib "$sum") MiB of bundles"
echo "ingest MiB/s:        local $(rate "$sum" "${secs[la]}")   s3s-fs $(rate "$sum" "${secs[ra]}")   (wall s: ${secs[la]} vs ${secs[ra]})"
echo "export MiB/s:        local $(rate "$sum" "${secs[le]}")   s3s-fs $(rate "$sum" "${secs[re]}")   (wall s: ${secs[le]} vs ${secs[re]})"
echo "requests, ingest:    $req_add"
echo "  per GiB ingested:  $(per_gib "$req_add")"
echo "requests, export:    $req_exp"
echo "  per GiB exported:  $(per_gib "$req_exp")"
echo "bucket:              $(mib "$bucket_bytes") MiB in $(find "$WORK/s3-data/$BUCKET" -type f | wc -l) objects; local ROOT/store $(mib "$(du -sb "$L/store" | cut -f1)") MiB"
echo "reindex (fresh root): ${reindex_s}s, $(json "$WORK/reindex.json" '"%d packs, %d chunks, %d files, %d bundles" % (d["store"]["packs"], d["store"]["chunks"], d["store"]["files"], d["mirror"]["bundles"])')"
echo "pack target:         $PACK_SIZE"
echo "every export byte-identical: $([[ $ok == 1 ]] && echo yes || echo NO)"
echo "ouk:     $OUK_BIN (sha256 $(sha256sum <"$OUK_BIN" | cut -c1-16)...)"
echo "s3s-fs:  $("$S3S_FS" --version 2>&1 | head -1)"
echo "machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
[[ $ok == 1 ]]
