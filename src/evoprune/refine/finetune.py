"""Fine-tuning: retrain the surviving weights with the mask held fixed (prune, then tune)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from evoprune.errors import plural
from evoprune.reporting.metrics import accuracy_bar
from evoprune.scoring.head import HeadScorer


@dataclass(frozen=True)
class FinetuneSettings:
    """How pruned heads are fine-tuned.

    Attributes:
        steps: Adam steps on mini-batches of the cached training features.
        batch_size: mini-batch size.
        learning_rate: Adam learning rate.
        seed: seeds the mini-batch draws and TensorFlow.
    """

    steps: int = 300
    batch_size: int = 128
    learning_rate: float = 1e-2
    seed: int = 0


class HeadFinetuner:
    """Fine-tunes a masked Dense head on cached features entering it.

    Only the kept weights and the bias change: the gradient of ``W * mask`` is zero at
    pruned weights, so they stay zero. Fast because the layers before the head never run.

    Args:
        features: training activations entering the head, ``(n, f)`` float32.
        labels: training labels.
        kernel, bias: the trained head.
        settings: steps, batch size, learning rate and seed.
        train_bias: False for a head without bias (its zero bias stays zero).
    """

    def __init__(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        kernel: np.ndarray,
        bias: np.ndarray,
        settings: FinetuneSettings,
        train_bias: bool = True,
    ) -> None:
        self.features = np.asarray(features, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.kernel = np.asarray(kernel, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)
        self.settings = settings
        self.train_bias = train_bias
        self._step: tuple[dict[str, Any], Any] | None = None  # (variables, compiled step)
        self._tuned: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def _build(self):
        """Variables (created once) and a compiled Adam step over them."""
        import keras
        import tensorflow as tf

        s = self.settings
        zeros_w, zeros_b = np.zeros_like(self.kernel), np.zeros_like(self.bias)
        v = {
            name: tf.Variable(init, trainable=False)
            for name, init in (
                ("w", zeros_w),
                ("b", zeros_b),
                ("mask", zeros_w),
                ("mw", zeros_w),
                ("vw", zeros_w),
                ("mb", zeros_b),
                ("vb", zeros_b),
            )
        }
        x_all, y_all = tf.constant(self.features), tf.constant(self.labels)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        beta1, beta2, eps, lr = 0.9, 0.999, 1e-7, s.learning_rate

        @tf.function
        def step(rows, t):
            x, y = tf.gather(x_all, rows), tf.gather(y_all, rows)
            with tf.GradientTape() as tape:
                tape.watch([v["w"], v["b"]])
                loss = loss_fn(y, tf.matmul(x, v["w"] * v["mask"]) + v["b"])
            grads = tape.gradient(loss, [v["w"], v["b"]])
            updates = ((v["w"], grads[0], v["mw"], v["vw"]), (v["b"], grads[1], v["mb"], v["vb"]))
            for var, g, m, u in updates[: 2 if self.train_bias else 1]:  # a bias-free head keeps b = 0
                m.assign(beta1 * m + (1 - beta1) * g)
                u.assign(beta2 * u + (1 - beta2) * g * g)
                m_hat = m / (1 - tf.pow(beta1, t))
                u_hat = u / (1 - tf.pow(beta2, t))
                var.assign_sub(lr * m_hat / (tf.sqrt(u_hat) + eps))

        return v, step

    def tune(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Returns the fine-tuned ``(kernel * mask, bias)`` for one mask.

        Deterministic: mini-batches come from a NumPy generator seeded with ``settings.seed``,
        so each mask is tuned once (memoized).
        """
        import tensorflow as tf

        key = np.packbits(np.asarray(mask, dtype=bool)).tobytes()
        if key in self._tuned:
            return self._tuned[key]
        s = self.settings
        if self._step is None:
            self._step = self._build()
        v, step = self._step
        mask = np.asarray(mask, dtype=np.float32)
        for name, value in (("w", self.kernel * mask), ("b", self.bias), ("mask", mask)):
            v[name].assign(value)
        for name in ("mw", "vw", "mb", "vb"):
            v[name].assign(tf.zeros_like(v[name]))
        rng = np.random.default_rng(s.seed)
        for t in range(1, s.steps + 1):
            step(tf.constant(rng.integers(0, len(self.labels), s.batch_size)), tf.constant(float(t)))
        bias = v["b"].numpy() if self.train_bias else self.bias
        self._tuned[key] = ((v["w"] * v["mask"]).numpy(), bias)
        return self._tuned[key]


