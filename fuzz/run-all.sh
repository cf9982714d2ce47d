#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for N seconds each, one after the other.
#
# usage: fuzz/run-all.sh [SECONDS] [TARGET...]      (SECONDS defaults to 60)
#
# Builds once (`cargo fuzz build -s none`: no sanitizer, so stable Rust works; debug
# assertions and overflow checks on, as cargo-fuzz does by default), then runs each
# binary exactly as `cargo fuzz run -s none TARGET` would, with:
# - new inputs written to fuzz/work/TARGET/ (git-ignored) and the committed seeds in
#   fuzz/corpus/TARGET/ read but never written;
# - crashes, timeouts and OOMs written to fuzz/artifacts/TARGET/;
# - -rss_limit_mb=2048 and -timeout=10 (a unit slower than 10 s is reported as a hang);
# - the log in fuzz/logs/TARGET.log, and one summary line per target at the end.
# Extra libFuzzer flags: FUZZ_ARGS="-max_len=65536 -dict=..." fuzz/run-all.sh 600
# Exit status: 1 if any target found a crash.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-60}
shift || true
all=(tar_entries unpack offline_manifest metadata_json jws cosign_sig dsse delta_header patch_decoders pack_frames parts_index mirror_record mirror_stream_delta pack_index published_index quota_subject feed_rows feed_index trust_document record_cutter dsse_plain)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

cd "$here"
cargo fuzz build -s none || exit 2
bin="$here/target/x86_64-unknown-linux-gnu/release"

mkdir -p logs
status=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "work/$t" "artifacts/$t"
  echo "== $t: ${secs}s"
  # shellcheck disable=SC2086
  "$bin/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$secs" -rss_limit_mb=2048 \
    -timeout=10 -print_final_stats=1 ${FUZZ_ARGS:-} "work/$t" "corpus/$t" >"logs/$t.log" 2>&1
  rc=$?
  last=$(grep -E '^#[0-9]+' "logs/$t.log" | tail -n 1)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log")
  cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/cov \1 ft \2 corpus \3/p' <<<"$last")
  if [ $rc -ne 0 ]; then
    status=1
    crash=$(grep -E '^(artifact_prefix|Test unit written to)' "logs/$t.log" | tail -n 1)
    summary+=("$(printf '%-16s FAILED rc=%d %s runs %s | %s' "$t" "$rc" "${runs:-?}" "$cov" "$crash")")
  else
    summary+=("$(printf '%-16s ok %12s runs in %ss | %s' "$t" "${runs:-?}" "$secs" "$cov")")
  fi
done
echo
printf '%s\n' "${summary[@]}"
exit $status
