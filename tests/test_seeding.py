"""The randomness design: a search's generators take DEAP's draws only while it runs."""

from __future__ import annotations

import random
import threading

import numpy as np
from deap import tools
from deap.tools import emo

from evoprune.search.operators import mut_random_reset
from evoprune.seeding import DEAP_MODULES, SearchRandom


def _deap_draws() -> list:
    ind1, ind2 = list(range(10)), list(range(10, 20))
    tools.cxUniform(ind1, ind2, 0.5)
    (mutated,) = tools.mutGaussian([0.0] * 5, 0.0, 1.0, 1.0)
    return ind1 + mutated


def test_deap_draws_from_the_search_generator_in_its_thread():
    random.seed(123)
    outside = _deap_draws()
    with SearchRandom(7).bound() as rng:
        inside = _deap_draws()
        own = mut_random_reset([0.0] * 3, 0.0, 1.0, rng=rng.python)
    random.seed(123)
    assert _deap_draws() == outside  # the module's generator was not advanced by the search
    replay = SearchRandom(7)
    with replay.bound():
        assert _deap_draws() == inside
    assert mut_random_reset([0.0] * 3, 0.0, 1.0, rng=replay.python) == own


def test_nothing_outlives_the_search():
    originals = {
        (name, attr): getattr(__import__(name, fromlist=["x"]), attr)
        for name, attrs in DEAP_MODULES.items()
        for attr in attrs
    }
    draw = random.random
    with SearchRandom(0).bound():
        with SearchRandom(1).bound():  # nested (or concurrent) searches share the stand-ins
            assert emo.random is not random
        assert emo.random is not random
    assert random.random is draw  # the random module itself is never patched
    for (name, attr), value in originals.items():
        assert getattr(__import__(name, fromlist=["x"]), attr) is value
    assert emo.random is random and emo.numpy is np


def test_other_threads_keep_the_module_generators():
    seen = {}

    def other() -> None:
        random.seed(5)
        seen["draws"] = _deap_draws()

    with SearchRandom(7).bound():
        before = SearchRandom(7).python.getstate()
        worker = threading.Thread(target=other)
        worker.start()
        worker.join()
        random.seed(5)
        assert emo.random.getstate() == before  # the search's generator is untouched
    random.seed(5)
    assert seen["draws"] == _deap_draws()


def test_nsga3_draws_from_the_search_numpy_generator_not_the_global_one():
    individuals = [
        _ind(a, b)
        for a, b in [(0.9, 10), (0.8, 5), (0.7, 3), (0.6, 2), (0.5, 1), (0.85, 9), (0.75, 4), (0.65, 2.5)]
    ]
    points = tools.uniform_reference_points(2, 3)
    np.random.seed(0)
    global_state = np.random.get_state()[1].copy()
    picks = []
    for _ in range(2):
        with SearchRandom(3).bound() as rng:
            picks.append([id(i) for i in tools.selNSGA3(individuals, 5, points)])
            fresh, state = np.random.RandomState(3).get_state(), rng.numpy.get_state()
            assert (state[1].tobytes(), state[2]) != (fresh[1].tobytes(), fresh[2])  # it drew
    assert picks[0] == picks[1]
    assert np.array_equal(np.random.get_state()[1], global_state)


def _ind(accuracy: float, nonzero: float):
    from evoprune.search.algorithms import individual_class

    ind = individual_class(2)([accuracy])
    ind.fitness.values = (accuracy, nonzero)
    return ind
