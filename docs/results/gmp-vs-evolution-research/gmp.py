"""Research prototype: gradual magnitude pruning (Zhu & Gupta 2017) in Keras 3, and allocation-driven GMP.

Masks live in non-trainable tf.Variables; each pruned layer's kernel has a constraint that multiplies
by its mask after every optimizer update (inside the compiled train step); a callback recomputes the
masks from |w| every `frequency` steps (and zeroes the kernel).  One thread, one core.
"""
from __future__ import annotations

import os

for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
           "TF_NUM_INTEROP_THREADS"):
    os.environ[_k] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import glob
import json
import math
import time

import numpy as np
import tensorflow as tf

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

import keras  # noqa: E402

CACHE = os.path.expanduser("~/.cache/evoprune")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.jsonl")


# ----------------------------------------------------------------------------------------------- data
_DATA = None


def data():
    global _DATA
    if _DATA is None:
        from evoprune.config import DataConfig
        from evoprune.data.dataset import load_dataset
        ds = load_dataset(DataConfig(dataset="mnist", data_dir=os.environ.get("MNIST_DIR", "../shared/datasets/mnist"),
                                     validation_fraction=0.1, split_seed=0))
        f = lambda s: (s[0].astype(np.float32) / 255.0, s[1].astype(np.int64))
        _DATA = dict(train=f(ds.train), val=f(ds.validation), test=f(ds.test))
    return _DATA


def baseline_path(arch: str, seed: int) -> str:
    # the models `evoprune train --config configs/lenet-300-100.toml --seed S` caches
    return os.path.expanduser(json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "baselines.json")))[arch][str(seed)])


def accuracy(model, split) -> float:
    x, y = split
    logits = model.predict(x, batch_size=2000, verbose=0)
    return float((logits.argmax(1) == y).mean())


# ----------------------------------------------------------------------------------------------- masks
class MaskConstraint(keras.constraints.Constraint):
    def __init__(self, mask):
        self.mask = mask

    def __call__(self, w):
        return w * self.mask


def masked_clone(base, layer_names):
    """A copy of `base` whose `layer_names` kernels carry a MaskConstraint; returns (model, masks dict)."""
    masks = {}

    def clone_fn(layer):
        cfg = layer.get_config()
        new = layer.__class__.from_config(cfg)
        if layer.name in layer_names:
            m = tf.Variable(np.ones(layer.kernel.shape, np.float32), trainable=False, name=f"mask_{layer.name}")
            masks[layer.name] = m
            new.kernel_constraint = MaskConstraint(m)
        return new

    model = keras.models.clone_model(base, clone_function=clone_fn)
    model.set_weights(base.get_weights())
    return model, masks


def exact_counts(sizes, fracs, total):
    """Integer kept counts per layer with sum == total, close to sizes*fracs (largest remainder)."""
    sizes = np.asarray(sizes, np.int64)
    raw = np.asarray(fracs, np.float64) * sizes
    raw = raw * total / raw.sum()
    raw = np.minimum(raw, sizes)
    # re-spread any overflow (layers capped at full) onto the others
    for _ in range(10):
        deficit = total - raw.sum()
        free = raw < sizes
        if deficit <= 1e-9 or not free.any():
            break
        raw[free] += deficit * raw[free] / raw[free].sum()
        raw = np.minimum(raw, sizes)
    k = np.floor(raw).astype(np.int64)
    rem = raw - k
    for i in np.argsort(-rem):
        if k.sum() >= total:
            break
        if k[i] < sizes[i]:
            k[i] += 1
    assert k.sum() == total, (k, total)
    return k


def topk_mask(w, k):
    a = np.abs(w).ravel()
    m = np.zeros(a.size, np.float32)
    if k > 0:
        idx = np.argpartition(-a, k - 1)[:k]
        m[idx] = 1.0
    return m.reshape(w.shape)


