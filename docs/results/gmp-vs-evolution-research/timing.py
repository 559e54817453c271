"""Per-epoch time: plain model.fit (CE), plain model.fit (distillation loss), GMP fit (masks + callback + KD).

Interleaved in rounds in one process (the machine's speed drifts with the other core's load).
usage: taskset -c 1 python timing.py --arch lenet-300-100 --rounds 3 --epochs 4
"""
import argparse

import numpy as np

import gmp

p = argparse.ArgumentParser()
p.add_argument("--arch", default="lenet-300-100")
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--epochs", type=int, default=4)
p.add_argument("--level", type=float, default=24)
a = p.parse_args()
LAYERS = {"lenet-300-100": ["fc1", "fc2", "fc3"], "lenet-5": ["conv1", "conv2", "fc1", "fc2"]}[a.arch]
pr = gmp.Pruner(a.arch, 0, LAYERS)
res = {"plain": [], "plain_kd": [], "gmp_global": [], "gmp_uniform": []}
for rnd in range(a.rounds):
    plain, plain_kd = pr.plain_fit_epoch_times(a.epochs)
    res["plain"] += plain[1:]
    res["plain_kd"] += plain_kd[1:]
    for alloc in ("global", "uniform"):
        r = pr.run(pr.counts_for(a.level, alloc), a.epochs, alloc="global" if alloc == "global" else "counts",
                   eval_splits=())
        res["gmp_" + alloc] += r["epoch_s"][(1 if rnd == 0 else 0):]
    print(rnd, {k: round(float(np.median(v)), 3) for k, v in res.items()}, flush=True)
med = {k: float(np.median(v)) for k, v in res.items()}
print("median epoch s:", {k: round(v, 3) for k, v in med.items()})
print("ratio gmp_global/plain %.2f, gmp_uniform/plain %.2f, gmp_global/plain_kd %.2f, plain_kd/plain %.2f" % (
    med["gmp_global"] / med["plain"], med["gmp_uniform"] / med["plain"], med["gmp_global"] / med["plain_kd"],
    med["plain_kd"] / med["plain"]))
gmp.log_result(dict(tag="timing2", arch=a.arch, **res))
