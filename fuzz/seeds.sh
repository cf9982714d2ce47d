#!/usr/bin/env bash
# Regenerates the committed seed corpora in fuzz/corpus/<target>/.
#
# Builds a small signed kit with the real tools (ouk-testdata tree --size small, ouk kit
# build with testdata/cosign/fixture.key) and takes its small files (metadata, manifest,
# signatures, provenance envelope, the first frames of a store pack), then adds the
# synthetic seeds of examples/gen_seeds.rs (hand-made tars, small manifests, deltas,
# patches, frames, postcard records). Deterministic for a given tree of the repository.
#
# usage: fuzz/seeds.sh            (from anywhere; rewrites fuzz/corpus/)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
corpus="$here/corpus"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$repo" && cargo build -q -p ouk-cli -p ouk-testdata)
ouk="$repo/target/debug/ouk"
testdata="$repo/target/debug/ouk-testdata"

"$testdata" tree --seed 1 --day 0 --size small "$work/rel" >/dev/null
COSIGN_PASSWORD=hello "$ouk" --root "$work/root" -q kit build \
  --version 2025.10.0 --channel edge --release-dir "$work/rel" --output-dir "$work/out" \
  --signing-key "$repo/testdata/cosign/fixture.key" \
  --captured-at 2025-10-23T00:00:00Z --created-at 2025-10-23T00:00:00Z
