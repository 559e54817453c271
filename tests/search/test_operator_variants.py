"""Operator variants: exact outputs with pinned randomness, invariants, pairing checks."""

from __future__ import annotations

import random

import numpy as np
import pytest
from deap import base, tools

from evoprune.errors import ConfigError
from evoprune.search.algorithms import individual_class
from evoprune.search.operators import (
    CROSSOVERS,
    GENOME_KINDS,
    MUTATIONS,
    OPERATORS,
    SELECTIONS,
    Operator,
    check_pairing,
    cx_blend,
    cx_sbx,
    cx_two_point,
    cx_uniform,
    get,
    mut_flip_bit,
    mut_gaussian,
    mut_polynomial,
    mut_random_reset,
    operator_params,
    register,
    sel_tournament,
)

LOW = [0.0, -1.0, 0.5, 10.0, 0.0]
UP = [1.0, 1.0, 0.75, 20.0, 1e-3]


def real_pair(seed: int) -> tuple[list, list]:
    rng = random.Random(seed)
    return (
        [rng.uniform(lo, hi) for lo, hi in zip(LOW, UP)],
        [rng.uniform(lo, hi) for lo, hi in zip(LOW, UP)],
    )


def in_bounds(ind: list, low=LOW, up=UP) -> bool:
    return all(lo <= x <= hi for x, lo, hi in zip(ind, low, up))


def one_line_config_error(fn, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# Crossovers ------------------------------------------------------------------------------


def test_blend_replays_blx_alpha_draws_then_clips():
    a, b = [0.2, 0.9, 0.5], [0.6, 0.1, 0.5]
    low, up = [0.0, 0.0, 0.0], [1.0, 0.5, 1.0]
    random.seed(7)
    gammas = [2.0 * random.random() - 0.5 for _ in a]
    exp1 = [min(max((1 - g) * x + g * y, lo), hi) for g, x, y, lo, hi in zip(gammas, a, b, low, up)]
    exp2 = [min(max(g * x + (1 - g) * y, lo), hi) for g, x, y, lo, hi in zip(gammas, a, b, low, up)]
    random.seed(7)
    c1, c2 = cx_blend(a, b, low, up, alpha=0.5)
    assert c1 is a and c2 is b
    assert a == exp1 and b == exp2


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 1.0])
def test_blend_children_lie_in_the_extended_interval(alpha):
    random.seed(1)
    for seed in range(300):
        p1, p2 = real_pair(seed)
        c1, c2 = cx_blend(list(p1), list(p2), -1e9, 1e9, alpha=alpha)
        for x, y, u, v in zip(p1, p2, c1, c2):
            d = abs(x - y)
            lo, hi = min(x, y) - alpha * d - 1e-12, max(x, y) + alpha * d + 1e-12
            assert lo <= u <= hi and lo <= v <= hi


def test_blend_clips_to_bounds():
    random.seed(2)
    for seed in range(300):
        c1, c2 = cx_blend(*real_pair(seed), LOW, UP, alpha=1.0)
        assert in_bounds(c1) and in_bounds(c2)


def test_sbx_matches_deap_and_clips():
    p1, p2 = real_pair(3)
    random.seed(11)
    exp1, exp2 = tools.cxSimulatedBinaryBounded(list(p1), list(p2), 15.0, LOW, UP)
    random.seed(11)
    a, b = list(p1), list(p2)
    c1, c2 = cx_sbx(a, b, LOW, UP, eta=15.0)
    assert c1 is a and c2 is b and a == exp1 and b == exp2


@pytest.mark.parametrize("eta", [0.5, 2.0, 20.0, 100.0])
def test_sbx_stays_in_bounds_with_parents_at_the_bounds(eta):
    random.seed(4)
    for _ in range(300):
        c1, c2 = cx_sbx(list(LOW), list(UP), LOW, UP, eta=eta)
        assert in_bounds(c1) and in_bounds(c2)
        c1, c2 = cx_sbx(list(UP), list(LOW), np.array(LOW), np.array(UP), eta=eta)
        assert in_bounds(c1) and in_bounds(c2)


