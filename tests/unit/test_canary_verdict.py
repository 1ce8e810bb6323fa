# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""The canary step's statistics and verdict (module_utils/golden_signals.py), the tests
checked against scipy's on random samples, the verdict on windows as nginx_requests
returns them."""

from __future__ import annotations

import random
from typing import Any

import pytest
from ansible.module_utils.golden_signals import (
    INCONCLUSIVE,
    CanarySettings,
    GoldenSignalsError,
    canary_steps_from_params,
    canary_verdict,
    fisher_greater,
    histogram_median,
    histogram_trimmed_mean,
    mann_whitney_greater,
)

stats = pytest.importorskip("scipy.stats")

SETTINGS = CanarySettings()


def histogram(values: list[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


@pytest.mark.parametrize("seed", range(12))
def test_the_rank_test_agrees_with_scipy_on_tied_millisecond_samples(seed: int) -> None:
    rng = random.Random(seed)
    shift = rng.choice((0, 0, 1, 3))
    a = [max(0, int(rng.gauss(6 + shift, 3))) for _ in range(rng.randint(5, 400))]
    b = [max(0, int(rng.gauss(6, 3))) for _ in range(rng.randint(5, 4000))]
    ours = mann_whitney_greater(histogram(a), histogram(b))
    theirs = stats.mannwhitneyu(a, b, alternative="greater", method="asymptotic")
    assert ours.u == pytest.approx(theirs.statistic)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize(
    ("errors_a", "n_a", "errors_b", "n_b"),
    [(0, 50, 0, 950), (1, 50, 0, 950), (3, 50, 2, 950), (12, 400, 5, 4000), (0, 30, 9, 300),
     (30, 30, 300, 300), (200, 5000, 1000, 95000)],
)  # fmt: skip
def test_the_error_test_agrees_with_scipy(errors_a: int, n_a: int, errors_b: int, n_b: int) -> None:
    theirs = stats.fisher_exact([[errors_a, n_a - errors_a], [errors_b, n_b - errors_b]], "greater")
    assert fisher_greater(errors_a, n_a, errors_b, n_b) == pytest.approx(theirs.pvalue, rel=1e-9)


def test_a_rank_test_of_identical_constant_samples_finds_nothing() -> None:
    result = mann_whitney_greater({4: 100}, {4: 900})
    assert result.p_value == 1.0
    assert result.effect == 0.5


def test_counts_outside_their_totals_are_refused() -> None:
    with pytest.raises(GoldenSignalsError, match=r"within 0\.\.10"):
        fisher_greater(11, 10, 0, 10)


@pytest.mark.parametrize(
    ("counts", "median"),
    [({}, None), ({3: 1}, 3), ({1: 1, 5: 1}, 3), ({1: 2, 9: 1}, 1), ({2: 5, 4: 5}, 3)],
)
def test_the_median_of_a_histogram(counts: dict[int, int], median: float | None) -> None:
    assert histogram_median(counts) == median


def test_the_trimmed_mean_leaves_out_a_tenth_at_each_end() -> None:
    counts = {1: 5, 2: 4, 900: 1}  # ten requests, one cold start
    assert histogram_trimmed_mean(counts) == pytest.approx((4 * 1 + 4 * 2) / 8)
    assert histogram_trimmed_mean({3: 1}) == 3
    assert histogram_trimmed_mean({}) is None


def test_twice_as_slow_at_the_millisecond_floor_is_told_by_the_trimmed_mean() -> None:
    # As nginx logs a 1 ms service made twice as slow: the medians tie at 2 ms.
    new = {1: 10, 2: 25, 3: 15}
    old = {1: 200, 2: 300, 3: 24}
    verdict = canary_verdict([window_of("lb1", new, old)], "green", "blue", 10, SETTINGS)
    assert verdict["median_ms"] == {"green": 2, "blue": 2}
    assert verdict["action"] == "pass"  # 2.1 against 1.65 ms: slower, not 1.5x
    slow = {2: 10, 3: 25, 4: 15}
    verdict = canary_verdict([window_of("lb1", slow, old)], "green", "blue", 10, SETTINGS)
    assert verdict["action"] == "fail", verdict["reason"]
    assert "trimmed mean" in verdict["reason"]


@pytest.mark.parametrize(
    ("given", "steps"),
    [("5,25,50", [5, 25, 50]), ([10, "50%"], [10, 50]), (None, []), ("", []), ([], [])],
)
def test_canary_steps_are_read_from_text_or_a_list(given: Any, steps: list[int]) -> None:
    assert canary_steps_from_params(given) == steps


@pytest.mark.parametrize(
    ("given", "problem"),
    [("5,100", "from 1 to 99"), ("0", "from 1 to 99"), ("25,5", "increasing order"),
     ("5,5", "increasing order"), ("five", "from 1 to 99"), ([True], "from 1 to 99")],
)  # fmt: skip
def test_bad_canary_steps_name_the_problem_and_the_fix(given: Any, problem: str) -> None:
    with pytest.raises(GoldenSignalsError, match=problem):
        canary_steps_from_params(given)


def window(host: str, colours: dict[str, tuple[list[int], int]], seconds: float = 30.0) -> dict:
    """An nginx_requests read: per colour, its latencies (ms) and how many were 5xx."""
    return {
        "host": host,
        "window": {"since": 1.0, "until": 1.0 + seconds, "seconds": seconds},
        "colours": {
            colour: {
                "requests": len(latencies),
                "statuses": {"200": len(latencies) - errors, **({"502": errors} if errors else {})},
                "latency_ms": {str(k): v for k, v in histogram(latencies).items()},
            }
            for colour, (latencies, errors) in colours.items()
        },
    }


def two(host: str, green: tuple[list[int], int], blue: tuple[list[int], int]) -> dict:
    return window(host, {"green": green, "blue": blue})


def window_of(host: str, green: dict[int, int], blue: dict[int, int]) -> dict:
    return {
        "host": host,
        "window": {"since": 1.0, "until": 31.0, "seconds": 30.0},
        "colours": {
            colour: {
                "requests": sum(counts.values()),
                "statuses": {"200": sum(counts.values())},
                "latency_ms": {str(ms): n for ms, n in counts.items()},
            }
            for colour, counts in (("green", green), ("blue", blue))
        },
    }


def latencies(rng: random.Random, n: int, centre: float) -> list[int]:
    return [max(1, round(rng.gauss(centre, centre / 4))) for _ in range(n)]


def test_a_colour_twice_as_slow_fails_the_step_naming_the_test_its_samples_and_p() -> None:
    rng = random.Random(1)
    windows = [
        two("lb1", (latencies(rng, 40, 8), 0), (latencies(rng, 760, 4), 0)),
        two("lb2", (latencies(rng, 45, 8), 0), (latencies(rng, 755, 4), 0)),
    ]
    verdict = canary_verdict(windows, "green", "blue", 5, SETTINGS)
    assert verdict["action"] == "fail"
    assert verdict["requests"] == {"green": 85, "blue": 1515}
    assert verdict["share_measured"] == pytest.approx(5.31, abs=0.01)
    latency = verdict["tests"][0]
    assert latency["verdict"] == "fail" and latency["p_value"] < 1e-6
    assert "Mann-Whitney U" in verdict["reason"] and "n=85/1515" in verdict["reason"]
    assert "p<0.0001" in verdict["reason"]


def test_the_same_version_on_both_colours_passes() -> None:
    rng = random.Random(2)
    passed = 0
    for _ in range(50):
        windows = [two("lb1", (latencies(rng, 120, 5), 0), (latencies(rng, 900, 5), 1))]
        passed += canary_verdict(windows, "green", "blue", 12, SETTINGS)["action"] == "pass"
    assert passed == 50


def test_slower_beyond_chance_but_by_little_passes_and_says_so() -> None:
    rng = random.Random(3)
    windows = [two("lb1", (latencies(rng, 3000, 11), 0), (latencies(rng, 3000, 10), 0))]
    verdict = canary_verdict(windows, "green", "blue", 50, SETTINGS)
    assert verdict["action"] == "pass"
    assert "slower beyond chance, but below 1.5x" in verdict["reason"]


def test_more_errors_beyond_chance_fail_the_step_and_a_single_one_does_not() -> None:
    rng = random.Random(4)
    bad = [two("lb1", (latencies(rng, 60, 5), 6), (latencies(rng, 940, 5), 1))]
    verdict = canary_verdict(bad, "green", "blue", 5, SETTINGS)
    assert verdict["action"] == "fail"
    assert verdict["tests"][1]["verdict"] == "fail"
    assert "Fisher's exact test" in verdict["reason"] and "6 of 60" in verdict["reason"]
    one = [two("lb1", (latencies(rng, 60, 5), 1), (latencies(rng, 940, 5), 0))]
    assert canary_verdict(one, "green", "blue", 5, SETTINGS)["action"] == "pass"


def test_too_few_requests_of_the_new_colour_is_inconclusive_never_passed() -> None:
    rng = random.Random(5)
    windows = [two("lb1", (latencies(rng, 12, 5), 0), (latencies(rng, 500, 5), 0))]
    verdict = canary_verdict(windows, "green", "blue", 5, SETTINGS)
    assert verdict["action"] == INCONCLUSIVE
    assert "fewer than 30 requests of green" in verdict["reason"]
    assert verdict["too_few"] is True
    nothing = canary_verdict([window("lb1", {})], "green", "blue", 5, SETTINGS)
    assert nothing["action"] == INCONCLUSIVE and nothing["share_measured"] is None


def test_a_load_balancer_without_a_window_makes_the_step_inconclusive() -> None:
    rng = random.Random(6)
    windows = [
        two("lb1", (latencies(rng, 100, 5), 0), (latencies(rng, 900, 5), 0)),
        {"host": "lb2", "failed": True, "msg": "unreachable"},
    ]
    verdict = canary_verdict(windows, "green", "blue", 10, SETTINGS)
    assert verdict["action"] == INCONCLUSIVE
    assert "load balancer lb2 gave no window (unreachable)" in verdict["reason"]
    assert verdict["too_few"] is False


def test_a_measured_share_far_from_the_step_is_reported() -> None:
    rng = random.Random(7)
    windows = [two("lb1", (latencies(rng, 300, 5), 0), (latencies(rng, 700, 5), 0))]
    verdict = canary_verdict(windows, "green", "blue", 5, SETTINGS)
    assert verdict["share_measured"] == 30.0
    assert "25.0 points from the step's 5 %" in verdict["reason"]


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (CanarySettings(alpha=0.7), "alpha"),
        (CanarySettings(latency_ratio=0.9), "latency_ratio"),
        (CanarySettings(min_requests=1), "min_requests"),
        (CanarySettings(share_tolerance=0), "share_tolerance"),
    ],
)
def test_bad_canary_settings_are_refused(settings: CanarySettings, problem: str) -> None:
    with pytest.raises(GoldenSignalsError, match=problem):
        canary_verdict([window("lb1", {})], "green", "blue", 5, settings)
