"""Assembly of a run from its config: data and model, the pruning problem, the fine-tuners."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from evoprune.config import Config
from evoprune.data.dataset import Dataset, load_dataset
from evoprune.errors import DataError
from evoprune.io import file_sha256, weights_sha256
from evoprune.models.target import PruneTarget, build_target
from evoprune.models.training import TrainedModel, load_or_train
from evoprune.refine.finetune import FinetuneSettings, HeadFinetuner, RefiningEvaluator, head_scorer
from evoprune.refine.retrain import ModelFinetuner
from evoprune.scoring.evaluate import KerasEvaluator, PruningProblem
from evoprune.search.encodings import make_encoding

Status = Callable[[str], None]


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


def prepare(config: Config, status: Status = _quiet) -> Prepared:
    """Loads the dataset and loads (or trains and caches) the model for the run's seed."""
    status(f"Loading dataset {config.data.source}")
    dataset = load_dataset(config.data)
    check_split(config, dataset)
    status(
        f"Loading model {config.model.model_file}"
        if config.model.model_file
        else f"Preparing model {config.model.architecture} (seed {config.search.seed}, "
        f"{config.model.epochs} epochs if not cached)"
    )
    trained = load_or_train(dataset, config.model, config.search.seed)
    prepared = Prepared(dataset, trained)
    prepared.target(config.search.layers)  # a layer name the model lacks fails before any output
    return prepared


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


def make_problem(config: Config, prepared: Prepared, status: Status = _quiet) -> PruningProblem:
    """Builds the encoding and the evaluators on the fitness split (and test, for reports).

    ``status`` hears one line naming the layers ``search.layers = "all"`` leaves alone (and
    why), and one line when scoring cannot take the fast path.
    """
    model, dataset = prepared.trained.model, prepared.dataset
    target = prepared.target(config.search.layers)
    if target.skipped:
        status(f"Not pruned: {', '.join(target.skipped)}")
    fitness = KerasEvaluator(
        model,
        dataset.split(config.data.fitness_split),
        config.search.evaluator,
        config.model.batch_size,
        target,
    )
    if config.data.fitness_split == "test":
        test = fitness
    elif len(dataset.test[1]):
        test = KerasEvaluator(model, dataset.test, "fast", config.model.batch_size, target)
    else:  # no test split: test accuracies are NaN
        test = None
    if fitness.note:
        status(fitness.note)
    encoding = make_encoding(config.search.encoding, fitness.kernels, config.search.min_threshold)
    if config.finetune.refine == "each":  # both splits score the fine-tuned head
        finetuner = make_finetuner(config, prepared, target)
        fitness_refined = RefiningEvaluator(fitness, finetuner)
        test = fitness_refined if test is fitness else test and RefiningEvaluator(test, finetuner)
        fitness = fitness_refined
    return PruningProblem(encoding, fitness, test)


def make_finetuner(config: Config, prepared: Prepared, target: PruneTarget) -> HeadFinetuner:
    """A head fine-tuner on the training split's cached features."""
    train = KerasEvaluator(
        prepared.trained.model, prepared.dataset.train, "fast", config.model.batch_size, target
    )
    f = config.finetune
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
    finetuner = make_finetuner(config, prepared, target)
    return head_scorer(finetuner, problem.evaluator, problem.test_evaluator), None
