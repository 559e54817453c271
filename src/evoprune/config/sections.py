"""The sections of a run configuration, each validated on its own.

Each section checks kinds, ranges and fixed choices. Names that a registry of a higher
layer defines (algorithms, genomes, operators, executors, architectures, layer sets) are
checked where a run is assembled (:func:`evoprune.experiments.assemble.check_config`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evoprune.config.checks import (
    COUNT_MAX,
    EVALUATORS,
    FITNESS_SPLITS,
    POPULATION_MAX,
    REFINES,
    SAMPLE_DATASET,
    SEED_MAX,
    TFDS_NAME,
    check_choice,
    check_keras_file,
    check_path,
    check_range,
    check_unique,
)
from evoprune.errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and which split drives selection.

    Attributes:
        dataset: ``mnist-sample`` (bundled subset) or a tensorflow-datasets image
            classification name (``mnist``, ``fashion_mnist``, ``cifar10``, ``emnist/digits``).
        data_dir: an IDX directory or an image folder (``train/<class>/``, ``test/<class>/``);
            when set, it replaces ``dataset``.
        data_file: a ``.npz`` file of ``x_train, y_train, x_test, y_test`` (optional
            ``x_val, y_val``); when set, it replaces ``dataset``. At most one of
            ``data_dir`` and ``data_file``.
        validation_fraction: share of train carved out (stratified, deterministic) for selection.
        fitness_split: ``validation`` (default) or ``test`` (the notebook's choice).
        split_seed: seed of the train/validation split, independent of the run seed.
    """

    dataset: str = "mnist"
    data_dir: str = ""
    data_file: str = ""
    validation_fraction: float = 0.1
    fitness_split: str = "validation"
    split_seed: int = 0

    @property
    def source(self) -> str:
        """What is loaded, for messages and summaries: the file, the directory or the name."""
        return self.data_file or self.data_dir or self.dataset

    def validate(self) -> None:
        check_path("data.data_dir", self.data_dir)
        check_path("data.data_file", self.data_file)
        if self.dataset != SAMPLE_DATASET and not TFDS_NAME.match(self.dataset):
            raise ConfigError(
                f"Unknown data.dataset. Expected {SAMPLE_DATASET} or a tensorflow-datasets name "
                f"such as mnist, cifar10 or emnist/digits. Received: data.dataset={self.dataset!r}"
            )
        if self.data_dir and self.data_file:
            raise ConfigError(
                "Expected at most one of data.data_dir and data.data_file. "
                f"Received: data.data_dir={self.data_dir!r}, data.data_file={self.data_file!r}"
            )
        check_choice("data.fitness_split", self.fitness_split, FITNESS_SPLITS)
        check_range("data.validation_fraction", self.validation_fraction, 0.0, 0.5)
        check_range("data.split_seed", self.split_seed, 0, SEED_MAX)
        if self.fitness_split == "validation" and self.validation_fraction <= 0:
            raise ConfigError(
                "Expected data.validation_fraction > 0 when data.fitness_split='validation'. "
                f"Received: data.validation_fraction={self.validation_fraction!r}"
            )


@dataclass(frozen=True)
class ModelConfig:
    """The model to prune and how it is trained.

    Attributes:
        architecture: a built-in architecture (``paper-cnn``, ``lenet-300-100``,
            ``lenet-5``; see :mod:`evoprune.models.architectures`), sized from the data.
        epochs: training epochs (notebook: 5).
        batch_size: training and evaluation batch size (notebook: 128).
        learning_rate: Adam learning rate (notebook: 0.005).
        cache_dir: where trained models are cached; empty means
            ``$EVOPRUNE_CACHE_DIR`` or ``~/.cache/evoprune``.
        model_file: a ``.keras`` file to prune instead of training one (legacy ``.h5``
            files are refused: load one in Keras and save it as ``.keras``).
        lr_schedule: ``constant`` (the notebook's) or ``cosine`` (decays the learning rate
            to 0 over the training steps: a converged, reproducible baseline).
    """

    architecture: str = "paper-cnn"
    epochs: int = 5
    batch_size: int = 128
    learning_rate: float = 0.005
    cache_dir: str = ""
    model_file: str = ""
    lr_schedule: str = "constant"

    def validate(self) -> None:
        check_path("model.cache_dir", self.cache_dir)
        check_path("model.model_file", self.model_file)
        check_keras_file("model.model_file", self.model_file)
        check_range("model.epochs", self.epochs, 1, 100_000)
        check_range("model.batch_size", self.batch_size, 1, 1 << 20)
        check_range("model.learning_rate", self.learning_rate, 0.0, 1.0, low_open=True)
        check_choice("model.lr_schedule", self.lr_schedule, ("constant", "cosine"))