def head_correct(features: np.ndarray, labels: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> int:
    """Correct predictions of a Dense head given the features entering it.

    Decided like the fast evaluator (:class:`~evoprune.scoring.head.HeadScorer`), so a fine-tuned
    head and a pruned one are scored alike.
    """
    kernel = np.asarray(kernel, dtype=np.float32)
    scorer = HeadScorer(features, kernel, bias, labels)
    return int(scorer.correct_counts(np.ones((1,) + kernel.shape, dtype=bool))[0])


def head_accuracy(features: np.ndarray, labels: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> float:
    """Accuracy of a Dense head given the features entering it (see :func:`head_correct`)."""
    return head_correct(features, labels, kernel, bias) / max(len(labels), 1)


class RefiningEvaluator:
    """Wraps a fast head evaluator: every mask is fine-tuned before it is scored.

    For ``refine = "each"``: accurate but about ``steps`` optimizer steps per evaluation.
    """

    features: np.ndarray  # copied from the wrapped evaluator, as are its other attributes
    labels: np.ndarray

    def __init__(self, evaluator, finetuner: HeadFinetuner) -> None:
        self.inner = evaluator
        self.finetuner = finetuner
        for name in (
            "kernels",
            "kernel",
            "bias",
            "labels",
            "n",
            "features",
            "layer_indices",
            "target",
            "mode",
        ):
            setattr(self, name, getattr(evaluator, name))

    def correct_counts(self, masks) -> np.ndarray:
        masks = masks[0] if isinstance(masks, list) else masks
        counts = []
        for mask in np.asarray(masks, dtype=bool):
            if mask.all():
                counts.append(int(self.inner.correct_counts(mask[None])[0]))
                continue
            kernel, bias = self.finetuner.tune(mask)
            counts.append(head_correct(self.features, self.labels, kernel, bias))
        return np.array(counts, dtype=np.int64)


def bisection_steps(low: int, high: int) -> int:
    """Points a bisection between positions ``low`` (fails) and ``high`` (holds) tunes at most."""
    gap = high - low
    return math.ceil(math.log2(gap)) if gap > 1 else 0


def refine_front(
    front,
    genomes: list,
    problem,
    score,
    max_points: int,
    max_drop_pp: float,
    within_pp: float = 1.0,
    status=lambda msg: None,
    progress=lambda done, total, note: None,
):
    """Fine-tunes front points and returns their accuracy before and after.

    First ``max_points`` points spread over sizes (log scale) among those within
    ``max_drop_pp`` of baseline; pruned heads regain most of their loss, so that floor is
    loose. Then a bisection over the front points between the largest size that missed
    ``within_pp`` of baseline (fitness split, after fine-tuning) and the smallest that
    made it, to find the smallest head that holds.

    Args:
        score: ``masks -> (fitness-split accuracy, test accuracy)`` after fine-tuning, one
            mask per pruned layer
            (see :func:`head_scorer` and :class:`~evoprune.refine.retrain.ModelFinetuner`).
        status: called with one line per fine-tuned point ("point k of at most n").
        progress: ``(done, total, note)`` before the first point and after each one;
            ``total`` is the spread points plus the bisection's upper bound, updated (it
            only shrinks) as the results narrow the bisection. The points follow from the
            scores alone, so a ``score`` that answers logged points from a
            :class:`~evoprune.refine.retrain_log.RetrainLog` resumes the bisection where it was.

    Returns:
        A DataFrame with ``eval_index, nonzero, compression, accuracy, test_accuracy,
        refined_accuracy, refined_test_accuracy`` (accuracy on the fitness split), by size.
    """
    import pandas as pd

    floor = problem.base_accuracy - max_drop_pp / 100.0
    pool = front[(front["accuracy"] >= floor) & (front["nonzero"] > 0)]
    pool = pool.sort_values("nonzero", kind="stable").reset_index(drop=True)
    rows: dict[int, dict] = {}
    total = [0]

    def tune(position: int, remaining: Callable[[bool], int]) -> bool:
        """Tunes one point; True when it holds. ``remaining(holds)``: points still to tune, at most."""
        if position not in rows:
            row = pool.iloc[position]
            masks = [m[0] for m in problem.encoding.decode([genomes[int(row["eval_index"])]])]
            refined, refined_test = score(masks)
            rows[position] = {
                "eval_index": int(row["eval_index"]),
                "nonzero": int(row["nonzero"]),
                "compression": float(row["compression"]),
                "accuracy": float(row["accuracy"]),
                "test_accuracy": float(row["test_accuracy"]),
                "refined_accuracy": refined,
                "refined_test_accuracy": refined_test,
            }
            total[0] = min(total[0], len(rows) + remaining(refined >= bar))
            note = (
                f"{plural(int(row['nonzero']), 'weight')} ({float(row['compression']):.1f}x), accuracy "
                f"{float(row['accuracy']):.4f} -> {refined:.4f} (baseline {problem.base_accuracy:.4f})"
            )
            bound = "of" if total[0] == len(rows) else "of at most"
            status(f"Fine-tuned point {len(rows)} {bound} {total[0]}: {note}")
            progress(len(rows), total[0], note)
        return rows[position]["refined_accuracy"] >= bar

    bar = accuracy_bar(problem.base_accuracy, within_pp)
    if len(pool):
        sizes = np.log(pool["nonzero"].to_numpy(dtype=float))
        targets = np.linspace(sizes.min(), sizes.max(), min(max_points, len(pool)))
        spread = [int(p) for p in np.unique(np.abs(sizes[None, :] - targets[:, None]).argmin(axis=1))]
        # the bisection runs between the first spread point that holds and the one before it
        steps = [bisection_steps(([-1] + spread)[i], p) for i, p in enumerate(spread)]
        total[0] = len(spread) + max(steps)
        progress(0, total[0], "")
        first = None  # index in spread of the first point that holds
        for i, position in enumerate(spread):
            later = len(spread) - i - 1
            known = first

            def after(holds: bool, i=i, later=later, known=known) -> int:
                if known is not None or holds:
                    return later + steps[i if known is None else known]
                return later + max(steps[i + 1 :], default=0)

            if tune(position, after) and first is None:
                first = i
        low, high = (([-1] + spread)[first], spread[first]) if first is not None else (0, 0)
        while high - low > 1:
            middle = (low + high) // 2
            left, right = bisection_steps(low, middle), bisection_steps(middle, high)

            def narrowed(holds: bool, left: int = left, right: int = right) -> int:
                return left if holds else right

            holds = tune(middle, narrowed)
            low, high = (low, middle) if holds else (middle, high)
    columns = [
        "eval_index",
        "nonzero",
        "compression",
        "accuracy",
        "test_accuracy",
        "refined_accuracy",
        "refined_test_accuracy",
    ]
    return pd.DataFrame([rows[p] for p in sorted(rows)], columns=columns)


def head_scorer(finetuner: HeadFinetuner, fit, test):
    """``masks -> (fitness-split, test accuracy)`` of the head fine-tuned on cached features."""

    def score(masks):
        kernel, bias = finetuner.tune(layer_masks(masks)[-1])
        return (
            head_accuracy(fit.features, fit.labels, kernel, bias),
            head_accuracy(test.features, test.labels, kernel, bias),
        )

    return score


def layer_masks(masks) -> list[np.ndarray]:
    """One mask per pruned layer (a bare array is the one layer's)."""
    return [np.asarray(m) for m in masks] if isinstance(masks, (list, tuple)) else [np.asarray(masks)]


def best_refined(refined, base_accuracy: float, points: float = 1.0) -> dict | None:
    """The smallest refined head within ``points`` of baseline on the fitness split."""
    ok = refined[refined["refined_accuracy"] >= accuracy_bar(base_accuracy, points)]
    if ok.empty:
        return None
    row = ok.sort_values(["nonzero", "refined_accuracy"], ascending=[True, False]).iloc[0]
    return {
        key: (int(row[key]) if key in ("eval_index", "nonzero") else float(row[key]))
        for key in refined.columns
    }