bundle=$(ls "$work"/out/*.tar.gz)
mkdir -p "$work/unpacked"
tar -xzf "$bundle" -C "$work/unpacked" provenance manifest

rm -rf "$corpus"
mkdir -p "$corpus"/{tar_entries,unpack,offline_manifest,metadata_json,jws,cosign_sig,dsse,delta_header,patch_decoders,pack_frames,parts_index,mirror_record,mirror_stream_delta,pack_index,published_index,quota_subject,feed_rows,feed_index,record_cutter,dsse_plain}

# quota_subject: subjects as the scanner passes them, and ES256 tokens signed by a key the
# harness does not trust (parsed to the signature check), made with jwcrypto.
printf 'anon:198.51.100.7' > "$corpus/quota_subject/anon-v4.txt"
printf 'anon:[::ffff:10.0.0.1]' > "$corpus/quota_subject/anon-mapped.txt"
printf 'anon:unknown' > "$corpus/quota_subject/anon-unknown.txt"
printf 'token:garbage' > "$corpus/quota_subject/token-garbage.txt"
python3 - "$corpus/quota_subject" <<'PY'
import json, sys
from jwcrypto import jwk, jws
k = jwk.JWK.generate(kty='EC', crv='P-256')
for name, hdr, claims in [
    ("token-foreign-kid.txt", {"alg": "ES256", "typ": "JWT", "kid": k.thumbprint()}, {"sub": "scanner-7", "exp": 1761353990}),
    ("token-no-kid.txt", {"alg": "ES256"}, {"sub": "x", "nbf": 1761350000, "exp": 1761350391.5}),
]:
    t = jws.JWS(json.dumps(claims, separators=(',', ':')).encode())
    t.add_signature(k, alg='ES256', protected=json.dumps(hdr, separators=(',', ':')))
    open(f"{sys.argv[1]}/{name}", "w").write("token:" + t.serialize(compact=True))
PY

# feed_rows: the head of each synthetic feed, and hand-made JSON arrays and bad rows;
# feed_index: the kit's own index, and small hand-made ones.
for f in osv/osv-all.jsonl ghsa/ghsa-all.jsonl nvd/nvd-2.0.jsonl; do
  head -n 3 "$work/rel/feeds/$f" > "$corpus/feed_rows/$(basename "$f")"
done
printf '\xef\xbb\xbf [ {"id":"A","s":"a,]}\\"","n":[1,{"x":null}]},\n {"id":"B","tenant":"acme","modified":"2025-10-01T00:00:00Z"} , 7, ]\n' > "$corpus/feed_rows/array.json"
printf '{"id":"A"}\n\n{"id": broken\n{"title":"no id"}\n{"cve":{"id":"CVE-1"},"tenant":3}\r\n{"id":"\\u00e9","x":1e2}' > "$corpus/feed_rows/bad-lines.jsonl"
printf '[{"id":"A"},\n{"id":"B"' > "$corpus/feed_rows/unterminated.json"
# the kit's index, each feed cut to its first 8 rows (headers adjusted), so it stays valid
tar -xzOf "$bundle" metadata/feeds-index.jsonl | python3 -c '
import json, sys
out, rows = [], None
for line in sys.stdin:
    d = json.loads(line)
    if "feed" in d:
        rows = []
        d["rows"] = 0
        out.append([d, rows])
    elif rows is not None and len(rows) < 8:
        rows.append(line)
    elif rows is None:
        print(line, end="")
for h, r in out:
    h["rows"] = len(r)
    print(json.dumps(h, separators=(",", ":")))
    print("".join(r), end="")
' > "$corpus/feed_index/kit-index.jsonl"
printf '{"format":"ouk-feeds-index/1"}\n' > "$corpus/feed_index/empty.jsonl"
h=0101010101010101010101010101010101010101010101010101010101010101
printf '{"format":"ouk-feeds-index/1"}\n{"feed":"feeds/osv/a.jsonl","source":"osv","rows":3,"skipped":1}\n{"id":"A","hash":"%s"}\n{"id":"A","hash":"%s"}\n{"id":"B","hash":"%s","tenant":"t","modified":"2025-10-01T00:00:00Z"}\n{"feed":"feeds/osv/b.json","source":"osv","rows":1,"skipped":0}\n{"id":"B","hash":"%s","tenant":"t"}\n' $h $h $h ${h/01/02} > "$corpus/feed_index/conflicts.jsonl"

cp "$bundle.metadata.json" "$corpus/metadata_json/kit.metadata.json"
cp "$work/out/manifest/offline-manifest.json" "$corpus/offline_manifest/kit-manifest.json"
# parts_index: the index of the kit split into four parts by the real `ouk kit split`.
size=$(stat -c %s "$bundle")
"$ouk" -q kit split "$bundle" --max-size $(( (size + 3) / 4 )) --output-dir "$work/split"
cp "$work"/split/*.parts.json "$corpus/parts_index/kit.parts.json"
# published_index: the index `ouk kit index` writes for the kit directory.
"$ouk" -q kit index "$work/out"
cp "$work/out/index.json" "$corpus/published_index/kit-index.json"
# jws input: token NUL payload
{ tr -d '\n' <"$work/out/manifest/offline-manifest.json.jws"; printf '\0'; cat "$work/out/manifest/offline-manifest.json"; } \
  >"$corpus/jws/kit-manifest.jws"
# cosign_sig input: selector byte 0 (verify over a fixed digest), then the .sig text
{ printf '\0'; cat "$bundle.sig"; } >"$corpus/cosign_sig/kit-bundle.sig"
prov="$work/unpacked/provenance/provenance.intoto.json"
if [ "$(stat -c %s "$prov")" -le 65536 ]; then
  cp "$prov" "$corpus/dsse/kit-provenance.intoto.json"
# dsse_plain: the kit's envelope as a file (byte 0 even), and its plain form (the payload
# base64-decoded, ouk_delta::envelope's layout) behind its declared size (byte 0 odd).
{ printf '\0'; cat "$prov"; } >"$corpus/dsse_plain/kit-provenance.bin"
python3 - "$prov" "$corpus/dsse_plain/kit-provenance-plain.bin" <<'PY'
import base64, re, struct, sys
f = open(sys.argv[1], 'rb').read()
m = re.search(rb'"payload"\s*:\s*"([^"]*)"', f)
payload = base64.b64decode(m.group(1))
plain = struct.pack('<II', m.start(1), len(payload)) + f[:m.start(1)] + payload + f[m.end(1):]
open(sys.argv[2], 'wb').write(b'\x01' + struct.pack('<H', len(f)) + plain)
PY
fi
# A store pack: ingest a few small files of the tree.
mkdir -p "$work/small"
cp -r "$work/rel/config" "$work/rel/docs" "$work/rel/etc" "$work/small/"
"$ouk" --root "$work/store-root" -q store ingest "$work/small"
pack=$(ls "$work"/store-root/store/packs/pack-*.ouk | head -n 1)

(cd "$here" && cargo run -q --example gen_seeds -- "$corpus" "$pack")

for d in "$corpus"/*/; do
  printf '%-18s %3d files %8d bytes\n' "$(basename "$d")" "$(ls "$d" | wc -l)" "$(cat "$d"/* | wc -c)"
done
