"""Markdown tables from results.jsonl: python summarize.py [tag ...]"""
import json
import sys
from collections import defaultdict

import numpy as np

recs = [json.loads(l) for l in open(__import__("os").path.join(__import__("os").path.dirname(__import__("os").path.abspath(__file__)), "results.jsonl"))]
tags = sys.argv[1:] or sorted({r["tag"] for r in recs if "alloc" in r})
rows = [r for r in recs if r.get("tag") in tags and "alloc" in r]
by = defaultdict(dict)
for r in rows:
    key = (r["tag"], r["level"], r["alloc"], r.get("s_i"), r.get("distill"), r.get("lr", 3e-3))
    by[key][r["seed"]] = r
seeds = sorted({r["seed"] for r in rows})
print("| tag | level | alloc | s_i | KD | " + " | ".join(f"seed {s} test (drop)" for s in seeds)
      + " | median drop test | median drop val | kept frac fc1/fc2/fc3 (seed 0) |")
print("|" + "---|" * (5 + len(seeds) + 3))
for key in sorted(by, key=lambda k: (k[0], k[1], k[2], str(k[3]), str(k[4]))):
    d = by[key]
    cells = []
    for s in seeds:
        r = d.get(s)
        cells.append(f"{100 * r['test']:.2f} ({r['drop_test_pp']:+.2f})" if r else "")
    dt = [d[s]["drop_test_pp"] for s in d]
    dv = [d[s]["drop_val_pp"] for s in d]
    r0 = d.get(min(d))
    fr = "/".join(f"{100 * f:.2f}%" for f in r0["kept_frac"])
    print(f"| {key[0]} | {key[1]:g}x | {key[2]} | {key[3]} | {key[4]} | " + " | ".join(cells)
          + f" | {np.median(dt):+.2f} | {np.median(dv):+.2f} | {fr} |")
