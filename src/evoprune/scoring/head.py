"""Scoring a masked Dense head on cached features: batched float32, decided like float64.

Which class a Dense head predicts is a sum of products, and a float32 sum depends on
the order BLAS adds it in (thread count, batch size, CPU). :class:`HeadScorer` makes
the prediction a function of the numbers alone:

    the predicted class is the first index of the largest *canonical logit*, the bias
    plus the kept products ``f_i * w_ij`` added in index order in float64 (a product of
    two float32 numbers is exact in float64).

It scores a chunk of masks with one float32 product, then checks each prediction
against the product's rounding bound. Where the top logit clears every other by more
than that bound (and the canonical logit's own rounding), both sums rank the classes
alike; the rest (few on most masks, many on heavily pruned ones) get their canonical
logits computed by a compiled loop over the kept weights.
"""

from __future__ import annotations

import numpy as np

from evoprune.models.threads import blas_limited
from evoprune.scoring._sweep_kernel import compiled

CHUNK = 64  # masks per batched product: bounds memory at chunk x classes x rows floats


def gamma(terms: int, unit: float) -> float:
    """Higham's ``gamma_n = n u / (1 - n u)``: relative bound of an ``n``-term sum's rounding."""
    return terms * unit / (1.0 - terms * unit)


def canonical_logits(features: np.ndarray, kernels: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Canonical logits: the bias plus ``f_i * w_ij`` added for ``i = 0, 1, ...`` in float64.

    Args:
        features: ``(U, inputs)`` rows, float32.
        kernels: ``(U, inputs, classes)`` masked kernels (zeros where pruned), float32.
        bias: ``(classes,)``.

    Returns:
        ``(U, classes)`` float64. Masked weights add an exact zero, so the result depends
        only on the kept weights and the order of the inputs.
    """
    f = np.asarray(features, dtype=np.float32).astype(np.float64)
    k = np.asarray(kernels, dtype=np.float32).astype(np.float64)
    acc = np.tile(np.asarray(bias, dtype=np.float32).astype(np.float64), (len(f), 1))
    for i in range(f.shape[1]):
        acc += f[:, i, None] * k[:, i, :]
    return acc


@compiled
def canonical_predictions(features, kernel, bias, masks, which, rows):  # pragma: no cover (compiled)
    """The first largest canonical logit of row ``rows[t]`` under mask ``which[t]``, for each ``t``.

    The same sums as :func:`canonical_logits` (bias first, then the kept products in
    input order, in float64), without building the masked kernels: a pruned weight adds
    an exact zero there and nothing here, which ranks the classes alike.

    Args:
        features: ``(rows, inputs)`` float32.
        kernel: ``(inputs, classes)`` float32, unmasked.
        bias: ``(classes,)`` float32.
        masks: ``(P, inputs, classes)`` bool.
        which, rows: ``(U,)`` mask and row of each pair.
    """
    inputs, classes = kernel.shape
    out = np.empty(len(rows), np.int64)
    acc = np.empty(classes, np.float64)
    for t in range(len(rows)):
        w, r = which[t], rows[t]
        for j in range(classes):
            acc[j] = np.float64(bias[j])
        for i in range(inputs):
            f = np.float64(features[r, i])
            for j in range(classes):
                if masks[w, i, j]:
                    acc[j] += f * np.float64(kernel[i, j])
        best = 0
        for j in range(1, classes):
            if acc[j] > acc[best]:
                best = j
        out[t] = best
    return out


class HeadScorer:
    """Correct predictions of a Dense head ``features @ kernel + bias`` under many masks.

    Args:
        features: ``(rows, inputs)`` activations entering the head.
        kernel: ``(inputs, classes)``.
        bias: ``(classes,)``.
        labels: ``(rows,)`` integer labels.

    Attributes:
        certified: True when the rounding bound holds (finite numbers far from float32
            overflow). Otherwise predictions are the float32 product's argmax.
        mass: per row, ``max_j sum_i |f_i w_ij| + |b_j|`` over the unpruned kernel: an
            upper bound of every masked logit's magnitude, used by the bounds.
        logits64: ``(rows, classes)`` float64 logits of the unpruned head (any summation
            order: within ``gamma_{inputs+1}(2^-53) * mass`` of the real ones).
    """

    def __init__(self, features, kernel, bias, labels) -> None:
        self.features = np.ascontiguousarray(features, dtype=np.float32)
        self.kernel = np.ascontiguousarray(kernel, dtype=np.float32)
        self.bias = np.ascontiguousarray(bias, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.n = len(self.labels)
        if (
            self.features.ndim != 2
            or self.kernel.ndim != 2
            or self.kernel.shape[0] != self.features.shape[1]
            or self.bias.shape != self.kernel.shape[1:]
            or self.labels.shape != self.features.shape[:1]
        ):
            raise ValueError(
                f"Head shapes do not fit. Received: features {self.features.shape}, "
                f"kernel {self.kernel.shape}, bias {self.bias.shape}, labels {self.labels.shape}"
            )
        rows, inputs = self.features.shape
        transposed = np.empty((inputs + 1, rows), dtype=np.float32)  # bias folded in as input 1.0
        transposed[:inputs], transposed[inputs] = self.features.T, 1.0
        self._features_t = transposed
        self._valid = (self.labels >= 0) & (self.labels < self.kernel.shape[1])
        self._label_index = np.where(self._valid, self.labels, 0).reshape(1, 1, -1)
        f64, k64, b64 = (a.astype(np.float64) for a in (self.features, self.kernel, self.bias))
        with np.errstate(all="ignore"):
            mass = np.abs(f64) @ np.abs(k64) + np.abs(b64)
            self.logits64 = f64 @ k64 + b64
        self.mass = mass.max(axis=1, initial=0.0)
        self.certified = bool(np.all(np.isfinite(self.mass)) and self.mass.max(initial=0.0) < 2.0**100)
        self._margin = self._float32_margin(inputs) if self.certified else None
        if self.certified and rows:  # compiles (or loads) the canonical loop now, in setup
            one = np.zeros(1, np.int64)
            full = np.ones((1,) + self.kernel.shape, bool)
            canonical_predictions(self.features, self.kernel, self.bias, full, one, one)

    def _float32_margin(self, inputs: int) -> np.ndarray:
        """Per row, a float32 gap above which the float32 and canonical rankings agree.

        A float32 logit is within ``gamma_{inputs+1}(2^-24) * mass`` of the real one in any
        order of summation (plus float32 underflow), the canonical logit within
        ``gamma_{inputs+1}(2^-53) * mass`` (doubled: ``mass`` is itself rounded). Two such
        errors, and the float32 rounding of ``best - margin``, fit under the margin.
        """
        err = (gamma(inputs + 1, 2.0**-24) + 2 * gamma(inputs + 1, 2.0**-53)) * self.mass + (
            inputs + 2
        ) * 2.0**-149
        margin = 2 * err * (1 + 2.0**-20) + 2.0**-22 * (self.mass + 2 * err)
        rounded = margin.astype(np.float32)
        return np.where(rounded < margin, np.nextafter(rounded, np.float32(np.inf)), rounded)

    def correct_counts(self, masks) -> np.ndarray:
        """Correct predictions for each mask.

        Args:
            masks: bool ``(P, inputs, classes)`` (or a one-element list of it).
        """
        masks = np.asarray(masks[0] if isinstance(masks, list) else masks, dtype=bool)
        with blas_limited():  # only the cores other processes leave free: no threads spinning
            parts = [self._chunk_counts(masks[i : i + CHUNK]) for i in range(0, len(masks), CHUNK)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def _chunk_counts(self, masks: np.ndarray) -> np.ndarray:
        count, (inputs, classes) = len(masks), self.kernel.shape
        kernels = np.where(masks, self.kernel, np.float32(0))  # (p, inputs, classes)
        stacked = np.empty((count, classes, inputs + 1), dtype=np.float32)
        stacked[:, :, :inputs], stacked[:, :, inputs] = kernels.transpose(0, 2, 1), self.bias
        logits = (stacked.reshape(count * classes, inputs + 1) @ self._features_t).reshape(count, classes, -1)
        if not self.certified:
            return ((logits.argmax(axis=1) == self.labels) & self._valid).sum(axis=1).astype(np.int64)
        best = logits.max(axis=1)  # (p, rows)
        floor = best - self._margin
        near = (logits[:, 0] >= floor).astype(np.int8)
        for j in range(1, classes):
            near += logits[:, j] >= floor
        unsure = near != 1  # another class within the margin
        index = np.broadcast_to(self._label_index, (count, 1, logits.shape[2]))
        label_logit = np.take_along_axis(logits, index, axis=1)[:, 0]
        counts = ((label_logit == best) & ~unsure & self._valid).sum(axis=1).astype(np.int64)
        if unsure.any():
            which, rows = np.nonzero(unsure)
            predicted = canonical_predictions(self.features, self.kernel, self.bias, masks, which, rows)
            hits = (predicted == self.labels[rows]).astype(np.int64)
            counts += np.bincount(which, weights=hits, minlength=count).astype(np.int64)
        return counts
