"""The pure decisions behind golden_signals: parsing, deltas, quantiles, verdicts, trip logic."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import ansible.module_utils.golden_signals as gs
import pytest
import yaml
from ansible.module_utils.golden_signals import (
    CRITICAL,
    DEFAULT_THRESHOLDS,
    INCONCLUSIVE,
    NOT_CONFIGURED,
    OK,
    WARNING,
    AnalysisLimits,
    GoldenSignalsError,
    Measured,
    QueryAnswer,
    Sample,
    TargetSample,
    analyse_prometheus,
    analyse_scrape,
    analysis_decision,
    bucket_quantile,
    build_settings,
    counter_delta,
    format_series_key,
    judge_signal,
    merge_thresholds,
    overall_verdict,
    parse_exposition,
    parse_exposition_builtin,
    parse_exposition_prometheus_client,
    parse_query_answer,
    parse_series_key,
    prometheus_queries,
    promql_duration,
    regex_alternation,
    sample_from_dict,
    series_deltas,
    validate_thresholds,
)
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

ROOT = Path(__file__).resolve().parents[2]
INF = math.inf
SAMPLEAPP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
A, B = "http://127.0.0.1:8001/metrics", "http://127.0.0.1:8002/metrics"
OLD = "http://127.0.0.1:9001/metrics"
NODE, DB = "http://127.0.0.1:9100/metrics", "http://127.0.0.1:9187/metrics"


def params(**overrides: Any) -> dict[str, Any]:
    """Module parameters as AnsibleModule hands them over, defaults filled in."""
    base: dict[str, Any] = {
        "source": "scrape",
        "mode": "analyse",
        "prometheus_url": None,
        "selector": "",
        "compare_selector": None,
        "node_selector": None,
        "db_selector": None,
        "targets": [A, B],
        "compare_targets": None,
        "node_targets": None,
        "db_targets": None,
        "window": 300,
        "min_requests": 50,
        "latency_metric": "http_request_duration_seconds",
        "requests_metric": "http_requests_total",
        "route_label": "route",
        "status_label": "status",
        "exclude_routes": ["/health", "/metrics"],
        "error_status_regex": "5..",
        "disk_mountpoint": "/",
    }
    base.update(overrides)
    return base


def prom_params(**overrides: Any) -> dict[str, Any]:
    return params(
        **{
            "source": "prometheus",
            "prometheus_url": "http://127.0.0.1:9090",
            "selector": 'job="sampleapp",colour="green"',
            "targets": None,
            **overrides,
        }
    )


class App:
    """One process of the sample service: its registry, with the sampleapp's metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("method", "route", "status")
        self.latency = Histogram(
            "http_request_duration_seconds",
            "latency",
            labels,
            buckets=SAMPLEAPP_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter("http_requests", "requests", labels, registry=self.registry)

    def serve(self, route: str, status: int, seconds: float, n: int = 1) -> App:
        for _ in range(n):
            self.latency.labels("GET", route, str(status)).observe(seconds)
            self.requests.labels("GET", route, str(status)).inc()
        return self

    def text(self) -> str:
        return generate_latest(self.registry).decode()


def scrape(taken_at: float, **groups: dict[str, str | None]) -> Sample:
    """A Sample whose URLs answered with the given exposition text (None: did not answer)."""
    sample = Sample("scrape", taken_at)
    for group, targets in groups.items():
        sample.groups[group] = {
            url: TargetSample(taken_at, None, "connection refused")
            if text is None
            else TargetSample(taken_at, parse_exposition(text))
            for url, text in targets.items()
        }
    return sample


def thresholds(**overrides: Any) -> dict[str, dict[str, float | None]]:
    merged = merge_thresholds(DEFAULT_THRESHOLDS, overrides, "thresholds")
    validate_thresholds(merged)
    return merged


# --------------------------------------------------------------------------------------


class TestBucketQuantile:
    # Buckets of promql/promqltest/testdata/histograms.test, divided by their common factor
    # (quantiles are scale-free), with the results Prometheus' own tests expect.
    POSITIVE = ((0.1, 5), (0.2, 7), (1.0, 11), (INF, 12))
    NEGATIVE = ((-0.2, 1), (-0.1, 2), (0.3, 2), (INF, 3))

    @pytest.mark.parametrize(
        ("q", "positive", "negative"),
        [(0, 0, -0.2), (0.2, 0.048, -0.2), (0.5, 0.15, -0.15), (0.8, 0.72, 0.3), (1, 1, 0.3)],
    )
    def test_promql_testhistogram(self, q: float, positive: float, negative: float) -> None:
        assert bucket_quantile(q, self.POSITIVE) == pytest.approx(positive)
        assert bucket_quantile(q, self.NEGATIVE) == pytest.approx(negative)

    @pytest.mark.parametrize(("q", "expected"), [(1 / 6, 1), (0.5, 3), (5 / 6, 5)])
    def test_promql_quantiles_in_the_middle_of_a_bucket(self, q: float, expected: float) -> None:
        buckets = [(0, 0), (2, 1), (4, 2), (6, 3), (INF, 3)]
        assert bucket_quantile(q, buckets) == pytest.approx(expected)

    def test_promql_sum_by_le_of_four_series(self) -> None:
        buckets = [(0.1, 1 + 2 + 3 + 4), (0.2, 3 + 5 + 4 + 7), (INF, 4 + 6 + 6 + 9)]
        assert bucket_quantile(0.3, buckets) == pytest.approx(0.075)
        assert bucket_quantile(0.5, buckets) == pytest.approx(0.1277777777777778)

    @pytest.mark.parametrize(("q", "expected"), [(0.01, 0.0045), (0.5, 8.5), (0.99, 979.75)])
    def test_promql_non_monotonic_buckets_use_the_envelope(self, q: float, expected: float) -> None:
        buckets = [(0.1, 2), (1, 1), (10, 5), (100, 4), (1000, 9), (INF, 8)]
        assert bucket_quantile(q, buckets) == pytest.approx(expected)

    @pytest.mark.parametrize(("q", "expected"), [(0.5, 0.15), (0.75, 0.2), (1, 0.2)])
    def test_promql_equal_bounds_written_differently_are_merged(
        self, q: float, expected: float
    ) -> None:
        les = ["0.1", "0.2", "2e-1", "2.0e-1", "+Inf"]
        buckets = [(gs.parse_le(le), 1.0 if le != "+Inf" else 4.0) for le in les]
        assert bucket_quantile(q, buckets) == pytest.approx(expected)

    def test_hand_computed_sampleapp_histogram(self) -> None:
        # 90 requests in (0.025, 0.05], 100 in (0.1, 0.25], 10 in (0.25, 0.5].
        counts = [0, 0, 0, 90, 90, 190, 200, 200, 200, 200, 200, 200]
        buckets = list(zip((*SAMPLEAPP_BUCKETS, INF), counts, strict=True))
        # rank 190 is the top of (0.1, 0.25]: 0.1 + 0.15 * 100/100
        assert bucket_quantile(0.95, buckets) == pytest.approx(0.25)
        # rank 198: 0.25 + 0.25 * (198 - 190) / 10
        assert bucket_quantile(0.99, buckets) == pytest.approx(0.45)
        # rank 100: 0.1 + 0.15 * (100 - 90) / 100
        assert bucket_quantile(0.5, buckets) == pytest.approx(0.115)

    def test_first_bucket_interpolates_from_zero(self) -> None:
        assert bucket_quantile(0.5, [(0.4, 10), (INF, 10)]) == pytest.approx(0.2)

    def test_all_observations_in_the_inf_bucket_give_the_highest_finite_bound(self) -> None:
        assert bucket_quantile(0.95, [(0.5, 0), (1.0, 0), (INF, 7)]) == 1.0
        assert bucket_quantile(1.0, [(0.5, 0), (1.0, 0), (INF, 7)]) == 1.0

    def test_q_zero_with_an_empty_lowest_bucket_is_nan_as_in_prometheus(self) -> None:
        # rank 0 lands in the lowest bucket, whose count is 0: Go computes 0/0 = NaN
        assert math.isnan(bucket_quantile(0.0, [(0.5, 0), (1.0, 0), (INF, 7)]))
        assert bucket_quantile(0.0, [(0.0, 0), (1.0, 3), (INF, 3)]) == 0.0

    def test_q_zero_and_one(self) -> None:
        buckets = [(1, 4), (2, 8), (INF, 8)]
        assert bucket_quantile(0, buckets) == 0
        assert bucket_quantile(1, buckets) == 2

    @pytest.mark.parametrize(
        "buckets",
        [
            [],
            [(INF, 5)],  # a single bucket
            [(0.1, 0), (0.2, 0), (INF, 0)],  # no observations
            [(0.1, 1), (0.2, 2)],  # no +Inf bucket
        ],
        ids=["empty", "single-bucket", "no-observations", "no-inf-bucket"],
    )
    def test_nan_cases(self, buckets: list[tuple[float, float]]) -> None:
        assert math.isnan(bucket_quantile(0.95, buckets))

    def test_out_of_range_q(self) -> None:
        buckets = [(1, 1), (INF, 1)]
        assert bucket_quantile(-0.1, buckets) == -INF
        assert bucket_quantile(1.01, buckets) == INF
        assert math.isnan(bucket_quantile(math.nan, buckets))

    def test_float_noise_between_buckets_is_ignored(self) -> None:
        # Without the correction le=1 would hold 10.000000000000002 - 10 observations and the
        # quantile 1 would be 1.0: the difference is floating-point noise, not an observation.
        buckets = [(0.5, 10.0), (1.0, 10.000000000000002), (INF, 10.0)]
        assert bucket_quantile(1.0, buckets) == 0.5
        assert bucket_quantile(0.5, buckets) == pytest.approx(0.25)

    def test_unsorted_input_is_sorted(self) -> None:
        assert bucket_quantile(0.5, [(INF, 10), (0.2, 10), (0.1, 0)]) == pytest.approx(0.15)


class TestExposition:
    TEXT = "\n".join(
        [
            "# HELP demo A demo metric",
            "# TYPE demo counter",
            'demo_total{path="/a\\"b\\\\c\\nd",code="200"} 12 1700000000000',
            'demo_total{code="500",path="/"} 3.5e2',
            "up 1",
            'temp{ sensor = "x" , } -Inf',
            "nan_metric NaN",
            "",
        ]
    )

    def test_builtin_parser_reads_labels_escapes_and_special_values(self) -> None:
        series = parse_exposition_builtin(self.TEXT)
        assert series[("demo_total", (("code", "200"), ("path", '/a"b\\c\nd')))] == 12
        assert series[("demo_total", (("code", "500"), ("path", "/")))] == 350
        assert series[("up", ())] == 1
        assert series[("temp", (("sensor", "x"),))] == -INF
        assert math.isnan(series[("nan_metric", ())])

    def test_both_parsers_agree_on_a_real_sampleapp_exposition(self) -> None:
        app = App().serve("/notes", 200, 0.03, 5).serve("/health", 503, 0.2)
        app.serve('/odd "route"\\x', 500, 7.0)
        text = app.text()
        assert parse_exposition_builtin(text) == parse_exposition_prometheus_client(text)
        assert len(parse_exposition_builtin(text)) > 20

    def test_parse_exposition_uses_prometheus_client_when_importable(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert gs.exposition_parser() == "prometheus_client"
        monkeypatch.setattr(gs, "text_string_to_metric_families", None)
        assert gs.exposition_parser() == "builtin"
        assert parse_exposition("up 1\n") == {("up", ()): 1.0}
        with pytest.raises(GoldenSignalsError, match="not installed"):
            parse_exposition_prometheus_client("up 1\n")

    @pytest.mark.parametrize(
        "line", ["bad line here", 'x{a="1" 2', 'x{a="\\q"} 1', "x", '{a="1"} 1', "x abc"]
    )
    def test_malformed_lines_are_refused_with_the_line(self, line: str) -> None:
        with pytest.raises(GoldenSignalsError, match="line 2"):
            parse_exposition_builtin(f"ok 1\n{line}\n")

    def test_prometheus_client_errors_become_golden_signals_errors(self) -> None:
        with pytest.raises(GoldenSignalsError, match="prometheus_client could not parse"):
            parse_exposition_prometheus_client("bad line here\n")

    def test_series_keys_round_trip(self) -> None:
        key = ("m_bucket", (("le", "+Inf"), ("route", '/a"b\\c\nd')))
        text = format_series_key(key)
        assert text == 'm_bucket{le="+Inf",route="/a\\"b\\\\c\\nd"}'
        assert parse_series_key(text) == key
        assert parse_series_key("up") == ("up", ())
        with pytest.raises(GoldenSignalsError):
            parse_series_key("up 1")


class TestCounters:
    def test_growth_reset_and_new_series(self) -> None:
        assert counter_delta(10, 25) == 15
        assert counter_delta(10, 10) == 0
        assert counter_delta(100, 30) == 30  # restarted: it counted 30 since
        assert counter_delta(None, 7) == 7  # appeared during the window
        assert counter_delta(10, 40, restarted=True) == 40

    def test_created_timestamp_change_is_a_reset_even_when_the_value_grew(self) -> None:
        key = ("http_requests_total", (("route", "/"),))
        created = ("http_requests_created", (("route", "/"),))
        start = {key: 10.0, created: 1000.0}
        end = {key: 50.0, created: 2000.0}
        counted = series_deltas(start, end, ["http_requests_total"])
        assert counted.deltas == {key: 50.0}
        assert counted.resets == ['http_requests_total{route="/"}']

    def test_bucket_resets_use_the_histogram_created_series(self) -> None:
        bucket = ("lat_bucket", (("le", "0.1"), ("route", "/")))
        created = ("lat_created", (("route", "/"),))
        counted = series_deltas(
            {bucket: 5.0, created: 1.0}, {bucket: 9.0, created: 2.0}, ["lat_bucket"]
        )
        assert counted.deltas == {bucket: 9.0}

    def test_series_gone_at_the_end_count_nothing(self) -> None:
        key = ("c_total", ())
        assert series_deltas({key: 5.0}, {}, ["c_total"]).deltas == {}


class TestThresholds:
    def test_the_role_file_holds_exactly_the_built_in_defaults(self) -> None:
        path = ROOT / "roles" / "bluegreen_analysis" / "files" / "thresholds.yml"
        from_file = yaml.safe_load(path.read_text())
        assert merge_thresholds({}, from_file, "file") == DEFAULT_THRESHOLDS
        validate_thresholds(DEFAULT_THRESHOLDS)

    def test_checklist_values(self) -> None:
        t = DEFAULT_THRESHOLDS
        assert (t["latency_p95"]["warning"], t["latency_p95"]["critical"]) == (0.5, 1.0)
        assert (t["error_rate"]["warning"], t["error_rate"]["critical"]) == (0.01, 0.05)
        assert (t["cpu"]["warning"], t["cpu"]["critical"], t["cpu"]["p0"]) == (70, 90, 95)
        assert (t["memory"]["warning"], t["memory"]["critical"]) == (80, 95)
        assert (t["db_connections"]["warning"], t["db_connections"]["critical"]) == (80, 95)
        assert (t["disk"]["warning"], t["disk"]["critical"]) == (85, 95)
        assert (t["error_rate"]["p0"], t["latency_p95"]["p0"]) == (0.05, 2.0)

    def test_override_merges_key_by_key(self) -> None:
        merged = merge_thresholds(DEFAULT_THRESHOLDS, {"error_rate": {"warning": 0.02}}, "t")
        assert merged["error_rate"] == {"warning": 0.02, "critical": 0.05, "p0": 0.05}
        assert merged["cpu"] == DEFAULT_THRESHOLDS["cpu"]
        assert DEFAULT_THRESHOLDS["error_rate"]["warning"] == 0.01  # not mutated

    def test_file_then_option_layering_and_null_switches_a_level_off(self) -> None:
        from_file = merge_thresholds(DEFAULT_THRESHOLDS, {"cpu": {"warning": 60, "p0": 99}}, "f")
        merged = merge_thresholds(from_file, {"cpu": {"p0": None}}, "thresholds")
        assert merged["cpu"] == {"warning": 60.0, "critical": 90.0, "p0": None}

    @pytest.mark.parametrize(
        ("override", "message"),
        [
            ({"latency_p59": {"warning": 1}}, "not a signal with thresholds"),
            ({"traffic": {"warning": 1}}, "not a signal with thresholds"),
            ({"cpu": {"warn": 1}}, "takes warning, critical, p0"),
            ({"targets_down": {"p0": 1}}, "takes warning, critical"),
            ({"cpu": {"warning": "high"}}, "must be a number or null"),
            ({"cpu": {"warning": True}}, "must be a number or null"),
            ({"cpu": 70}, "must be a mapping"),
        ],
    )
    def test_typos_and_wrong_types_are_refused(self, override: Any, message: str) -> None:
        with pytest.raises(GoldenSignalsError, match=message):
            merge_thresholds(DEFAULT_THRESHOLDS, override, "thresholds")

    def test_a_list_is_not_a_thresholds_mapping(self) -> None:
        with pytest.raises(GoldenSignalsError, match="mapping of signal to levels"):
            merge_thresholds(DEFAULT_THRESHOLDS, ["cpu"], "thresholds")  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("override", "message"),
        [
            ({"error_rate": {"warning": 1.5}}, "it is a ratio: 0.01 means 1%"),
            ({"cpu": {"critical": 150}}, "percentage from 0 to 100"),
            ({"latency_p95": {"warning": -1}}, ">= 0"),
            ({"latency_p95": {"warning": 1.5}}, "warning \\(1.5\\) is above critical \\(1\\)"),
            ({"cpu": {"p0": 80}}, "critical \\(90\\) is above p0 \\(80\\)"),
        ],
    )
    def test_out_of_range_or_out_of_order_levels_are_refused(
        self, override: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(GoldenSignalsError, match=message):
            thresholds(**override)

    def test_a_value_equal_to_a_threshold_does_not_trip_it(self) -> None:
        t = thresholds()
        at = {
            "error_rate": [
                (0.01, OK),
                (0.0100001, WARNING),
                (0.05, WARNING),
                (0.0500001, CRITICAL),
            ],
            "latency_p95": [(0.5, OK), (0.5000001, WARNING), (1.0, WARNING), (2.0, CRITICAL)],
            "cpu": [(70, OK), (70.0001, WARNING), (90, WARNING), (90.0001, CRITICAL)],
            "disk": [(85, OK), (95, WARNING), (95.0001, CRITICAL)],
        }
        for name, cases in at.items():
            for value, verdict in cases:
                assert judge_signal(name, Measured(value), t).verdict == verdict, (name, value)

    def test_p0_trips_only_above_its_limit(self) -> None:
        t = thresholds()
        assert judge_signal("latency_p95", Measured(2.0), t).p0 is False
        above = judge_signal("latency_p95", Measured(2.0001), t)
        assert (above.verdict, above.p0) == (CRITICAL, True)
        assert "P0 limit 2 s: roll back now" in above.reason
        assert judge_signal("error_rate", Measured(0.0501), t).p0 is True
        assert judge_signal("cpu", Measured(95.5), t).p0 is True
        assert judge_signal("memory", Measured(95.5), t).p0 is True
        assert judge_signal("disk", Measured(99.0), t).p0 is False


class TestVerdicts:
    def test_overall_precedence(self) -> None:
        assert overall_verdict([OK, WARNING, INCONCLUSIVE, CRITICAL]) == CRITICAL
        assert overall_verdict([OK, WARNING, INCONCLUSIVE]) == INCONCLUSIVE
        assert overall_verdict([OK, WARNING, NOT_CONFIGURED]) == WARNING
        assert overall_verdict([OK, NOT_CONFIGURED]) == OK
        assert overall_verdict([NOT_CONFIGURED]) == INCONCLUSIVE
        assert overall_verdict([]) == INCONCLUSIVE

    def test_missing_value_is_inconclusive_with_the_reason(self) -> None:
        result = judge_signal("cpu", Measured(None, "node exporter timed out"), thresholds())
        assert (result.verdict, result.reason) == (INCONCLUSIVE, "node exporter timed out")

    def test_partial_data_keeps_critical_but_never_ok(self) -> None:
        t = thresholds()
        ok = judge_signal("cpu", Measured(10.0, partial="node2 did not answer"), t)
        assert ok.verdict == INCONCLUSIVE
        assert ok.reason.endswith("but node2 did not answer")
        bad = judge_signal("cpu", Measured(99.0, partial="node2 did not answer"), t)
        assert (bad.verdict, bad.p0) == (CRITICAL, True)

    def test_targets_all_down_is_service_down_p0(self) -> None:
        result = judge_signal(
            "targets_down", Measured(1.0, "2 of 2 targets did not answer"), thresholds()
        )
        assert (result.verdict, result.p0) == (CRITICAL, True)
        assert result.reason.startswith("service down: 2 of 2")

    def test_as_dict_never_carries_nan(self) -> None:
        result = judge_signal("latency_p95", Measured(math.nan, "NaN"), thresholds())
        assert result.as_dict()["value"] is None


class TestSettings:
    def test_scrape_defaults(self) -> None:
        settings = build_settings(params())
        assert settings.targets == (A, B)
        assert settings.compares is False and settings.has_nodes is False

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"targets": None}, "targets is required"),
            ({"targets": ["10.0.0.5:8001/metrics"]}, "full http://"),
            ({"targets": [A, A]}, "same URL twice"),
            ({"compare_targets": [A]}, "both targets and compare_targets"),
            ({"selector": 'job="x"'}, "apply to source=prometheus"),
            ({"window": 0}, "window must be"),
            ({"min_requests": -1}, "min_requests"),
            ({"error_status_regex": "5(("}, "not a regex"),
            ({"requests_metric": "http-requests"}, "not a metric name"),
            ({"route_label": "1route"}, "not a label name"),
        ],
    )
    def test_scrape_refusals(self, overrides: dict[str, Any], message: str) -> None:
        with pytest.raises(GoldenSignalsError, match=message):
            build_settings(params(**overrides))

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"prometheus_url": "prometheus:9090"}, "prometheus_url"),
            ({"targets": [A]}, "apply to source=scrape"),
            ({"selector": 'job="x"} or {'}, "label matchers only"),
        ],
    )
    def test_prometheus_refusals(self, overrides: dict[str, Any], message: str) -> None:
        with pytest.raises(GoldenSignalsError, match=message):
            build_settings(prom_params(**overrides))

    def test_selector_braces_are_optional(self) -> None:
        settings = build_settings(prom_params(selector='{job="a", colour="green",}'))
        assert settings.selector == 'job="a", colour="green"'

    def test_baseline_must_come_from_the_same_source_and_urls(self) -> None:
        settings = build_settings(params())
        with pytest.raises(GoldenSignalsError, match="source=scrape"):
            sample_from_dict({"source": "prometheus", "taken_at": 1.0}, settings)
        with pytest.raises(GoldenSignalsError, match="no sample of targets"):
            sample_from_dict({"source": "scrape", "taken_at": 1.0, "targets": {A: {}}}, settings)
        with pytest.raises(GoldenSignalsError, match="taken_at"):
            sample_from_dict({"source": "scrape"}, settings)


