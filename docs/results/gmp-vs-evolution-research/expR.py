"""Fidelity study: does a short GMP retraining rank allocations like the 30-epoch one?

Allocations around GMP-global's final allocation (from results.jsonl tag A) in genome space
(log density of fc2, fc3 relative to fc1), plus uniform; each is retrained at several fidelities.

usage: taskset -c 1 python expR.py --seed 0 --level 24 --fids 1 3 30
"""
import argparse
import json

import numpy as np
from scipy.stats import spearmanr, kendalltau

import gmp

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
p.add_argument("--level", type=float, default=24)
p.add_argument("--fids", type=float, nargs="+", default=[1, 3, 30])
p.add_argument("--step", type=float, default=0.7)
p.add_argument("--freq-short", type=int, default=20)
p.add_argument("--tag", default="R")
a = p.parse_args()

LAYERS = ["fc1", "fc2", "fc3"]


def ce(model, split):
    import tensorflow as tf
    x, y = split
    logits = model.predict(x, batch_size=2000, verbose=0)
    return float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)))
pr = gmp.Pruner("lenet-300-100", a.seed, LAYERS)
d = gmp.data()
K = int(round(pr.N / a.level))
recs = [json.loads(l) for l in open(gmp.RESULTS)]
glob = [r for r in recs if r.get("tag") == "A" and r["seed"] == a.seed and r["level"] == a.level
        and r["alloc"] == "global"][0]
sizes = np.array(pr.sizes, float)
dens = np.array(glob["mask_kept"]) / sizes
g0 = np.log(dens[1:] / dens[0])
s = a.step
genomes = [g0, g0 + [s, 0], g0 - [s, 0], g0 + [0, s], g0 - [0, s], g0 + [s, s], g0 - [s, s], np.zeros(2)]
names = ["global", "fc2+", "fc2-", "fc3+", "fc3-", "both+", "both-", "uniform"]
allocs = [gmp.exact_counts(pr.sizes, np.exp(np.concatenate([[0.0], g])), K) for g in genomes]
table = {n: {} for n in names}
for fid in a.fids:
    for n, c in zip(names, allocs):
        freq = 100 if fid >= 30 else a.freq_short
        r = pr.run(c, fid, frequency=freq, eval_splits=("val", "test"))
        r["val_ce"] = ce(pr.model, d["val"])
        table[n][fid] = (r["val"], r["test"], -r["val_ce"])
        gmp.log_result(dict(tag=a.tag, seed=a.seed, level=a.level, name=n, counts=[int(x) for x in c], fid=fid,
                            frequency=freq, val=r["val"], test=r["test"], val_ce=r["val_ce"], kept_frac=r["kept_frac"], wall_s=r["wall_s"]))
        print(f"fid {fid:g} {n:8s} counts {list(c)} val {r['val']:.4f} ce {r['val_ce']:.4f} test {r['test']:.4f} ({r['wall_s']:.0f}s)",
              flush=True)
top = max(a.fids)
for fid in a.fids:
    if fid == top:
        continue
    x = [table[n][fid][0] for n in names]
    yv = [table[n][top][0] for n in names]
    yt = [table[n][top][1] for n in names]
    xc = [table[n][fid][2] for n in names]
    print(f"fid {fid:g} val acc vs fid {top:g}: spearman val {spearmanr(x, yv)[0]:.2f} test {spearmanr(x, yt)[0]:.2f}; "
          f"kendall test {kendalltau(x, yt)[0]:.2f} | fid {fid:g} -val CE: spearman val {spearmanr(xc, yv)[0]:.2f} "
          f"test {spearmanr(xc, yt)[0]:.2f}", flush=True)
