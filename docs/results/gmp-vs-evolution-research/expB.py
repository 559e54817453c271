"""Experiment B: evolutionary search of the per-layer allocation for GMP, then the 30-epoch GMP retraining.

Genome: log relative densities (g_fc2, g_fc3) with g_fc1 = 0; counts = exact_counts(sizes, exp(g), K)
(renormalised so the total kept equals K = round(N/level) exactly; a layer that would exceed 100% is capped and
its excess re-spread).  Fitness: validation accuracy (tie-break: lower validation CE) after a SHORT GMP
retraining (schedule compressed into `fid1` epochs, mask update every `freq_short` steps), all candidates with
the same data order (common random numbers).  Search: generation 0 = uniform + one-shot global magnitude
allocation + random (Latin hypercube) points; then (mu + lambda) generations with Gaussian mutation and
blend crossover; then successive halving: the best `n_promote` distinct ones at `fid2` epochs; the winner gets
the same 30-epoch GMP retraining as the baselines.

usage: taskset -c 1 python expB.py --seeds 0 1 2 --levels 24 30
"""
import argparse
import json
import time

import numpy as np

import gmp

p = argparse.ArgumentParser()
p.add_argument("--seeds", type=int, nargs="+", default=[0])
p.add_argument("--levels", type=float, nargs="+", default=[24])
p.add_argument("--pop0", type=int, default=12)
p.add_argument("--mu", type=int, default=4)
p.add_argument("--lam", type=int, default=6)
p.add_argument("--gens", type=int, default=3)
p.add_argument("--fid1", type=float, default=1)
p.add_argument("--fid2", type=float, default=3)
p.add_argument("--n-promote", type=int, default=4)
p.add_argument("--freq-short", type=int, default=20)
p.add_argument("--final-epochs", type=float, default=30)
p.add_argument("--tag", default="B")
p.add_argument("--no-final", action="store_true")
p.add_argument("--encoding", default="alloc", choices=["alloc", "scale"],
               help="alloc: static per-layer counts (log densities); scale: global GMP on |w|*exp(g_l) "
                    "(g = 0 is exactly GMP global; the allocation then moves during training)")
a = p.parse_args()

LAYERS = ["fc1", "fc2", "fc3"]
LO, HI = np.array([-1.5, -1.5]), np.array([4.0, 5.5])


def ce(model, split):
    import tensorflow as tf
    x, y = split
    logits = model.predict(x, batch_size=2000, verbose=0)
    return float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)))


def oneshot_global_counts(pr, K):
    ws = [np.abs(pr.base.get_layer(n).kernel.numpy()).ravel() for n in LAYERS]
    flat = np.concatenate(ws)
    thr = np.partition(flat, flat.size - K)[flat.size - K]
    c = np.array([int((w >= thr).sum()) for w in ws])
    return gmp.exact_counts(pr.sizes, c / np.array(pr.sizes), K)


def genome_of(counts, sizes):
    d = np.asarray(counts, float) / np.asarray(sizes)
    return np.log(np.maximum(d[1:], 1e-6) / d[0])