class TestScrapeAnalysis:
    def start_and_end(self) -> tuple[Sample, Sample]:
        """Two targets; health checks on A and B that must not count."""
        a, b = App(), App()
        a.serve("/health", 200, 0.001, 500)
        start = scrape(1000.0, targets={A: a.text(), B: b.text()})
        a.serve("/notes", 200, 0.03, 90).serve("/notes", 500, 0.3, 10).serve("/health", 503, 9, 40)
        b.serve("/", 200, 0.2, 100).serve("/metrics", 200, 0.001, 30)
        end = scrape(1100.0, targets={A: a.text(), B: b.text()})
        return start, end

    def test_signals_from_deltas_summed_over_targets_without_health_routes(self) -> None:
        start, end = self.start_and_end()
        analysis = analyse_scrape(build_settings(params()), thresholds(), start, end)
        signals = analysis.signals
        assert analysis.window_s == 100
        assert analysis.requests == 200
        assert signals["traffic"].value == pytest.approx(2.0)
        # 10 of 200 is exactly the critical threshold: a warning, not critical, not P0
        assert signals["error_rate"].value == pytest.approx(0.05)
        assert signals["error_rate"].verdict == WARNING
        assert "10 of 200 requests failed" in signals["error_rate"].reason
        assert signals["latency_p95"].value == pytest.approx(0.25)
        assert signals["latency_p99"].value == pytest.approx(0.45)
        assert signals["targets_down"].value == 0
        assert signals["targets_down"].verdict == OK
        for name in ("cpu", "memory", "disk", "db_connections"):
            assert signals[name].verdict == NOT_CONFIGURED
        assert analysis.verdict == WARNING
        assert analysis.p0 is False

    def test_samples_record_raw_start_and_end_values_per_target(self) -> None:
        start, end = self.start_and_end()
        analysis = analyse_scrape(build_settings(params()), thresholds(), start, end)
        samples = analysis.signals["error_rate"].evidence["samples"]
        key = 'http_requests_total{method="GET",route="/notes",status="500"}'
        assert key not in samples[A]["start"]  # created during the window
        assert samples[A]["end"][key] == 10
        bucket = (
            'http_request_duration_seconds_bucket{le="0.25",method="GET",route="/",status="200"}'
        )
        assert samples[B]["end"][bucket] == 100
        assert not any("/health" in k for k in samples[A]["end"])
        assert not any("/metrics" in k for k in samples[B]["end"])

    def test_counting_health_routes_when_exclude_routes_is_empty(self) -> None:
        start, end = self.start_and_end()
        settings = build_settings(params(exclude_routes=[]))
        analysis = analyse_scrape(settings, thresholds(), start, end)
        assert analysis.requests == 200 + 40 + 30
        assert analysis.signals["error_rate"].value == pytest.approx(50 / 270)

    def test_a_restarted_target_counts_what_it_served_since(self) -> None:
        before = App().serve("/", 200, 0.01, 500)
        after = App().serve("/", 200, 0.01, 60)  # a new process: counters from 0
        start = scrape(0.0, targets={A: before.text()})
        end = scrape(60.0, targets={A: after.text()})
        analysis = analyse_scrape(build_settings(params(targets=[A])), thresholds(), start, end)
        assert analysis.requests == 60
        assert any('route="/"' in r for r in analysis.signals["traffic"].evidence["resets"])

    def test_no_traffic_is_inconclusive_never_ok(self) -> None:
        app = App().serve("/health", 200, 0.001, 10)
        start = scrape(0.0, targets={A: app.text()})
        end = scrape(60.0, targets={A: app.serve("/health", 200, 0.001, 10).text()})
        analysis = analyse_scrape(build_settings(params(targets=[A])), thresholds(), start, end)
        for name in ("traffic", "error_rate", "latency_p95", "latency_p99"):
            signal = analysis.signals[name]
            assert signal.verdict == INCONCLUSIVE
            assert "only 0 requests in the 60 s window, fewer than min_requests 50" in signal.reason
        assert analysis.verdict == INCONCLUSIVE

    def test_too_few_requests_boundary(self) -> None:
        start = scrape(0.0, targets={A: App().text()})
        end49 = scrape(60.0, targets={A: App().serve("/", 200, 0.01, 49).text()})
        end50 = scrape(60.0, targets={A: App().serve("/", 200, 0.01, 50).text()})
        settings = build_settings(params(targets=[A]))
        assert analyse_scrape(settings, thresholds(), start, end49).verdict == INCONCLUSIVE
        assert analyse_scrape(settings, thresholds(), start, end50).verdict == OK

    def test_missing_metric_is_inconclusive_and_named(self) -> None:
        start = scrape(0.0, targets={A: "process_cpu_seconds_total 1\n"})
        end = scrape(60.0, targets={A: "process_cpu_seconds_total 2\n"})
        analysis = analyse_scrape(build_settings(params(targets=[A])), thresholds(), start, end)
        reason = analysis.signals["latency_p95"].reason
        assert "metric http_requests_total not found at " + A in reason
        assert analysis.verdict == INCONCLUSIVE

    def test_missing_histogram_with_traffic_names_the_histogram(self) -> None:
        start = scrape(0.0, targets={A: 'http_requests_total{route="/",status="200"} 0\n'})
        end = scrape(60.0, targets={A: 'http_requests_total{route="/",status="200"} 100\n'})
        analysis = analyse_scrape(build_settings(params(targets=[A])), thresholds(), start, end)
        assert analysis.signals["error_rate"].verdict == OK
        p95 = analysis.signals["latency_p95"]
        assert (p95.verdict, p95.reason) == (
            INCONCLUSIVE,
            f"metric http_request_duration_seconds_bucket not found at {A}",
        )

    def test_one_target_down_is_critical_and_the_rest_is_not_ok(self) -> None:
        app = App()
        start = scrape(0.0, targets={A: app.text(), B: App().text()})
        end = scrape(60.0, targets={A: app.serve("/", 200, 0.01, 100).text(), B: None})
        analysis = analyse_scrape(build_settings(params()), thresholds(), start, end)
        down = analysis.signals["targets_down"]
        assert (down.value, down.verdict, down.p0) == (0.5, CRITICAL, False)
        assert f"{B}: connection refused" in down.reason
        assert analysis.signals["latency_p95"].verdict == INCONCLUSIVE
        assert f"{B} did not answer at the end" in analysis.signals["latency_p95"].reason
        assert (analysis.verdict, analysis.p0) == (CRITICAL, False)

    def test_every_target_down_is_service_down_p0(self) -> None:
        start = scrape(0.0, targets={A: App().text(), B: App().text()})
        end = scrape(60.0, targets={A: None, B: None})
        analysis = analyse_scrape(build_settings(params()), thresholds(), start, end)
        assert (analysis.verdict, analysis.p0) == (CRITICAL, True)
        assert analysis.signals["targets_down"].reason.startswith("service down: 2 of 2")
        assert "no target answered" in analysis.signals["traffic"].reason

    def test_baseline_after_the_end_is_refused(self) -> None:
        sample = scrape(10.0, targets={A: App().text()})
        with pytest.raises(GoldenSignalsError, match="pass the sample of an earlier call"):
            analyse_scrape(build_settings(params(targets=[A])), thresholds(), sample, sample)

    def test_sample_round_trips_through_its_dict(self) -> None:
        start, _ = self.start_and_end()
        settings = build_settings(params())
        assert sample_from_dict(start.as_dict(), settings) == start


