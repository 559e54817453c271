"""Whole-model retraining with the masks fixed, optionally distilled from the unpruned model."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from evoprune.data.dataset import eval_pipeline, train_pipeline
from evoprune.models.training import accuracy, compile_model, correct, correct_and_loss
from evoprune.refine.finetune import layer_masks
from evoprune.seeding import seed_everything, seed_layer_generators


class ModelFinetuner:
    """Retrains every surviving weight of the model with the pruned layers' masks fixed.

    Standard prune-then-fine-tune: epochs of the training pipeline with each pruned
    kernel's mask as its constraint (applied inside the compiled train step after every
    update, so pruned weights stay exactly zero), with a loss that fits the model's output
    (logits or softmax). Optionally the unpruned model teaches (knowledge distillation,
    Hinton et al. 2015): the loss is ``(1 - distill) x cross-entropy + distill x T^2 x
    KL(teacher_T || student_T)`` at temperature ``T``, the teacher's outputs computed once;
    and optionally an L2 penalty ``l2 x sum(w^2)`` on the pruned kernels (Han et al. 2015
    retrain with L2 regularisation), set as each kernel's Keras regularizer while it trains.

    Every fine-tuning is a pure function of (model weights, masks, data, settings, seed):
    the global generators and the layers' own seed generators (Dropout's) are set from
    ``seed`` before each fit, so a mask's result depends neither on what was tuned before
    it nor on how the model came into the process (an export retrains the selected mask
    alone, in a fresh process, and must get the run's model). The layers' generator
    states are put back afterwards.

    Args:
        model: the trained model (its weights are restored after every call).
        train, fit_split, test_split: ``(images, labels)`` splits.
        target: the pruned layers (:class:`~evoprune.models.target.PruneTarget`).
        epochs, learning_rate, batch_size, seed: training settings (seeded, deterministic).
        lr_schedule: ``constant`` or ``cosine`` (``learning_rate`` decayed to 0 over the epochs).
        distill, temperature: weight of the distillation term (0: plain cross-entropy) and
            its temperature. The teacher is the model as given (its weights at construction).
        l2: weight of the L2 penalty on the pruned kernels (0: none).
    """

    def __init__(
        self,
        model,
        train,
        fit_split,
        test_split,
        target,
        epochs: int,
        learning_rate: float,
        batch_size: int,
        seed: int,
        lr_schedule: str = "constant",
        distill: float = 0.0,
        temperature: float = 4.0,
        l2: float = 0.0,
    ) -> None:
        self.model, self.train, self.fit_split, self.test_split = model, train, fit_split, test_split
        self.target, self.epochs, self.learning_rate = target, epochs, learning_rate
        self.lr_schedule, self.distill, self.temperature = lr_schedule, distill, temperature
        self.batch_size, self.seed, self.l2 = batch_size, seed, l2
        self.base = [w.copy() for w in model.get_weights()]
        weights = {id(w) for w in model.weights}  # the rest: random-seed states (Dropout's)
        self._rng_states = [(v, np.array(v.numpy())) for v in model.variables if id(v) not in weights]
        self._teacher = None
        self._cache: dict[bytes, list] = {}

    def rebase(self, weights: list) -> None:
        """Fine-tunes from ``weights`` from now on (iterative pruning retrains the last model).

        The distillation teacher stays the model this fine-tuner was made with."""
        self._teacher_outputs()
        self.base = [np.asarray(w).copy() for w in weights]
        self._cache.clear()

    def _teacher_outputs(self) -> np.ndarray | None:
        """The unpruned model's outputs on the training split (once; ``None`` without distillation)."""
        if self.distill and self._teacher is None:
            current = self.model.get_weights()
            self.model.set_weights(self.base)
            self._teacher = self.model.predict(eval_pipeline(self.train, 1024), verbose=0).astype(np.float32)
            self.model.set_weights(current)
        return self._teacher

    def _compile(self, rate) -> tuple:
        """Compiles the model for fine-tuning; returns the training split to fit on."""

        if not self.distill:
            compile_model(self.model, rate)
            return self.train
        import keras

        teacher = self._teacher_outputs()
        images, labels = self.train
        packed = np.concatenate([labels.astype(np.float32)[:, None], teacher], axis=1)
        self.model.compile(
            optimizer=keras.optimizers.Adam(rate),
            metrics=[],
            loss=distillation_loss(self.distill, self.temperature, self.target.from_logits),
        )
        return images, packed

    def tuned_weights(self, masks) -> list:
        """All model weights after fine-tuning with ``masks`` (one per pruned layer; memoized)."""
        masks = [np.asarray(m).astype(np.float32) for m in layer_masks(masks)]
        key = b"".join(np.packbits(m.astype(bool)).tobytes() for m in masks)
        if key not in self._cache:
            self._cache[key] = self.retrain(masks)
        return self._cache[key]

    def steps(self) -> int:
        """Optimizer steps of one retraining (``epochs`` x batches per epoch)."""
        return self.epochs * int(np.ceil(len(self.train[1]) / self.batch_size))

    def retrain(self, masks, schedule=None, progress=None) -> list:
        """All model weights after ``epochs`` of training from ``base`` with the pruned kernels masked.

        Args:
            masks: the starting mask of each pruned kernel (fixed, unless ``schedule`` moves them).
            schedule: ``schedule.updates_at(step)`` and ``schedule.masks(step, kernels)``
                (see :class:`~evoprune.refine.gradual.Schedule`): the masks are recomputed from
                the current kernels at those steps, before the step's update (gradual pruning).
            progress: ``(epoch, epochs)`` after every epoch.
        """
        with self.session(masks, schedule, progress) as session:
            session.fit(0, self.epochs, self.seed)
            return [w.copy() for w in self.model.get_weights()]

    @contextlib.contextmanager
    def session(self, masks, schedule=None, progress=None) -> Iterator[RetrainSession]:
        """The model compiled for one retraining from ``base`` (see :meth:`retrain`), in pieces.

        A :class:`RetrainSession` fits ranges of epochs and saves and loads the whole
        training state (weights, masks, optimizer), so several retrainings can take turns
        on the one model (population-based retraining). The model is put back on exit.
        """
        import keras

        masks = [np.asarray(m).astype(np.float32) for m in layer_masks(masks)]
        variables = self.target.variables(self.model)  # each kernel its own (a separable layer's two)
        constraints = [v.constraint for v in variables]
        regularizers = [v.regularizer for v in variables]
        seed_everything(self.seed)
        seed_layer_generators(self.model, self.seed)  # not as the model was built or loaded
        self.model.set_weights(self.base)
        masked = []
        for variable, mask, own in zip(variables, masks, constraints):
            variable.assign(variable.numpy() * mask)
            masked.append(_Masked(mask, own))
            variable.constraint = masked[-1]
            if self.l2:
                variable.regularizer = keras.regularizers.L2(self.l2)
        rate = self.learning_rate
        if self.lr_schedule == "cosine":
            rate = keras.optimizers.schedules.CosineDecay(self.learning_rate, self.steps())
        try:
            split = self._compile(rate)
            yield RetrainSession(self, split, variables, masked, schedule, progress)
        finally:
            for variable, own, penalty in zip(variables, constraints, regularizers):
                variable.constraint, variable.regularizer = own, penalty
            compile_model(self.model)  # plain loss and accuracy again, for evaluation
            self.model.set_weights(self.base)
            self._restore_rng_states()

    def evaluate(self, weights: list) -> tuple[float, float]:
        """Fitness-split and test accuracy (:func:`accuracy`, exact) of the model with ``weights``."""
        self.model.set_weights(weights)
        try:
            return accuracy(self.model, self.fit_split), accuracy(self.model, self.test_split)
        finally:
            self.model.set_weights(self.base)

    def _restore_rng_states(self) -> None:
        """Puts the layers' random-seed states (Dropout's) back as they were at construction."""
        for variable, state in self._rng_states:
            variable.assign(state)

    def score(self, masks) -> tuple[float, float]:
        """Fitness-split and test accuracy (exact fractions, :func:`accuracy`) after fine-tuning."""
        return self.evaluate(self.tuned_weights(masks))


class _Masked:
    """A kernel constraint that zeroes the pruned weights (after the layer's own constraint).

    The mask is a variable, so gradual pruning can move it between steps of the compiled
    train step.
    """

    def __init__(self, mask: np.ndarray, own=None) -> None:
        import keras

        self.mask = keras.Variable(np.asarray(mask, dtype=np.float32), trainable=False, name="prune_mask")
        self.own = own

    def __call__(self, w):
        return (self.own(w) if self.own is not None else w) * self.mask


@dataclass
class TrainingState:
    """Everything one retraining carries between epochs: weights, masks, optimizer and the
    layers' random-seed states (Dropout's)."""

    weights: list
    masks: list
    optimizer: list
    seeds: list


class RetrainSession:
    """One retraining in pieces (:meth:`ModelFinetuner.session`): fit epoch ranges, save and load state.

    Attributes:
        schedule: the gradual-pruning schedule the next :meth:`fit` follows (``None``: masks fixed).
    """

    def __init__(self, tuner: ModelFinetuner, split, variables: list, masked: list, schedule, progress):
        self.tuner, self.split, self.variables, self.masked = tuner, split, variables, masked
        self.schedule = schedule
        self.progress = progress
        optimizer = tuner.model.optimizer
        optimizer.build(tuner.model.trainable_variables)  # its state exists before the first fit

    def fit(self, first: int, last: int, seed: int) -> None:
        """Epochs ``first`` to ``last - 1`` in data order ``seed`` (steps, rate and schedule follow on).

        Raises:
            ValueError: the optimizer is not at the start of epoch ``first`` (load that state first).
        """
        tuner = self.tuner
        done = int(tuner.model.optimizer.iterations.numpy())
        if done != first * (tuner.steps() // tuner.epochs):
            raise ValueError(f"The retraining is at step {done}, not at the start of epoch {first}")
        tuner.model.fit(
            train_pipeline(self.split, tuner.batch_size, seed),
            initial_epoch=first,
            epochs=last,
            verbose=0,
            shuffle=False,
            callbacks=_callbacks(self, self.variables, self.masked, self.progress, tuner.epochs),
        )

    def state(self) -> TrainingState:
        """A copy of the training state now."""
        return TrainingState(
            [w.copy() for w in self.tuner.model.get_weights()],
            [np.array(m.mask.numpy()) for m in self.masked],
            [np.array(v.numpy()) for v in self.tuner.model.optimizer.variables],
            [np.array(v.numpy()) for v, _ in self.tuner._rng_states],
        )

    def load(self, state: TrainingState) -> None:
        """Puts the model, its masks and its optimizer in ``state``."""
        self.tuner.model.set_weights(state.weights)
        for constraint, mask in zip(self.masked, state.masks):
            constraint.mask.assign(mask)
        for variable, value in zip(self.tuner.model.optimizer.variables, state.optimizer):
            variable.assign(value)
        for (variable, _), value in zip(self.tuner._rng_states, state.seeds):
            variable.assign(value)

    def fit_accuracy(self) -> float:
        """Accuracy of the model now on the fitness split."""
        return float(correct(self.tuner.model, self.tuner.fit_split).mean())

    def fit_scores(self) -> tuple[float, float]:
        """Accuracy and mean cross-entropy of the model now on the fitness split (one pass)."""
        right, loss = correct_and_loss(self.tuner.model, self.tuner.fit_split, self.tuner.target.from_logits)
        return float(right.mean()), loss


def _callbacks(session, variables: list, masked: list, progress, epochs: int) -> list:
    """Keras callbacks of one retraining: gradual mask updates (``session.schedule``'s) and progress."""
    import keras

    class GradualMasks(keras.callbacks.Callback):
        """Recomputes the masks from the kernels at the steps the schedule names, before the step."""

        def on_train_batch_begin(self, batch, logs=None):
            schedule = session.schedule
            step = int(self.model.optimizer.iterations.numpy())
            if not schedule.updates_at(step):
                return
            kernels = [variable.numpy() for variable in variables]
            for variable, constraint, kernel, mask in zip(
                variables, masked, kernels, schedule.masks(step, kernels)
            ):
                mask = mask.astype(np.float32)
                constraint.mask.assign(mask)
                variable.assign(kernel * mask)

    class EpochProgress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            progress(epoch + 1, epochs)

    return ([GradualMasks()] if session.schedule is not None else []) + (
        [EpochProgress()] if progress else []
    )


def distillation_loss(weight: float, temperature: float, from_logits: bool):
    """Cross-entropy on the labels blended with the teacher's softened outputs.

    ``y_true`` packs the label (column 0) and the teacher's outputs (logits, or
    probabilities when the model ends in softmax) in the remaining columns.
    """
    import tensorflow as tf

    def logits(outputs):
        return outputs if from_logits else tf.math.log(tf.maximum(outputs, 1e-12))

    def loss(y_true, y_pred):
        labels = tf.cast(y_true[:, 0], tf.int64)
        student = logits(y_pred)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=student)
        soft = tf.nn.softmax(logits(y_true[:, 1:]) / temperature)
        kl = tf.reduce_sum(
            soft * (tf.math.log(tf.maximum(soft, 1e-12)) - tf.nn.log_softmax(student / temperature)), axis=-1
        )
        return (1.0 - weight) * ce + weight * temperature**2 * kl

    return loss
