#!/usr/bin/env bash
# Compressed content (issue 19), a second generator: the testdata pair with its compressed
# files written by other producers than `ouk-testdata --compressed` (whose two gzip
# writers the exact tiers were built beside), so a win is not only on our own generator.
#
# From the plain testdata trees (day 0 and day 1, `ouk-testdata tree` without
# --compressed) it makes a pair of trees where:
#   - feeds/nvd/nvd-2.0.jsonl    -> .jsonl.gz, Python's gzip module, level 9 (name, mtime)
#   - feeds/ghsa/ghsa-all.jsonl  -> .jsonl.gz, the `gzip -n` CLI (GNU gzip, level 6)
#   - feeds/osv/osv-all.jsonl    -> feeds/osv/all.zip, Python's zipfile, one deflated
#                                   member <id>.json per row (zlib level 6)
#   - every OCI image layer      -> tar+gzip: even layers Python's gzip level 6 (mtime 0),
#                                   odd layers `gzip -n -9`; manifests and index.json are
#                                   rewritten to the new digests (config diff_ids stay)
# (every replaced file's `.sha256` sidecar is rewritten), then runs
# benches/scripts/compressed_pairs.sh on it beside the plain trees (the twin) and prints
# its table: ouk's delta vs the plain twin's (goal <= 1.25).
#
# usage: benches/scripts/compressed_second_gen.sh [--work DIR] [--size SIZE]
#   --work DIR    scratch directory (default $TMPDIR/ouk-second-gen); trees are kept
#   --size SIZE   testdata tree size (default $SIZE or 64MiB)
# environment: as compressed_pairs.sh (OUK_BIN, OUK_TESTDATA_BIN, ...); PEERS defaults to
# "zstd" here (xdelta3 and bsdiff take minutes on 64 MiB tars; set PEERS to add them).
# needs: python3, gzip, and what compressed_pairs.sh needs.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
OUK_TESTDATA_BIN="${OUK_TESTDATA_BIN:-$TARGET/release/ouk-testdata}"
SIZE="${SIZE:-64MiB}"
WORK="${TMPDIR:-/tmp}/ouk-second-gen"
export PEERS="${PEERS:-zstd}"