NODE_START = """
node_cpu_seconds_total{cpu="0",mode="idle"} 1000
node_cpu_seconds_total{cpu="0",mode="user"} 500
node_cpu_seconds_total{cpu="1",mode="idle"} 1000
node_cpu_seconds_total{cpu="1",mode="system"} 100
node_memory_MemAvailable_bytes 4e9
node_memory_MemTotal_bytes 16e9
node_filesystem_avail_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 10e9
node_filesystem_size_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 100e9
node_filesystem_avail_bytes{device="/dev/sdb1",fstype="ext4",mountpoint="/data"} 1e9
node_filesystem_size_bytes{device="/dev/sdb1",fstype="ext4",mountpoint="/data"} 100e9
"""
# 120 CPU seconds in 60 s on two CPUs: 30 idle, 90 busy -> 75%
NODE_END = """
node_cpu_seconds_total{cpu="0",mode="idle"} 1010
node_cpu_seconds_total{cpu="0",mode="user"} 550
node_cpu_seconds_total{cpu="1",mode="idle"} 1020
node_cpu_seconds_total{cpu="1",mode="system"} 140
node_memory_MemAvailable_bytes 2e9
node_memory_MemTotal_bytes 16e9
node_filesystem_avail_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 10e9
node_filesystem_size_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 100e9
"""
DB_END = """
pg_stat_activity_count{datname="app",state="active"} 50
pg_stat_activity_count{datname="app",state="idle"} 30
pg_stat_activity_count{datname="postgres",state="idle"} 5
pg_settings_max_connections{server="db1:5432"} 100
"""


