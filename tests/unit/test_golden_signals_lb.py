"""golden_signals with source=lb: judging a colour from the load balancers' request logs.

The inputs are shaped like nginx_requests (state=read) results with a `host` added; the
health URLs are served by real HTTP servers on 127.0.0.1, as the other golden_signals tests
serve /metrics and the Prometheus API.
"""

from __future__ import annotations

import http.server
import itertools
import math
import random
import socket
from typing import Any

import golden_signals
import pytest
from ansible.module_utils.golden_signals import (
    CRITICAL,
    DEFAULT_THRESHOLDS,
    INCONCLUSIVE,
    NOT_CONFIGURED,
    NOT_JUDGED,
    OK,
    WARNING,
    GoldenSignalsError,
    analyse_lb,
    build_settings,
    exact_quantile_ms,
    lb_window_end,
    merge_thresholds,
    nearest_rank,
)
from conftest import serving

SINCE = 1733500000.0
REQUEST_SIGNALS = ("traffic", "error_rate", "latency_p95", "latency_p99")
HEALTH_URLS = ("http://10.0.0.11:8002/health", "http://10.0.0.12:8002/health")
LOST = "the log of lb2 was rotated or truncated and the part after the mark was lost"


def counts(statuses: dict[str, int], latency_ms: dict[str, int], **extra: Any) -> dict[str, Any]:
    """One colour of an nginx_requests read; `errors` is nginx_requests' own 5xx count."""
    requests = sum(statuses.values())
    return {
        "requests": requests,
        "errors": sum(n for s, n in statuses.items() if s.startswith("5")),
        "statuses": statuses,
        "latency_ms": latency_ms,
        "bytes": 512 * requests,
        "routes": {"/notes": {"requests": requests, "errors": 0, "latency_ms": latency_ms}},
        **extra,
    }


def read(
    host: str, colours: dict[str, Any], *, seconds: float = 10.0, **extra: Any
) -> dict[str, Any]:
    """An nginx_requests state=read result of one load balancer, with its host."""
    return {
        "host": host,
        "changed": False,
        "window": {"since": SINCE, "until": SINCE + seconds, "seconds": seconds},
        "colours": colours,
        "unrouted": 0,
        "excluded": 12,
        "unparsed": 0,
        "rotated": False,
        "lost": False,
        "lines": 262,
        "mark": {"inode": 1234, "offset": 56789},
        **extra,
    }


# lb1 and lb2 each saw part of green's traffic. Merged, the 350 times sorted are
# 9 ms x60, 12 ms x100, 15 ms x180, 800 ms x10: p50 is rank 175 (15 ms), p95 rank 333
# (15 ms), p99 rank 347 (800 ms). lb2 alone has a p95 of 800 ms; the merge is by counts.
# Their upstream times, 4 requests without one: 7 ms x60, 10 ms x100, 12 ms x28, 13 ms x148,
# 790 ms x10; p50 is rank 173 of 346 (12 ms), p95 rank 329 (13 ms), p99 rank 343 (790 ms).
LB1_GREEN = counts(
    {"200": 247, "502": 3},
    {"12": 100, "15": 150},
    upstream_ms={"10": 100, "13": 148},
    no_upstream_time=2,
)
LB2_GREEN = counts(
    {"200": 96, "404": 2, "503": 2},
    {"9": 60, "15": 30, "800": 10},
    upstream_ms={"7": 60, "12": 28, "790": 10},
    no_upstream_time=2,
)
MERGED_UPSTREAM = {
    "p50": 0.012,
    "p95": 0.013,
    "p99": 0.79,
    "observations": 346,
    "no_upstream_time": 4,
}


def two_lbs(**lb2: Any) -> list[dict[str, Any]]:
    return [
        read("lb1", {"green": LB1_GREEN}, seconds=10.0),
        read("lb2", {"green": LB2_GREEN}, seconds=12.0, **lb2),
    ]


def lb_params(**overrides: Any) -> dict[str, Any]:
    """Module parameters as AnsibleModule hands them over for source=lb, defaults filled in."""
    base: dict[str, Any] = {
        "source": "lb",
        "mode": "analyse",
        "prometheus_url": None,
        "selector": "",
        "compare_selector": None,
        "node_selector": None,
        "db_selector": None,
        "targets": None,
        "compare_targets": None,
        "node_targets": None,
        "db_targets": None,
        "lb_windows": two_lbs(),
        "colour": "green",
        "compare_colour": None,
        "health_targets": None,
        "host_windows": None,
        "baseline_windows": None,
        "dependency_windows": None,
        "routes": None,
        "baseline_host_windows": None,
        "window": 300,
        "baseline": None,
        "min_requests": 50,
        "latency_metric": "http_request_duration_seconds",
        "requests_metric": "http_requests_total",
        "route_label": "route",
        "status_label": "status",
        "exclude_routes": ["/health", "/metrics"],
        "error_status_regex": "5..",
        "disk_mountpoint": "/",
    }
    return {**base, **overrides}


def analyse(health: dict[str, str] | None = None, **overrides: Any) -> dict[str, Any]:
    thresholds = merge_thresholds(DEFAULT_THRESHOLDS, overrides.pop("thresholds", None), "t")
    return analyse_lb(build_settings(lb_params(**overrides)), thresholds, health).as_dict()


def sorted_times(latency_ms: dict[int, int]) -> list[int]:
    return sorted(itertools.chain.from_iterable([ms] * n for ms, n in latency_ms.items()))