def test_uniform_replays_swaps_and_works_on_bits():
    a, b = [0] * 12, [1] * 12
    random.seed(5)
    swapped = [random.random() < 0.5 for _ in a]
    random.seed(5)
    c1, c2 = cx_uniform(a, b)
    assert c1 is a and c2 is b
    assert a == [int(s) for s in swapped] and b == [int(not s) for s in swapped]


def test_uniform_indpb_one_swaps_everything_and_zero_nothing():
    p1, p2 = real_pair(6)
    a, b = list(p1), list(p2)
    cx_uniform(a, b, indpb=1.0)
    assert a == p2 and b == p1
    cx_uniform(a, b, indpb=0.0)
    assert a == p2 and b == p1


def test_two_point_replays_cut_points_and_swaps_a_contiguous_segment():
    random.seed(8)
    cut1, cut2 = random.randint(1, 10), random.randint(1, 9)
    cut1, cut2 = (cut1, cut2 + 1) if cut2 >= cut1 else (cut2, cut1)
    random.seed(8)
    a, b = list(range(10)), list(range(10, 20))
    c1, c2 = cx_two_point(a, b)
    assert c1 is a and c2 is b
    assert a == list(range(cut1)) + list(range(10 + cut1, 10 + cut2)) + list(range(cut2, 10))
    random.seed(9)
    for _ in range(300):
        a, b = cx_two_point([0] * 10, [1] * 10)
        swapped = [i for i, x in enumerate(a) if x == 1]
        assert swapped and swapped == list(range(swapped[0], swapped[-1] + 1))
        assert [1 - x for x in a] == b and len(a) == len(b) == 10


def test_two_point_rejects_length_one():
    with pytest.raises(ValueError, match="length >= 2"):
        cx_two_point([0.1], [0.2])


# Mutations -------------------------------------------------------------------------------


def test_random_reset_per_gene_bounds_and_indpb_replay():
    random.seed(10)
    expected = []
    for lo, hi in zip(LOW, UP):
        expected.append(random.uniform(lo, hi) if random.random() < 0.5 else None)
    random.seed(10)
    ind = [-5.0] * len(LOW)
    (out,) = mut_random_reset(ind, LOW, UP, indpb=0.5)
    assert out is ind
    assert ind == [-5.0 if e is None else e for e in expected]
    random.seed(0)
    for _ in range(200):
        assert in_bounds(mut_random_reset([0.0] * 5, LOW, UP)[0])


def test_random_reset_binary_draws_bits():
    random.seed(12)
    expected = [random.randint(0, 1) for _ in range(64)]
    random.seed(12)
    ind = [0] * 64
    mut_random_reset(ind, 0, 1, binary=True)
    assert ind == expected and set(ind) == {0, 1}
    assert all(type(x) is int for x in ind)


def test_gaussian_replays_draws_and_clips():
    start = [0.5, 0.0, 0.6, 15.0, 5e-4]
    random.seed(13)
    expected = []
    for x, lo, hi in zip(start, LOW, UP):
        if random.random() < 0.5:
            x = min(max(x + random.gauss(0.0, 0.3 * (hi - lo)), lo), hi)
        expected.append(x)
    random.seed(13)
    ind = list(start)
    (out,) = mut_gaussian(ind, LOW, UP, sigma=0.3, indpb=0.5)
    assert out is ind and ind == expected


def test_gaussian_and_polynomial_stay_in_bounds_over_many_draws():
    random.seed(14)
    for seed in range(300):
        for start in (real_pair(seed)[0], list(LOW), list(UP)):
            assert in_bounds(mut_gaussian(list(start), LOW, UP, sigma=2.0, indpb=1.0)[0])
            assert in_bounds(mut_polynomial(list(start), LOW, UP, eta=1.0, indpb=1.0)[0])