for seed in a.seeds:
    pr = gmp.Pruner("lenet-300-100", seed, LAYERS)
    d = gmp.data()
    for level in a.levels:
        K = int(round(pr.N / level))
        rng = np.random.default_rng(1000 * seed + int(level))
        cache = {}
        t_start = time.perf_counter()
        epochs_spent = 0.0

        def counts_of(g):
            return gmp.exact_counts(pr.sizes, np.exp(np.concatenate([[0.0], g])), K)

        def run_genome(g, fid, freq, splits):
            if a.encoding == "alloc":
                return pr.run(counts_of(g), fid, frequency=freq, eval_splits=splits)
            scale = dict(zip(LAYERS, np.exp(np.concatenate([[0.0], g]))))
            return pr.run(pr.counts_for(level, "uniform"), fid, frequency=freq, eval_splits=splits, alloc="global",
                          saliency=lambda n, w: np.abs(w) * scale[n])

        def evaluate(g, fid):
            global epochs_spent
            c = counts_of(g) if a.encoding == "alloc" else np.round(g, 3)
            key = (tuple(c.tolist()), fid)
            if key not in cache:
                r = run_genome(g, fid, a.freq_short, ("val",))
                c = np.array(r["mask_kept"]) if a.encoding == "scale" else c
                r["val_ce"] = ce(pr.model, d["val"])
                epochs_spent += fid
                cache[key] = r
                print(f"  fid {fid:g} counts {list(c)} frac {[round(f, 4) for f in r['kept_frac']]} "
                      f"val {r['val']:.4f} ce {r['val_ce']:.4f} ({r['wall_s']:.1f}s)", flush=True)
            r = cache[key]
            return (r["val"], -r["val_ce"]), np.array(r["mask_kept"]) if a.encoding == "scale" else c

        uni = pr.counts_for(level, "uniform")
        og = oneshot_global_counts(pr, K)
        # generation 0
        lh = np.stack([(rng.permutation(a.pop0 - 2) + rng.random(a.pop0 - 2)) / (a.pop0 - 2) for _ in range(2)], 1)
        if a.encoding == "alloc":
            pop = [genome_of(uni, pr.sizes), genome_of(og, pr.sizes)] + [LO + (HI - LO) * u for u in lh]
        else:  # g = 0: GMP global; |w|/std_l; then random log-scales in [-1.5, 1.5]
            std = np.array([pr.base.get_layer(n).kernel.numpy().std() for n in LAYERS])
            pop = [np.zeros(2), np.log(std[0] / std[1:])] + [-1.5 + 3.0 * u for u in lh]
            LO[:], HI[:] = -3.0, 3.0
        scored = []
        for g in pop:
            f, c = evaluate(g, a.fid1)
            scored.append((f, g, c))
        sigma = 0.6
        history = [[(list(map(int, c)), f) for f, g, c in scored]]
        for gen in range(a.gens):
            scored.sort(key=lambda t: t[0], reverse=True)
            parents = scored[:a.mu]
            kids = []
            for _ in range(a.lam):
                i, j = rng.choice(len(parents), 2, replace=False)
                if rng.random() < 0.5:  # blend crossover
                    w = rng.uniform(-0.25, 1.25)
                    g = w * parents[i][1] + (1 - w) * parents[j][1]
                else:
                    g = parents[i][1].copy()
                g = np.clip(g + sigma * rng.standard_normal(2), LO, HI)
                kids.append(g)
            for g in kids:
                f, c = evaluate(g, a.fid1)
                scored.append((f, g, c))
            # unique by counts
            uniq = {}
            for t in scored:
                uniq.setdefault(tuple(np.round(t[1], 3)) if a.encoding == "scale" else tuple(t[2]), t)
            scored = list(uniq.values())
            sigma *= 0.7
            history.append([(list(map(int, c)), f) for f, g, c in scored])
            best = max(scored, key=lambda t: t[0])
            print(f" gen {gen + 1}: best fid1 val {best[0][0]:.4f} counts {list(best[2])}", flush=True)
        scored.sort(key=lambda t: t[0], reverse=True)
        finalists = scored[:a.n_promote]
        fin = []
        for f1, g, c in finalists:
            f2, _ = evaluate(g, a.fid2)
            fin.append((f2, f1, g, c))
        fin.sort(key=lambda t: t[0], reverse=True)
        best_counts, best_g = fin[0][3], fin[0][2]
        search_wall = time.perf_counter() - t_start
        print(f"seed {seed} {level:g}x search: {epochs_spent:g} epochs, {search_wall:.0f}s; best {list(best_counts)} "
              f"(uniform {list(uni)}, one-shot global {list(og)})", flush=True)
        rec = dict(tag=a.tag + "-search", seed=seed, level=level, K=K, epochs_spent=epochs_spent,
                   search_wall_s=search_wall, best_counts=[int(x) for x in best_counts], best_genome=best_g.tolist(), encoding=a.encoding,
                   uniform_counts=[int(x) for x in uni], oneshot_global_counts=[int(x) for x in og],
                   finalists=[dict(counts=[int(x) for x in c], genome=g.tolist(), fid2=f2, fid1=f1) for f2, f1, g, c in fin],
                   all_fid1=[dict(key=list(k[0]), kept=v["mask_kept"], val=v["val"], val_ce=v["val_ce"]) for k, v in cache.items()
                             if k[1] == a.fid1], args=vars(a))
        gmp.log_result(rec)
        if a.no_final:
            continue
        r = run_genome(best_g, a.final_epochs, 100, ("val", "test"))
        assert sum(r["mask_kept"]) == K
        rec = dict(tag=a.tag, arch="lenet-300-100", seed=seed, level=level, alloc="evolved-" + a.encoding, genome=best_g.tolist(), s_i=0.5, distill=0.9,
                   epochs=a.final_epochs, K=K, base_val=pr.base_val, base_test=pr.base_test,
                   drop_test_pp=100 * (pr.base_test - r["test"]), drop_val_pp=100 * (pr.base_val - r["val"]),
                   search_epochs=epochs_spent, search_wall_s=search_wall, **r)
        gmp.log_result(rec)
        print(f"[{a.tag}] seed {seed} {level:g}x evolved: test {r['test']:.4f} (drop {rec['drop_test_pp']:+.2f}) "
              f"val {r['val']:.4f} kept {r['mask_kept']} frac {[round(f, 4) for f in r['kept_frac']]} "
              f"final wall {r['wall_s']:.0f}s", flush=True)