class TestExactQuantile:
    def test_ten_distinct_times(self) -> None:
        times = {ms: 1 for ms in range(10, 101, 10)}  # 10, 20, ... 100 ms

        assert exact_quantile_ms(0.5, times) == 50  # rank 5
        assert exact_quantile_ms(0.95, times) == 100  # rank ceil(9.5) = 10
        assert exact_quantile_ms(0.9, times) == 90  # rank 9: no interpolation towards 100

    def test_a_single_request_is_every_quantile(self) -> None:
        assert [exact_quantile_ms(q, {7: 1}) for q in (0.0, 0.5, 0.95, 0.99, 1.0)] == [7] * 5

    def test_ties_take_the_value_that_reaches_the_rank(self) -> None:
        times = {5: 95, 900: 5}

        assert exact_quantile_ms(0.95, times) == 5  # rank 95 is the last 5 ms request
        assert exact_quantile_ms(0.96, times) == 900
        assert exact_quantile_ms(0.99, times) == 900

    def test_rank_at_an_exact_boundary(self) -> None:
        assert exact_quantile_ms(0.95, {1: 19, 2: 1}) == 1  # rank 19 of 20, not 20
        assert exact_quantile_ms(0.95, {1: 18, 2: 2}) == 2

    def test_rank_is_taken_from_the_decimal_quantile(self) -> None:
        # 0.07 * 100 is 7.000000000000001 in floating point, whose ceiling would be rank 8.
        assert nearest_rank(0.07, 100) == 7
        assert nearest_rank(0.95, 20) == 19
        assert nearest_rank(0.99, 350) == 347
        with pytest.raises(ValueError):
            nearest_rank(1.5, 10)

    def test_no_observations(self) -> None:
        assert exact_quantile_ms(0.95, {}) is None
        assert exact_quantile_ms(0.95, {12: 0}) is None

    @pytest.mark.parametrize("seed", range(25))
    def test_matches_the_definition_on_the_sorted_times(self, seed: int) -> None:
        rng = random.Random(seed)
        times = {rng.randint(0, 400): rng.randint(1, 30) for _ in range(rng.randint(1, 40))}
        ordered = sorted_times(times)
        for q in (0.5, 0.95, 0.99):
            rank = math.ceil(round(q * 100) * len(ordered) / 100)
            assert exact_quantile_ms(q, times) == ordered[rank - 1], (q, times)