def test_polynomial_matches_deap():
    start = real_pair(15)[0]
    random.seed(16)
    (expected,) = tools.mutPolynomialBounded(list(start), 20.0, LOW, UP, 0.4)
    random.seed(16)
    ind = list(start)
    (out,) = mut_polynomial(ind, LOW, UP, indpb=0.4)
    assert out is ind and ind == expected


def test_zero_width_genes_stay_pinned():
    for mutate in (mut_gaussian, mut_polynomial):
        (ind,) = mutate([0.3, 0.5], [0.3, 0.0], [0.3, 1.0], indpb=1.0)
        assert ind[0] == 0.3 and 0.0 <= ind[1] <= 1.0


def test_flip_bit_indpb_one_flips_every_bit_and_replays():
    bits = [0, 1, 1, 0, 1]
    ind = list(bits)
    (out,) = mut_flip_bit(ind, indpb=1.0)
    assert out is ind and ind == [1 - b for b in bits] and all(type(b) is int for b in ind)
    random.seed(17)
    flips = [random.random() < 0.3 for _ in range(40)]
    random.seed(17)
    (ind,) = mut_flip_bit([0] * 40, indpb=0.3)
    assert ind == [int(f) for f in flips]


def test_default_indpb_is_one_over_length():
    random.seed(18)
    flips = sum(sum(mut_flip_bit([0] * 50)[0]) for _ in range(400))
    assert 300 < flips < 500


# Invariants over every variant -----------------------------------------------------------


def genome(kind: str, cls: type, length: int = 10) -> list:
    if kind == "binary":
        return cls(random.randint(0, 1) for _ in range(length))
    return cls(random.uniform(0.0, 1.0) for _ in range(length))


def registered(name: str, kind: str, length: int = 10):
    params = {"binary": kind == "binary", "indpb": 0.5}
    low, up = [0.0] * length, [1.0] * length
    fn = {**CROSSOVERS, **MUTATIONS}[name]
    return lambda *inds: fn(*inds, **operator_params(name, low, up, params))


@pytest.mark.parametrize("name,kind", [(n, k) for n in sorted(GENOME_KINDS) for k in sorted(GENOME_KINDS[n])])
def test_variants_work_in_place_keep_length_and_gene_domain(name, kind):
    cls = individual_class(1)
    op = registered(name, kind)
    random.seed(19)
    for _ in range(100):
        inds = [genome(kind, cls)] + ([genome(kind, cls)] if name in CROSSOVERS else [])
        out = op(*inds)
        assert len(out) == len(inds) and all(o is i for o, i in zip(out, inds))
        for ind in inds:
            assert isinstance(ind, cls) and len(ind) == 10
            if kind == "binary":
                assert set(ind) <= {0, 1}
            else:
                assert all(0.0 <= x <= 1.0 for x in ind)


@pytest.mark.parametrize("name", sorted(GENOME_KINDS))
def test_same_seed_same_result_different_seed_differs(name):
    kind = "binary" if name == "flip_bit" else "real"
    results = []
    for seed in (20, 20, 21):
        random.seed(0)
        inds = [genome(kind, list, 30), genome(kind, list, 30)]
        random.seed(seed)
        op = registered(name, kind, 30)
        results.append(op(*inds[: 2 if name in CROSSOVERS else 1]))
    assert results[0] == results[1]
    if name != "average":
        assert results[0] != results[2]


# Selection -------------------------------------------------------------------------------


def test_tournament_replays_entrants_and_picks_the_best():
    cls = individual_class(1)
    pop = [cls([float(i)]) for i in range(8)]
    for ind, fit in zip(pop, [0.3, 0.9, 0.1, 0.5, 0.8, 0.2, 0.7, 0.4]):
        ind.fitness.values = (fit,)
    random.seed(22)
    expected = [max((random.choice(pop) for _ in range(3)), key=lambda i: i.fitness) for _ in range(5)]
    random.seed(22)
    chosen = sel_tournament(pop, 5)
    assert all(c is e for c, e in zip(chosen, expected)) and len(chosen) == 5
    assert SELECTIONS["tournament"] is sel_tournament


