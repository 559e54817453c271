"""Experiment A: GMP uniform / global at several compression levels, 30-epoch distilled retraining.

usage: taskset -c 1 python expA.py --seeds 0 1 2 --levels 12 18 24 30 --allocs uniform global [--s-i 0.5]
       [--distill 0.9] [--epochs 30] [--tag A] [--timing]
"""
import argparse
import time

import gmp

LAYERS = {"lenet-300-100": ["fc1", "fc2", "fc3"], "lenet-5": ["conv1", "conv2", "fc1", "fc2"]}

p = argparse.ArgumentParser()
p.add_argument("--arch", default="lenet-300-100")
p.add_argument("--seeds", type=int, nargs="+", default=[0])
p.add_argument("--levels", type=float, nargs="+", default=[24])
p.add_argument("--allocs", nargs="+", default=["uniform", "global"])
p.add_argument("--s-i", type=float, default=0.5)
p.add_argument("--distill", type=float, default=0.9)
p.add_argument("--epochs", type=float, default=30)
p.add_argument("--lr", type=float, default=3e-3)
p.add_argument("--frequency", type=int, default=100)
p.add_argument("--tag", default="A")
p.add_argument("--timing", action="store_true")
a = p.parse_args()

for seed in a.seeds:
    pr = gmp.Pruner(a.arch, seed, LAYERS[a.arch], distill=a.distill)
    print(f"seed {seed}: baseline val {pr.base_val:.4f} test {pr.base_test:.4f}", flush=True)
    if a.timing:
        plain, plain_kd = pr.plain_fit_epoch_times(3)
        print("plain fit epoch s:", [round(t, 2) for t in plain], "plain KD fit:", [round(t, 2) for t in plain_kd], flush=True)
        gmp.log_result(dict(tag="timing", arch=a.arch, seed=seed, plain_epoch_s=plain, plain_kd_epoch_s=plain_kd))
    for level in a.levels:
        for alloc in a.allocs:
            counts = pr.counts_for(level, alloc)
            r = pr.run(counts, a.epochs, alloc="global" if alloc == "global" else "counts", s_i=a.s_i,
                       frequency=a.frequency, lr=a.lr)
            K = int(round(pr.N / level))
            assert sum(r["mask_kept"]) == K and all(k <= m for k, m in zip(r["kept"], r["mask_kept"])), r
            rec = dict(tag=a.tag, arch=a.arch, seed=seed, level=level, alloc=alloc, s_i=a.s_i, distill=a.distill,
                       epochs=a.epochs, lr=a.lr, frequency=a.frequency, K=K, base_val=pr.base_val,
                       base_test=pr.base_test, drop_test_pp=100 * (pr.base_test - r["test"]),
                       drop_val_pp=100 * (pr.base_val - r["val"]), **r)
            gmp.log_result(rec)
            print(f"[{a.tag}] seed {seed} {level:g}x {alloc:8s} s_i={a.s_i} kd={a.distill}: test {r['test']:.4f} "
                  f"(drop {rec['drop_test_pp']:+.2f}) val {r['val']:.4f} (drop {rec['drop_val_pp']:+.2f}) "
                  f"kept {r['mask_kept']} frac {[round(f, 4) for f in r['kept_frac']]} "
                  f"wall {r['wall_s']:.1f}s epoch {sum(r['epoch_s'][1:]) / max(len(r['epoch_s']) - 1, 1):.2f}s",
                  flush=True)