@dataclass(frozen=True)
class SearchConfig:
    """The evolutionary search.

    Attributes:
        algorithm: ``paper`` (the notebook's elitist EA) or a multi-objective selection.
        population: individuals per generation (notebook: 20).
        generations: generations after the initial population (notebook: 30).
        seed: seeds Python's, NumPy's and TensorFlow's generators (training and search).
        evaluator: ``fast`` (cached activations, batched) or ``exact`` (``model.evaluate``).
        min_threshold: smallest threshold of the initial population and of random resets.
        cxpb: crossover probability (multi-objective algorithms).
        mutpb: mutation probability (multi-objective algorithms).
        max_evaluations: stop after the generation that reaches this many distinct
            evaluations (0: no budget, run all generations).
        encoding: genome: ``auto`` (the default: ``threshold`` when one kernel is pruned,
            as in the paper, else ``layer_thresholds``), ``threshold`` (one magnitude
            threshold for every pruned kernel), ``layer_thresholds``, ``unit_thresholds`` or ``mask``.
        layers: pruned layers: ``head`` (the last Dense, as in the paper), ``dense`` (every
            Dense kernel), ``all`` (every kernel of a Dense, Conv1D/2D/3D, DepthwiseConv,
            SeparableConv or ConvTranspose layer) or a list of layer names (``sep`` for
            both kernels of a separable layer, ``sep/depthwise`` or ``sep/pointwise`` for one).
        crossover, mutation: operator names (see ``evoprune.search.operators``).
        alpha, eta, sigma, indpb, tournsize: operator parameters (blend alpha, SBX and
            polynomial eta, Gaussian sigma as a share of the gene's range, per-gene
            probability with 0 meaning 1/length, tournament size).
    """

    algorithm: str = "paper"
    population: int = 20
    generations: int = 30
    seed: int = 0
    evaluator: str = "fast"
    min_threshold: float = 1e-6
    cxpb: float = 0.9
    mutpb: float = 0.2
    max_evaluations: int = 0
    encoding: str = "auto"
    layers: str | tuple = field(default="head", metadata={"types": (str, tuple)})
    crossover: str = "average"
    mutation: str = "random_reset"
    alpha: float = 0.5
    eta: float = 20.0
    sigma: float = 0.1
    indpb: float = 0.0
    tournsize: int = 3

    def validate(self) -> None:
        check_choice("search.evaluator", self.evaluator, EVALUATORS)
        check_range("search.population", self.population, 4, POPULATION_MAX)
        check_range("search.generations", self.generations, 0, COUNT_MAX)
        check_range("search.seed", self.seed, 0, SEED_MAX)
        check_range("search.min_threshold", self.min_threshold, 0.0)
        check_range("search.cxpb", self.cxpb, 0.0, 1.0)
        check_range("search.mutpb", self.mutpb, 0.0, 1.0)
        check_range("search.max_evaluations", self.max_evaluations, 0, COUNT_MAX)
        if not isinstance(self.layers, str) and not self.layers:
            raise ConfigError("Expected at least one layer name. Received: search.layers=[]")
        check_range("search.alpha", self.alpha, 0.0)
        check_range("search.eta", self.eta, 0.0, low_open=True)
        check_range("search.sigma", self.sigma, 0.0, low_open=True)
        check_range("search.indpb", self.indpb, 0.0, 1.0)
        check_range("search.tournsize", self.tournsize, 2, POPULATION_MAX)


@dataclass(frozen=True)
class MetricsConfig:
    """Fixed reference point of the hypervolume (never derived from a front).

    Attributes:
        ref_accuracy: worst accuracy counted (default 0).
        ref_nonzero: worst nonzero count counted; 0 means all prunable weights.
    """

    ref_accuracy: float = 0.0
    ref_nonzero: int = 0

    def validate(self) -> None:
        check_range("metrics.ref_accuracy", self.ref_accuracy, 0.0, 1.0)
        check_range("metrics.ref_nonzero", self.ref_nonzero, 0, 2**62)