# Pairing checks --------------------------------------------------------------------------


def test_genome_kinds_cover_every_crossover_and_mutation():
    assert set(GENOME_KINDS) == set(CROSSOVERS) | set(MUTATIONS)


@pytest.mark.parametrize("crossover", sorted(CROSSOVERS))
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize("kind,length", [("real", 1), ("real", 5), ("binary", 1), ("binary", 100)])
def test_check_pairing_accepts_exactly_the_supported_pairs(crossover, mutation, kind, length):
    ok = (
        kind in GENOME_KINDS[crossover]
        and kind in GENOME_KINDS[mutation]
        and not (crossover == "two_point" and length < 2)
    )
    if ok:
        assert check_pairing(kind, length, crossover, mutation) is None
    else:
        message = one_line_config_error(check_pairing, kind, length, crossover, mutation)
        assert "Expected one of:" in message and "Received: search." in message


def test_check_pairing_sbx_on_binary():
    message = one_line_config_error(check_pairing, "binary", 100, "sbx", "flip_bit", encoding="mask")
    assert message == (
        "Operator 'sbx' does not apply to binary genomes (encoding 'mask'). "
        "Expected one of: two_point, uniform. Received: search.crossover='sbx'"
    )


def test_check_pairing_flip_bit_on_real():
    message = one_line_config_error(check_pairing, "real", 3, "average", "flip_bit", encoding="threshold")
    assert message == (
        "Operator 'flip_bit' does not apply to real genomes (encoding 'threshold'). "
        "Expected one of: gaussian, polynomial, random_reset. "
        "Received: search.mutation='flip_bit'"
    )


def test_check_pairing_two_point_on_length_one():
    message = one_line_config_error(check_pairing, "real", 1, "two_point", "random_reset")
    assert "'two_point'" in message and "length >= 2" in message
    assert "Expected one of: average, blend, sbx, uniform." in message
    assert message.endswith("Received: search.crossover='two_point'")


@pytest.mark.parametrize(
    "crossover,mutation,valid",
    [
        ("nope", "random_reset", "average, blend, sbx, two_point, uniform"),
        ("average", "nope", "flip_bit, gaussian, polynomial, random_reset"),
    ],
)
def test_check_pairing_unknown_names_list_valid_ones(crossover, mutation, valid):
    message = one_line_config_error(check_pairing, "real", 3, crossover, mutation)
    assert f"Expected one of: {valid}. Received: 'nope'" in message


def test_check_pairing_unknown_genome_kind():
    message = one_line_config_error(check_pairing, "ternary", 3, "average", "random_reset")
    assert "Expected one of: binary, real. Received: 'ternary'" in message  # too far for a guess


def test_get_lists_all_crossovers():
    message = one_line_config_error(get, CROSSOVERS, "crossover", "nope")
    assert message == (
        "Unknown crossover. Expected one of: average, blend, sbx, two_point, uniform. Received: 'nope'"
    )


# operator_params ---------------------------------------------------------------------------


def test_operator_params_defaults():
    low, up = [0.0] * 4, [1.0] * 4
    bounds = {"low": low, "up": up}
    assert operator_params("average", low, up, {}) == {}
    assert operator_params("two_point", low, up, {}) == {}
    assert operator_params("blend", low, up, {}) == {**bounds, "alpha": 0.5}
    assert operator_params("sbx", low, up, {}) == {**bounds, "eta": 20.0}
    assert operator_params("uniform", low, up, {}) == {"indpb": 0.5}
    assert operator_params("uniform", low, up, {"indpb": 0.0}) == {"indpb": 0.5}
    assert operator_params("random_reset", low, up, {}) == {**bounds, "indpb": 0.25, "binary": False}
    assert operator_params("gaussian", low, up, {"indpb": 0}) == {**bounds, "sigma": 0.1, "indpb": 0.25}
    assert operator_params("polynomial", low, up, {}) == {**bounds, "eta": 20.0, "indpb": 0.25}
    assert operator_params("flip_bit", low, up, {"indpb": None}) == {"indpb": 0.25}
    assert operator_params("tournament", low, up, {}) == {"tournsize": 3}
    assert operator_params("nsga2", low, up, {}) == {}