class GMPCallback(keras.callbacks.Callback):
    """Cubic schedule; per-layer kept counts from `counts_at(t)` (dict) or a global top-k when alloc='global'.

    `saliency(layer_name, w)` -> array of scores (default |w|).
    """

    def __init__(self, layers, masks, final_counts, total_steps, s_i=0.5, end_frac=0.7, frequency=100,
                 alloc="counts", saliency=None):
        super().__init__()
        self.layers, self.masks = layers, masks
        self.sizes = np.array([int(np.prod(masks[n].shape)) for n in layers])
        self.final = np.asarray(final_counts, np.int64)  # per layer (alloc='counts') ; sum used for global
        self.K = int(self.final.sum())
        self.N = int(self.sizes.sum())
        self.t1 = int(round(end_frac * total_steps))
        self.s_i, self.freq, self.alloc = s_i, frequency, alloc
        self.saliency = saliency
        self.t = 0
        self.log = []

    def _frac(self, t):
        return min(1.0, t / max(self.t1, 1))

    def _counts(self, t):
        c = (1 - self._frac(t)) ** 3
        if t >= self.t1:
            return self.final
        if self.alloc == "global":
            s_f = 1 - self.K / self.N
            s_t = s_f + (min(self.s_i, s_f) - s_f) * c
            return int(round(self.N * (1 - s_t)))
        s_f = 1 - self.final / self.sizes
        s_t = s_f + (np.minimum(self.s_i, s_f) - s_f) * c
        return np.maximum(self.final, np.round(self.sizes * (1 - s_t)).astype(np.int64))

    def update(self, t):
        kernels = {n: self.model.get_layer(n).kernel for n in self.layers}
        ws = {n: kernels[n].numpy() for n in self.layers}
        sal = {n: (self.saliency(n, ws[n]) if self.saliency else np.abs(ws[n])) for n in self.layers}
        counts = self._counts(t)
        if self.alloc == "global":
            k = counts if t < self.t1 else self.K
            flat = np.concatenate([sal[n].ravel() for n in self.layers])
            gm = topk_mask(flat, k)
            off = 0
            newm = {}
            for n, s in zip(self.layers, self.sizes):
                newm[n] = gm[off:off + s].reshape(ws[n].shape)
                off += s
        else:
            newm = {n: topk_mask(sal[n], int(c)) for n, c in zip(self.layers, counts)}
        for n in self.layers:
            self.masks[n].assign(newm[n])
            kernels[n].assign(ws[n] * newm[n])
        self.log.append((t, [int(newm[n].sum()) for n in self.layers]))

    def on_train_batch_begin(self, batch, logs=None):
        if self.t <= self.t1 and (self.t % self.freq == 0 or self.t == self.t1):
            self.update(self.t)
        self.t += 1

    def on_train_end(self, logs=None):
        if self.t <= self.t1:  # schedule longer than training: force the final mask
            self.t = self.t1
            self.update(self.t1)


