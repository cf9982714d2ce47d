#!/usr/bin/env python3
"""A second synthetic release, unlike ouk-testdata's: sorted JSON-lines feeds written with
json.dumps(sort_keys=True) (so "id" sits in the middle of each row, after "affected" and
"aliases"), 20-30 MB each, with heavier churn (3 % of rows modified, each with a new
"modified" time, a bumped fixed version and sometimes a new reference; 0.5 % new rows
interleaved by id; 0.2 % withdrawn), plus a small static part (docs, a config) that does not
change. No image layer is rebuilt.

usage: gen_sorted_feeds.py --seed N --day D [--modify-pct P] [--new-per-mille M] OUT_DIR

--modify-pct (default 3) and --new-per-mille (default 5) set the churn: a second setting
(e.g. --seed 2 --modify-pct 8 --new-per-mille 12) checks that a result is not tuned to one.
"""
import argparse
import json
import os
import random

FEEDS = [("feeds/advisories/all.jsonl", 30_000), ("feeds/packages/index.jsonl", 24_000)]
WORDS = ("buffer overflow parser request header session token cookie path traversal "
         "injection deserialization memory leak denial service crafted input remote attacker "
         "authentication bypass privilege escalation race condition integer underflow").split()


def row(rng, kind, n):
    eco = rng.choice(["npm", "PyPI", "Go", "Maven", "crates.io", "RubyGems"])
    pkg = f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{rng.randrange(10_000)}"
    major, minor = rng.randrange(1, 30), rng.randrange(40)
    r = {
        "id": f"{kind}-{n:07d}",
        "aliases": [f"CVE-{2010 + n % 16}-{10_000 + n}"],
        "modified": f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:00:00Z",
        "published": f"20{10 + n % 15}-{1 + n % 12:02d}-{1 + n % 28:02d}T00:00:00Z",
        "summary": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(4, 10))),
        "details": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(20, 60))),
        "affected": [{
            "package": {"ecosystem": eco, "name": pkg},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"},
                                                      {"fixed": f"{major}.{minor}.{rng.randrange(20)}"}]}],
        }],
        "references": [{"type": "WEB", "url": f"https://example.org/{pkg}/issues/{rng.randrange(9999)}"}],
        "severity": [{"type": "CVSS_V3", "score": f"{rng.randrange(1, 10)}.{rng.randrange(10)}"}],
    }
    return r


def feed(seed, day, path, n_rows, modify_pct=3, new_per_mille=5):
    kind = "ADV" if "advisories" in path else "PKG"
    rng = random.Random(f"{seed}:{path}:base")
    rows = {}
    for n in range(n_rows):
        rows[n] = row(rng, kind, 2 * n)
    for d in range(1, day + 1):
        drng = random.Random(f"{seed}:{path}:day{d}")
        ids = sorted(rows)
        for n in drng.sample(ids, len(ids) * modify_pct // 100):
            r = rows[n]
            r["modified"] = f"2026-01-{d:02d}T{drng.randrange(24):02d}:{drng.randrange(60):02d}:00Z"
            ev = r["affected"][0]["ranges"][0]["events"][1]
            ev["fixed"] = ev["fixed"] + f".{d}"
            if drng.random() < 0.3:
                r["references"].append({"type": "FIX", "url": f"https://example.org/fix/{drng.randrange(99999)}"})
        for n in drng.sample(ids, len(ids) // 500):
            del rows[n]
        for _ in range(n_rows * new_per_mille // 1000):
            n = drng.randrange(n_rows) * 2 + 1  # odd ids: interleaved between base rows
            rows[n] = row(drng, kind, n)
    return "".join(json.dumps(rows[n], sort_keys=True) + "\n" for n in sorted(rows))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--day", type=int, default=0)
    ap.add_argument("--modify-pct", type=int, default=3)
    ap.add_argument("--new-per-mille", type=int, default=5)
    ap.add_argument("out")
    a = ap.parse_args()
    for path, n in FEEDS:
        p = os.path.join(a.out, path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(feed(a.seed, a.day, path, n, a.modify_pct, a.new_per_mille))
    os.makedirs(os.path.join(a.out, "docs"), exist_ok=True)
    srng = random.Random(f"{a.seed}:static")
    with open(os.path.join(a.out, "docs/README.md"), "w") as f:
        f.write("\n".join(" ".join(srng.choice(WORDS) for _ in range(12)) for _ in range(400)))
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump({"feeds": [p for p, _ in FEEDS], "seed": a.seed}, f, sort_keys=True, indent=2)


if __name__ == "__main__":
    main()
