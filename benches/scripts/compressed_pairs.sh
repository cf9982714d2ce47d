#!/usr/bin/env bash
# Compressed content (issue 19): ouk's delta between two releases whose files stay
# compressed, beside the same change uncompressed (the "-plain" twin), and beside the peers.
#
# Pairs:
#   - every NAME and NAME-plain of the corpus (../shared/corpus/fetch-compressed-pairs.sh:
#     prettier-tgz, pydantic-whl, caniuse-tar-zst, biome-pigz; each NAME/{old,new}/ and
#     NAME-plain/{old,new}/), and
#   - testdata-SIZE (`ouk-testdata tree --compressed`, day 0 -> day 1) with its twin
#     testdata-SIZE-plain (the same trees, plain variant).
# For each tree pair:
#   kits     ouk kit build of OLD (1.0.0) and NEW (1.0.1), signed with the fixture key
#   ouk      ouk delta make --from OLD.kit --to NEW.kit            (size, wall s, peak RSS)
#            ouk kit import DELTA into a root that imported OLD.kit (wall s, peak RSS), and
#            the check that it ends on the generation a full import of NEW.kit ends on
#   peers    on the kits' inner tars (the gunzipped bundles: the same bytes for every tool):
#            xdelta3 -9, zstd -19 --long=31 --patch-from, bsdiff (each round-tripped)
# and prints one row per pair, its -plain twin's row beside it, with the ratios the goals
# use: ouk(NAME) / ouk(NAME-plain) (goal <= 1.25) and ouk / best peer (goal <= 1.0).
#
# usage: benches/scripts/compressed_pairs.sh [--only NAME] [--json] [--work DIR] [--size SIZE]
#   --only NAME   run one pair and its twin (NAME without -plain, e.g. prettier-tgz,
#                 testdata-64MiB)
#   --json        print the rows as JSON (one array) instead of the Markdown table
#   --work DIR    scratch directory (default $TMPDIR/ouk-compressed-pairs); testdata trees
#                 are kept there between runs, everything else is remade
#   --size SIZE   testdata tree size (default $SIZE or 64MiB)
#
# environment:
#   OUK_CORPUS        corpus directory (default /work/corpus)
#   OUK_BIN           ouk binary          (default REPO/target/release/ouk)
#   OUK_TESTDATA_BIN  ouk-testdata binary (default REPO/target/release/ouk-testdata)
#   SIGNING_KEY       signing key         (default REPO/testdata/cosign/fixture.key)
#   TRUST_KEY         its public key      (default REPO/testdata/cosign/fixture.pub)
#   COSIGN_PASSWORD   its password        (default hello, the fixture's)
#   PEERS             peers to run, space-separated (default "xdelta3 zstd bsdiff")
# The binaries are built (cargo build --release -p ouk-cli -p ouk-testdata, in
# CARGO_TARGET_DIR or REPO/target) when missing.
# needs: xdelta3 zstd bsdiff bspatch python3 /usr/bin/time (apt-get install xdelta3 zstd bsdiff time)
# Exit status: 0 when every delta applied and ended on the full import's generation, 1
# otherwise; the goals are reported, not enforced.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CORPUS="${OUK_CORPUS:-/work/corpus}"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
OUK_BIN="${OUK_BIN:-$TARGET/release/ouk}"
OUK_TESTDATA_BIN="${OUK_TESTDATA_BIN:-$TARGET/release/ouk-testdata}"
SIGNING_KEY="${SIGNING_KEY:-$REPO/testdata/cosign/fixture.key}"
TRUST_KEY="${TRUST_KEY:-$REPO/testdata/cosign/fixture.pub}"
export COSIGN_PASSWORD="${COSIGN_PASSWORD:-hello}"
PEERS="${PEERS:-xdelta3 zstd bsdiff}"
SIZE="${SIZE:-64MiB}"
WORKROOT="${TMPDIR:-/tmp}/ouk-compressed-pairs"
only=
json=0

