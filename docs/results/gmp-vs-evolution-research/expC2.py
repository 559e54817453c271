"""Experiment C(ii): mid-course allocation search ("allocation schedule").

Lineage of the final model: GMP global for the first E epochs of the 30-epoch schedule (same cubic schedule, lr,
KD as the baselines) -> checkpoint (weights, masks, Adam state, step) -> the allocation search runs from that
checkpoint -> the winner continues epochs E..30 of the same lr schedule, pruning from the checkpoint's per-layer
counts to its final per-layer counts with a cubic ramp that ends at t1 = 70% of the 30 epochs. Total retraining in
the lineage: 30 epochs. The control ("global-continue") is the same lineage continuing with one global threshold.

Fitness of a candidate allocation: from the checkpoint, prune to the candidate's final counts over a compressed
ramp (70% of F epochs, cubic), lr cosine from the checkpoint's lr to 0 over F epochs; validation accuracy
(tie-break: validation CE). Same data order for every candidate.

usage: taskset -c 1 python expC2.py --seeds 0 1 2 --levels 24 30 --E 10
"""
import argparse
import math
import time

import numpy as np
import tensorflow as tf
import keras

import gmp

p = argparse.ArgumentParser()
p.add_argument("--seeds", type=int, nargs="+", default=[0])
p.add_argument("--levels", type=float, nargs="+", default=[24])
p.add_argument("--E", type=float, default=10)
p.add_argument("--pop0", type=int, default=10)
p.add_argument("--mu", type=int, default=4)
p.add_argument("--lam", type=int, default=6)
p.add_argument("--gens", type=int, default=3)
p.add_argument("--fid1", type=float, default=1)
p.add_argument("--fid2", type=float, default=3)
p.add_argument("--n-promote", type=int, default=3)
p.add_argument("--freq-short", type=int, default=20)
p.add_argument("--tag", default="C2")
p.add_argument("--tail", action="store_true", help="the lineage's continuation follows the tail of the original "
               "cubic schedule (as GMP global would) instead of a cubic ramp restarted at the checkpoint")
a = p.parse_args()
LAYERS = ["fc1", "fc2", "fc3"]
EPOCHS, LR = 30, 3e-3


class OffsetCosine(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self):
        self.peak = tf.Variable(LR, trainable=False)
        self.offset = tf.Variable(0.0, trainable=False)
        self.steps = tf.Variable(1000.0, trainable=False)

    def __call__(self, step):
        s = tf.clip_by_value(tf.cast(step, tf.float32) - self.offset, 0.0, self.steps)
        return 0.5 * self.peak * (1.0 + tf.cos(math.pi * s / self.steps))

    def get_config(self):
        return {}


class Ramp(keras.callbacks.Callback):
    """Cubic ramp of kept counts from `start` to `final` between global steps tS and tE; mode counts or global."""

    def __init__(self, masks, layers, start, final, tS, tE, freq, mode, tail=False):
        super().__init__()
        self.tail = tail
        self.masks, self.layers = masks, layers
        self.start, self.final = np.asarray(start, float), np.asarray(final, np.int64)
        self.tS, self.tE, self.freq, self.mode, self.t = tS, tE, freq, mode, tS

    def update(self, t):
        c = (1 - min(1.0, (t - self.tS) / max(self.tE - self.tS, 1))) ** 3
        if self.tail:  # same shape as the original schedule from t = 0: (1 - t/tE)^3, rescaled to 1 at tS
            c = (1 - min(1.0, t / self.tE)) ** 3 / (1 - self.tS / self.tE) ** 3
        ks = self.final if t >= self.tE else np.round(self.final + (self.start - self.final) * c).astype(np.int64)
        kern = {n: self.model.get_layer(n).kernel for n in self.layers}
        ws = {n: kern[n].numpy() for n in self.layers}
        if self.mode == "global":
            flat = np.concatenate([np.abs(ws[n]).ravel() for n in self.layers])
            gm, off, newm = gmp.topk_mask(flat, int(ks.sum())), 0, {}
            for n in self.layers:
                newm[n] = gm[off:off + ws[n].size].reshape(ws[n].shape)
                off += ws[n].size
        else:
            newm = {n: gmp.topk_mask(np.abs(ws[n]), int(k)) for n, k in zip(self.layers, ks)}
        for n in self.layers:
            self.masks[n].assign(newm[n])
            kern[n].assign(ws[n] * newm[n])

    def on_train_batch_begin(self, batch, logs=None):
        if self.t <= self.tE and ((self.t - self.tS) % self.freq == 0 or self.t == self.tE):
            self.update(self.t)
        self.t += 1

    def on_train_end(self, logs=None):
        if self.t <= self.tE:
            self.update(self.tE)