# ----------------------------------------------------------------------------------------------- training
class VarCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Cosine decay to 0 whose length and peak are tf.Variables, so one compiled model serves many runs."""

    def __init__(self, lr, steps):
        self.lr = tf.Variable(float(lr), trainable=False)
        self.steps = tf.Variable(float(steps), trainable=False)

    def __call__(self, step):
        s = tf.minimum(tf.cast(step, tf.float32), self.steps)
        return 0.5 * self.lr * (1.0 + tf.cos(math.pi * s / self.steps))

    def get_config(self):
        return {}


def kd_loss(alpha=0.9, T=4.0, n_classes=10):
    def loss(y_true, y_pred):
        labels = tf.cast(y_true[:, 0], tf.int64)
        t_logits = y_true[:, 1:1 + n_classes]
        ce = tf.keras.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=True) \
            if False else tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=y_pred)
        if alpha == 0:
            return ce
        pt = tf.nn.softmax(t_logits / T)
        kl = tf.reduce_sum(pt * (tf.nn.log_softmax(t_logits / T) - tf.nn.log_softmax(y_pred / T)), axis=-1)
        return (1 - alpha) * ce + alpha * T * T * kl
    return loss


def pipeline(x, y_packed, batch, seed):
    X, Y = tf.constant(x), tf.constant(y_packed)
    n = len(x)
    ds = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(batch)
    return ds.map(lambda i: (tf.gather(X, i), tf.gather(Y, i))).prefetch(2)


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._t)


class Pruner:
    """One compiled masked model reused across runs (weights, masks and Adam state reset per run)."""

    def __init__(self, arch, seed, layers, distill=0.9, T=4.0, lr=3e-3, batch=128):
        self.arch, self.seed, self.layers, self.batch = arch, seed, list(layers), batch
        self.base = keras.models.load_model(baseline_path(arch, seed), compile=False)
        d = data()
        self.teacher_train = self.base.predict(d["train"][0], batch_size=2000, verbose=0)
        self.base_val, self.base_test = accuracy(self.base, d["val"]), accuracy(self.base, d["test"])
        self.y_packed = np.concatenate([d["train"][1][:, None].astype(np.float32), self.teacher_train], 1)
        self.model, self.masks = masked_clone(self.base, self.layers)
        self.init_weights = self.base.get_weights()
        self.sizes = [int(np.prod(self.masks[n].shape)) for n in self.layers]
        self.N = sum(self.sizes)
        self.sched = VarCosine(lr, 1000)
        self.opt = keras.optimizers.Adam(self.sched)
        self.distill = distill
        self.model.compile(optimizer=self.opt, loss=kd_loss(distill, T))
        self.steps_per_epoch = math.ceil(len(d["train"][1]) / batch)

    def reset(self, weights=None):
        self.model.set_weights(self.init_weights if weights is None else weights)
        for m in self.masks.values():
            m.assign(tf.ones_like(m))
        for v in self.opt.variables:
            v.assign(tf.zeros_like(v))

    def run(self, final_counts, epochs, alloc="counts", s_i=0.5, end_frac=0.7, frequency=100,
            data_seed=None, weights=None, saliency=None, lr=3e-3, train_subset=None, eval_splits=("val", "test")):
        """GMP retraining toward `final_counts` (per layer) for `epochs`; returns a result dict."""
        self.reset(weights)
        d = data()
        x, yp = d["train"][0], self.y_packed
        if train_subset is not None:
            x, yp = x[train_subset], yp[train_subset]
        spe = math.ceil(len(x) / self.batch)
        total = int(round(epochs * spe))
        self.sched.steps.assign(float(total))
        self.sched.lr.assign(float(lr))
        seed = self.seed if data_seed is None else data_seed
        tf.random.set_seed(seed)
        cb = GMPCallback(self.layers, self.masks, final_counts, total, s_i=s_i, end_frac=end_frac,
                         frequency=frequency, alloc=alloc, saliency=saliency)
        timer = EpochTimer()
        ep = int(math.ceil(epochs))
        steps_arg = None if epochs == ep else total
        t0 = time.perf_counter()
        ds = pipeline(x, yp, self.batch, seed)
        if steps_arg is not None:
            ds = ds.repeat()
            self.model.fit(ds, epochs=1, steps_per_epoch=steps_arg, verbose=0, callbacks=[cb, timer], shuffle=False)
        else:
            self.model.fit(ds, epochs=ep, verbose=0, callbacks=[cb, timer], shuffle=False)
        wall = time.perf_counter() - t0
        kept = [int(np.count_nonzero(self.model.get_layer(n).kernel.numpy())) for n in self.layers]
        mask_kept = [int(self.masks[n].numpy().sum()) for n in self.layers]
        out = dict(kept=kept, mask_kept=mask_kept, kept_frac=[k / s for k, s in zip(mask_kept, self.sizes)],
                   wall_s=wall, epoch_s=timer.times, steps=total)
        for s in eval_splits:
            out[s] = accuracy(self.model, d[s])
        return out

    def plain_fit_epoch_times(self, epochs=3):
        """Plain model.fit (no masks, no constraints, no callback, CE loss) on the same model and data."""
        d = data()
        m = keras.models.clone_model(self.base)
        m.set_weights(self.init_weights)
        m.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, 1000)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        timer = EpochTimer()
        ds = pipeline(d["train"][0], d["train"][1], self.batch, 0)
        m.fit(ds, epochs=epochs, verbose=0, callbacks=[timer])
        # and plain fit with the distillation loss (same packed targets), no masks
        m2 = keras.models.clone_model(self.base)
        m2.set_weights(self.init_weights)
        m2.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, 1000)),
                   loss=kd_loss(0.9, 4.0))
        timer2 = EpochTimer()
        m2.fit(pipeline(d["train"][0], self.y_packed, self.batch, 0), epochs=epochs, verbose=0, callbacks=[timer2])
        return timer.times, timer2.times

    def counts_for(self, level, alloc, fracs=None):
        K = int(round(self.N / level))
        if alloc == "uniform":
            return exact_counts(self.sizes, [1.0] * len(self.sizes), K)
        if alloc == "global":
            return np.array([K] + [0] * (len(self.sizes) - 1))  # only the sum matters
        return exact_counts(self.sizes, fracs, K)


def log_result(rec):
    rec = dict(rec)
    for k, v in list(rec.items()):
        if isinstance(v, np.ndarray):
            rec[k] = v.tolist()
        elif isinstance(v, (np.integer,)):
            rec[k] = int(v)
    with open(RESULTS, "a") as f:
        f.write(json.dumps(rec) + "\n")