class TestSignals:
    def test_merged_over_two_load_balancers(self) -> None:
        result = analyse()
        signals = result["signals"]

        assert result["requests"] == 350
        assert result["window_s"] == 12.0  # the longest window
        assert signals["traffic"]["value"] == pytest.approx(350 / 12)
        assert signals["traffic"]["reason"].endswith("(350 requests in 12 s at lb1, lb2)")
        assert signals["latency_p95"]["value"] == 0.015
        assert signals["latency_p99"]["value"] == 0.8
        assert signals["latency_p95"]["p50"] == 0.015
        assert signals["latency_p95"]["observations"] == 350
        assert "rank 333 of 350" in signals["latency_p95"]["reason"]
        assert (signals["latency_p95"]["verdict"], signals["latency_p99"]["verdict"]) == (OK, OK)
        assert signals["error_rate"]["value"] == pytest.approx(5 / 350)
        assert signals["error_rate"]["verdict"] == WARNING
        assert "5 of 350 responses failed" in signals["error_rate"]["reason"]
        assert (result["verdict"], result["p0"], result["comparison"]) == (WARNING, False, None)

    def test_a_p99_of_too_few_times_is_not_judged_and_the_rest_still_judge(self) -> None:
        # 50 request times, one cold start of 4.6 s: the nearest-rank p99 is that one
        # request. It is shown, not judged; p95 (rank 48) and the error rate decide.
        cold = counts({"200": 50}, {"200": 48, "470": 1, "4636": 1})
        result = analyse(lb_windows=[read("lb1", {"green": cold})])
        signals = result["signals"]

        assert signals["latency_p99"]["value"] == 4.636
        assert signals["latency_p99"]["verdict"] == NOT_JUDGED
        assert "50 request times are too few for a p99" in signals["latency_p99"]["reason"]
        assert "at least 100" in signals["latency_p99"]["reason"]
        assert (signals["latency_p95"]["value"], signals["latency_p95"]["verdict"]) == (0.2, OK)
        assert result["verdict"] == OK

    def test_a_p99_of_a_hundred_times_is_judged(self) -> None:
        slow = counts({"200": 100}, {"200": 98, "2500": 2})
        signals = analyse(lb_windows=[read("lb1", {"green": slow})])["signals"]

        assert (signals["latency_p99"]["value"], signals["latency_p99"]["verdict"]) == (
            2.5,
            CRITICAL,
        )

    def test_evidence_names_each_host_its_requests_and_window(self) -> None:
        windows = analyse()["signals"]["error_rate"]["windows"]

        assert windows["lb1"] == {
            "since": SINCE,
            "until": SINCE + 10,
            "seconds": 10.0,
            "requests": 250,
            "errors": 3,
            "statuses": {"200": 247, "502": 3},
            "lost": False,
            "rotated": False,
            "unrouted": 0,
            "excluded": 12,
            "unparsed": 0,
        }
        assert (windows["lb2"]["requests"], windows["lb2"]["until"]) == (100, SINCE + 12)

    def test_upstream_quantiles_are_shown_beside_the_request_times_merged_by_counts(
        self,
    ) -> None:
        signals = analyse()["signals"]

        for name in ("latency_p95", "latency_p99"):
            assert signals[name]["upstream"] == MERGED_UPSTREAM, name
        assert (signals["latency_p95"]["value"], signals["latency_p99"]["value"]) == (0.015, 0.8)
        assert "upstream" not in signals["traffic"]
        assert "upstream" not in signals["error_rate"]

    def test_latency_is_judged_on_the_request_time_not_the_upstream_time(self) -> None:
        # The service answered in 5 ms; users waited over a second (a slow client, a
        # saturated nginx): that is what the verdict is about.
        slow_clients = counts({"200": 100}, {"1200": 100}, upstream_ms={"5": 100})
        result = analyse(lb_windows=[read("lb1", {"green": slow_clients})])

        p95 = result["signals"]["latency_p95"]
        assert (p95["value"], p95["verdict"]) == (1.2, CRITICAL)
        assert (p95["upstream"]["p95"], p95["upstream"]["observations"]) == (0.005, 100)

    @pytest.mark.parametrize(
        ("green", "without"),
        [
            # From an nginx_requests that did not count upstream times yet.
            (counts({"200": 60}, {"7": 60}), 0),
            # No server of the colour answered: nginx logged "-" for each request.
            (counts({"502": 60}, {"3": 60}, upstream_ms={}, no_upstream_time=60), 60),
        ],
    )
    def test_without_upstream_times_their_quantiles_are_none(
        self, green: dict[str, Any], without: int
    ) -> None:
        p95 = analyse(lb_windows=[read("lb1", {"green": green})])["signals"]["latency_p95"]

        assert p95["value"] is not None
        assert p95["upstream"] == {
            "p50": None,
            "p95": None,
            "p99": None,
            "observations": 0,
            "no_upstream_time": without,
        }

    def test_latency_is_in_seconds_and_judged_against_the_thresholds(self) -> None:
        slow = counts({"200": 100}, {"400": 90, "1200": 6, "2500": 4})
        result = analyse(lb_windows=[read("lb1", {"green": slow})])

        p95, p99 = result["signals"]["latency_p95"], result["signals"]["latency_p99"]
        assert (p95["value"], p95["verdict"], p95["p0"]) == (1.2, CRITICAL, False)
        assert (p99["value"], p99["verdict"]) == (2.5, CRITICAL)
        assert p95["p50"] == 0.4

    def test_error_rate_follows_error_status_regex_over_the_logged_statuses(self) -> None:
        only_502 = analyse(error_status_regex="502")["signals"]["error_rate"]
        with_404 = analyse(error_status_regex="4..|5..")["signals"]["error_rate"]

        assert only_502["value"] == pytest.approx(3 / 350)
        assert (
            analyse(error_status_regex="50")["signals"]["error_rate"]["value"] == 0
        )  # whole status
        assert with_404["value"] == pytest.approx(7 / 350)
        assert with_404["windows"]["lb2"]["errors"] == 4

    def test_nginx_requests_own_error_count_is_not_what_is_judged(self) -> None:
        green = dict(counts({"200": 99, "429": 1}, {"10": 100}), errors=60)
        result = analyse(lb_windows=[read("lb1", {"green": green})], error_status_regex="429")

        assert result["signals"]["error_rate"]["value"] == pytest.approx(0.01)

    def test_too_few_requests_is_inconclusive(self) -> None:
        short = analyse(min_requests=351)
        enough = analyse(min_requests=350)

        for name in REQUEST_SIGNALS:
            assert short["signals"][name]["verdict"] == INCONCLUSIVE, name
            assert short["signals"][name]["reason"].startswith(
                "only 350 requests in the 12 s window, fewer than min_requests 351"
            )
        assert short["verdict"] == INCONCLUSIVE
        assert enough["signals"]["latency_p95"]["verdict"] == OK

    def test_no_request_of_the_colour_is_inconclusive_and_says_which_colours_were_seen(
        self,
    ) -> None:
        result = analyse(colour="Green")

        assert result["requests"] == 0
        assert result["verdict"] == INCONCLUSIVE
        reason = result["signals"]["traffic"]["reason"]
        assert "only 0 requests" in reason
        assert "no load balancer logged a request of colour 'Green' (colours logged: green)" in (
            reason
        )
        assert result["signals"]["latency_p95"]["value"] is None

    def test_no_data_is_never_ok_even_without_min_requests(self) -> None:
        empty = read("lb1", {"green": counts({}, {})})
        result = analyse(lb_windows=[empty], min_requests=0)

        assert result["signals"]["traffic"]["value"] == 0
        for name in ("error_rate", "latency_p95", "latency_p99"):
            assert result["signals"][name]["verdict"] == INCONCLUSIVE, name
        assert result["verdict"] == INCONCLUSIVE

    def test_saturation_is_not_configured_and_does_not_count(self) -> None:
        signals = analyse()["signals"]

        for name in ("cpu", "memory", "disk", "process_memory", "log_errors"):
            assert signals[name]["verdict"] == NOT_CONFIGURED, name
            assert "no host_windows given" in signals[name]["reason"]
        assert signals["db_connections"]["verdict"] == NOT_CONFIGURED
        assert "source=lb measures no database" in signals["db_connections"]["reason"]

    def test_window_bounds_set_the_evaluation_time(self) -> None:
        assert lb_window_end(build_settings(lb_params())) == SINCE + 12


class TestIncompleteWindows:
    def test_a_lost_window_makes_every_request_signal_inconclusive_naming_the_host(self) -> None:
        result = analyse(lb_windows=two_lbs(lost=True, rotated=True))

        for name in REQUEST_SIGNALS:
            signal = result["signals"][name]
            assert signal["verdict"] == INCONCLUSIVE, name
            assert signal["reason"] == f"{LOST}; the values shown cover lb1 only", name
        assert result["requests"] is None
        assert (result["verdict"], result["p0"]) == (INCONCLUSIVE, False)
        # What is left is shown, from lb1 alone, and lb2's own read is in the evidence.
        assert result["signals"]["latency_p99"]["value"] == 0.015
        assert result["signals"]["latency_p99"]["upstream"] == {
            "p50": 0.013,
            "p95": 0.013,
            "p99": 0.013,
            "observations": 248,
            "no_upstream_time": 2,
        }
        assert result["signals"]["traffic"]["value"] == pytest.approx(250 / 12)
        assert result["signals"]["traffic"]["windows"]["lb2"]["lost"] is True

    def test_a_rotated_log_that_was_followed_is_complete(self) -> None:
        result = analyse(lb_windows=two_lbs(rotated=True))

        assert result["requests"] == 350
        assert result["signals"]["latency_p95"]["verdict"] == OK

    def test_a_critical_value_from_the_rest_is_still_inconclusive(self) -> None:
        failing = counts({"500": 100}, {"10": 100})
        lb2 = read("lb2", {"green": LB2_GREEN}, lost=True)
        result = analyse(lb_windows=[read("lb1", {"green": failing}), lb2])

        assert result["signals"]["error_rate"]["value"] == 1.0
        assert result["signals"]["error_rate"]["verdict"] == INCONCLUSIVE
        assert result["verdict"] == INCONCLUSIVE

    def test_a_load_balancer_without_a_window_is_named_with_its_error(self) -> None:
        failed = {"host": "lb2", "failed": True, "msg": "cannot read the request log"}
        result = analyse(lb_windows=[read("lb1", {"green": LB1_GREEN}), failed])

        reason = result["signals"]["latency_p95"]["reason"]
        assert reason == (
            "load balancer lb2 gave no window (cannot read the request log); "
            "the values shown cover lb1 only"
        )
        assert result["window_s"] == 10.0
        assert result["signals"]["latency_p95"]["windows"]["lb2"] == {"error": reason.split(";")[0]}
        assert result["verdict"] == INCONCLUSIVE

    def test_no_window_at_all(self) -> None:
        skipped = {"host": "lb1", "skipped": True, "skip_reason": "Conditional result was False"}
        result = analyse(lb_windows=[skipped])

        assert result["window_s"] is None and result["requests"] is None
        assert result["signals"]["traffic"]["value"] is None
        assert result["signals"]["traffic"]["reason"] == (
            "load balancer lb1 gave no window (Conditional result was False); "
            "no load balancer gave a usable window"
        )
        assert result["verdict"] == INCONCLUSIVE