die() { echo "compressed_pairs: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case $1 in
    --only) [ $# -ge 2 ] || die "--only needs a value"; only=$2; shift 2 ;;
    --json) json=1; shift ;;
    --work) [ $# -ge 2 ] || die "--work needs a value"; WORKROOT=$2; shift 2 ;;
    --size) [ $# -ge 2 ] || die "--size needs a value"; SIZE=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

for tool in tar gzip sha256sum awk sort python3; do
  command -v "$tool" >/dev/null || die "'$tool' is required"
done
for p in $PEERS; do
  case $p in
    xdelta3) command -v xdelta3 >/dev/null || die "missing xdelta3: apt-get install xdelta3 (or leave it out of PEERS)" ;;
    zstd) command -v zstd >/dev/null || die "missing zstd: apt-get install zstd (or leave it out of PEERS)" ;;
    bsdiff) { command -v bsdiff && command -v bspatch; } >/dev/null || die "missing bsdiff/bspatch: apt-get install bsdiff (or leave it out of PEERS)" ;;
    *) die "unknown peer '$p' in PEERS (xdelta3 zstd bsdiff)" ;;
  esac
done
[[ -x /usr/bin/time ]] && /usr/bin/time -f '%e' -o /dev/null true 2>/dev/null \
  || die "GNU time (/usr/bin/time) is required for peak RSS (apt-get install time)"
[[ -f "$SIGNING_KEY" ]] || die "signing key not found: $SIGNING_KEY (set SIGNING_KEY)"
[[ -f "$TRUST_KEY" ]] || die "public key not found: $TRUST_KEY (set TRUST_KEY)"
if [[ ! -x "$OUK_BIN" || ! -x "$OUK_TESTDATA_BIN" ]]; then
  echo "building ouk and ouk-testdata (release) in $TARGET" >&2
  (cd "$REPO" && CARGO_TARGET_DIR="$TARGET" cargo build -q --release -p ouk-cli -p ouk-testdata) \
    || die "cargo build failed"
fi
# (Output captured first: `grep -q` closing the pipe early would fail it under pipefail.)
[[ "$("$OUK_TESTDATA_BIN" --help 2>/dev/null)" == *--compressed* ]] \
  || die "$OUK_TESTDATA_BIN has no --compressed (rebuild it: cargo build --release -p ouk-testdata)"

mkdir -p "$WORKROOT"
WORKROOT="$(cd "$WORKROOT" && pwd)"
ROWS="$WORKROOT/rows.tsv"
: >"$ROWS"
ok=1

IMPORT_EXTRA=(--free-margin 0)
if [[ "$("$OUK_BIN" kit import --help 2>/dev/null)" == *--max-kit-age* ]]; then
  IMPORT_EXTRA+=(--max-kit-age 0)
fi

# timed OUTVAR CMD...: runs CMD under GNU time; OUTVAR gets "wall_s peak_rss_kib".
timed() {
  local var=$1; shift
  local tf; tf=$(mktemp)
  if ! /usr/bin/time -f '%e %M' -o "$tf" "$@" >"$tf.out" 2>&1; then
    echo "FAILED: $*" >&2; tail -n 20 "$tf.out" >&2; rm -f "$tf" "$tf.out"; return 1
  fi
  printf -v "$var" '%s' "$(tail -n 1 "$tf")"
  rm -f "$tf" "$tf.out"
}

kit() { # kit TREE VERSION OUTDIR
  rm -rf "$3"
  "$OUK_BIN" -q kit build --version "$2" --channel bench --release-dir "$1" --output-dir "$3" \
    --signing-key "$SIGNING_KEY" --allow-missing-debug \
    --created-at 2025-10-23T00:00:00Z --captured-at 2025-10-23T00:00:00Z >/dev/null
}
current_gen() {
  local out rc=0
  out="$("$OUK_BIN" --root "$1" --json status)" || rc=$?
  # 9: nothing active or the active kit is stale (old test kits are); the JSON still
  # names what is active.
  [[ $rc == 0 || $rc == 9 ]] || return "$rc"
  python3 -c 'import json,sys; print((lambda d: d.get("generation") or d.get("current"))(json.load(sys.stdin)) or "-")' <<<"$out"
}