class TestSaturation:
    def analyse(self, node_end: str | None = NODE_END, **overrides: Any) -> gs.Analysis:
        app = App()
        start = scrape(
            0.0, targets={A: app.text()}, node_targets={NODE: NODE_START}, db_targets={DB: DB_END}
        )
        end = scrape(
            60.0,
            targets={A: app.serve("/", 200, 0.01, 100).text()},
            node_targets={NODE: node_end},
            db_targets={DB: DB_END},
        )
        settings = build_settings(
            params(targets=[A], node_targets=[NODE], db_targets=[DB], **overrides)
        )
        return analyse_scrape(settings, thresholds(), start, end)

    def test_cpu_memory_disk_and_db_connections(self) -> None:
        signals = self.analyse().signals
        assert signals["cpu"].value == pytest.approx(75.0)
        assert signals["cpu"].verdict == WARNING
        assert signals["memory"].value == pytest.approx(87.5)
        assert signals["memory"].verdict == WARNING
        assert signals["disk"].value == pytest.approx(90.0)
        assert signals["disk"].verdict == WARNING
        assert signals["db_connections"].value == pytest.approx(85.0)
        assert signals["db_connections"].verdict == WARNING
        assert signals["cpu"].evidence["samples"][NODE]["value"] == pytest.approx(75.0)

    def test_disk_mountpoint_is_configurable(self) -> None:
        data = 'device="/dev/sdb1",fstype="ext4",mountpoint="/data"'
        start_only = NODE_END + (
            f"node_filesystem_avail_bytes{{{data}}} 1e9\n"
            f"node_filesystem_size_bytes{{{data}}} 100e9\n"
        )
        signals = self.analyse(start_only, disk_mountpoint="/data").signals
        assert signals["disk"].value == pytest.approx(99.0)
        assert signals["disk"].verdict == CRITICAL

    def test_unreachable_node_exporter_is_inconclusive(self) -> None:
        signals = self.analyse(None).signals
        for name in ("cpu", "memory", "disk"):
            assert signals[name].verdict == INCONCLUSIVE
            assert f"{NODE} did not answer (connection refused)" in signals[name].reason

    def test_missing_node_metric_is_inconclusive_and_named(self) -> None:
        signals = self.analyse("node_load1 0.5\n").signals
        assert signals["memory"].reason == (
            f"{NODE} has no node_memory_MemAvailable_bytes and node_memory_MemTotal_bytes"
        )
        assert "for mountpoint /" in signals["disk"].reason

    def test_the_worst_node_decides_but_a_missing_node_makes_ok_inconclusive(self) -> None:
        node2 = "http://127.0.0.1:9101/metrics"
        app = App()
        start = scrape(
            0.0, targets={A: app.text()}, node_targets={NODE: NODE_START, node2: NODE_START}
        )
        end = scrape(
            60.0,
            targets={A: app.serve("/", 200, 0.01, 100).text()},
            node_targets={NODE: NODE_END, node2: None},
        )
        settings = build_settings(params(targets=[A], node_targets=[NODE, node2]))
        signals = analyse_scrape(settings, thresholds(), start, end).signals
        assert signals["cpu"].verdict == INCONCLUSIVE
        assert f"{node2} did not answer" in signals["cpu"].reason