def test_operator_params_picks_given_values_and_lists_arrays():
    params = {"alpha": 0.3, "eta": 5.0, "sigma": 0.2, "indpb": 0.7, "tournsize": 4, "binary": True}
    low, up = np.zeros(3), np.ones(3)
    kwargs = operator_params("gaussian", low, up, params)
    assert kwargs == {"low": [0.0] * 3, "up": [1.0] * 3, "sigma": 0.2, "indpb": 0.7}
    assert type(kwargs["low"]) is list and type(kwargs["up"]) is list
    assert operator_params("blend", low, up, params)["alpha"] == 0.3
    assert operator_params("sbx", low, up, params)["eta"] == 5.0
    assert operator_params("uniform", low, up, params) == {"indpb": 0.7}
    assert operator_params("random_reset", low, up, params)["binary"] is True
    assert operator_params("tournament", low, up, params) == {"tournsize": 4}


def test_operator_params_registers_into_a_toolbox():
    low, up = [0.0, 0.0], [1.0, 2.0]
    toolbox = base.Toolbox()
    toolbox.register("mate", get(CROSSOVERS, "crossover", "sbx"), **operator_params("sbx", low, up, {}))
    toolbox.register(
        "mutate", get(MUTATIONS, "mutation", "polynomial"), **operator_params("polynomial", low, up, {})
    )
    random.seed(23)
    a, b = toolbox.mate([0.1, 1.9], [0.9, 0.2])
    (m,) = toolbox.mutate(a)
    assert m is a and in_bounds(a, low, up) and in_bounds(b, low, up)


def test_operator_params_unknown_name():
    message = one_line_config_error(operator_params, "nope", [0.0], [1.0], {})
    assert "Expected one of:" in message and "sbx" in message and "Received: 'nope'" in message


# One declaration per operator ------------------------------------------------------------


def _mut_invert(individual: list, indpb: float) -> tuple[list]:
    """A test-only mutation: each bit inverts with probability ``indpb``."""
    for i in range(len(individual)):
        if random.random() < indpb:
            individual[i] = 1 - individual[i]
    return (individual,)


def test_a_new_operator_is_one_declaration(monkeypatch):
    monkeypatch.setitem(
        OPERATORS, "invert", Operator("mutation", _mut_invert, ("indpb",), kinds=frozenset({"binary"}))
    )
    assert check_pairing("binary", 8, "uniform", "invert") is None
    message = one_line_config_error(check_pairing, "real", 3, "average", "invert")
    assert "'invert' does not apply to real genomes" in message
    assert "invert" in one_line_config_error(check_pairing, "binary", 8, "uniform", "nope")
    assert operator_params("invert", [0] * 4, [1] * 4, {}) == {"indpb": 0.25}
    toolbox = base.Toolbox()
    register(toolbox, "mutate", "mutation", "invert", [0] * 4, [1] * 4, {"indpb": 1.0})
    assert toolbox.mutate([0, 1, 1, 0]) == ([1, 0, 0, 1],)


def test_register_refuses_an_operator_of_another_role():
    message = one_line_config_error(
        register, base.Toolbox(), "mate", "crossover", "flip_bit", [0.0], [1.0], {}
    )
    assert "Unknown crossover" in message and "Received: 'flip_bit'" in message


def test_nsga3_reference_points_follow_the_population():
    points = operator_params("nsga3", [0.0], [1.0], {"population": 12})["ref_points"]
    assert np.array_equal(points, tools.uniform_reference_points(2, 11))