class TestComparison:
    def windows(self) -> list[dict[str, Any]]:
        green = counts({"200": 98, "500": 2}, {"300": 100})
        blue = counts({"200": 100}, {"90": 50, "100": 50})
        return [
            read("lb1", {"green": green, "blue": blue}),
            read("lb2", {"green": counts({}, {}), "blue": counts({"200": 20}, {"100": 20})}),
        ]

    def test_with_compare_colour_in_the_same_windows(self) -> None:
        result = analyse(lb_windows=self.windows(), compare_colour="blue")

        comparison = result["comparison"]
        assert comparison["latency_p95_ratio"]["value"] == pytest.approx(3.0)  # 300 / 100 ms
        assert comparison["latency_p95_ratio"]["verdict"] == WARNING  # warns only, by default
        assert comparison["latency_p50_ratio"]["verdict"] == CRITICAL
        assert comparison["error_rate_diff"]["value"] == pytest.approx(0.02)
        assert comparison["error_rate_diff"]["verdict"] == WARNING
        assert comparison["baseline"]["requests"] == 120
        assert comparison["baseline"]["colour"] == "blue"
        assert comparison["baseline"]["latency_p95"] == 0.1
        assert comparison["baseline"]["windows"]["lb2"]["requests"] == 20
        assert comparison["new"] == {"latency_p50": 0.3, "latency_p95": 0.3, "error_rate": 0.02}
        assert comparison["verdict"] == CRITICAL
        assert result["verdict"] == CRITICAL

    def test_too_few_old_requests_is_inconclusive(self) -> None:
        result = analyse(lb_windows=self.windows(), compare_colour="blue", min_requests=121)

        ratio = result["comparison"]["latency_p95_ratio"]
        assert ratio["verdict"] == INCONCLUSIVE
        assert ratio["reason"].startswith("baseline (old colour): only 120 requests")

    def before_switch(self, blue_ms: int = 100, requests: int = 200) -> list[dict[str, Any]]:
        """The load balancers' reads from a mark before the switch: blue served everything,
        and green's first requests after the switch are in the read too."""
        blue = counts({"200": requests}, {str(blue_ms): requests})
        return [
            read("lb1", {"blue": blue, "green": counts({"500": 5}, {"5": 5})}, seconds=40.0),
            read("lb2", {"blue": counts({}, {})}, seconds=40.0),
        ]

    def test_with_a_baseline_from_before_the_switch(self) -> None:
        # After the switch, only green is served: its 300 ms against blue's 100 ms before.
        after = [read("lb1", {"green": counts({"200": 100}, {"160": 100})})]
        result = analyse(
            lb_windows=after, compare_colour="blue", baseline_windows=self.before_switch()
        )

        comparison = result["comparison"]
        # 60 % slower is past the default critical 1.5 of the median: the checklists'
        # "more than 50 %"; the p95's own ratio is not judged under a quarter second.
        assert comparison["latency_p50_ratio"]["value"] == pytest.approx(1.6)
        assert comparison["latency_p50_ratio"]["verdict"] == CRITICAL
        assert comparison["latency_p95_ratio"]["value"] == pytest.approx(1.6)
        assert comparison["latency_p95_ratio"]["verdict"] == OK
        assert "not above ignore_below 0.25 s" in comparison["latency_p95_ratio"]["reason"]
        assert comparison["baseline"]["latency_p50"] == 0.1
        assert comparison["new"]["latency_p50"] == 0.16
        assert comparison["baseline"]["before_switch"] is True
        # Green's requests in the baseline read are not counted in blue's baseline.
        assert comparison["baseline"]["requests"] == 200
        assert comparison["baseline"]["error_rate"] == 0
        assert comparison["baseline"]["windows"]["lb1"]["seconds"] == 40.0
        assert comparison["error_rate_diff"]["verdict"] == OK
        assert result["verdict"] == CRITICAL

    def test_a_baseline_too_thin_to_compare_with_is_not_judged(self) -> None:
        after = [read("lb1", {"green": counts({"200": 100}, {"300": 100})})]
        result = analyse(
            lb_windows=after,
            compare_colour="blue",
            baseline_windows=self.before_switch(requests=10),
        )

        ratio = result["comparison"]["latency_p95_ratio"]
        assert ratio["verdict"] == "not_judged"
        assert "before the switch): only 10 requests in the 40 s window" in ratio["reason"]
        assert result["comparison"]["verdict"] == "not_judged"
        # The new colour's own signals decide alone: they are ok.
        assert result["verdict"] == OK

    def test_baseline_windows_need_the_old_colour(self) -> None:
        with pytest.raises(GoldenSignalsError, match="baseline_windows needs compare_colour"):
            analyse(baseline_windows=self.before_switch())

    def test_a_lost_window_makes_the_comparison_inconclusive(self) -> None:
        windows = self.windows()
        windows[1] = read("lb2", windows[1]["colours"], lost=True)
        result = analyse(lb_windows=windows, compare_colour="blue")

        ratio = result["comparison"]["latency_p95_ratio"]
        assert ratio["verdict"] == INCONCLUSIVE
        assert "the log of lb2 was rotated or truncated" in ratio["reason"]
        assert result["comparison"]["verdict"] == INCONCLUSIVE


