"""Assembly of a run from its config: data and model, the pruning problem, the fine-tuners."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from evoprune.config import Config
from evoprune.data.dataset import Dataset, check_source, load_dataset
from evoprune.errors import DataError, ModelError, plural
from evoprune.experiments.context import RunContext
from evoprune.io import file_sha256, weights_sha256
from evoprune.models.target import PruneTarget, build_target
from evoprune.models.training import EpochCallback, TrainedModel, correct, load_or_train
from evoprune.refine.finetune import FinetuneSettings, HeadFinetuner, RefiningEvaluator, head_scorer
from evoprune.refine.gradual import check_levels
from evoprune.refine.retrain import ModelFinetuner
from evoprune.refine.retrain_log import RetrainLog
from evoprune.refine.select import loss_bound_pp
from evoprune.scoring.evaluate import KerasEvaluator, PruningProblem
from evoprune.search.encodings import make_encoding

Status = Callable[[str], None]
Progress = Callable[[str, int, int, str], None]  # (phase, done, total, note)


def _quiet(message: str) -> None:
    """A status callback that says nothing."""


@dataclass(frozen=True)
class Prepared:
    """A loaded dataset and the trained model for one seed."""

    dataset: Dataset
    trained: TrainedModel

    def target(self, layers) -> PruneTarget:
        """The prune target of this model for a ``search.layers`` setting."""
        return build_target(self.trained.model, layers)


def check_split(config: Config, dataset: Dataset) -> None:
    """Refuses a dataset whose fitness split is empty (nothing to select on)."""
    if not len(dataset.split(config.data.fitness_split)[1]):
        raise DataError(
            f"The {config.data.fitness_split} split of {dataset.name} is empty (too few images "
            f"per class to carve it). Raise data.validation_fraction or add images. Received: "
            f"data.validation_fraction={config.data.validation_fraction}"
        )


def training_progress(progress: Progress | None) -> EpochCallback | None:
    """Epochs of a model trained now as ``progress("train", epoch, epochs, "loss ...")``."""
    if progress is None:
        return None

    def on_epoch(epoch: int, epochs: int, logs: dict) -> None:
        loss, accuracy = logs.get("loss"), logs.get("accuracy")
        note = "" if loss is None else f"loss {loss:.4f}"
        note += "" if accuracy is None else f", accuracy {accuracy:.4f}"
        progress("train", epoch, epochs, note)

    return on_epoch


def check_inputs(config: Config, data: bool = True, model: bool = True) -> None:
    """Fails fast, before anything loads, on a model file or data file or folder that is not there.

    Args:
        data, model: check the data source, the model file (not when they come from memory).

    Raises:
        ModelError, DataError: one line naming the missing file.
    """
    model_file = config.model.model_file
    if model and model_file and not Path(model_file).is_file():
        raise ModelError(f"Model file not found. Received: {model_file}")
    if data:
        check_source(config.data)


def prepare(
    config: Config, status: Status = _quiet, progress: Progress | None = None, levels: bool = True
) -> Prepared:
    """Loads the dataset and loads (or trains and caches) the model for the run's seed.

    ``progress`` gets ``("train", epoch, epochs, note)`` while a model is trained (not
    when it comes from the cache or a file). ``levels``: check ``select.compressions``
    against the pruned layers (a new run; not when a finished one is read back).
    """
    check_inputs(config)
    status(f"Loading dataset {config.data.source}")
    dataset = load_dataset(config.data)
    check_split(config, dataset)
    status(
        f"Loading model {config.model.model_file}"
        if config.model.model_file
        else f"Preparing model {config.model.architecture} (seed {config.search.seed}, "
        f"{plural(config.model.epochs, 'epoch')} if not cached)"
    )
    trained = load_or_train(dataset, config.model, config.search.seed, on_epoch=training_progress(progress))
    prepared = Prepared(dataset, trained)
    check_target(config, prepared, levels)
    return prepared


def check_target(config: Config, prepared: Prepared, levels: bool = True) -> None:
    """Fails before any output on a layer name the model lacks, or (``levels``) a
    ``select.compressions`` level beyond one kept weight of the pruned layers."""
    target = prepared.target(config.search.layers)
    if levels:
        check_levels("select.compressions", list(config.select.compressions), target.base_nonzero)


def identity(prepared: Prepared) -> dict[str, str]:
    """What a run's results depend on besides its config: dataset checksum and model hashes.

    ``model_sha256`` (the file's bytes) is there only for a model read from a file.
    """
    ident = {
        "dataset_checksum": prepared.dataset.checksum,
        "model_weights_sha256": weights_sha256(prepared.trained.model),
    }
    if prepared.trained.path is not None:
        ident["model_sha256"] = file_sha256(prepared.trained.path)
    return ident


def retrain_log(
    config: Config, prepared: Prepared, context: RunContext, what: str = "retraining"
) -> RetrainLog:
    """The run's :class:`~evoprune.refine.retrain_log.RetrainLog`: read back on resume, else empty.

    On disk in a run directory (``context.retrain_file``), in memory otherwise. Logged
    weights must have the model's shapes; each entry added calls ``context.checkpointed``
    with ``"{what} {n}"`` (n: the entries logged so far), where a Ctrl-C stops the run.

    Raises:
        CheckpointError: the log on disk is damaged, or of another config, data or model.
    """
    model: Any = prepared.trained.model
    log = RetrainLog.open(
        context.retrain_file,
        config,
        identity(prepared),
        shapes=[w.shape for w in model.get_weights()],
        resume=context.resume,
    )
    log.on_add = lambda key: context.checkpointed(f"{what} {len(log)}")
    return log


def make_problem(
    config: Config, prepared: Prepared, status: Status = _quiet, scoring: str | None = None
) -> PruningProblem:
    """Builds the encoding and the evaluators on the fitness split (and test, for reports).

    ``status`` hears one line naming the layers ``search.layers = "all"`` leaves alone (and
    why), and one line when scoring cannot take the fast path.

    Args:
        scoring: the evaluator mode of both splits; ``None``: ``search.evaluator`` on the
            fitness split and ``fast`` on test. A method that scores only the unpruned model
            (its models are retrained and scored by the retraining) passes ``"keras"``: one
            pass each, where ``fast`` would first trace the masked graph (about 18 s a split
            for a MobileNetV2 here).
    """
    model, dataset = prepared.trained.model, prepared.dataset
    target = prepared.target(config.search.layers)
    if target.skipped:
        status(f"Not pruned: {', '.join(target.skipped)}")
    fitness = KerasEvaluator(
        model,
        dataset.split(config.data.fitness_split),
        scoring or config.search.evaluator,
        config.model.batch_size,
        target,
    )
    if config.data.fitness_split == "test":
        test = fitness
    elif len(dataset.test[1]):
        test = KerasEvaluator(model, dataset.test, scoring or "fast", config.model.batch_size, target)
    else:  # no test split: test accuracies are NaN
        test = None
    if fitness.note:
        status(fitness.note)
    encoding = make_encoding(config.search.encoding, fitness.kernels, config.search.min_threshold)
    if config.finetune.refine == "each":  # both splits score the fine-tuned head
        finetuner = make_finetuner(config, prepared, target)
        fitness_refined = RefiningEvaluator(fitness, finetuner)
        # RefiningEvaluator wraps a KerasEvaluator with the same interface (duck-typed, no common base)
        test = fitness_refined if test is fitness else test and RefiningEvaluator(test, finetuner)  # type: ignore[assignment]
        fitness = fitness_refined  # type: ignore[assignment]
    return PruningProblem(encoding, fitness, test)


def make_finetuner(config: Config, prepared: Prepared, target: PruneTarget) -> HeadFinetuner:
    """A head fine-tuner on the training split's cached features."""
    train = KerasEvaluator(
        prepared.trained.model, prepared.dataset.train, "fast", config.model.batch_size, target
    )
    f = config.finetune
    assert train.features is not None  # a fast evaluator caches them
    return HeadFinetuner(
        train.features,
        train.labels,
        train.kernel,
        train.bias,
        FinetuneSettings(f.steps, f.batch_size, f.learning_rate, config.search.seed),
        train_bias=target.layers[-1].bias is not None,
    )


def make_model_finetuner(config: Config, prepared: Prepared, target: PruneTarget) -> ModelFinetuner:
    """Whole-model fine-tuning (``finetune.scope = "model"``) of this run's model."""
    f, ds = config.finetune, prepared.dataset
    return ModelFinetuner(
        prepared.trained.model,
        ds.train,
        ds.split(config.data.fitness_split),
        ds.test,
        target,
        f.epochs,
        f.model_learning_rate,
        f.batch_size,
        config.search.seed,
        f.model_lr_schedule,
        f.distill,
        f.temperature,
        f.l2,
    )


def make_scorer(config: Config, prepared: Prepared, problem: PruningProblem):
    """``mask -> (fitness-split, test accuracy)`` after fine-tuning with the configured scope.

    Returns ``(score, weights)``: ``weights(masks)`` gives every model weight after the
    fine-tuning ``score`` measured (``None`` for head fine-tuning, which a genome
    reproduces in a fraction of a second).
    """
    target = problem.evaluator.target
    if config.finetune.scope == "model":
        finetuner = make_model_finetuner(config, prepared, target)
        return finetuner.score, finetuner.tuned_weights
    head = make_finetuner(config, prepared, target)
    return head_scorer(head, problem.evaluator, problem.test_evaluator), None


def copy_model(model):
    """A copy of a Keras model with the same weights (the original stays untouched)."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def point_model(
    config: Config,
    prepared: Prepared,
    genome=None,
    weights: list | None = None,
    tune: bool = False,
):
    """One evaluated point of a run as a new Keras model, and its masks by layer name.

    Args:
        genome: the point's genome (its masks on the original weights).
        weights: every model weight the run kept for the point (retrained points): used
            as they are, so the model is exactly the one the run measured.
        tune: fine-tune the masked model as the run did (only without ``weights``).

    Returns:
        ``(model, masks)``; ``masks``: pruned layer name -> boolean mask.
    """
    model = copy_model(prepared.trained.model)
    target = prepared.target(config.search.layers)
    if weights is not None:
        model.set_weights(weights)
        kernels = [v.numpy() for v in target.variables(model)]
        return model, {layer.name: k != 0 for layer, k in zip(target.layers, kernels)}
    encoding = make_encoding(config.search.encoding, target.kernels, config.search.min_threshold)
    decoded = [m[0] for m in encoding.decode([genome])]
    masks = {layer.name: np.asarray(mask, dtype=bool) for layer, mask in zip(target.layers, decoded)}
    if tune and config.finetune.scope == "model":
        # whole-model fine-tuning starts from (and distils from) the unpruned model, as in the run
        model.set_weights(make_model_finetuner(config, prepared, target).tuned_weights(decoded))
        return model, masks
    for layer, variable, mask in zip(target.layers, target.variables(model), decoded):
        variable.assign(np.where(mask, layer.kernel, np.float32(0)))
    if tune:
        kernel, bias = make_finetuner(config, prepared, target).tune(decoded[-1])
        head = model.layers[target.indices[-1]]
        head.set_weights([kernel, bias] if head.use_bias else [kernel])
    return model, masks


def loss_bound(config: Config, prepared: Prepared, model_of: Callable[[int], object]):
    """``eval_index -> upper bound (points) on the accuracy it loses`` for ``select.confidence``.

    ``None`` when ``select.confidence`` is 0 (the point estimate decides). The bound is
    :func:`~evoprune.refine.select.loss_bound_pp` of per-image correctness on the fitness
    split, the baseline's computed once; ``model_of(eval_index)`` builds a point's model.
    """
    confidence = config.select.confidence
    if not confidence:
        return None
    split = prepared.dataset.split(config.data.fitness_split)
    base = correct(prepared.trained.model, split)
    memo: dict[int, float] = {}

    def bound(index: int) -> float:
        if index not in memo:
            memo[index] = loss_bound_pp(base, correct(model_of(index), split), confidence)
        return memo[index]

    return bound
