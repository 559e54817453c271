"""Population-based gradual pruning: GMP retrainings that evolve their per-layer allocation as they train.

Gradual magnitude pruning with one global threshold lets each layer's share of the weights
move as training moves the weights; what it cannot do is try several shares and keep the
one that trains best. Here ``population`` retrainings of the same schedule run side by
side, in rounds of ``round_epochs`` epochs (population-based training, Jaderberg et al.
2017). Each member's genome is a log exchange rate per pruned layer: the global threshold
is taken over ``exp(genome_l) x |w|`` (:class:`~evoprune.refine.gradual.ScaledGlobal`;
all zeros is GMP global). After every round each member is scored on the fitness split;
the better half survives unchanged (DEAP's ``selBest``) and each of the worse half takes
over a survivor's whole training state (weights, masks, optimizer) with a Gaussian-mutated
genome (the search's ``mut_gaussian``) and its own data order. A genome acts only while
the masks move: when the schedule's sparsity stops rising (``end``), the best member
continues alone to the end of the retraining, and it is the answer.

Every member's lineage is exactly one retraining of ``epochs`` epochs on one learning-rate
schedule, so the answer is at the same final retraining budget as a GMP model; the other
members are the search's cost, ``(population - 1) x E`` epochs, ``E`` the epochs up to
the end of the schedule's ramp.

References:
    Jaderberg, M. et al. (2017). Population based training of neural networks.
    arXiv:1711.09846.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from deap import base

from evoprune.refine.gradual import Schedule
from evoprune.refine.retrain import ModelFinetuner
from evoprune.search.operators import mut_gaussian, sel_elite
from evoprune.seeding import SearchRandom

# Bounds of a log exchange rate: a layer's magnitudes weighted by e^-3 .. e^3 under the threshold.
LOG_SCALE_BOUND = 3.0


# How members are ranked on the fitness split: its accuracy, or its mean cross-entropy (smoother:
# every image's confidence counts, so members a few images apart are not ranked by those images).
RANKINGS = ("accuracy", "loss")


class _Fitness(base.Fitness):
    weights = (1.0,)  # fitness-split accuracy, or minus its cross-entropy; maximised


class _Member(list):
    """A genome (log exchange rate per pruned layer) with its DEAP fitness and slot."""

    def __init__(self, genes, slot: int) -> None:
        super().__init__(genes)
        self.fitness = _Fitness()
        self.slot = slot


@dataclass(frozen=True)
class PopulationResult:
    """The answer (the best member at the end of the ramp, trained to the end), and every round.

    Attributes:
        weights: all model weights of the answer.
        accuracy: its fitness-split accuracy.
        log_scales: its genome, by layer name.
        history: one row per member and round: ``round, member, parent, accuracy, loss,
            log_scales`` (``parent`` is the member whose state it continued).
        search_epochs: epochs trained by members other than the answer's lineage.
        evolving_epochs: epochs the population trained side by side (to the ramp's end).
        alone: with ``average``, the best member's own continuation (what the answer
            would be without averaging); else ``None``.
    """

    weights: list
    accuracy: float
    log_scales: dict
    history: list
    search_epochs: int
    evolving_epochs: int
    alone: list | None = None


def population_retrain(
    tuner: ModelFinetuner,
    schedule: Schedule,
    names: Sequence[str],
    population: int,
    round_epochs: int,
    sigma: float,
    seed: int,
    starts: Sequence[Sequence[float]] = (),
    progress: Callable[[int, int], None] | None = None,
    average: bool = False,
    rank_by: str = "accuracy",
) -> PopulationResult:
    """Evolves ``population`` GMP retrainings of ``schedule`` (a global one) in rounds; the best one.

    Args:
        tuner: the final retraining's fine-tuner (epochs, rate, distillation, data).
        schedule: a schedule with one global threshold (``schedule.final is None``).
        names: the pruned layers, in the schedule's order.
        population: members (>= 2).
        round_epochs: epochs between selections.
        sigma: standard deviation of the mutation of a log exchange rate.
        seed: seeds the mutations and each member's data order.
        starts: genomes of the first members (default: all zeros, GMP global); the others
            start as mutated copies of them.
        progress: ``(done, total)`` member-rounds.
        average: after the ramp every member continues the best one's state (its mask
            fixed, each its own data order) and the answer is their weights' average
            (averaging crossover; a "model soup"); the best one's own continuation is
            kept as ``alone``. The other members' tails are search cost too.
        rank_by: ``accuracy`` or ``loss`` (mean cross-entropy) on the fitness split, for
            every selection, the choice of the best member included.

    Raises:
        ValueError: a per-layer (not global) schedule, fewer than 2 members, or an unknown
            ``rank_by``.
    """
    if schedule.final is not None:
        raise ValueError("Population-based retraining evolves a global threshold's exchange rates")
    if population < 2:
        raise ValueError(f"Expected a population of at least 2. Received: population={population}")
    if rank_by not in RANKINGS:
        raise ValueError(f"Expected rank_by in {RANKINGS}. Received: rank_by={rank_by!r}")
    rng = SearchRandom(seed)  # DEAP's draws, this thread only
    width = len(names)
    starts = [list(map(float, s)) for s in starts] or [[0.0] * width]
    if any(len(s) != width for s in starts):
        raise ValueError(
            f"Expected genomes of {width} log exchange rates ({', '.join(names)}). Received: {starts}"
        )
    low, up = -LOG_SCALE_BOUND, LOG_SCALE_BOUND
    spread = sigma / (up - low)  # mut_gaussian's sigma is a fraction of the range

    def mutated(genes) -> list[float]:
        with rng.bound():
            (child,) = mut_gaussian(list(genes), low, up, sigma=spread, indpb=1.0)
        return child

    members = [
        _Member(starts[i] if i < len(starts) else mutated(starts[i % len(starts)]), i)
        for i in range(population)
    ]
    per_epoch = max(1, tuner.steps() // tuner.epochs)
    evolving = min(tuner.epochs, max(1, -(-schedule.end // per_epoch)))  # epochs until the masks settle
    bounds = list(range(0, evolving, max(1, round_epochs))) + [evolving]
    rounds = len(bounds) - 1
    history: list[dict] = []
    parents = list(range(population))
    with tuner.session([np.ones(s, dtype=bool) for s in _shapes(tuner)], schedule) as session:
        first = session.state()
        states = [first] * population
        for r in range(rounds):
            for member in members:
                session.load(states[member.slot])
                session.schedule = dataclasses.replace(schedule, scales=tuple(np.exp(member).tolist()))
                session.fit(bounds[r], bounds[r + 1], _order_seed(seed, r, member.slot))
                states[member.slot] = session.state()
                right, loss = session.fit_scores()
                score = right if rank_by == "accuracy" else -loss if np.isfinite(loss) else -np.inf
                member.fitness.values = (score,)  # a diverged member ranks last
                history.append(
                    {
                        "round": r,
                        "member": member.slot,
                        "parent": parents[member.slot],
                        "accuracy": right,
                        "loss": loss,
                        "log_scales": dict(zip(names, (round(g, 6) for g in member))),
                    }
                )
                if progress is not None:
                    progress(r * population + member.slot + 1, rounds * population)
            if r == rounds - 1:
                break
            ranked = sel_elite(members, population)
            keep = population - population // 2
            parents = list(range(population))
            for winner, loser in zip(ranked[:keep], ranked[keep:]):
                states[loser.slot] = states[winner.slot]
                loser[:] = mutated(winner)
                parents[loser.slot] = winner.slot
        best = sel_elite(members, 1)[0]
        answer = states[best.slot]
        accuracy = next(h["accuracy"] for h in reversed(history) if h["member"] == best.slot)
        alone = None
        if evolving < tuner.epochs:  # the masks are fixed from here: the best one trains on alone
            tails = []
            for slot in range(population) if average else [best.slot]:
                session.load(answer)
                session.schedule = dataclasses.replace(schedule, scales=tuple(np.exp(best).tolist()))
                session.fit(evolving, tuner.epochs, _order_seed(seed, rounds, slot))
                tails.append(session.state())
                if slot == best.slot:
                    alone = tails[-1]
            assert alone is not None
            answer = alone
            if average:  # the paper's averaging crossover, on weights that share one mask
                answer = dataclasses.replace(alone, weights=_mean_weights(tails, alone, tuner))
            session.load(answer)
            accuracy = session.fit_accuracy()
    extra = (population - 1) * (tuner.epochs if average and evolving < tuner.epochs else evolving)
    return PopulationResult(
        answer.weights,
        accuracy,
        dict(zip(names, (float(g) for g in best))),
        history,
        extra,
        evolving,
        alone.weights if average and alone is not None else None,
    )


def _mean_weights(tails: list, alone, tuner: ModelFinetuner) -> list:
    """The members' weights averaged, each pruned kernel kept to the best member's mask."""
    weights = [
        np.mean([t.weights[i] for t in tails], axis=0).astype(w.dtype) for i, w in enumerate(alone.weights)
    ]
    for i in tuner.target.weight_positions(tuner.model):
        weights[i] = np.where(alone.weights[i] != 0, weights[i], 0).astype(weights[i].dtype)
    return weights


def _shapes(tuner: ModelFinetuner) -> list:
    return [k.shape for k in tuner.target.kernels]


def _order_seed(seed: int, round_index: int, slot: int) -> int:
    """A member's data order in a round (distinct for every pair, stable across runs)."""
    return int(seed) * 1_000_003 + round_index * 1_009 + slot