class TestHealthTargets:
    URLS = HEALTH_URLS

    def test_share_not_answering_200(self) -> None:
        result = analyse(
            {self.URLS[0]: "up", self.URLS[1]: "HTTP 503 Service Unavailable"},
            health_targets=self.URLS,
        )

        down = result["signals"]["targets_down"]
        assert (down["value"], down["verdict"], down["p0"]) == (0.5, CRITICAL, False)
        assert f"{self.URLS[1]}: HTTP 503 Service Unavailable" in down["reason"]
        assert down["targets"] == {self.URLS[0]: "up", self.URLS[1]: "HTTP 503 Service Unavailable"}

    def test_all_up_and_all_down(self) -> None:
        up = analyse(dict.fromkeys(self.URLS, "up"), health_targets=self.URLS)
        down = analyse(dict.fromkeys(self.URLS, "timed out"), health_targets=self.URLS)

        assert (
            up["signals"]["targets_down"]["value"],
            up["signals"]["targets_down"]["verdict"],
        ) == (
            0,
            OK,
        )
        assert (down["verdict"], down["p0"]) == (CRITICAL, True)
        assert down["signals"]["targets_down"]["reason"].startswith("service down: 2 of 2")

    def test_without_health_targets_targets_down_is_not_configured(self) -> None:
        down = analyse()["signals"]["targets_down"]

        assert down["verdict"] == NOT_CONFIGURED
        assert down["reason"] == "no health_targets given: source=lb requests no targets itself"


class TestSettings:
    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"mode": "sample"}, "mode=sample does not apply to source=lb"),
            ({"baseline": {"source": "lb", "taken_at": 1}}, "baseline does not apply to source=lb"),
            ({"targets": ["http://127.0.0.1:1/metrics"]}, "targets do not apply to source=lb"),
            ({"node_targets": ["http://127.0.0.1:1/metrics"]}, "second golden_signals call"),
            ({"prometheus_url": "http://p:9090"}, "prometheus_url do not apply to source=lb"),
            ({"colour": None}, "colour is required with source=lb"),
            ({"colour": " "}, "colour must be a colour name"),
            ({"compare_colour": "green"}, "compare_colour is green, the colour judged"),
            ({"lb_windows": []}, "lb_windows is required with source=lb"),
            ({"lb_windows": None}, "lb_windows is required with source=lb"),
            ({"lb_windows": [read("lb1", {}), read("lb1", {})]}, "lb_windows has lb1 more than"),
            ({"lb_windows": [{"window": {}}]}, "lb_windows[0] has no host"),
            ({"lb_windows": [read("lb1", {}, window={"since": 1})]}, "window has no until"),
            ({"lb_windows": [read("lb1", {}, lost="yes")]}, "lost must be true or false"),
            (
                {"lb_windows": [read("lb1", {"green": counts({"200": 1}, {"1.5": 1})})]},
                "latency_ms has the key '1.5': keys are whole milliseconds",
            ),
            (
                {"lb_windows": [read("lb1", {"green": counts({}, {}, upstream_ms={"-": 1})})]},
                "upstream_ms has the key '-': keys are whole milliseconds",
            ),
            (
                {"lb_windows": [read("lb1", {"green": counts({}, {}, no_upstream_time=-1)})]},
                "colours.green.no_upstream_time must be a whole number",
            ),
            (
                {"lb_windows": [read("lb1", {"green": counts({"200": -1}, {})})]},
                "lb_windows[0] (lb1).colours.green.statuses['200'] must be a whole number",
            ),
            (
                {"lb_windows": [read("lb1", {"green": {"statuses": {}}})]},
                "colours.green has no requests count",
            ),
            ({"health_targets": ["10.0.0.5:8002/health"]}, "URLs of the colour's health check"),
        ],
    )
    def test_refusals_say_what_to_do(self, overrides: dict[str, Any], message: str) -> None:
        with pytest.raises(GoldenSignalsError) as caught:
            build_settings(lb_params(**overrides))
        assert message in str(caught.value)

    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("lb_windows", two_lbs()),
            ("colour", "green"),
            ("compare_colour", "blue"),
            ("health_targets", ["http://10.0.0.11:8002/health"]),
        ],
    )
    def test_lb_options_are_refused_with_the_other_sources(self, option: str, value: Any) -> None:
        params = lb_params(source="scrape", targets=["http://127.0.0.1:1/metrics"])
        params.update({"lb_windows": None, "colour": None, option: value})

        with pytest.raises(GoldenSignalsError) as caught:
            build_settings(params)
        assert f"{option} apply to source=lb" in str(caught.value)

    def test_counts_written_as_floats_and_integer_keys_are_read(self) -> None:
        green = {"requests": 60.0, "statuses": {"200": 60.0}, "latency_ms": {7: 60.0}}
        result = analyse(lb_windows=[read("lb1", {"green": green})])

        assert (result["requests"], result["signals"]["latency_p95"]["value"]) == (60, 0.007)