@dataclass(frozen=True)
class CompareConfig:
    """``evoprune compare``: algorithms x seeds at the search's evaluation budget.

    Attributes:
        seeds: number of seeds (0 .. seeds-1); each seed trains and prunes its own model.
        algorithms: algorithms to compare (the exact sweep is always added as reference;
            ``magnitude`` adds the magnitude-pruning baseline).
        executor: where a seed's trials run: ``serial`` (in this process, the default),
            ``local`` (spawn process pool) or ``dask``; worth it once a trial takes minutes.
        workers: processes (local) or Dask workers (LocalCluster).
    """

    seeds: int = 10
    algorithms: tuple = ("paper", "nsga2", "spea2", "nsga3")
    executor: str = "serial"
    workers: int = 2

    def validate(self) -> None:
        check_range("compare.seeds", self.seeds, 1, 100_000)
        check_range("compare.workers", self.workers, 1, 1024)
        if not self.algorithms:
            raise ConfigError("Expected at least one algorithm. Received: compare.algorithms=[]")
        check_unique("compare.algorithms", self.algorithms)


@dataclass(frozen=True)
class BenchConfig:
    """``evoprune bench``: a grid of genome x algorithm x operator variant x seeds.

    Attributes:
        seeds: seeds 0 .. seeds-1, each pruning its own model.
        encodings, algorithms: grid axes.
        variants: operator pairs ``"crossover+mutation"``; a pair that does not fit a
            genome kind is skipped for that genome (and listed in the report).
        pymoo: add pymoo's NSGA2 on the same problem and budget as a peer row (needs
            the ``peer`` extra: ``pip install 'evoprune[peer]'``).
        executor: ``local`` (spawn process pool), ``dask`` or ``serial``.
        workers: processes (local) or Dask workers (LocalCluster).
    """

    seeds: int = 5
    encodings: tuple = ("threshold", "unit_thresholds", "mask")
    algorithms: tuple = ("paper", "nsga2")
    variants: tuple = (
        "average+random_reset",
        "sbx+polynomial",
        "blend+gaussian",
        "uniform+flip_bit",
        "two_point+flip_bit",
    )
    pymoo: bool = False  # the peer needs an extra; the core's bench runs without it
    executor: str = "local"
    workers: int = 2

    def validate(self) -> None:
        check_range("bench.seeds", self.seeds, 1, 100_000)
        check_range("bench.workers", self.workers, 1, 4096)
        for axis in ("encodings", "algorithms", "variants"):
            check_unique(f"bench.{axis}", getattr(self, axis))
        for variant in self.variants:
            if variant.count("+") != 1:
                raise ConfigError(
                    f"Expected bench.variants entries like 'sbx+polynomial'. Received: {variant!r}"
                )


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning of pruned heads with the mask fixed, on cached features.

    Attributes:
        refine: ``none``, ``front`` (fine-tune the final front, reporting accuracy before
            and after) or ``each`` (fine-tune inside every evaluation: small budgets only).
        scope: ``head`` (retrain the kept head weights on cached features, ~0.2 s a mask)
            or ``model`` (retrain every surviving weight, convolutions too, for ``epochs``
            at ``model_learning_rate``: seconds a mask, front only).
        steps, batch_size, learning_rate: Adam mini-batch training of the head.
        epochs, model_learning_rate: training of the whole model (``scope = "model"``).
        model_lr_schedule: ``constant`` or ``cosine`` (decays ``model_learning_rate`` to 0
            over the fine-tuning steps, so a converged baseline is not shaken loose).
        distill, temperature: whole-model fine-tuning learns from the unpruned model too
            (knowledge distillation): ``distill`` is the weight of its softened outputs in
            the loss (0: labels only, 1: teacher only), ``temperature`` their softening.
        l2: whole-model fine-tuning adds ``l2 x sum(w^2)`` over the pruned kernels to the
            loss (Han et al. retrain with L2; 0: none).
        max_points: this many front points, spread over sizes, are fine-tuned; then a
            bisection between them (at most ``ceil(log2(gap))`` more) finds the smallest that holds.
        max_drop_pp: only front points within this many accuracy points of baseline
            before fine-tuning (fine-tuning recovers much of the loss).
    """

    refine: str = "none"
    scope: str = "head"
    steps: int = 300
    batch_size: int = 128
    learning_rate: float = 0.01
    epochs: int = 3
    model_learning_rate: float = 0.005
    model_lr_schedule: str = "constant"
    distill: float = 0.0
    temperature: float = 4.0
    l2: float = 0.0
    max_points: int = 30
    max_drop_pp: float = 50.0

    def validate(self) -> None:
        check_choice("finetune.refine", self.refine, REFINES)
        check_choice("finetune.scope", self.scope, ("head", "model"))
        check_choice("finetune.model_lr_schedule", self.model_lr_schedule, ("constant", "cosine"))
        check_range("finetune.epochs", self.epochs, 1, 100_000)
        check_range("finetune.model_learning_rate", self.model_learning_rate, 0.0, 1.0, low_open=True)
        check_range("finetune.distill", self.distill, 0.0, 1.0)
        check_range("finetune.temperature", self.temperature, 0.0, 1000.0, low_open=True)
        check_range("finetune.l2", self.l2, 0.0, 1.0)
        for name in ("distill", "l2"):  # settings of whole-model fine-tuning only
            if getattr(self, name) and self.scope != "model":
                raise ConfigError(
                    f"finetune.{name} applies to whole-model fine-tuning. Expected "
                    f"finetune.scope='model' with finetune.{name} > 0. "
                    f"Received: finetune.scope={self.scope!r}"
                )
        if self.refine == "each" and self.scope != "head":
            raise ConfigError(
                "Fine-tuning inside every evaluation retrains the head only. Expected "
                f"finetune.scope='head' with refine='each'. Received: finetune.scope={self.scope!r}"
            )
        check_range("finetune.steps", self.steps, 1, COUNT_MAX)
        check_range("finetune.batch_size", self.batch_size, 1, 1 << 20)
        check_range("finetune.learning_rate", self.learning_rate, 0.0, 1.0, low_open=True)
        check_range("finetune.max_points", self.max_points, 1, POPULATION_MAX)
        check_range("finetune.max_drop_pp", self.max_drop_pp, 0.0, 100.0)


@dataclass(frozen=True)
class SelectConfig:
    """Selection of the run's answer: one model out of the (fine-tuned) front.

    Attributes:
        tolerance_pp: the selected model is the smallest one whose accuracy on the
            fitness split (after fine-tuning, when the front is refined) is within this
            many percentage points of the baseline's.
        confidence: 0 decides "within" by the point estimate (accuracy >= baseline -
            tolerance). Above 0 (e.g. 0.95), a model is within only when the one-sided
            ``confidence`` upper bound on the accuracy it loses, from paired per-image
            correctness against the baseline on the fitness split, is at most
            ``tolerance_pp``: 6,000 validation images cannot resolve 0.1 point by a point
            estimate (6 images), so the bound makes the noise explicit.
        compressions: levels (each > 1) at which every method also makes its model at
            exactly that size (``nonzero = round(total / level)`` over the pruned layers),
            after the same final retraining (``finetune.epochs``): the run's
            matched-compression curve (``curve.csv``). Empty: no curve.
    """

    tolerance_pp: float = 1.0
    confidence: float = 0.0
    compressions: tuple = field(default=(), metadata={"types": tuple, "items": float})

    def validate(self) -> None:
        check_range("select.tolerance_pp", self.tolerance_pp, 0.0, 100.0)
        if not (self.confidence == 0.0 or 0.5 <= self.confidence < 1.0):
            raise ConfigError(
                "Expected select.confidence = 0 (off) or >= 0.5 and < 1. "
                f"Received: select.confidence={self.confidence!r}"
            )
        for level in self.compressions:
            check_range("select.compressions", level, 1.0, 1e9, low_open=True)
        if len(set(self.compressions)) != len(self.compressions):
            levels = list(self.compressions)
            raise ConfigError(
                f"Expected distinct select.compressions. Received: select.compressions={levels}"
            )