class TestComparison:
    def analyse(self, new: App, old: App, **overrides: Any) -> gs.Analysis:
        start = scrape(0.0, targets={A: App().text()}, compare_targets={OLD: App().text()})
        end = scrape(60.0, targets={A: new.text()}, compare_targets={OLD: old.text()})
        settings = build_settings(params(targets=[A], compare_targets=[OLD], **overrides))
        return analyse_scrape(settings, thresholds(), start, end)

    def test_p95_ratio_and_error_rate_difference(self) -> None:
        new = App().serve("/", 200, 0.4, 97).serve("/", 500, 0.4, 3)
        old = App().serve("/", 200, 0.2, 100)
        comparison = self.analyse(new, old).comparison
        assert comparison is not None
        # both p95 sit in their bucket's interpolation: new (0.25, 0.5] at rank 95 of 100
        assert comparison["new"]["latency_p95"] == pytest.approx(0.25 + 0.25 * 0.95)
        assert comparison["baseline"]["latency_p95"] == pytest.approx(0.1 + 0.15 * 0.95)
        ratio = comparison["latency_p95_ratio"]
        assert ratio["value"] == pytest.approx(0.4875 / 0.2425)
        assert ratio["verdict"] == WARNING  # the p95's ratio warns only, by default
        diff = comparison["error_rate_diff"]
        assert diff["value"] == pytest.approx(0.03)
        assert diff["verdict"] == WARNING
        assert comparison["verdict"] == WARNING
        assert comparison["baseline"]["requests"] == 100

    def test_comparison_verdict_counts_in_the_overall_verdict(self) -> None:
        new = App().serve("/", 200, 0.4, 100)
        old = App().serve("/", 200, 0.04, 100)
        analysis = self.analyse(new, old)
        assert analysis.signals["latency_p95"].verdict == OK
        assert analysis.verdict == WARNING

    def test_ratio_below_ignore_below_is_not_judged(self) -> None:
        new = App().serve("/", 200, 0.04, 100)  # p95 0.04875 s
        old = App().serve("/", 200, 0.008, 100)  # p95 0.00975 s
        comparison = self.analyse(new, old).comparison
        ratio = comparison["latency_p95_ratio"]  # type: ignore[index]
        assert ratio["value"] == pytest.approx(5.0)
        assert ratio["verdict"] == OK
        assert "not above ignore_below 0.25 s" in ratio["reason"]

    def test_too_few_baseline_requests_is_inconclusive(self) -> None:
        new = App().serve("/", 200, 0.04, 100)
        old = App().serve("/", 200, 0.04, 10)
        analysis = self.analyse(new, old)
        ratio = analysis.comparison["latency_p95_ratio"]  # type: ignore[index]
        assert ratio["verdict"] == INCONCLUSIVE
        assert ratio["reason"].startswith("baseline (old colour): only 10 requests")
        assert analysis.comparison["error_rate_diff"]["verdict"] == INCONCLUSIVE  # type: ignore[index]
        assert analysis.verdict == INCONCLUSIVE

    def test_error_rate_better_than_old_is_ok(self) -> None:
        new = App().serve("/", 200, 0.04, 100)
        old = App().serve("/", 200, 0.04, 90).serve("/", 503, 0.04, 10)
        diff = self.analyse(new, old).comparison["error_rate_diff"]  # type: ignore[index]
        assert diff["value"] == pytest.approx(-0.1)
        assert diff["verdict"] == OK