class TestModule:
    @pytest.fixture
    def health(self) -> Any:
        """Two health URLs on 127.0.0.1: /ok answers 200, /sick 503."""

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status = 200 if self.path == "/ok" else 503
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        with serving(Handler) as port:
            yield f"http://127.0.0.1:{port}"

    @pytest.fixture
    def closed_url(self) -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return f"http://127.0.0.1:{port}/health"

    def args(self, **overrides: Any) -> dict[str, Any]:
        return {"source": "lb", "colour": "green", "lb_windows": two_lbs(), **overrides}

    def test_a_whole_run(self, run_module, health: str, closed_url: str) -> None:
        targets = [f"{health}/ok", f"{health}/sick", closed_url]
        thresholds = {"targets_down": {"warning": 0.5, "critical": 0.9}}
        args = self.args(health_targets=targets, timeout=2, window=5, thresholds=thresholds)
        result = run_module(golden_signals.main, args)

        assert (result["failed"], result["changed"]) == (False, False)
        assert set(result) - {"invocation"} == {
            "changed",
            "failed",
            "verdict",
            "p0",
            "signals",
            "comparison",
            "window_s",
            "requests",
            "evaluated_at",
            "sample",
            "thresholds",
            "parser",
        }
        signals = result["signals"]
        assert set(signals) == {
            "targets_down",
            "traffic",
            "error_rate",
            "latency_p95",
            "latency_p99",
            "cpu",
            "memory",
            "disk",
            "process_memory",
            "log_errors",
            "dependencies",
            "cpu_per_request",
            "db_connections",
        }
        down = signals["targets_down"]
        assert down["value"] == pytest.approx(2 / 3)
        assert down["verdict"] == WARNING
        assert down["targets"][f"{health}/ok"] == "up"
        assert down["targets"][f"{health}/sick"].startswith("HTTP 503")
        assert down["targets"][closed_url] != "up"
        assert signals["latency_p95"] == {
            "value": 0.015,
            "unit": "s",
            "warning": 0.5,
            "critical": 1.0,
            "p0_threshold": 2.0,
            "verdict": OK,
            "p0": False,
            "reason": "p95 latency 0.015 s is not above warning 0.5 s "
            "(the request time of rank 333 of 350)",
            "p50": 0.015,
            "observations": 350,
            "upstream": MERGED_UPSTREAM,
            "windows": signals["traffic"]["windows"],
        }
        assert result["window_s"] == 12.0  # `window` is ignored
        assert result["requests"] == 350
        assert result["evaluated_at"] == SINCE + 12
        assert result["sample"] == {"source": "lb", "taken_at": SINCE + 12}
        assert result["parser"] is None
        assert signals["error_rate"]["verdict"] == WARNING  # 1.43%
        assert (result["verdict"], result["p0"]) == (WARNING, False)

    def test_check_mode_and_the_analysis_loop(self, run_module) -> None:
        analysis: dict[str, Any] = {"count": 2, "history": []}
        first = run_module(golden_signals.main, self.args(analysis=analysis), check_mode=True)

        assert first["decision"]["action"] == "continue"
        assert first["history"] == [{"verdict": WARNING, "p0": False, "at": SINCE + 12}]

        analysis["history"] = first["history"]
        lost = run_module(
            golden_signals.main, self.args(analysis=analysis, lb_windows=two_lbs(lost=True))
        )
        assert lost["verdict"] == INCONCLUSIVE
        assert lost["signals"]["error_rate"]["reason"].startswith(LOST)
        assert (lost["decision"]["action"], lost["decision"]["verdict"]) == ("pass", WARNING)

    def test_comparison(self, run_module) -> None:
        windows = TestComparison().windows()
        result = run_module(
            golden_signals.main, self.args(lb_windows=windows, compare_colour="blue")
        )

        assert result["comparison"]["latency_p95_ratio"]["value"] == pytest.approx(3.0)
        assert result["comparison"]["baseline"]["colour"] == "blue"

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"lb_windows": None}, "lb_windows"),
            ({"colour": None}, "colour"),
            ({"mode": "sample"}, "mode=sample does not apply to source=lb"),
            ({"lb_windows": ["lb1"]}, "lb_windows"),
        ],
    )
    def test_refusals(self, run_module, overrides: dict[str, Any], message: str) -> None:
        args = {k: v for k, v in self.args(**overrides).items() if v is not None}
        result = run_module(golden_signals.main, args)

        assert result["failed"] is True
        assert message in result["msg"]


def usage(
    host: str,
    *,
    seconds: float = 10.0,
    cpu: float | None = 4.0,
    process_mb: float | None = 80.0,
    host_memory: float = 40.0,
    disk: float = 30.0,
    events: int | None = 0,
    **extra: Any,
) -> dict[str, Any]:
    """A colour_usage state=read result of one app host, with its host."""
    return {
        "host": host,
        "changed": False,
        "window": {"since": SINCE, "until": SINCE + seconds, "seconds": seconds},
        "cpus": 2,
        "cpu": {
            "seconds": None if cpu is None else cpu / 100 * 2 * seconds,
            "percent_of_host": cpu,
            "percent_of_core": None if cpu is None else cpu * 2,
            "restarted": False,
            "problem": None if cpu is not None else "the unit needs CPUAccounting=yes",
        },
        "memory": {
            "process_bytes": None if process_mb is None else process_mb * 1e6,
            "host_percent": host_memory,
            "problem": None if process_mb is not None else "the unit needs MemoryAccounting=yes",
        },
        "disk": {"percent": disk},
        "log": None
        if events is None
        else {
            "events": events,
            "tracebacks": events,
            "lines": 4 * events,
            "excerpts": [["Traceback (most recent call last):", "RuntimeError: boom"]][:events],
        },
        "log_problem": None if events is not None else "journalctl failed: no journal",
        **extra,
    }