die() { echo "compressed_second_gen: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --work) [ $# -ge 2 ] || die "--work needs a value"; WORK=$2; shift 2 ;;
    --size) [ $# -ge 2 ] || die "--size needs a value"; SIZE=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
for tool in python3 gzip; do command -v "$tool" >/dev/null || die "'$tool' is required"; done
[[ -x "$OUK_TESTDATA_BIN" ]] || die "no $OUK_TESTDATA_BIN (cargo build --release -p ouk-testdata)"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
NAME="testdata2-$SIZE"
CORPUS="$WORK/corpus"

plain_tree() { # plain_tree DAY -> path
  local dir="$WORK/plain-$SIZE-day$1"
  if [[ ! -d "$dir" ]]; then
    rm -rf -- "$dir.tmp"
    "$OUK_TESTDATA_BIN" tree --seed 1 --day "$1" --size "$SIZE" "$dir.tmp" >&2
    mv -- "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

second_gen() { # second_gen PLAIN_TREE OUT_TREE
  [[ -d "$2" ]] && return 0
  rm -rf -- "$2.tmp"; cp -a -- "$1" "$2.tmp"
  python3 - "$2.tmp" <<'PY'
import gzip, hashlib, json, os, subprocess, sys, zipfile

root = sys.argv[1]

def sidecar(path):
    # The tree's sidecar format: "<hex>  <name>\n" beside the file.
    h = hashlib.sha256(open(path, "rb").read()).hexdigest()
    with open(path + ".sha256", "w") as f:
        f.write("%s  %s\n" % (h, os.path.basename(path)))

def replace(old, new):
    os.remove(old)
    if os.path.exists(old + ".sha256"):
        os.remove(old + ".sha256")
        sidecar(new)

def py_gzip(src, dst, level, name_mtime):
    data = open(src, "rb").read()
    with open(dst, "wb") as raw:
        # GzipFile writes FNAME from the file name; mtime fixed so the trees are stable.
        with gzip.GzipFile(filename=os.path.basename(src) if name_mtime else "",
                           mode="wb", compresslevel=level, fileobj=raw,
                           mtime=1761177600 if name_mtime else 0) as g:
            g.write(data)

def cli_gzip(src, dst, level):
    with open(dst, "wb") as out:
        subprocess.run(["gzip", "-n", "-%d" % level, "-c", src], stdout=out, check=True)

feeds = os.path.join(root, "feeds")
nvd = os.path.join(feeds, "nvd", "nvd-2.0.jsonl")
if os.path.exists(nvd):
    py_gzip(nvd, nvd + ".gz", 9, True); replace(nvd, nvd + ".gz")
ghsa = os.path.join(feeds, "ghsa", "ghsa-all.jsonl")
if os.path.exists(ghsa):
    cli_gzip(ghsa, ghsa + ".gz", 6); replace(ghsa, ghsa + ".gz")
osv = os.path.join(feeds, "osv", "osv-all.jsonl")
if os.path.exists(osv):
    out = os.path.join(feeds, "osv", "all.zip")
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        seen = set()
        for i, line in enumerate(open(osv, "rb")):
            try:
                name = json.loads(line).get("id") or "row-%d" % i
            except ValueError:
                name = "row-%d" % i
            while name in seen:
                name += "_"
            seen.add(name)
            zi = zipfile.ZipInfo(name + ".json", date_time=(2025, 10, 23, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, line)
    replace(osv, out)

# OCI layouts: gzip each tar layer, rewrite its manifest and the index.
TAR = "application/vnd.oci.image.layer.v1.tar"
n_layer = 0
for dirpath, dirnames, filenames in sorted(os.walk(os.path.join(root, "images"))):
    dirnames.sort()
    if "index.json" not in filenames or "oci-layout" not in filenames:
        continue
    blobs = os.path.join(dirpath, "blobs", "sha256")
    index_path = os.path.join(dirpath, "index.json")
    index = json.load(open(index_path))
    for mdesc in index.get("manifests", []):
        mpath = os.path.join(blobs, mdesc["digest"].split(":", 1)[1])
        manifest = json.load(open(mpath))
        changed = False
        for layer in manifest.get("layers", []):
            if layer.get("mediaType") != TAR:
                continue
            src = os.path.join(blobs, layer["digest"].split(":", 1)[1])
            tmp = src + ".gz.tmp"
            if n_layer % 2 == 0:
                py_gzip(src, tmp, 6, False)
            else:
                cli_gzip(src, tmp, 9)
            n_layer += 1
            h = hashlib.sha256(open(tmp, "rb").read()).hexdigest()
            os.rename(tmp, os.path.join(blobs, h))
            if os.path.exists(src):
                os.remove(src)
            layer.update(mediaType=TAR + "+gzip", digest="sha256:" + h,
                         size=os.path.getsize(os.path.join(blobs, h)))
            changed = True
        if changed:
            body = json.dumps(manifest, separators=(",", ":")).encode()
            h = hashlib.sha256(body).hexdigest()
            open(os.path.join(blobs, h), "wb").write(body)
            os.remove(mpath)
            mdesc.update(digest="sha256:" + h, size=len(body))
    with open(index_path, "w") as f:
        json.dump(index, f, separators=(",", ":"))
print("second generator: %d layers gzipped in %s" % (n_layer, root), file=sys.stderr)
PY
  mv -- "$2.tmp" "$2"
}

p0=$(plain_tree 0); p1=$(plain_tree 1)
mkdir -p "$CORPUS/$NAME" "$CORPUS/$NAME-plain"
second_gen "$p0" "$CORPUS/$NAME/old"
second_gen "$p1" "$CORPUS/$NAME/new"
ln -sfn "$p0" "$CORPUS/$NAME-plain/old"
ln -sfn "$p1" "$CORPUS/$NAME-plain/new"
OUK_CORPUS="$CORPUS" exec "$REPO/benches/scripts/compressed_pairs.sh" --only "$NAME" \
  --work "$WORK/pairs" --size "$SIZE"