class TestPrometheusQueries:
    def test_exact_promql(self) -> None:
        settings = build_settings(
            prom_params(
                compare_selector='job="sampleapp",colour="blue"',
                node_selector='job="node",colour="green"',
                db_selector='job="postgres"',
            )
        )
        queries = prometheus_queries(settings, 300)
        sel = 'job="sampleapp",colour="green",route!~"/health|/metrics"'
        assert queries["latency_p95"] == (
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(http_request_duration_seconds_bucket{{{sel}}}[5m])))"
        )
        assert queries["latency_p99"].startswith("histogram_quantile(0.99, ")
        assert queries["traffic"] == f"sum(rate(http_requests_total{{{sel}}}[5m]))"
        assert queries["error_rate"] == (
            f'(sum(rate(http_requests_total{{{sel},status=~"5.."}}[5m])) or vector(0)) '
            f"/ sum(rate(http_requests_total{{{sel}}}[5m]))"
        )
        assert queries["targets_down"] == '1 - avg(up{job="sampleapp",colour="green"})'
        assert queries["cpu"] == (
            "100 * max(1 - sum by (instance) "
            '(rate(node_cpu_seconds_total{job="node",colour="green",mode="idle"}[5m])) '
            '/ sum by (instance) (rate(node_cpu_seconds_total{job="node",colour="green"}[5m])))'
        )
        assert queries["memory"] == (
            '100 * max(1 - node_memory_MemAvailable_bytes{job="node",colour="green"} '
            '/ node_memory_MemTotal_bytes{job="node",colour="green"})'
        )
        assert queries["disk"] == (
            '100 * max(1 - node_filesystem_avail_bytes{job="node",colour="green",mountpoint="/"} '
            '/ node_filesystem_size_bytes{job="node",colour="green",mountpoint="/"})'
        )
        assert queries["db_connections"] == (
            '100 * max(sum by (instance) (pg_stat_activity_count{job="postgres"}) '
            '/ max by (instance) (pg_settings_max_connections{job="postgres"}))'
        )
        assert queries["compare_latency_p95"] == queries["latency_p95"].replace("green", "blue")
        assert set(queries) == {
            "traffic", "error_rate", "latency_p95", "latency_p99", "targets_down", "cpu",
            "memory", "disk", "db_connections", "compare_traffic", "compare_error_rate",
            "compare_latency_p95",
        }  # fmt: skip

    def test_without_selector_or_exclusions(self) -> None:
        settings = build_settings(prom_params(selector="", exclude_routes=[]))
        queries = prometheus_queries(settings, 90)
        assert queries["traffic"] == "sum(rate(http_requests_total{}[90s]))"
        assert queries["targets_down"] == "1 - avg(up{})"
        assert "cpu" not in queries and "compare_traffic" not in queries

    def test_route_values_are_escaped_for_re2_and_the_string_literal(self) -> None:
        assert regex_alternation(["/health", "/v1.0/x+y", "/a|b"]) == "/health|/v1\\.0/x\\+y|/a\\|b"
        settings = build_settings(prom_params(selector="", exclude_routes=["/v1.0/health"]))
        assert 'route!~"/v1\\\\.0/health"' in prometheus_queries(settings, 60)["traffic"]

    @pytest.mark.parametrize(
        ("seconds", "text"), [(300, "5m"), (3600, "1h"), (90, "90s"), (7200, "2h"), (60, "1m")]
    )
    def test_durations(self, seconds: int, text: str) -> None:
        assert promql_duration(seconds) == text