def ce(model, split):
    x, y = split
    logits = model.predict(x, batch_size=2000, verbose=0)
    return float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)))


for seed in a.seeds:
    pr = gmp.Pruner("lenet-300-100", seed, LAYERS)
    d = gmp.data()
    sched = OffsetCosine()
    opt = keras.optimizers.Adam(sched)
    model, masks = pr.model, pr.masks
    model.compile(optimizer=opt, loss=gmp.kd_loss(0.9, 4.0))
    spe = pr.steps_per_epoch
    total, t1 = EPOCHS * spe, int(round(0.7 * EPOCHS * spe))
    tS = int(round(a.E * spe))
    for level in a.levels:
        K = int(round(pr.N / level))
        t_start = time.perf_counter()
        # ---- phase 1: GMP global, first E epochs of the 30-epoch run
        pr.reset()
        for v in opt.variables:
            v.assign(tf.zeros_like(v))
        sched.peak.assign(LR); sched.offset.assign(0.0); sched.steps.assign(float(total))
        tf.random.set_seed(seed)
        cb = gmp.GMPCallback(LAYERS, masks, pr.counts_for(level, "uniform"), total, alloc="global")
        cb.on_train_end = lambda logs=None: None  # do not force the final mask at the checkpoint
        model.fit(gmp.pipeline(d["train"][0], pr.y_packed, 128, seed).repeat().take(tS), epochs=1, verbose=0,
                  callbacks=[cb])
        assert cb.t == tS, cb.t
        ck_w = model.get_weights()
        ck_m = {n: masks[n].numpy() for n in LAYERS}
        ck_o = [v.numpy() for v in opt.variables]
        start_counts = np.array([int(ck_m[n].sum()) for n in LAYERS])
        lr_E = float(sched(tf.constant(tS)))
        phase1_wall = time.perf_counter() - t_start
        print(f"seed {seed} {level:g}x: checkpoint at epoch {a.E:g}: counts {list(start_counts)} "
              f"lr {lr_E:.2e} ({phase1_wall:.0f}s)", flush=True)

        def restore():
            model.set_weights(ck_w)
            for n in LAYERS:
                masks[n].assign(ck_m[n])
            for v, val in zip(opt.variables, ck_o):
                v.assign(val)

        def continue_run(final, mode, fid=None, splits=("val",)):
            """fid=None: the lineage's remaining epochs E..30; else a compressed fidelity run of fid epochs."""
            restore()
            if fid is None:
                sched.peak.assign(LR); sched.offset.assign(0.0); sched.steps.assign(float(total))
                n_steps, tE, freq, dseed = total - tS, t1, 100, seed + 1
            else:
                n_steps = int(round(fid * spe))
                sched.peak.assign(lr_E); sched.offset.assign(float(tS)); sched.steps.assign(float(n_steps))
                tE, freq, dseed = tS + int(round(0.7 * n_steps)), a.freq_short, seed + 2
            tf.random.set_seed(dseed)
            cb = Ramp(masks, LAYERS, start_counts, final, tS, tE, freq, mode, tail=a.tail and fid is None)
            t0 = time.perf_counter()
            model.fit(gmp.pipeline(d["train"][0], pr.y_packed, 128, dseed).repeat().take(n_steps), epochs=1,
                      verbose=0, callbacks=[cb])
            out = dict(wall_s=time.perf_counter() - t0,
                       mask_kept=[int(masks[n].numpy().sum()) for n in LAYERS],
                       kept=[int(np.count_nonzero(model.get_layer(n).kernel.numpy())) for n in LAYERS])
            for s in splits:
                out[s] = gmp.accuracy(model, d[s])
            if fid is not None:
                out["val_ce"] = ce(model, d["val"])
            return out

        cache, epochs_spent = {}, 0.0
        Kfinal = np.array([K, 0, 0])

        def evaluate(g, fid):
            global epochs_spent
            key = ("global" if g is None else tuple(gmp.exact_counts(pr.sizes, np.exp(np.r_[0.0, g]), K)), fid)
            if key not in cache:
                if g is None:
                    r = continue_run(Kfinal, "global", fid)
                else:
                    r = continue_run(np.array(key[0]), "counts", fid)
                epochs_spent += fid
                cache[key] = r
                print(f"  fid {fid:g} {'global' if g is None else ''} counts {r['mask_kept']} val {r['val']:.4f} "
                      f"ce {r['val_ce']:.4f} ({r['wall_s']:.1f}s)", flush=True)
            r = cache[key]
            return (r["val"], -r["val_ce"]), np.array(r["mask_kept"])

        rng = np.random.default_rng(1000 * seed + int(level) + 7)
        g_cur = np.log((start_counts[1:] / np.array(pr.sizes[1:])) / (start_counts[0] / pr.sizes[0]))
        scored = []
        f, c = evaluate(None, a.fid1)
        g_glob = np.log((c[1:] / np.array(pr.sizes[1:])) / (c[0] / pr.sizes[0]))
        scored.append((f, None, c))
        pop = [g_glob, g_cur] + [g_glob + rng.normal(0, 0.6, 2) for _ in range(a.pop0 - 3)]
        for g in pop:
            f, c = evaluate(g, a.fid1)
            scored.append((f, g, c))
        sigma = 0.4
        for gen in range(a.gens):
            scored.sort(key=lambda t: t[0], reverse=True)
            parents = [t for t in scored if t[1] is not None][:a.mu]
            for _ in range(a.lam):
                i, j = rng.choice(len(parents), 2, replace=False)
                if rng.random() < 0.5:
                    w = rng.uniform(-0.25, 1.25)
                    g = w * parents[i][1] + (1 - w) * parents[j][1]
                else:
                    g = parents[i][1].copy()
                g = g + sigma * rng.standard_normal(2)
                f, c = evaluate(g, a.fid1)
                scored.append((f, g, c))
            uniq = {}
            for t in scored:
                uniq.setdefault(tuple(t[2]) if t[1] is not None else "global", t)
            scored = list(uniq.values())
            sigma *= 0.7
            best = max(scored, key=lambda t: t[0])
            print(f" gen {gen + 1}: best fid1 {best[0][0]:.4f} counts {list(best[2])} "
                  f"{'(global)' if best[1] is None else ''}", flush=True)
        scored.sort(key=lambda t: t[0], reverse=True)
        fin = []
        for f1, g, c in scored[:a.n_promote]:
            f2, c2 = evaluate(g, a.fid2)
            fin.append((f2, f1, g, c2))
        fin.sort(key=lambda t: t[0], reverse=True)
        _, _, best_g, best_c = fin[0]
        search_wall = time.perf_counter() - t_start - phase1_wall
        print(f"seed {seed} {level:g}x search: {epochs_spent:g} epochs {search_wall:.0f}s; best "
              f"{'global' if best_g is None else list(best_c)}", flush=True)
        finals = {"global-continue": (Kfinal, "global")}
        if best_g is not None:
            finals["evolved-midcourse"] = (np.array(best_c), "counts")
        for name, (fc, mode) in finals.items():
            r = continue_run(fc, mode, None, ("val", "test"))
            assert sum(r["mask_kept"]) == K
            r["kept_frac"] = [k / s for k, s in zip(r["mask_kept"], pr.sizes)]
            rec = dict(tag=a.tag, arch="lenet-300-100", seed=seed, level=level, alloc=name, s_i=0.5, distill=0.9,
                       epochs=30, E=a.E, K=K, tail=a.tail, base_val=pr.base_val, base_test=pr.base_test,
                       drop_test_pp=100 * (pr.base_test - r["test"]), drop_val_pp=100 * (pr.base_val - r["val"]),
                       search_epochs=epochs_spent, search_wall_s=search_wall, checkpoint_counts=start_counts.tolist(),
                       winner="global" if best_g is None else "evolved",
                       finalists=[dict(counts=list(map(int, c)), fid2=f2, fid1=f1, is_global=g is None)
                                  for f2, f1, g, c in fin], **r)
            gmp.log_result(rec)
            print(f"[{a.tag}] seed {seed} {level:g}x {name}: test {r['test']:.4f} (drop {rec['drop_test_pp']:+.2f}) "
                  f"val {r['val']:.4f} (drop {rec['drop_val_pp']:+.2f}) kept {r['mask_kept']} "
                  f"({r['wall_s']:.0f}s)", flush=True)
