#!/usr/bin/env bash
# Feed indexing throughput and memory (issue 10): index one generated ~2 GiB OSV-like
# JSON-lines feed exactly as `ouk kit build` does (benches/src/bin/feed_index.rs calls
# ouk_kit::feeds::index_feeds with the build's defaults: 64 MiB sort budget, 4 MiB batches,
# rayon on every core) under /usr/bin/time -v, and print rows/s, MiB/s, CPU time and peak
# RSS. Then the end-to-end `ouk feeds audit --kit-dir` (index + audit) on the same feed.
#
# usage: benches/scripts/feeds_index.sh [WORKDIR]     (default /tmp/feedbench)
#
# environment:
#   FEED_BYTES        feed size (default 2GiB)
#   OUK_BIN           ouk binary          (default REPO/target/release/ouk)
#   OUK_TESTDATA_BIN  ouk-testdata binary (default REPO/target/release/ouk-testdata)
#   FEED_INDEX_BIN    feed_index binary   (default REPO/target/release/feed_index)
# Build them first: cargo build --release -p ouk-cli -p ouk-testdata -p ouk-benches
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="${1:-/tmp/feedbench}"
FEED_BYTES="${FEED_BYTES:-2GiB}"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}/release"
OUK_BIN="${OUK_BIN:-$TARGET/ouk}"
OUK_TESTDATA_BIN="${OUK_TESTDATA_BIN:-$TARGET/ouk-testdata}"
FEED_INDEX_BIN="${FEED_INDEX_BIN:-$TARGET/feed_index}"

mkdir -p "$WORK/tree/feeds/osv"
feed="$WORK/tree/feeds/osv/big.jsonl"
if [ ! -f "$feed" ]; then
  "$OUK_TESTDATA_BIN" feed --seed 1 --bytes "$FEED_BYTES" "$feed"
fi
rows=$(wc -l <"$feed")
echo "feed: $feed, $(stat -c %s "$feed") bytes, $rows rows"

report() {
  grep -E "User time|System time|Elapsed|Maximum resident" "$1" | sed 's/^\s*/  /'
}

echo "== index only (feed_index)"
/usr/bin/time -v "$FEED_INDEX_BIN" "$feed" --kit-path feeds/osv/big.jsonl 2>"$WORK/index.time"
report "$WORK/index.time"
rm -f "$feed.index.jsonl"

echo "== ouk feeds audit --kit-dir (index + audit)"
set +e
/usr/bin/time -v "$OUK_BIN" --json feeds audit --kit-dir "$WORK/tree" --limit 0 >"$WORK/audit.json" 2>"$WORK/audit.time"
rc=$?
set -e
echo "  exit $rc; $(grep -o '"conflicts": [0-9]*' "$WORK/audit.json" | head -n 1)"
report "$WORK/audit.time"
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg) (other processes share the cores)"