# measure NAME OLD_TREE NEW_TREE: appends one row to $ROWS (tab-separated):
# name old_tar_bytes new_tar_bytes ouk_bytes make_s make_kib apply_s apply_kib same_gen
# then per peer in $PEERS: bytes make_s make_kib apply_s apply_kib
measure() {
  local name=$1 old=$2 new=$3 d=$WORKROOT/$1
  echo "== $name" >&2
  rm -rf "$d" && mkdir -p "$d"
  kit "$old" 1.0.0 "$d/k0"; kit "$new" 1.0.1 "$d/k1"
  local b0=$d/k0/stella-ops-offline-kit-1.0.0-bench.tar.gz b1=$d/k1/stella-ops-offline-kit-1.0.1-bench.tar.gz
  gzip -dc "$b0" >"$d/old.tar"; gzip -dc "$b1" >"$d/new.tar"
  local t a sz row

  # ouk: make, then apply into a root that imported the old kit; a second root imports
  # the new kit in full, and both must end on the same generation.
  mkdir -p "$d/ouk"
  timed t "$OUK_BIN" -q delta make --from "$b0" --to "$b1" --output "$d/ouk/pair.delta.tgz" \
    --signing-key "$SIGNING_KEY" || { ok=0; return 0; }
  sz=$(stat -c %s "$d/ouk/pair.delta.tgz")
  for r in apply full; do
    "$OUK_BIN" -q --root "$d/root-$r" kit import "$b0" --trust-key "$TRUST_KEY" "${IMPORT_EXTRA[@]}" >/dev/null
  done
  timed a "$OUK_BIN" -q --root "$d/root-apply" kit import "$d/ouk/pair.delta.tgz" \
    --trust-key "$TRUST_KEY" "${IMPORT_EXTRA[@]}" || { ok=0; a="0 0"; }
  "$OUK_BIN" -q --root "$d/root-full" kit import "$b1" --trust-key "$TRUST_KEY" "${IMPORT_EXTRA[@]}" >/dev/null
  local ga gf same
  ga=$(current_gen "$d/root-apply"); gf=$(current_gen "$d/root-full")
  if [[ "$ga" == "$gf" && "$ga" != "-" ]]; then same=yes; else same=NO; ok=0
    echo "$name: after the delta the root is on $ga, a full import of the new kit gives $gf" >&2; fi
  rm -rf "$d/root-apply" "$d/root-full"
  row="$name	$(stat -c %s "$d/old.tar")	$(stat -c %s "$d/new.tar")	$sz	${t// /	}	${a// /	}	$same"

  for p in $PEERS; do
    case $p in
      xdelta3)
        timed t xdelta3 -9 -e -f -s "$d/old.tar" "$d/new.tar" "$d/x.xd3"
        timed a xdelta3 -d -f -s "$d/old.tar" "$d/x.xd3" "$d/x.out"
        sz=$(stat -c %s "$d/x.xd3") ;;
      zstd)
        timed t zstd -q -f -19 --long=31 --patch-from="$d/old.tar" "$d/new.tar" -o "$d/x.zst"
        timed a zstd -q -f -d --long=31 --patch-from="$d/old.tar" "$d/x.zst" -o "$d/x.out"
        sz=$(stat -c %s "$d/x.zst") ;;
      bsdiff)
        timed t bsdiff "$d/old.tar" "$d/new.tar" "$d/x.bsdiff"
        timed a bspatch "$d/old.tar" "$d/x.out" "$d/x.bsdiff"
        sz=$(stat -c %s "$d/x.bsdiff") ;;
    esac
    cmp -s "$d/x.out" "$d/new.tar" || { echo "$name: $p round trip differs" >&2; ok=0; }
    rm -f "$d/x.out"
    row="$row	$sz	${t// /	}	${a// /	}"
  done
  printf '%s\n' "$row" >>"$ROWS"
  # Keep the kits' inner tars only while measuring: they are the largest files here.
  rm -f "$d/old.tar" "$d/new.tar" "$d"/x.*
}