class TestHostWindows:
    def test_a_quiet_healthy_colour_is_ok_on_every_host_signal(self) -> None:
        result = analyse(host_windows=[usage("app1"), usage("app2", cpu=6.0)])
        signals = result["signals"]

        assert signals["cpu"]["verdict"] == OK
        assert signals["cpu"]["value"] == 6.0
        assert "at app2" in signals["cpu"]["reason"]
        assert signals["memory"]["value"] == 40.0
        assert signals["disk"]["value"] == 30.0
        assert signals["log_errors"]["verdict"] == OK
        assert signals["log_errors"]["value"] == 0
        # No cap is set for the processes' memory: measured, shown, not judged against one.
        assert signals["process_memory"]["value"] == 80.0
        assert "no thresholds apply" in signals["process_memory"]["reason"]
        # The requests of two_lbs() have a 1.43 % error rate, a warning of their own.
        assert result["verdict"] == WARNING
        assert {n for n, s in signals.items() if s["verdict"] == WARNING} == {"error_rate"}

    def test_cpu_above_its_threshold_is_critical_naming_the_host(self) -> None:
        result = analyse(
            host_windows=[usage("app1", cpu=35.0)], thresholds={"cpu": {"critical": 25}}
        )

        assert result["signals"]["cpu"]["verdict"] == CRITICAL
        assert (
            "CPU usage 35% is above the critical threshold 25%"
            in (result["signals"]["cpu"]["reason"])
        )
        assert result["signals"]["cpu"]["hosts"]["app1"]["cpu_seconds"] == pytest.approx(7.0)
        assert result["verdict"] == CRITICAL

    def test_cpu_per_request_is_the_cpu_rate_over_the_request_rate(self) -> None:
        # two_lbs(): 350 green requests in the longest window, 12 s: 29.2 req/s. The hosts'
        # 7 CPU s in 10 s and 2.4 CPU s in 12 s: 0.9 CPU s/s, so 30.9 ms a request.
        result = analyse(
            host_windows=[usage("app1", cpu=35.0), usage("app2", seconds=12.0, cpu=10.0)],
            thresholds={"cpu_per_request": {"critical": 25}},
        )

        signal = result["signals"]["cpu_per_request"]
        assert signal["value"] == pytest.approx(1000 * (0.7 + 0.2) / (350 / 12))
        assert signal["verdict"] == CRITICAL
        assert (
            "CPU of the colour's processes per request 30.9 ms is above the critical"
            in (signal["reason"])
        )

    def test_memory_over_a_cap_is_critical(self) -> None:
        result = analyse(
            host_windows=[usage("app1", process_mb=600.0)],
            thresholds={"process_memory": {"critical": 512}},
        )

        signal = result["signals"]["process_memory"]
        assert signal["verdict"] == CRITICAL
        assert "600 MB is above the critical threshold 512 MB" in signal["reason"]

    def test_log_errors_are_events_per_minute_over_the_hosts_with_excerpts(self) -> None:
        result = analyse(host_windows=[usage("app1", events=3), usage("app2", seconds=12.0)])

        signal = result["signals"]["log_errors"]
        # 3 events in the longest window (12 s): 15 a minute, above warning 0.
        assert signal["value"] == pytest.approx(15.0)
        assert signal["verdict"] == WARNING
        assert signal["events"] == 3
        assert signal["hosts"]["app1"]["excerpts"] == [
            ["Traceback (most recent call last):", "RuntimeError: boom"]
        ]

    def test_a_host_without_a_window_leaves_only_a_critical_verdict_standing(self) -> None:
        failed = {"host": "app2", "failed": True, "msg": "unreachable"}
        mild = analyse(host_windows=[usage("app1"), failed])
        bad = analyse(
            host_windows=[usage("app1", cpu=50.0), failed], thresholds={"cpu": {"critical": 25}}
        )

        assert mild["signals"]["cpu"]["verdict"] == INCONCLUSIVE
        assert "app host app2 gave no window (unreachable)" in mild["signals"]["cpu"]["reason"]
        assert mild["signals"]["log_errors"]["verdict"] == INCONCLUSIVE
        assert bad["signals"]["cpu"]["verdict"] == CRITICAL

    def test_counters_systemd_does_not_keep_are_inconclusive_never_zero(self) -> None:
        result = analyse(host_windows=[usage("app1", cpu=None, process_mb=None, events=None)])
        signals = result["signals"]

        assert signals["cpu"]["verdict"] == INCONCLUSIVE
        assert "CPUAccounting=yes" in signals["cpu"]["reason"]
        assert signals["process_memory"]["verdict"] == INCONCLUSIVE
        assert signals["log_errors"]["verdict"] == INCONCLUSIVE
        assert "journalctl failed" in signals["log_errors"]["reason"]

    def test_bad_host_windows_are_refused_naming_the_entry(self) -> None:
        with pytest.raises(GoldenSignalsError, match=r"host_windows\[0\] has no host"):
            analyse(host_windows=[{"window": {"seconds": 1}}])
        with pytest.raises(GoldenSignalsError, match="app1 more than once"):
            analyse(host_windows=[usage("app1"), usage("app1")])
        with pytest.raises(GoldenSignalsError, match=r"log.events must be a whole number"):
            analyse(host_windows=[usage("app1") | {"log": {"events": -1}}])


def probed(host: str, colours: list[str], **errors: str | None) -> dict[str, Any]:
    """A dependency_probe result of one app host, with its host and colours."""
    return {
        "host": host,
        "colours": colours,
        "changed": False,
        "probes": [
            {
                "name": name,
                "kind": "tcp",
                "target": f"{name}1:9000",
                "ok": error is None,
                "error": error,
                "ms": 1.0,
            }
            for name, error in errors.items()
        ],
    }


