"""Fitness evaluation: accuracy and nonzero weights of pruned variants of one model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from evoprune.data.dataset import Split, eval_pipeline, normalize
from evoprune.errors import ModelError
from evoprune.models.target import PruneTarget, build_target, model_input
from evoprune.scoring.graph import ROWS, GraphScorer, activations
from evoprune.scoring.head import HeadScorer


class KerasEvaluator:
    """Counts correct predictions of a model whose pruned kernels are masked.

    Two paths give the same counts:

    * ``exact``: write the masked kernels into the model and call ``model.evaluate``
      (what the notebook does, one call per individual);
    * ``fast``: when the target is the final Dense layer (linear or softmax: the
      activation keeps the argmax), a :class:`~evoprune.scoring.head.HeadScorer` scores a
      whole population with one matrix product per chunk of individuals on the features
      entering the head (computed once), and decides near-ties by a canonical float64
      sum, so counts do not depend on BLAS or batch size; otherwise a
      :class:`~evoprune.scoring.graph.GraphScorer` keeps what no pruned kernel reaches and
      runs the rest traced once, with the masks as arguments. A model that cannot be
      traced falls back to one Keras pass per individual (``note`` says so).

    ``keras`` takes that pass at once, tracing nothing: for a caller that scores a mask or
    two (the unpruned model of a method whose models are retrained), where tracing the
    graph would cost more than it saves.

    Args:
        model: a trained Keras model.
        split: ``(images, labels)`` to score on.
        mode: ``fast``, ``exact`` or ``keras``.
        batch_size: batch size of the Keras passes.
        target: the pruned kernels (default: the model's last Dense layer).

    Attributes:
        path: ``head``, ``graph``, ``whole-model``, ``keras`` (one eager pass per mask) or
            ``exact``.
        note: one line saying why a fast evaluator does not take the graph or head path
            (``None`` when it does).
        features: the activations entering the head (head path only, else ``None``).
    """

    def __init__(
        self,
        model,
        split: Split,
        mode: str = "fast",
        batch_size: int = 128,
        target: PruneTarget | None = None,
    ) -> None:
        if mode not in ("fast", "exact", "keras"):
            raise ValueError(f"Expected mode 'fast', 'exact' or 'keras'. Received: {mode!r}")
        self.model = model
        self.mode = mode
        self.batch_size = batch_size
        self.split = split
        self.target = target or build_target(model, "head")
        self.layer_indices = self.target.indices
        self.layer_index = self.layer_indices[-1]
        self.kernels = self.target.kernels
        self.variables = self.target.variables(model)
        last = self.target.layers[-1]
        self.kernel = last.kernel
        self.bias = last.bias if last.bias is not None else np.zeros(last.kernel.shape[-1], np.float32)
        self.labels = np.asarray(split[1], dtype=np.int64)
        self.n = len(self.labels)
        self.head_only = self.target.head_only
        self.features: np.ndarray | None = None
        self.head: HeadScorer | None = None
        self.scorer: GraphScorer | None = None
        self.note: str | None = None
        self._pipeline = eval_pipeline(split, batch_size) if mode == "exact" else None
        self.path = "keras" if mode == "keras" else "exact"
        if mode == "fast":
            self._fast()

    def _fast(self) -> None:
        """Chooses the head scorer, the graph scorer, or (saying why) the eager Keras pass."""
        x = normalize(self.split[0])
        head = self.model.layers[self.target.indices[-1]]
        if self.head_only:
            try:
                self.features = activations(self.model, [head], x, ROWS)[0]
            except ValueError:  # no graph to find the head's input in
                pass
        if self.features is not None and self.features.ndim == 2:
            self.head = HeadScorer(self.features, self.kernel, self.bias, self.labels)
            self.path = "head"
            return
        self.features = None
        try:
            self.scorer = GraphScorer(self.model, self.target, x, self.labels)  # traces its graph
        except Exception as exc:  # noqa: BLE001  (any tracing failure: the eager pass still scores)
            self.scorer, self.path = None, "keras"
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            self.note = (
                f"Scoring falls back to one Keras pass per mask (slow): the model could not be "
                f"traced with masked kernels ({type(exc).__name__}: {reason})"
            )
            return
        self.path = "whole-model" if self.scorer.whole_model else "graph"
        if self.scorer.whole_model:
            self.note = (
                f"Scoring runs the whole model for every mask: {type(self.model).__name__} is not a "
                "functional or Sequential model, so nothing before the pruned layers is cached"
            )

    def correct_counts(self, masks) -> np.ndarray:
        """Correct predictions for each individual.

        Args:
            masks: one bool array ``(P, *kernel.shape)`` per pruned kernel (a bare array
                when one kernel is pruned).
        """
        masks = [np.asarray(m, dtype=bool) for m in (masks if isinstance(masks, list) else [masks])]
        if self.head is not None:
            return self.head.correct_counts(masks[0])
        if self.scorer is not None:
            return self.scorer.correct_counts(masks)
        scorer = self._correct_exact if self.mode == "exact" else self._correct_keras
        counts = []
        try:
            for p in range(len(masks[0])):
                self._set_masks([m[p] for m in masks])
                counts.append(scorer())
        finally:
            self._set_masks(None)
        return np.array(counts, dtype=np.int64)

    def _set_masks(self, masks) -> None:
        """Writes masked kernels into the model (``None`` restores the originals)."""
        for i, (variable, kernel) in enumerate(zip(self.variables, self.kernels)):
            variable.assign(kernel if masks is None else np.where(masks[i], kernel, np.float32(0)))

    def _correct_keras(self) -> int:
        correct = 0
        x = normalize(self.split[0])
        for start in range(0, self.n, self.batch_size):
            h = self.model(model_input(self.model, x[start : start + self.batch_size]), training=False)
            correct += int(
                (np.asarray(h).argmax(axis=1) == self.labels[start : start + self.batch_size]).sum()
            )
        return correct

    def _correct_exact(self) -> int:
        result = self.model.evaluate(self._pipeline, verbose=0, return_dict=True)
        return int(round(float(result["accuracy"]) * self.n))


@dataclass(frozen=True)
class Evaluation:
    """What one mask scores: accuracy on the fitness split and nonzero pruned weights."""

    accuracy: float
    nonzero: int
    correct: int


def paper_fitness(accuracy: float, nonzero: int, base_accuracy: float, base_nonzero: int) -> float:
    """The paper's scalar fitness ``(acc/base_acc)^2 + (1 - size/base_size)/2``."""
    return (accuracy / base_accuracy) ** 2 + (1.0 - nonzero / base_nonzero) / 2.0


class PruningProblem:
    """Genomes in, evaluations out, with memoization and honest counters.

    Args:
        encoding: decodes genomes into masks (e.g. :class:`ThresholdEncoding`).
        evaluator: scores masks on the fitness split.
        test_evaluator: scores masks on the test split, for reporting only.

    Attributes:
        evaluations: distinct genomes evaluated (repeats are served from memory).
        model_evaluations: distinct masks actually scored by the model.
    """

    def __init__(
        self, encoding, evaluator: KerasEvaluator, test_evaluator: KerasEvaluator | None = None
    ) -> None:
        self.encoding = encoding
        self.evaluator = evaluator
        self.test_evaluator = test_evaluator
        self.base_nonzero = int(sum(np.count_nonzero(k) for k in evaluator.kernels))
        full = [np.ones((1,) + k.shape, dtype=bool) for k in evaluator.kernels]
        self.base_accuracy = float(evaluator.correct_counts(full)[0]) / evaluator.n
        if self.base_accuracy == 0:
            raise ModelError(
                f"The unpruned model predicts none of the {evaluator.n} fitness-split images "
                "correctly: there is no accuracy to keep (train longer or check the data). "
                "Received: baseline accuracy 0"
            )
        self.base_test_accuracy = (
            float(test_evaluator.correct_counts(full)[0]) / test_evaluator.n
            if test_evaluator
            else float("nan")
        )
        self.evaluations = 0
        self.model_evaluations = 0
        self._by_genome: dict[tuple, Evaluation] = {}
        self._by_mask: dict[object, Evaluation] = {}
        self._test_by_mask: dict[object, float] = {}  # reporting only: not checkpointed

    def fitness(self, ev: Evaluation) -> float:
        """The paper's scalar fitness of an evaluation against this model's baseline."""
        return paper_fitness(ev.accuracy, ev.nonzero, self.base_accuracy, self.base_nonzero)

    def evaluate(self, genomes: Sequence[Sequence[float]]) -> list[Evaluation]:
        """Evaluates genomes in one batch; each distinct genome and mask is scored once."""
        keys = [tuple(float(x) for x in g) for g in genomes]
        new = [k for k in dict.fromkeys(keys) if k not in self._by_genome]
        self.evaluations += len(new)
        mask_keys = {k: self.encoding.mask_key(k) for k in new}
        todo = [k for k in new if mask_keys[k] not in self._by_mask]
        todo = list({mask_keys[k]: k for k in reversed(todo)}.values())  # one genome per mask
        if todo:
            masks = self.encoding.decode(todo)
            correct = self.evaluator.correct_counts(masks)
            nonzero = sum(
                (m & (k != 0)).reshape(len(todo), -1).sum(axis=1)
                for m, k in zip(masks, self.evaluator.kernels)
            )
            self.model_evaluations += len(todo)
            for k, c, nz in zip(todo, correct, nonzero):
                self._by_mask[mask_keys[k]] = Evaluation(int(c) / self.evaluator.n, int(nz), int(c))
        for k in new:
            self._by_genome[k] = self._by_mask[mask_keys[k]]
        return [self._by_genome[k] for k in keys]

    def test_accuracy(self, genomes: Sequence[Sequence[float]], score: bool = True) -> list[float]:
        """Test-split accuracy of each genome (reporting only, never used for selection).

        With ``score=False`` nothing new is scored: a genome whose mask was not scored on
        the test split before gets NaN.
        """
        if self.test_evaluator is None or not len(genomes):
            return [float("nan")] * len(genomes)
        keys = [self.encoding.mask_key(g) for g in genomes]
        if not score:
            return [self._test_by_mask.get(k, float("nan")) for k in keys]
        todo = list({k: g for k, g in zip(keys, genomes) if k not in self._test_by_mask}.items())
        if todo:  # each distinct mask scored once, all in one batch
            correct = self.test_evaluator.correct_counts(self.encoding.decode([g for _, g in todo]))
            self._test_by_mask.update((k, int(c) / self.test_evaluator.n) for (k, _), c in zip(todo, correct))
        return [self._test_by_mask[k] for k in keys]

    def state_dict(self) -> dict:
        """The memo and counters, for checkpoints."""
        return {
            "evaluations": self.evaluations,
            "model_evaluations": self.model_evaluations,
            "by_genome": dict(self._by_genome),
            "by_mask": dict(self._by_mask),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restores what :meth:`state_dict` saved."""
        self.evaluations = state["evaluations"]
        self.model_evaluations = state["model_evaluations"]
        self._by_genome = dict(state["by_genome"])
        self._by_mask = dict(state["by_mask"])

    def archive(self) -> list[tuple[tuple, Evaluation]]:
        """Every distinct genome evaluated so far, in evaluation order."""
        return list(self._by_genome.items())