# The pairs: corpus names (less -plain) and the testdata pair.
pairs=()
if [[ -d "$CORPUS" ]]; then
  for p in "$CORPUS"/*/; do
    n=$(basename "$p")
    [[ "$n" == *-plain ]] && continue
    [[ -d "$p/old" && -d "$p/new" && -d "$CORPUS/$n-plain/old" && -d "$CORPUS/$n-plain/new" ]] || continue
    pairs+=("$n")
  done
else
  echo "no corpus at $CORPUS (run ../shared/corpus/fetch-compressed-pairs.sh $CORPUS); testdata only" >&2
fi
pairs+=("testdata-$SIZE")
if [[ -n "$only" ]]; then
  found=0
  for n in "${pairs[@]}"; do [[ "$n" == "$only" ]] && found=1; done
  (( found )) || die "no pair named '$only' (have: ${pairs[*]})"
  pairs=("$only")
fi

# testdata trees: generated once per size into WORKROOT/trees-SIZE (atomically).
tree() { # tree VARIANT DAY -> path
  local dir="$WORKROOT/trees-$SIZE/$1-day$2"
  if [[ ! -d "$dir" ]]; then
    local flag=(); [[ "$1" == compressed ]] && flag=(--compressed)
    rm -rf -- "$dir.tmp"; mkdir -p "$(dirname "$dir")"
    "$OUK_TESTDATA_BIN" tree --seed 1 --day "$2" --size "$SIZE" "${flag[@]}" "$dir.tmp" >&2
    mv -- "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

for n in "${pairs[@]}"; do
  if [[ "$n" == "testdata-$SIZE" ]]; then
    measure "$n" "$(tree compressed 0)" "$(tree compressed 1)"
    measure "$n-plain" "$(tree plain 0)" "$(tree plain 1)"
  else
    measure "$n" "$CORPUS/$n/old" "$CORPUS/$n/new"
    measure "$n-plain" "$CORPUS/$n-plain/old" "$CORPUS/$n-plain/new"
  fi
done

python3 - "$ROWS" "$json" "$PEERS" <<'PY'
import json, sys
rows_path, as_json, peers = sys.argv[1], sys.argv[2] == "1", sys.argv[3].split()
rows = {}
order = []
for line in open(rows_path):
    f = line.rstrip("\n").split("\t")
    r = {"pair": f[0], "old_tar": int(f[1]), "new_tar": int(f[2]),
         "ouk": {"bytes": int(f[3]), "make_s": float(f[4]), "make_mib": int(f[5]) / 1024,
                 "apply_s": float(f[6]), "apply_mib": int(f[7]) / 1024, "same_generation": f[8] == "yes"},
         "peers": {}}
    for i, p in enumerate(peers):
        b = 9 + 5 * i
        r["peers"][p] = {"bytes": int(f[b]), "make_s": float(f[b + 1]), "make_mib": int(f[b + 2]) / 1024,
                         "apply_s": float(f[b + 3]), "apply_mib": int(f[b + 4]) / 1024}
    best = min((v["bytes"] for v in r["peers"].values()), default=None)
    r["best_peer"] = min(r["peers"], key=lambda p: r["peers"][p]["bytes"]) if r["peers"] else None
    r["ouk_vs_best_peer"] = r["ouk"]["bytes"] / best if best else None
    rows[r["pair"]] = r
    order.append(r["pair"])
for name, r in rows.items():
    twin = rows.get(name + "-plain")
    r["ouk_vs_plain_twin"] = r["ouk"]["bytes"] / twin["ouk"]["bytes"] if twin else None
if as_json:
    print(json.dumps([rows[n] for n in order], indent=2))
    sys.exit(0)
mark = lambda v, goal: "" if v is None else ("%.3f%s" % (v, "" if v <= goal else " ✗"))
hdr = ["pair", "new tar B", "ouk delta B", "make s", "make MiB", "apply s", "apply MiB", "same gen"]
hdr += ["%s B" % p for p in peers] + ["best peer", "ouk/best peer (<= 1.0)", "ouk/plain twin (<= 1.25)"]
print("| " + " | ".join(hdr) + " |")
print("|" + "|".join(["---"] + ["---:"] * (len(hdr) - 1)) + "|")
for n in order:
    r = rows[n]; o = r["ouk"]
    cells = [n, str(r["new_tar"]), str(o["bytes"]), "%.2f" % o["make_s"], "%.0f" % o["make_mib"],
             "%.2f" % o["apply_s"], "%.0f" % o["apply_mib"], "yes" if o["same_generation"] else "NO"]
    cells += [str(r["peers"][p]["bytes"]) for p in peers]
    cells += [r["best_peer"] or "", mark(r["ouk_vs_best_peer"], 1.0),
              mark(r["ouk_vs_plain_twin"], 1.25) if not n.endswith("-plain") else ""]
    print("| " + " | ".join(cells) + " |")
print()
print("peer times (make s / apply s, peak MiB make / apply):")
for n in order:
    r = rows[n]
    print("  %-28s " % n + "  ".join("%s %.2f/%.2f s %.0f/%.0f MiB" % (p, v["make_s"], v["apply_s"], v["make_mib"], v["apply_mib"])
                                    for p, v in r["peers"].items()))
PY
if (( ok )); then
  echo "every delta applied and ended on the full import's generation" >&2
else
  echo "FAILED: a delta did not apply, a round trip differed, or a generation differed (see above)" >&2
  exit 1
fi