def vector(value: str) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, value]}]},
    }


class TestQueryAnswers:
    def test_one_value(self) -> None:
        assert parse_query_answer("q", 200, vector("0.25"), None) == QueryAnswer(0.25)

    def test_scalar(self) -> None:
        body = {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}}
        assert parse_query_answer("q", 200, body, None).value == 3.0

    def test_empty_vector_is_a_missing_metric(self) -> None:
        body = {"status": "success", "data": {"resultType": "vector", "result": []}}
        answer = parse_query_answer("up{}", 200, body, None)
        assert answer.value is None
        assert "no series matched 'up{}'" in answer.reason  # type: ignore[operator]

    def test_nan_means_no_observations(self) -> None:
        answer = parse_query_answer("q", 200, vector("NaN"), None)
        assert answer.value is None and "no observations" in answer.reason  # type: ignore[operator]

    def test_prometheus_error_is_quoted(self) -> None:
        body = {"status": "error", "errorType": "bad_data", "error": "parse error at char 5"}
        answer = parse_query_answer("q{", 400, body, "HTTP 400 Bad Request")
        assert (
            answer.reason == "Prometheus refused 'q{' (HTTP 400, bad_data): parse error at char 5"
        )

    def test_unreachable_and_not_json(self) -> None:
        assert (
            parse_query_answer("q", None, None, "refused").reason
            == "Prometheus is unreachable: refused"
        )
        assert "without a JSON body" in parse_query_answer("q", 502, None, "HTTP 502").reason  # type: ignore[operator]

    def test_several_series_are_refused(self) -> None:
        body = vector("1")
        body["data"]["result"] *= 2
        assert "returned 2 series" in parse_query_answer("q", 200, body, None).reason  # type: ignore[operator]

    def test_analysis_with_all_answers(self) -> None:
        settings = build_settings(prom_params(compare_selector='colour="blue"'))
        queries = prometheus_queries(settings, 300)
        answers = {name: QueryAnswer(0.0) for name in queries}
        answers.update(
            traffic=QueryAnswer(2.0),
            error_rate=QueryAnswer(0.002),
            latency_p95=QueryAnswer(0.3),
            latency_p99=QueryAnswer(0.9),
            compare_traffic=QueryAnswer(1.0),
            compare_error_rate=QueryAnswer(0.001),
            compare_latency_p95=QueryAnswer(0.25),
        )
        analysis = analyse_prometheus(settings, thresholds(), 300, queries, answers)
        assert analysis.requests == 600
        assert analysis.verdict == OK
        assert analysis.signals["latency_p95"].evidence == {"query": queries["latency_p95"]}
        assert analysis.comparison["latency_p95_ratio"]["value"] == pytest.approx(1.2)  # type: ignore[index]
        assert analysis.comparison["baseline"]["requests"] == 300  # type: ignore[index]
        assert analysis.signals["cpu"].verdict == NOT_CONFIGURED
        assert analysis.signals["cpu"].reason == "no node_selector given"