class TestDependencies:
    def test_reachable_from_both_colours_is_ok(self) -> None:
        result = analyse(
            dependency_windows=[
                probed("app-green", ["green"], db=None, catalog=None),
                probed("app-blue", ["blue"], db=None, catalog=None),
            ]
        )

        signal = result["signals"]["dependencies"]
        assert (signal["verdict"], signal["value"]) == (OK, 0)
        assert "2 dependencies answered every host" in signal["reason"]

    def test_unreachable_from_the_new_colour_only_is_critical_naming_it(self) -> None:
        result = analyse(
            dependency_windows=[
                probed("app-green", ["green"], db=None, catalog="connection refused"),
                probed("app-blue", ["blue"], db=None, catalog=None),
            ]
        )

        signal = result["signals"]["dependencies"]
        assert signal["verdict"] == CRITICAL
        assert signal["value"] == 1
        assert (
            "catalog (catalog1:9000) is unreachable from green (app-green: connection refused)"
            " while app-blue of the old colour reach it"
        ) in signal["reason"]
        assert result["verdict"] == CRITICAL

    def test_down_for_both_colours_is_inconclusive_and_blames_nobody(self) -> None:
        result = analyse(
            dependency_windows=[
                probed("app-green", ["green"], catalog="connection refused"),
                probed("app-blue", ["blue"], catalog="no answer within the timeout"),
            ]
        )

        signal = result["signals"]["dependencies"]
        assert signal["verdict"] == INCONCLUSIVE
        assert "down for both colours" in signal["reason"]
        assert "not the release's doing" in signal["reason"]
        assert signal["down_for_both"] and not signal["unreachable_from_new_only"]

    def test_one_host_running_both_colours_cannot_blame_the_release(self) -> None:
        result = analyse(
            dependency_windows=[probed("single1", ["blue", "green"], catalog="refused")]
        )

        assert result["signals"]["dependencies"]["verdict"] == INCONCLUSIVE

    def test_no_old_colour_probe_cannot_tell_whose_doing_it_is(self) -> None:
        result = analyse(dependency_windows=[probed("app-green", ["green"], catalog="refused")])

        signal = result["signals"]["dependencies"]
        assert signal["verdict"] == INCONCLUSIVE
        assert "cannot be told" in signal["reason"]

    def test_entries_without_colours_are_refused(self) -> None:
        with pytest.raises(GoldenSignalsError, match="has no colours"):
            analyse(dependency_windows=[{"host": "app-green", "probes": []}])


def with_generate(generate_ms: dict[str, int], other_ms: dict[str, int]) -> dict[str, Any]:
    """green's figures on one lb: / at `other_ms`, /generate at `generate_ms`."""
    merged: dict[str, int] = {}
    for histogram in (generate_ms, other_ms):
        for ms, n in histogram.items():
            merged[ms] = merged.get(ms, 0) + n
    generate = sum(generate_ms.values())
    figures = counts({"200": sum(merged.values())}, merged)
    figures["named_routes"] = {
        "/generate": {"requests": generate, "errors": 0, "latency_ms": generate_ms}
    }
    return figures


GENERATE = {"route": "/generate", "latency_p95": {"warning": 3, "critical": 5}}


class TestRoutes:
    def test_a_slow_route_within_its_own_levels_leaves_the_colour_ok(self) -> None:
        # 30 generations at 4 s (p95 4 s: over the colour's 2 s P0, under the route's 5 s).
        green = with_generate({"4000": 30}, {"10": 270})
        result = analyse(lb_windows=[read("lb1", {"green": green})], routes=[GENERATE])
        signals = result["signals"]

        route = signals["latency_p95[/generate]"]
        assert (route["verdict"], route["value"]) == (WARNING, 4.0)
        assert route["reason"].startswith("/generate: p95 latency 4 s is above the warning")
        # The colour's own p95 is of its other requests only.
        assert signals["latency_p95"]["value"] == 0.01
        assert signals["latency_p95"]["verdict"] == OK
        assert result["verdict"] == WARNING

    def test_a_route_over_its_own_critical_level_is_critical_naming_it(self) -> None:
        green = with_generate({"6000": 30}, {"10": 270})
        result = analyse(lb_windows=[read("lb1", {"green": green})], routes=[GENERATE])

        assert result["signals"]["latency_p95[/generate]"]["verdict"] == CRITICAL
        assert result["verdict"] == CRITICAL

    def test_a_quiet_route_is_not_judged(self) -> None:
        green = with_generate({"6000": 5}, {"10": 295})
        result = analyse(lb_windows=[read("lb1", {"green": green})], routes=[GENERATE])

        route = result["signals"]["latency_p95[/generate]"]
        assert route["verdict"] == "not_judged"
        assert (
            "5 requests to /generate in the window, fewer than its min_requests 20"
            in (route["reason"])
        )
        assert result["verdict"] == OK

    @pytest.mark.parametrize(
        ("rule", "message"),
        [
            ({"route": "generate", "latency_p95": {"critical": 5}}, "must be a path"),
            ({"route": "/g"}, "sets no levels"),
            ({"route": "/g", "traffic": {"critical": 1}}, "has traffic"),
            ({"route": "/g", "latency_p95": {"critical": 5, "warning": 6}}, "is above critical"),
            ({"route": "/g", "latency_p95": {"critical": 5}, "min_requests": 0}, "1 or more"),
        ],
    )
    def test_bad_routes_are_refused_naming_them(self, rule: dict, message: str) -> None:
        with pytest.raises(GoldenSignalsError, match=message):
            analyse(routes=[rule])


class TestLogBaseline:
    def test_the_old_colours_rate_before_the_switch_is_taken_off(self) -> None:
        # New: 6 events in 12 s (30/min). Old, before the switch: 10 in 40 s (15/min).
        result = analyse(
            host_windows=[usage("app-green", seconds=12.0, events=6)],
            baseline_host_windows=[usage("app-blue", seconds=40.0, events=10)],
            compare_colour="blue",
        )

        signal = result["signals"]["log_errors"]
        assert signal["value"] == pytest.approx(15.0)
        assert signal["rate"] == pytest.approx(30.0)
        assert signal["baseline"]["rate"] == pytest.approx(15.0)
        assert "less the old colour's 15.0/min before the switch" in signal["reason"]

    def test_never_below_zero_and_without_a_usable_baseline_the_own_rate(self) -> None:
        quieter = analyse(
            host_windows=[usage("app-green", events=0)],
            baseline_host_windows=[usage("app-blue", events=5)],
            compare_colour="blue",
        )
        unreadable = analyse(
            host_windows=[usage("app-green", events=3)],
            baseline_host_windows=[{"host": "app-blue", "failed": True, "msg": "since is empty"}],
            compare_colour="blue",
        )

        assert quieter["signals"]["log_errors"]["value"] == 0
        assert unreadable["signals"]["log_errors"]["value"] == pytest.approx(18.0)
        assert "since is empty" in unreadable["signals"]["log_errors"]["baseline"]["problem"]