class TestAnalysisDecision:
    def decide(self, history: list[Any], **limits: int) -> gs.Decision:
        return analysis_decision(history, AnalysisLimits(**limits))

    def test_continues_until_count_then_passes(self) -> None:
        assert self.decide(["ok"] * 4, count=5).action == "continue"
        decision = self.decide(["ok"] * 5, count=5)
        assert (decision.action, decision.verdict) == ("pass", OK)
        assert decision.reason == "5 measurements within the limits: 5 ok"

    def test_warnings_pass_as_warning(self) -> None:
        decision = self.decide(["ok", "warning", "ok"], count=3)
        assert (decision.action, decision.verdict) == ("pass", WARNING)

    def test_failure_limit_boundary(self) -> None:
        assert self.decide(["critical"], count=5, failure_limit=0).action == "fail"
        assert self.decide(["critical"], count=5, failure_limit=1).action == "continue"
        two = self.decide(["critical", "ok", "critical"], count=5, failure_limit=1)
        assert (two.action, two.verdict) == ("fail", CRITICAL)
        assert two.reason == "2 critical measurements, more than failure_limit 1"

    def test_tolerated_criticals_pass_as_warning(self) -> None:
        decision = self.decide(["ok", "critical", "ok"], count=3, failure_limit=1)
        assert (decision.action, decision.verdict) == ("pass", WARNING)

    def test_consecutive_failure_limit_boundary(self) -> None:
        limits = {"count": 10, "failure_limit": 5, "consecutive_failure_limit": 3}
        assert (
            self.decide(["critical", "critical", "ok", "critical", "critical"], **limits).action
            == "continue"
        )
        three = self.decide(["ok", "critical", "critical", "critical"], **limits)
        assert (three.action, three.verdict, three.consecutive_critical) == ("fail", CRITICAL, 3)
        assert "3 critical measurements in a row" in three.reason

    def test_consecutive_limit_zero_is_off(self) -> None:
        decision = self.decide(
            ["critical"] * 3, count=10, failure_limit=5, consecutive_failure_limit=0
        )
        assert decision.action == "continue"

    def test_inconclusive_limit_boundary(self) -> None:
        assert self.decide(["inconclusive"], count=5, inconclusive_limit=1).action == "continue"
        two = self.decide(["inconclusive", "ok", "inconclusive"], count=5, inconclusive_limit=1)
        assert (two.action, two.verdict) == ("fail", INCONCLUSIVE)
        assert self.decide(["inconclusive"], count=5, inconclusive_limit=0).action == "fail"

    def test_p0_fails_at_once_whatever_the_limits(self) -> None:
        history = [{"verdict": "ok"}, {"verdict": "critical", "p0": True}]
        decision = self.decide(history, count=10, failure_limit=5)
        assert (decision.action, decision.verdict) == ("fail", CRITICAL)
        assert decision.reason == "measurement 2 tripped a P0 rule: roll back immediately"

    def test_failures_are_checked_before_inconclusives(self) -> None:
        decision = self.decide(["inconclusive", "inconclusive", "critical"], count=5)
        assert decision.verdict == CRITICAL

    def test_count_reached_without_a_conclusive_measurement_fails(self) -> None:
        decision = self.decide(["inconclusive"] * 3, count=3, inconclusive_limit=3)
        assert (decision.action, decision.verdict) == ("fail", INCONCLUSIVE)
        assert decision.reason == "none of the 3 measurements was ok or warning"
        crit = self.decide(["critical"] * 2, count=2, failure_limit=2)
        assert (crit.action, crit.verdict) == ("fail", CRITICAL)

    def test_count_reached_with_tolerated_inconclusive_passes(self) -> None:
        decision = self.decide(["ok", "inconclusive", "ok"], count=3, inconclusive_limit=1)
        assert (decision.action, decision.verdict) == ("pass", WARNING)

    def test_counts_are_reported(self) -> None:
        decision = self.decide(["ok", "warning", "inconclusive"], count=5)
        assert decision.counts == {OK: 1, WARNING: 1, INCONCLUSIVE: 1, CRITICAL: 0}
        assert decision.as_dict()["measurements"] == 3

    @pytest.mark.parametrize(
        ("history", "limits", "message"),
        [
            (["fine"], {}, "entry 1 has verdict 'fine'"),
            ([["ok"]], {}, "entry 1 must be"),
            (["not_configured"], {}, "expected one of"),
            ([], {"count": 0}, "count must be 1 or more"),
            ([], {"failure_limit": -1}, "failure_limit must be 0 or more"),
        ],
    )
    def test_bad_input_is_refused(
        self, history: list[Any], limits: dict[str, int], message: str
    ) -> None:
        with pytest.raises(GoldenSignalsError, match=message):
            self.decide(history, **limits)
