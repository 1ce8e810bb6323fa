# Copyright: (c) 2025, bluegreen contributors
# Apache License 2.0 (see the project's pyproject.toml)
"""The pure decisions behind golden_signals.

Parsing of the Prometheus text exposition format, counter deltas with reset detection,
PromQL's histogram_quantile, the PromQL queries, the load balancers' request-log windows and
their exact quantiles, threshold files, verdicts per signal and overall, the comparison of
two colours and the trip logic of an analysis loop. Nothing here does I/O or reads the
clock: the module fetches, this file decides.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # Ansible may run the module with an interpreter that lacks it
    text_string_to_metric_families = None

OK = "ok"
WARNING = "warning"
INCONCLUSIVE = "inconclusive"
CRITICAL = "critical"
NOT_CONFIGURED = "not_configured"
# A quantile over fewer observations than 1 / (1 - q) is the slowest single request (a
# p99 of 50 request times is the 50th): one cold start would decide the release.
NOT_JUDGED = "not_judged"
QUANTILE_SIGNALS = {"latency_p95": 0.95, "latency_p99": 0.99}
MEASURED_VERDICTS = (OK, WARNING, INCONCLUSIVE, CRITICAL)

# One series: metric name and its labels as sorted (name, value) pairs.
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]
Series = dict[SeriesKey, float]

GROUPS = ("targets", "compare_targets", "node_targets", "db_targets")


class GoldenSignalsError(Exception):
    """A problem with the inputs that the user has to fix; the message says how."""


# --------------------------------------------------------------------------------------
# Exposition format
# --------------------------------------------------------------------------------------

_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_LABEL_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def series_key(name: str, labels: Mapping[str, str]) -> SeriesKey:
    return name, tuple(sorted(labels.items()))


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_series_key(key: SeriesKey) -> str:
    """The series as it is written in the exposition format, labels sorted by name."""
    name, labels = key
    if not labels:
        return name
    inner = ",".join(f'{label}="{_escape_label_value(value)}"' for label, value in labels)
    return f"{name}{{{inner}}}"


def _parse_labels(text: str, pos: int) -> tuple[dict[str, str], int]:
    """Labels from `text[pos]` == '{' up to the closing brace; (labels, index after it)."""
    labels: dict[str, str] = {}
    pos += 1
    while True:
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] == "}":
            return labels, pos + 1
        match = _LABEL_NAME_RE.match(text, pos)
        if match is None:
            raise ValueError(f"expected a label name at column {pos + 1}")
        name = match.group()
        pos = match.end()
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if text[pos : pos + 1] != "=":
            raise ValueError(f"expected = after label {name}")
        pos += 1
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if text[pos : pos + 1] != '"':
            raise ValueError(f"expected a quoted value for label {name}")
        pos += 1
        value = []
        while True:
            if pos >= len(text):
                raise ValueError(f"unterminated value of label {name}")
            char = text[pos]
            if char == "\\":
                escaped = text[pos + 1 : pos + 2]
                if escaped not in _LABEL_ESCAPES:
                    raise ValueError(f"invalid escape \\{escaped} in label {name}")
                value.append(_LABEL_ESCAPES[escaped])
                pos += 2
            elif char == '"':
                pos += 1
                break
            else:
                value.append(char)
                pos += 1
        labels[name] = "".join(value)
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos < len(text) and text[pos] == "}":
            continue
        else:
            raise ValueError(f"expected , or }} after label {name}")


def _parse_series(line: str) -> tuple[SeriesKey, str]:
    """The series key at the start of `line` and the rest of the line."""
    match = _NAME_RE.match(line)
    if match is None:
        raise ValueError("expected a metric name")
    pos = match.end()
    labels: dict[str, str] = {}
    if pos < len(line) and line[pos] == "{":
        labels, pos = _parse_labels(line, pos)
    return series_key(match.group(), labels), line[pos:]


def parse_series_key(text: str) -> SeriesKey:
    """The inverse of format_series_key."""
    try:
        key, rest = _parse_series(text)
    except (ValueError, IndexError) as exc:
        raise GoldenSignalsError(f"{text!r} is not a series name with labels: {exc}") from exc
    if rest.strip():
        raise GoldenSignalsError(f"{text!r} is not a series name with labels")
    return key


def parse_exposition_builtin(text: str) -> Series:
    """Samples of a text exposition (format 0.0.4 or OpenMetrics) without prometheus_client.

    Comments and type information are skipped, timestamps and exemplars ignored: a scrape
    is read as of the moment it was taken.
    """
    series: Series = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key, rest = _parse_series(line)
            tokens = rest.split()
            if not tokens:
                raise ValueError("no value")
            series[key] = float(tokens[0])
        except (ValueError, IndexError) as exc:
            raise GoldenSignalsError(f"line {number} {raw[:200]!r}: {exc}") from exc
    return series


def parse_exposition_prometheus_client(text: str) -> Series:
    """Samples of a text exposition, parsed by prometheus_client."""
    if text_string_to_metric_families is None:
        raise GoldenSignalsError("prometheus_client is not installed for this interpreter")
    series: Series = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                series[series_key(sample.name, sample.labels)] = float(sample.value)
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise GoldenSignalsError(f"prometheus_client could not parse it: {exc}") from exc
    return series


def exposition_parser() -> str:
    """Which parser parse_exposition uses with this interpreter."""
    return "builtin" if text_string_to_metric_families is None else "prometheus_client"


def parse_exposition(text: str) -> Series:
    """Samples of a text exposition: prometheus_client's parser when it is importable."""
    if text_string_to_metric_families is None:
        return parse_exposition_builtin(text)
    return parse_exposition_prometheus_client(text)


# --------------------------------------------------------------------------------------
# Histogram quantile, exactly as PromQL's histogram_quantile for classic histograms
# --------------------------------------------------------------------------------------

_SMALL_DELTA_TOLERANCE = 1e-12
_MIN_NORMAL = 2.2250738585072014e-308


def _almost_equal(a: float, b: float, epsilon: float) -> bool:
    """Prometheus' util/almost.Equal."""
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < _MIN_NORMAL:
        return diff < epsilon * _MIN_NORMAL
    return diff / min(abs_sum, 1.7976931348623157e308) < epsilon


def _coalesce(buckets: list[list[float]]) -> list[list[float]]:
    """Merge buckets with the same upper bound (e.g. le="0.2" and le="2e-1"); input sorted."""
    merged = [list(buckets[0])]
    for upper, count in buckets[1:]:
        if upper == merged[-1][0]:
            merged[-1][1] += count
        else:
            merged.append([upper, count])
    return merged


def _ensure_monotonic(buckets: list[list[float]]) -> None:
    """PromQL's ensureMonotonicAndIgnoreSmallDeltas: flatten float noise and decreases.

    A bucket that differs from the last accepted count only by floating-point noise, or that
    is lower than it, gets that count; the reference is not moved in either case, so this is
    the running envelope of the counts.
    """
    previous = buckets[0][1]
    for bucket in buckets[1:]:
        current = bucket[1]
        if current == previous:
            continue
        if _almost_equal(previous, current, _SMALL_DELTA_TOLERANCE) or current < previous:
            bucket[1] = previous
            continue
        previous = current


def _go_divide(a: float, b: float) -> float:
    """a / b with IEEE semantics as in Go: 0/0 is NaN, x/0 is +-Inf (Python would raise)."""
    if b == 0:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
    return a / b


def bucket_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """The q-quantile of cumulative (upper bound, count) buckets, as histogram_quantile.

    - q is NaN: NaN; q < 0: -Inf; q > 1: +Inf.
    - No +Inf bucket, fewer than two buckets after merging equal bounds, or no observations:
      NaN.
    - Linear interpolation inside the bucket that holds rank q * count; the lowest bucket
      starts at 0 unless its upper bound is <= 0, in which case that bound is returned.
    - A rank in the +Inf bucket returns the highest finite upper bound.
    - q=0 with an empty lowest bucket divides 0 by 0 and is NaN, as in Prometheus.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(([float(upper), float(count)] for upper, count in buckets), key=lambda b: b[0])
    if not ordered or ordered[-1][0] != math.inf:
        return math.nan
    ordered = _coalesce(ordered)
    _ensure_monotonic(ordered)
    if len(ordered) < 2:
        return math.nan
    observations = ordered[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    index = next((i for i in range(len(ordered) - 1) if ordered[i][1] >= rank), len(ordered) - 1)
    if index == len(ordered) - 1:
        return ordered[-2][0]
    if index == 0 and ordered[0][0] <= 0:
        return ordered[0][0]
    bucket_start = 0.0
    bucket_end, count = ordered[index]
    if index > 0:
        bucket_start = ordered[index - 1][0]
        count -= ordered[index - 1][1]
        rank -= ordered[index - 1][1]
    return bucket_start + (bucket_end - bucket_start) * _go_divide(rank, count)


def parse_le(value: str | None) -> float | None:
    """The upper bound in an `le` label; None when it is missing or not a number."""
    if value is None:
        return None
    try:
        bound = float(value)
    except ValueError:
        return None
    return None if math.isnan(bound) else bound


# --------------------------------------------------------------------------------------
# Counters between two scrapes
# --------------------------------------------------------------------------------------


def created_name(name: str) -> str:
    """The `<family>_created` series that prometheus_client exposes next to a counter."""
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        if name.endswith(suffix):
            return name[: -len(suffix)] + "_created"
    return name + "_created"


def counter_delta(start: float | None, end: float, restarted: bool = False) -> float:
    """How much a counter grew from `start` to `end`.

    A decrease means the process restarted and the counter began again at 0, so everything
    it counted since is `end` (PromQL's rate() does the same). A series without a start value
    appeared during the window, so it counted `end` as well.
    """
    if start is None or restarted or end < start:
        return end
    return end - start


@dataclass
class CounterDeltas:
    """Per-series growth of the counters in `names` between two scrapes of one target."""

    deltas: Series
    resets: list[str]


def series_deltas(start: Series, end: Series, names: Iterable[str]) -> CounterDeltas:
    """Deltas of every end series named in `names`; resets found by value or `_created`.

    A series present at the start but gone at the end contributes nothing: without an end
    value nothing can be said about it.
    """
    wanted = set(names)
    deltas: Series = {}
    resets: list[str] = []
    for key, end_value in end.items():
        name, labels = key
        if name not in wanted:
            continue
        start_value = start.get(key)
        creation_labels = tuple((k, v) for k, v in labels if k != "le")
        creation_key = (created_name(name), creation_labels)
        start_created, end_created = start.get(creation_key), end.get(creation_key)
        restarted = (
            start_value is not None
            and start_created is not None
            and end_created is not None
            and start_created != end_created
        )
        if start_value is not None and (restarted or end_value < start_value):
            resets.append(format_series_key(key))
        deltas[key] = counter_delta(start_value, end_value, restarted)
    return CounterDeltas(deltas=deltas, resets=resets)


# --------------------------------------------------------------------------------------
# Signals, thresholds and verdicts
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalSpec:
    """What a signal measures, how it is written, and which threshold keys it accepts."""

    name: str
    title: str
    unit: str
    needs_requests: bool
    levels: tuple[str, ...]
    maximum: float | None = None


SIGNALS: dict[str, SignalSpec] = {
    spec.name: spec
    for spec in (
        SignalSpec(
            "targets_down", "share of targets down", "ratio", False, ("warning", "critical"), 1
        ),
        SignalSpec("traffic", "traffic", "req/s", True, ()),
        SignalSpec("error_rate", "error rate", "ratio", True, ("warning", "critical", "p0"), 1),
        SignalSpec("latency_p95", "p95 latency", "s", True, ("warning", "critical", "p0")),
        SignalSpec("latency_p99", "p99 latency", "s", True, ("warning", "critical", "p0")),
        SignalSpec("cpu", "CPU usage", "%", False, ("warning", "critical", "p0"), 100),
        SignalSpec("memory", "memory usage", "%", False, ("warning", "critical", "p0"), 100),
        SignalSpec("disk", "disk usage", "%", False, ("warning", "critical", "p0"), 100),
        SignalSpec(
            "process_memory",
            "memory of the colour's processes",
            "MB",
            False,
            ("warning", "critical", "p0"),
        ),
        SignalSpec(
            "dependencies",
            "dependencies unreachable from the new colour only",
            "count",
            False,
            ("warning", "critical", "p0"),
        ),
        SignalSpec(
            "cpu_per_request",
            "CPU of the colour's processes per request",
            "ms",
            True,
            ("warning", "critical", "p0"),
        ),
        SignalSpec(
            "log_errors",
            "error events in the colour's log",
            "events/min",
            False,
            ("warning", "critical", "p0"),
        ),
        SignalSpec(
            "db_connections",
            "database connections in use",
            "%",
            False,
            ("warning", "critical", "p0"),
            100,
        ),
    )
}

COMPARISONS: dict[str, SignalSpec] = {
    spec.name: spec
    for spec in (
        SignalSpec(
            "latency_p50_ratio",
            "median latency new/old",
            "factor",
            True,
            ("warning", "critical", "ignore_below"),
        ),
        SignalSpec(
            "latency_p95_ratio",
            "p95 latency new/old",
            "factor",
            True,
            ("warning", "critical", "ignore_below"),
        ),
        SignalSpec(
            "error_rate_diff", "error rate new-old", "ratio", True, ("warning", "critical"), 1
        ),
    )
}

DEFAULT_THRESHOLDS: dict[str, dict[str, float | None]] = {
    "targets_down": {"warning": None, "critical": 0.0},
    "error_rate": {"warning": 0.01, "critical": 0.05, "p0": 0.05},
    "latency_p95": {"warning": 0.5, "critical": 1.0, "p0": 2.0},
    "latency_p99": {"warning": 1.0, "critical": 2.0, "p0": None},
    "cpu": {"warning": 70.0, "critical": 90.0, "p0": 95.0},
    "memory": {"warning": 80.0, "critical": 95.0, "p0": 95.0},
    "disk": {"warning": 85.0, "critical": 95.0, "p0": None},
    # An absolute cap per colour ("memory under 512 MB") is the team's to set.
    "process_memory": {"warning": None, "critical": None, "p0": None},
    "log_errors": {"warning": 0.0, "critical": 30.0, "p0": None},
    # What a request costs the colour's processes: a cap the team sets for its service.
    "cpu_per_request": {"warning": None, "critical": None, "p0": None},
    "dependencies": {"warning": None, "critical": 0.0, "p0": None},
    "db_connections": {"warning": 80.0, "critical": 95.0, "p0": None},
    # The checklists' "performance degraded by more than 50 %": the median, which the tail
    # noise of a busy host does not move, once it is slow enough for users to feel it
    # (ihatemoney's went from 61 to 114 ms on the loaded CI box). The p95's ratio only
    # warns: in its first seconds a new colour's tail is its cold start (19x the old
    # colour's on the loaded CI machine, with a median within 6 ms), and the p95's own
    # levels judge its size.
    "latency_p50_ratio": {"warning": 1.25, "critical": 1.5, "ignore_below": 0.15},
    "latency_p95_ratio": {"warning": 1.5, "critical": None, "ignore_below": 0.25},
    "error_rate_diff": {"warning": 0.01, "critical": 0.05},
}

_LEVEL_ORDER = ("warning", "critical", "p0")


def _spec(name: str) -> SignalSpec | None:
    return SIGNALS.get(name) or COMPARISONS.get(name)


def merge_thresholds(
    base: Mapping[str, Any], override: Mapping[str, Any] | None, origin: str
) -> dict[str, dict[str, float | None]]:
    """`base` with the levels in `override` laid over it, signal by signal and key by key.

    Unknown signals or keys are refused, so a typo cannot silently leave a default in force.
    """
    merged = {name: dict(levels) for name, levels in base.items()}
    if not override:
        return merged
    if not isinstance(override, Mapping):
        raise GoldenSignalsError(
            f"{origin} must be a mapping of signal to levels, e.g. "
            "{error_rate: {warning: 0.02}}, not " + type(override).__name__
        )
    for name, levels in override.items():
        spec = _spec(name)
        if spec is None or not spec.levels:
            known = ", ".join(n for n, s in {**SIGNALS, **COMPARISONS}.items() if s.levels)
            raise GoldenSignalsError(
                f"{origin} has thresholds for {name!r}, which is not a signal with thresholds; "
                f"use one of: {known}"
            )
        if not isinstance(levels, Mapping):
            raise GoldenSignalsError(
                f"{origin}.{name} must be a mapping such as {{warning: ..., critical: ...}}, "
                f"not {levels!r}"
            )
        for level, value in levels.items():
            if level not in spec.levels:
                raise GoldenSignalsError(
                    f"{origin}.{name} has a key {level!r}; {name} takes {', '.join(spec.levels)}"
                )
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                raise GoldenSignalsError(
                    f"{origin}.{name}.{level} must be a number or null (off), not {value!r}"
                )
            merged.setdefault(name, {})[level] = None if value is None else float(value)
    return merged


def validate_thresholds(thresholds: Mapping[str, Mapping[str, float | None]]) -> None:
    """Refuse levels out of their unit's range or out of order (warning <= critical <= p0)."""
    for name, levels in thresholds.items():
        spec = _spec(name)
        if spec is None:
            raise GoldenSignalsError(f"thresholds for unknown signal {name!r}")
        for level, value in levels.items():
            if value is None:
                continue
            if not math.isfinite(value) or value < 0:
                raise GoldenSignalsError(
                    f"thresholds.{name}.{level} is {value}: give a finite number >= 0, or null"
                )
            if spec.maximum is not None and value > spec.maximum:
                hint = (
                    "it is a ratio: 0.01 means 1%"
                    if spec.unit == "ratio"
                    else f"it is a percentage from 0 to {spec.maximum:g}"
                )
                raise GoldenSignalsError(
                    f"thresholds.{name}.{level} is {value:g}, above {spec.maximum:g}: {hint}"
                )
        ordered = [(lv, levels.get(lv)) for lv in _LEVEL_ORDER if levels.get(lv) is not None]
        for (low_level, low), (high_level, high) in itertools.pairwise(ordered):
            if low > high:  # type: ignore[operator]
                raise GoldenSignalsError(
                    f"thresholds.{name}: {low_level} ({low:g}) is above {high_level} "
                    f"({high:g}); each level must be at most the next one"
                )


def describe(spec: SignalSpec, value: float) -> str:
    """A value with its unit, as people write it: 0.0123 error rate -> '1.23%'."""
    if spec.unit == "s":
        return f"{value:.3g} s"
    if spec.unit == "ratio":
        return f"{value * 100:.3g}%"
    if spec.unit == "%":
        return f"{value:.3g}%"
    if spec.unit == "factor":
        return f"{value:.3g}x"
    if spec.unit == "MB":
        return f"{value:.4g} MB"
    if spec.unit == "count":
        return f"{value:g}"
    if spec.unit == "ms":
        return f"{value:.3g} ms"
    if spec.unit == "events/min":
        return f"{value:.1f} events/min"
    return f"{value:.3g} {spec.unit}"


def judge(
    spec: SignalSpec, value: float, levels: Mapping[str, float | None]
) -> tuple[str, bool, str]:
    """(verdict, p0, reason) of one value: a level trips when the value is GREATER than it."""
    shown = f"{spec.title} {describe(spec, value)}"
    p0, critical, warning = levels.get("p0"), levels.get("critical"), levels.get("warning")
    if p0 is not None and value > p0:
        return CRITICAL, True, f"{shown} is above the P0 limit {describe(spec, p0)}: roll back now"
    if critical is not None and value > critical:
        return (
            CRITICAL,
            False,
            f"{shown} is above the critical threshold {describe(spec, critical)}",
        )
    if warning is not None and value > warning:
        return WARNING, False, f"{shown} is above the warning threshold {describe(spec, warning)}"
    limits = [
        f"{lv} {describe(spec, v)}"
        for lv, v in (("warning", warning), ("critical", critical))
        if v is not None
    ]
    if not limits:
        return OK, False, f"{shown} (no thresholds apply)"
    return OK, False, f"{shown} is not above {limits[0]}"


@dataclass
class Measured:
    """A measured value (None when there is none: `reason` says why) and its evidence."""

    value: float | None
    reason: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    partial: str | None = None


@dataclass
class SignalResult:
    name: str
    unit: str
    value: float | None
    verdict: str
    reason: str
    levels: Mapping[str, float | None]
    p0: bool = False
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "value": finite_or_none(self.value),
            "unit": self.unit,
            "warning": self.levels.get("warning"),
            "critical": self.levels.get("critical"),
            "p0_threshold": self.levels.get("p0"),
            "verdict": self.verdict,
            "p0": self.p0,
            "reason": self.reason,
        }
        if "ignore_below" in self.levels:
            result["ignore_below"] = self.levels["ignore_below"]
        result.update(self.evidence)
        return result


def finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def not_configured(name: str, reason: str, levels: Mapping[str, float | None]) -> SignalResult:
    spec = SIGNALS[name]
    return SignalResult(name, spec.unit, None, NOT_CONFIGURED, reason, levels)


def request_gate(
    requests: float | None, requests_reason: str | None, min_requests: int, window_s: float
) -> str | None:
    """Why request-based signals cannot be judged, or None when there were enough requests."""
    if requests is None:
        return f"the number of requests is unknown: {requests_reason}"
    if requests < min_requests:
        return (
            f"only {requests:g} requests in the {window_s:g} s window, fewer than min_requests "
            f"{min_requests}: too little traffic to judge; send more traffic or widen the window"
        )
    return None


def too_few_for_quantile(name: str, observations: object) -> str | None:
    """Why a quantile signal is not judged on `observations` request times, or None.

    The nearest-rank q-quantile of fewer than 1 / (1 - q) times is their maximum, so it
    would judge one request, not a share of them; the other signals still judge the window.
    """
    q = QUANTILE_SIGNALS.get(name)
    if q is None or not isinstance(observations, int) or isinstance(observations, bool):
        return None
    needed = math.ceil(round(1 / (1 - q), 9))
    if observations >= needed:
        return None
    return (
        f"not judged: {observations} request times are too few for a p{round(q * 100)}, "
        f"which would be the slowest of them; it needs at least {needed}"
    )


def judge_signal(
    name: str,
    measured: Measured,
    thresholds: Mapping[str, Mapping[str, float | None]],
    gate: str | None = None,
) -> SignalResult:
    """The verdict of one configured signal. Missing data or too few requests: inconclusive.

    With partial data (a node or target that gave nothing) only a critical verdict stands,
    since the missing part cannot make it better; anything milder becomes inconclusive.
    """
    spec = _spec(name)
    assert spec is not None
    levels = thresholds.get(name, {})
    evidence = dict(measured.evidence)

    def result(verdict: str, reason: str, p0: bool = False) -> SignalResult:
        return SignalResult(name, spec.unit, measured.value, verdict, reason, levels, p0, evidence)

    if spec.needs_requests and gate is not None:
        return result(INCONCLUSIVE, gate)
    too_few = too_few_for_quantile(name, evidence.get("observations"))
    if measured.value is not None and too_few is not None:
        return result(NOT_JUDGED, too_few)
    if measured.value is None or not math.isfinite(measured.value):
        return result(INCONCLUSIVE, measured.reason or f"no value for {spec.title}")
    if name == "targets_down" and measured.value >= 1:
        return result(CRITICAL, f"service down: {measured.reason or 'no target is up'}", p0=True)
    verdict, p0, reason = judge(spec, measured.value, levels)
    if measured.reason:
        reason = f"{reason} ({measured.reason})"
    if measured.partial and verdict != CRITICAL:
        return result(INCONCLUSIVE, f"{reason}, but {measured.partial}")
    if measured.partial:
        reason = f"{reason}; also {measured.partial}"
    return result(verdict, reason, p0)


def overall_verdict(verdicts: Iterable[str]) -> str:
    """critical if any is critical; else inconclusive if any is; else warning if any; else ok.

    Signals that are not configured, or not judged (a quantile over too few request
    times), do not count; with no measured signal at all the answer
    is inconclusive, never ok.
    """
    measured = [v for v in verdicts if v not in (NOT_CONFIGURED, NOT_JUDGED)]
    for verdict in (CRITICAL, INCONCLUSIVE, WARNING):
        if verdict in measured:
            return verdict
    return OK if measured else INCONCLUSIVE


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The validated options that decide what is measured and how."""

    source: str
    mode: str
    window: int
    min_requests: int
    latency_metric: str
    requests_metric: str
    route_label: str
    status_label: str
    exclude_routes: tuple[str, ...]
    error_status_regex: str
    disk_mountpoint: str
    prometheus_url: str | None = None
    selector: str = ""
    compare_selector: str | None = None
    node_selector: str | None = None
    db_selector: str | None = None
    targets: tuple[str, ...] = ()
    compare_targets: tuple[str, ...] = ()
    node_targets: tuple[str, ...] = ()
    db_targets: tuple[str, ...] = ()
    colour: str | None = None
    compare_colour: str | None = None
    health_targets: tuple[str, ...] = ()
    lb_windows: tuple[LbWindow, ...] = ()
    host_windows: tuple[HostWindow, ...] = ()
    # The old colour's hosts' colour_usage reads of the time before the switch.
    baseline_host_windows: tuple[HostWindow, ...] = ()
    # The load balancers' reads of the time before the switch: the old colour's baseline.
    baseline_windows: tuple[LbWindow, ...] = ()
    dependency_windows: tuple[DependencyWindow, ...] = ()
    route_rules: tuple[RouteRule, ...] = ()

    @property
    def bucket_metric(self) -> str:
        return f"{self.latency_metric}_bucket"

    @property
    def compares(self) -> bool:
        if self.source == "prometheus":
            return self.compare_selector is not None
        if self.source == "lb":
            return self.compare_colour is not None
        return bool(self.compare_targets)

    @property
    def has_nodes(self) -> bool:
        if self.source == "prometheus":
            return self.node_selector is not None
        return bool(self.node_targets)

    @property
    def has_db(self) -> bool:
        if self.source == "prometheus":
            return self.db_selector is not None
        return bool(self.db_targets)

    def group(self, name: str) -> tuple[str, ...]:
        return getattr(self, name)


def _http_urls(
    option: str, urls: Any, example: str = "URLs of /metrics, e.g. http://10.0.0.5:8002/metrics"
) -> tuple[str, ...]:
    if urls is None:
        return ()
    if not isinstance(urls, (list, tuple)) or not all(isinstance(u, str) for u in urls):
        raise GoldenSignalsError(f"{option} must be a list of URLs")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise GoldenSignalsError(
                f"{option} has {url!r}: give full http:// or https:// {example}"
            )
    if len(set(urls)) != len(urls):
        raise GoldenSignalsError(f"{option} lists the same URL twice: {list(urls)}")
    return tuple(urls)


def _selector(option: str, value: Any) -> str | None:
    """A PromQL label-matcher list, braces optional: 'job="app",colour="green"'."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise GoldenSignalsError(f"{option} must be a string of PromQL label matchers")
    text = value.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if "{" in text or "}" in text:
        raise GoldenSignalsError(
            f'{option} {value!r} must be label matchers only, e.g. job="sampleapp",colour="green"'
        )
    return text.rstrip(",").strip()


def build_settings(params: Mapping[str, Any]) -> Settings:
    """Turn the module parameters into Settings, or raise GoldenSignalsError."""
    source = params.get("source")
    window = params.get("window")
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise GoldenSignalsError(f"window must be a whole number of seconds >= 1, got {window!r}")
    min_requests = params.get("min_requests")
    if not isinstance(min_requests, int) or min_requests < 0:
        raise GoldenSignalsError(f"min_requests must be 0 or more, got {min_requests!r}")
    regex = params.get("error_status_regex") or ""
    try:
        re.compile(regex)
    except re.error as exc:
        raise GoldenSignalsError(f"error_status_regex {regex!r} is not a regex: {exc}") from exc
    for option in ("latency_metric", "requests_metric"):
        if not _NAME_RE.fullmatch(params.get(option) or ""):
            raise GoldenSignalsError(f"{option} {params.get(option)!r} is not a metric name")
    for option in ("route_label", "status_label"):
        if not _LABEL_NAME_RE.fullmatch(params.get(option) or ""):
            raise GoldenSignalsError(f"{option} {params.get(option)!r} is not a label name")
    common: dict[str, Any] = dict(
        source=source,
        mode=params.get("mode") or "analyse",
        window=window,
        min_requests=min_requests,
        latency_metric=params["latency_metric"],
        requests_metric=params["requests_metric"],
        route_label=params["route_label"],
        status_label=params["status_label"],
        exclude_routes=tuple(params.get("exclude_routes") or ()),
        error_status_regex=regex,
        disk_mountpoint=params.get("disk_mountpoint") or "/",
    )
    if source == "lb":
        return _lb_settings(params, common)
    lb_only = [o for o in _LB_OPTIONS if params.get(o)]
    if lb_only:
        raise GoldenSignalsError(
            f"{', '.join(lb_only)} apply to source=lb; with source={source} the colour is "
            "chosen by selector or targets"
        )
    if source == "prometheus":
        url = params.get("prometheus_url") or ""
        if not url.startswith(("http://", "https://")):
            raise GoldenSignalsError(
                f"prometheus_url {url!r} is not valid: give the server's base URL, "
                "e.g. http://prometheus.example.com:9090"
            )
        scrape_only = [
            o for o in ("targets", "compare_targets", "node_targets", "db_targets") if params.get(o)
        ]
        if scrape_only:
            raise GoldenSignalsError(
                f"{', '.join(scrape_only)} apply to source=scrape; with source=prometheus use "
                "selector, compare_selector, node_selector and db_selector"
            )
        return Settings(
            **common,
            prometheus_url=url.rstrip("/"),
            selector=_selector("selector", params.get("selector") or "") or "",
            compare_selector=_selector("compare_selector", params.get("compare_selector")),
            node_selector=_selector("node_selector", params.get("node_selector")),
            db_selector=_selector("db_selector", params.get("db_selector")),
        )
    if source != "scrape":
        raise GoldenSignalsError(f"source must be prometheus, scrape or lb, got {source!r}")
    prometheus_only = [
        o
        for o in ("prometheus_url", "compare_selector", "node_selector", "db_selector")
        if params.get(o)
    ]
    if prometheus_only or params.get("selector"):
        raise GoldenSignalsError(
            f"{', '.join(prometheus_only or ['selector'])} apply to source=prometheus; with "
            "source=scrape list the URLs in targets, compare_targets, node_targets and db_targets"
        )
    targets = _http_urls("targets", params.get("targets"))
    if not targets:
        raise GoldenSignalsError(
            "targets is required with source=scrape: list the /metrics URL of every instance of "
            "the colour under analysis"
        )
    settings = Settings(
        **common,
        targets=targets,
        compare_targets=_http_urls("compare_targets", params.get("compare_targets")),
        node_targets=_http_urls("node_targets", params.get("node_targets")),
        db_targets=_http_urls("db_targets", params.get("db_targets")),
    )
    overlap = set(settings.targets) & set(settings.compare_targets)
    if overlap:
        raise GoldenSignalsError(
            f"{sorted(overlap)} is in both targets and compare_targets: the new and the old "
            "colour must be different instances"
        )
    return settings


_LB_OPTIONS = (
    "lb_windows",
    "colour",
    "compare_colour",
    "health_targets",
    "host_windows",
    "baseline_windows",
    "dependency_windows",
    "routes",
    "baseline_host_windows",
)


def _colour_name(option: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise GoldenSignalsError(f"{option} must be a colour name such as green, got {value!r}")
    return value.strip()


def _lb_settings(params: Mapping[str, Any], common: dict[str, Any]) -> Settings:
    """Settings for source=lb: the colour, its health URLs and the windows the lbs read."""
    if common["mode"] == "sample" or params.get("baseline") is not None:
        option = "mode=sample" if common["mode"] == "sample" else "baseline"
        raise GoldenSignalsError(
            f"{option} does not apply to source=lb: the window is the one nginx_requests read "
            "on each load balancer (state=read, since its mark); pass those results in "
            "lb_windows and call golden_signals once, with mode=analyse and no baseline"
        )
    others = [
        o
        for o in (
            "prometheus_url",
            "selector",
            "compare_selector",
            "node_selector",
            "db_selector",
            "targets",
            "compare_targets",
            "node_targets",
            "db_targets",
        )
        if params.get(o)
    ]
    if others:
        raise GoldenSignalsError(
            f"{', '.join(others)} do not apply to source=lb, which judges the colour from "
            "lb_windows, health_targets and host_windows (the colour_usage reads of its hosts); "
            "for node or PostgreSQL exporters make a second golden_signals call with "
            "source=scrape or source=prometheus"
        )
    colour = _colour_name("colour", params.get("colour"))
    if colour is None:
        raise GoldenSignalsError(
            "colour is required with source=lb: the colour judged, as nginx logged it (green)"
        )
    compare_colour = _colour_name("compare_colour", params.get("compare_colour"))
    if compare_colour == colour:
        raise GoldenSignalsError(
            f"compare_colour is {colour}, the colour judged: give the other colour (the old one)"
        )
    return Settings(
        **common,
        colour=colour,
        compare_colour=compare_colour,
        health_targets=_http_urls(
            "health_targets",
            params.get("health_targets"),
            "URLs of the colour's health check, e.g. http://10.0.0.5:8002/health",
        ),
        lb_windows=lb_windows_from_params(params.get("lb_windows")),
        host_windows=host_windows_from_params(params.get("host_windows")),
        baseline_host_windows=host_windows_from_params(
            params.get("baseline_host_windows"), "baseline_host_windows"
        ),
        baseline_windows=baseline_windows_from_params(
            params.get("baseline_windows"), compare_colour
        ),
        dependency_windows=dependency_windows_from_params(params.get("dependency_windows")),
        route_rules=route_rules_from_params(params.get("routes")),
    )


# --------------------------------------------------------------------------------------
# Scrape samples
# --------------------------------------------------------------------------------------


@dataclass
class TargetSample:
    """One /metrics read: its series, or the error that prevented reading it."""

    taken_at: float | None
    series: Series | None
    error: str | None = None


@dataclass
class Sample:
    """Every URL of a scrape read at about the same time, by group (targets, node_targets...)."""

    source: str
    taken_at: float
    groups: dict[str, dict[str, TargetSample]] = field(default_factory=dict)

    def target(self, group: str, url: str) -> TargetSample:
        return self.groups.get(group, {}).get(url) or TargetSample(None, None, "not sampled")

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"source": self.source, "taken_at": self.taken_at}
        for group, targets in self.groups.items():
            result[group] = {
                url: {
                    "taken_at": target.taken_at,
                    "error": target.error,
                    "series": None
                    if target.series is None
                    else {format_series_key(k): v for k, v in sorted(target.series.items())},
                }
                for url, target in targets.items()
            }
        return result


def kept_series_names(settings: Settings) -> set[str]:
    """The metric names a scrape keeps: everything the analysis reads, nothing else."""
    names = {
        settings.requests_metric,
        settings.bucket_metric,
        created_name(settings.requests_metric),
        created_name(settings.bucket_metric),
        "node_cpu_seconds_total",
        "node_memory_MemAvailable_bytes",
        "node_memory_MemTotal_bytes",
        "node_filesystem_avail_bytes",
        "node_filesystem_size_bytes",
        "pg_stat_activity_count",
        "pg_settings_max_connections",
    }
    return names


def keep_relevant(series: Series, settings: Settings) -> Series:
    names = kept_series_names(settings)
    return {key: value for key, value in series.items() if key[0] in names}


def sample_from_dict(data: Any, settings: Settings) -> Sample:
    """The baseline passed back in from an earlier call's `sample` return value."""
    if not isinstance(data, Mapping) or data.get("source") != settings.source:
        raise GoldenSignalsError(
            f"baseline must be the sample returned by an earlier golden_signals call with "
            f"source={settings.source} (register it and pass result.sample)"
        )
    taken_at = data.get("taken_at")
    if not isinstance(taken_at, (int, float)) or isinstance(taken_at, bool):
        raise GoldenSignalsError("baseline.taken_at is missing: pass the whole result.sample back")
    sample = Sample(source=settings.source, taken_at=float(taken_at))
    if settings.source == "prometheus":
        return sample
    for group in GROUPS:
        urls = settings.group(group)
        if not urls:
            continue
        given = data.get(group) or {}
        if not isinstance(given, Mapping):
            raise GoldenSignalsError(f"baseline.{group} must be a mapping of URL to sample")
        missing = [url for url in urls if url not in given]
        if missing:
            raise GoldenSignalsError(
                f"baseline has no sample of {group} {missing}: take the baseline with the same "
                f"{group} as this call"
            )
        sample.groups[group] = {}
        for url in urls:
            entry = given[url]
            if not isinstance(entry, Mapping):
                raise GoldenSignalsError(f"baseline.{group}[{url!r}] must be a mapping")
            raw = entry.get("series")
            series = None
            if raw is not None:
                if not isinstance(raw, Mapping):
                    raise GoldenSignalsError(f"baseline.{group}[{url!r}].series must be a mapping")
                series = {parse_series_key(k): float(v) for k, v in raw.items()}
            sample.groups[group][url] = TargetSample(
                taken_at=entry.get("taken_at"), series=series, error=entry.get("error")
            )
    return sample


# --------------------------------------------------------------------------------------
# Scrape analysis
# --------------------------------------------------------------------------------------


@dataclass
class RequestStats:
    """Requests, errors and latency buckets of one colour between two samples."""

    requests: float | None
    errors: float | None
    buckets: dict[float, float]
    samples: dict[str, Any]
    resets: list[str]
    requests_reason: str | None = None
    latency_reason: str | None = None
    partial: str | None = None

    def error_rate(self) -> Measured:
        if self.requests is None:
            return Measured(None, self.requests_reason)
        if self.requests == 0:
            return Measured(None, "no requests in the window")
        return Measured(
            self.errors / self.requests, f"{self.errors:g} of {self.requests:g} requests failed"
        )  # type: ignore[operator]

    def latency(self, q: float) -> Measured:
        if self.latency_reason:
            return Measured(None, self.latency_reason)
        value = bucket_quantile(q, self.buckets.items())
        if math.isnan(value):
            return Measured(None, "the latency histogram has no observations in the window")
        return Measured(value)


def _label(labels: tuple[tuple[str, str], ...], name: str) -> str | None:
    for key, value in labels:
        if key == name:
            return value
    return None


def request_stats(settings: Settings, start: Sample, end: Sample, group: str) -> RequestStats:
    """Sum requests, 5xx and latency buckets over the group's targets between two samples.

    Series of excluded routes are left out. Targets that did not answer at the end, or gave
    no start sample, are left out too and named in `partial`.
    """
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    samples: dict[str, Any] = {}
    resets: list[str] = []
    skipped: list[str] = []
    usable = 0
    saw_requests = saw_buckets = False
    error_re = re.compile(settings.error_status_regex)
    excluded = set(settings.exclude_routes)
    names = (settings.requests_metric, settings.bucket_metric)
    for url in settings.group(group):
        first, last = start.target(group, url), end.target(group, url)
        if last.series is None:
            skipped.append(f"{url} did not answer at the end of the window ({last.error})")
            continue
        if first.series is None:
            skipped.append(f"{url} gave no sample at the start of the window ({first.error})")
            continue
        usable += 1
        saw_requests |= any(k[0] == settings.requests_metric for k in last.series)
        saw_buckets |= any(k[0] == settings.bucket_metric for k in last.series)
        counted = series_deltas(first.series, last.series, names)
        resets.extend(f"{url} {series}" for series in counted.resets)
        used: list[SeriesKey] = []
        for key, delta in counted.deltas.items():
            name, labels = key
            if _label(labels, settings.route_label) in excluded:
                continue
            if name == settings.requests_metric:
                requests += delta
                if error_re.fullmatch(_label(labels, settings.status_label) or ""):
                    errors += delta
            else:
                bound = parse_le(_label(labels, "le"))
                if bound is None:
                    continue
                buckets[bound] = buckets.get(bound, 0.0) + delta
            used.append(key)
        samples[url] = {
            "start": {
                format_series_key(k): first.series[k] for k in sorted(used) if k in first.series
            },
            "end": {format_series_key(k): last.series[k] for k in sorted(used)},
        }
    partial = "; ".join(skipped) or None
    if usable == 0:
        reason = "no target answered at both the start and the end of the window: " + (
            partial or ""
        )
        return RequestStats(None, None, {}, samples, resets, reason, reason, partial)
    urls = ", ".join(settings.group(group))
    requests_reason = (
        None if saw_requests else f"metric {settings.requests_metric} not found at {urls}"
    )
    latency_reason = None if saw_buckets else f"metric {settings.bucket_metric} not found at {urls}"
    return RequestStats(
        None if requests_reason else requests,
        None if requests_reason else errors,
        buckets,
        samples,
        resets,
        requests_reason,
        latency_reason,
        partial,
    )


def _node_series(series: Series, name: str) -> list[tuple[tuple[tuple[str, str], ...], float]]:
    return [(labels, value) for (n, labels), value in series.items() if n == name]


def cpu_busy_percent(start: Series, end: Series) -> float | None:
    """100 * (1 - idle CPU seconds / all CPU seconds) over the window, all CPUs of a node."""
    counted = series_deltas(start, end, ["node_cpu_seconds_total"]).deltas
    total = sum(counted.values())
    if not counted or total <= 0:
        return None
    idle = sum(v for (_, labels), v in counted.items() if _label(labels, "mode") == "idle")
    return 100 * (1 - idle / total)


def memory_used_percent(end: Series) -> float | None:
    available = _node_series(end, "node_memory_MemAvailable_bytes")
    total = _node_series(end, "node_memory_MemTotal_bytes")
    if not available or not total or total[0][1] <= 0:
        return None
    return 100 * (1 - available[0][1] / total[0][1])


def disk_used_percent(end: Series, mountpoint: str) -> float | None:
    """The fullest filesystem mounted at `mountpoint` (by node_filesystem_avail/size_bytes)."""
    sizes = {labels: v for labels, v in _node_series(end, "node_filesystem_size_bytes")}
    used = [
        100 * (1 - avail / sizes[labels])
        for labels, avail in _node_series(end, "node_filesystem_avail_bytes")
        if _label(labels, "mountpoint") == mountpoint and sizes.get(labels, 0) > 0
    ]
    return max(used) if used else None


def db_connections_percent(end: Series) -> float | None:
    """100 * connections in pg_stat_activity / max_connections, as postgres_exporter reports."""
    active = _node_series(end, "pg_stat_activity_count")
    limit = _node_series(end, "pg_settings_max_connections")
    if not active or not limit or max(v for _, v in limit) <= 0:
        return None
    return 100 * sum(v for _, v in active) / max(v for _, v in limit)


_RESOURCE_METRICS = {
    "cpu": "node_cpu_seconds_total",
    "memory": "node_memory_MemAvailable_bytes and node_memory_MemTotal_bytes",
    "disk": "node_filesystem_avail_bytes and node_filesystem_size_bytes",
    "db_connections": "pg_stat_activity_count and pg_settings_max_connections",
}


def resource_measure(settings: Settings, start: Sample, end: Sample, signal: str) -> Measured:
    """The worst (highest) value of a saturation signal over its node or db targets."""
    group = "db_targets" if signal == "db_connections" else "node_targets"
    values: dict[str, float] = {}
    missing: list[str] = []
    samples: dict[str, Any] = {}
    for url in settings.group(group):
        first, last = start.target(group, url), end.target(group, url)
        if last.series is None:
            missing.append(f"{url} did not answer ({last.error})")
            continue
        if signal == "cpu":
            if first.series is None:
                missing.append(f"{url} gave no sample at the start of the window ({first.error})")
                continue
            value = cpu_busy_percent(first.series, last.series)
            used = {k for k in last.series if k[0] == "node_cpu_seconds_total"}
            samples[url] = {
                "start": {
                    format_series_key(k): first.series[k] for k in sorted(used) if k in first.series
                },
                "end": {format_series_key(k): last.series[k] for k in sorted(used)},
            }
        else:
            if signal == "memory":
                value = memory_used_percent(last.series)
            elif signal == "disk":
                value = disk_used_percent(last.series, settings.disk_mountpoint)
            else:
                value = db_connections_percent(last.series)
            names = set(_RESOURCE_METRICS[signal].split(" and "))
            samples[url] = {
                "end": {
                    format_series_key(k): v for k, v in sorted(last.series.items()) if k[0] in names
                }
            }
        if value is None:
            where = f" for mountpoint {settings.disk_mountpoint}" if signal == "disk" else ""
            missing.append(f"{url} has no {_RESOURCE_METRICS[signal]}{where}")
            continue
        values[url] = value
        samples[url]["value"] = value
    evidence = {"samples": samples}
    partial = "; ".join(missing) or None
    if not values:
        return Measured(None, partial, evidence)
    worst = max(values, key=values.__getitem__)
    reason = f"highest at {worst}" if len(values) > 1 else None
    return Measured(values[worst], reason, evidence, partial)


@dataclass
class Analysis:
    verdict: str
    p0: bool
    signals: dict[str, SignalResult]
    comparison: dict[str, Any] | None
    window_s: float | None
    requests: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "p0": self.p0,
            "signals": {name: result.as_dict() for name, result in self.signals.items()},
            "comparison": self.comparison,
            "window_s": self.window_s,
            "requests": self.requests,
        }


def latency_ratio(
    name: str,
    new: Measured | None,
    old: Measured | None,
    thresholds: Mapping[str, Mapping[str, float | None]],
    gate: str | None,
) -> SignalResult:
    """A latency quantile new/old, judged; not judged while the new value is at most its
    `ignore_below` seconds, where a few milliseconds (or the bucket resolution), not the
    release, decide the ratio."""
    what = "median" if name == "latency_p50_ratio" else "p95"
    if new is None or old is None or new.value is None or old.value is None:
        new_why = "not measured" if new is None else new.reason or "ok"
        old_why = "not measured" if old is None else old.reason or "ok"
        ratio = Measured(None, f"{what} missing: new {new_why}; old {old_why}")
    elif old.value <= 0:
        ratio = Measured(None, f"the old colour's {what} is {old.value:g} s, so no ratio exists")
    else:
        ratio = Measured(new.value / old.value)
    result = judge_signal(name, ratio, thresholds, gate)
    floor = thresholds.get(name, {}).get("ignore_below")
    if (
        result.verdict in (WARNING, CRITICAL)
        and floor is not None
        and new is not None
        and new.value is not None
        and new.value <= floor
    ):
        result.verdict = OK
        result.reason = (
            f"{result.reason}, but the new {what} {new.value:.3g} s is not above "
            f"ignore_below {floor:g} s, so the ratio is not judged"
        )
    return result


def compare(
    thresholds: Mapping[str, Mapping[str, float | None]],
    min_requests: int,
    window_s: float,
    new: tuple[float | None, str | None, Measured, Measured],
    old: tuple[float | None, str | None, Measured, Measured],
    evidence: dict[str, Any],
    baseline_window_s: float | None = None,
    medians: tuple[Measured, Measured] | None = None,
) -> dict[str, Any]:
    """Judge p95 new/old, error rate new-old and, with `medians` (new, old), the median
    new/old; each side is (requests, why none, p95, error rate).

    Too few requests on either side makes them inconclusive (a baseline from before the
    switch: not judged).
    """
    new_requests, new_why, new_p95, new_err = new
    old_requests, old_why, old_p95, old_err = old
    old_window_s = window_s if baseline_window_s is None else baseline_window_s
    gate = request_gate(old_requests, old_why, min_requests, old_window_s)
    # A baseline from before the switch that is too thin to compare with leaves the
    # comparison unjudged: it says nothing of the new colour, whose own signals still
    # decide. Within one window, the old colour's silence makes the window inconclusive.
    unjudged = gate is not None and baseline_window_s is not None
    if gate is not None:
        gate = (
            f"baseline (old colour before the switch): {gate}"
            if unjudged
            else (f"baseline (old colour): {gate}")
        )
    else:
        gate = request_gate(new_requests, new_why, min_requests, window_s)

    results: dict[str, SignalResult] = {}
    if medians is not None:
        results["latency_p50_ratio"] = latency_ratio(
            "latency_p50_ratio", medians[0], medians[1], thresholds, gate
        )
    results["latency_p95_ratio"] = latency_ratio(
        "latency_p95_ratio", new_p95, old_p95, thresholds, gate
    )
    if new_err.value is None or old_err.value is None:
        diff = Measured(None, f"error rate missing: new {new_err.reason}; old {old_err.reason}")
    else:
        diff = Measured(new_err.value - old_err.value)
    results["error_rate_diff"] = judge_signal("error_rate_diff", diff, thresholds, gate)
    if unjudged:
        for result in results.values():
            result.verdict = NOT_JUDGED
            result.reason = f"not judged: {gate}"
    sides: dict[str, dict[str, Any]] = {
        "baseline": {"requests": old_requests},
        "new": {},
    }
    if medians is not None:
        sides["baseline"]["latency_p50"] = finite_or_none(medians[1].value)
        sides["new"]["latency_p50"] = finite_or_none(medians[0].value)
    sides["baseline"] |= {
        "latency_p95": finite_or_none(old_p95.value),
        "error_rate": finite_or_none(old_err.value),
        **evidence,
    }
    sides["new"] |= {
        "latency_p95": finite_or_none(new_p95.value),
        "error_rate": finite_or_none(new_err.value),
    }
    return {**results, **sides}


COMPARISON_SIGNALS = ("latency_p50_ratio", "latency_p95_ratio", "error_rate_diff")


def _finish(
    signals: dict[str, SignalResult],
    comparison: dict[str, Any] | None,
    window_s: float | None,
    requests: float | None,
) -> Analysis:
    verdicts = [r.verdict for r in signals.values()]
    p0 = any(r.p0 for r in signals.values())
    comparison_dict = None
    if comparison is not None:
        results = [comparison[n] for n in COMPARISON_SIGNALS if n in comparison]
        verdicts += [r.verdict for r in results]
        p0 = p0 or any(r.p0 for r in results)
        comparison_dict = {
            **{n: comparison[n].as_dict() for n in COMPARISON_SIGNALS if n in comparison},
            "baseline": comparison["baseline"],
            "new": comparison["new"],
            "verdict": NOT_JUDGED
            if all(r.verdict == NOT_JUDGED for r in results)
            else overall_verdict(r.verdict for r in results),
        }
    return Analysis(overall_verdict(verdicts), p0, signals, comparison_dict, window_s, requests)


def _resource_signals(
    settings: Settings,
    thresholds: Mapping[str, Mapping[str, float | None]],
    measure,
) -> dict[str, SignalResult]:
    signals: dict[str, SignalResult] = {}
    no_hosts = "no host_windows given: colour_usage measures the colour on its app hosts"
    if settings.host_windows:
        signals.update(host_signals(settings, thresholds))
    if settings.dependency_windows:
        signals["dependencies"] = judge_signal(
            "dependencies", dependency_measure(settings), thresholds
        )
    else:
        signals["dependencies"] = not_configured(
            "dependencies",
            "no dependency_windows given: declare the service's dependencies "
            "(bluegreen_service_dependencies) to probe them from both colours",
            thresholds.get("dependencies", {}),
        )
    for name in ("cpu", "memory", "disk"):
        if name in signals:
            continue
        if settings.has_nodes:
            signals[name] = judge_signal(name, measure(name), thresholds)
        else:
            option = "node_selector" if settings.source == "prometheus" else "node_targets"
            reason = no_hosts if settings.source == "lb" else f"no {option} given"
            signals[name] = not_configured(name, reason, thresholds.get(name, {}))
    for name in ("process_memory", "log_errors", "cpu_per_request"):
        if name not in signals and (name != "cpu_per_request" or settings.source != "lb"):
            reason = (
                no_hosts
                if settings.source == "lb"
                else "measured with source=lb from host_windows (colour_usage)"
            )
            signals[name] = not_configured(name, reason, thresholds.get(name, {}))
    if settings.has_db:
        signals["db_connections"] = judge_signal(
            "db_connections", measure("db_connections"), thresholds
        )
    else:
        option = "db_selector" if settings.source == "prometheus" else "db_targets"
        reason = (
            "source=lb measures no database: judge db_connections with a source=scrape or "
            "source=prometheus call"
            if settings.source == "lb"
            else f"no {option} given"
        )
        signals["db_connections"] = not_configured(
            "db_connections", reason, thresholds.get("db_connections", {})
        )
    return signals


def targets_down_signal(
    states: Mapping[str, str],
    what: str,
    answer: str,
    thresholds: Mapping[str, Mapping[str, float | None]],
) -> SignalResult:
    """`targets_down` from each target's state ("up", or why it is not), judged."""
    down = [url for url, state in states.items() if state != "up"]
    reason = (
        f"{len(down)} of {len(states)} {what} did not {answer}: "
        + "; ".join(f"{url}: {states[url]}" for url in down)
        if down
        else f"{len(states)} of {len(states)} {what} {answer.replace('answer', 'answered')}"
    )
    measured = Measured(len(down) / len(states), reason, {"targets": dict(states)})
    return judge_signal("targets_down", measured, thresholds)


def analyse_scrape(
    settings: Settings,
    thresholds: Mapping[str, Mapping[str, float | None]],
    start: Sample,
    end: Sample,
) -> Analysis:
    """Every signal from two scrape samples of the same URLs."""
    window_s = end.taken_at - start.taken_at
    if window_s <= 0:
        raise GoldenSignalsError(
            f"the baseline was taken at {start.taken_at}, not before this sample "
            f"({end.taken_at}): pass the sample of an earlier call"
        )
    signals: dict[str, SignalResult] = {}

    states = {url: end.target("targets", url) for url in settings.targets}
    signals["targets_down"] = targets_down_signal(
        {
            url: "up" if state.series is not None else str(state.error)
            for url, state in states.items()
        },
        "targets",
        "answer",
        thresholds,
    )

    stats = request_stats(settings, start, end, "targets")
    gate = request_gate(stats.requests, stats.requests_reason, settings.min_requests, window_s)
    p95 = stats.latency(0.95)
    error_rate = stats.error_rate()
    measures = {
        "traffic": Measured(
            None if stats.requests is None else stats.requests / window_s, stats.requests_reason
        ),
        "error_rate": error_rate,
        "latency_p95": p95,
        "latency_p99": stats.latency(0.99),
    }
    for name, measured in measures.items():
        measured.evidence = {"samples": stats.samples, "resets": stats.resets}
        measured.partial = stats.partial
        signals[name] = judge_signal(name, measured, thresholds, gate)
    if gate is None:
        signals["traffic"].reason += f" ({stats.requests:g} requests in {window_s:g} s)"

    signals.update(
        _resource_signals(
            settings, thresholds, lambda name: resource_measure(settings, start, end, name)
        )
    )

    comparison = None
    if settings.compares:
        old = request_stats(settings, start, end, "compare_targets")
        # A baseline missing some of its targets is not the old colour as users saw it.
        old_requests = None if old.partial else old.requests
        comparison = compare(
            thresholds,
            settings.min_requests,
            window_s,
            (stats.requests, stats.requests_reason, p95, error_rate),
            (old_requests, old.partial or old.requests_reason, old.latency(0.95), old.error_rate()),
            {"samples": old.samples, "resets": old.resets},
        )
    return _finish(signals, comparison, window_s, stats.requests)


# --------------------------------------------------------------------------------------
# Load balancer request logs (source=lb)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColourCounts:
    """What one load balancer logged for one colour: requests, statuses, exact times in ms.

    `upstream_ms` holds the exact upstream times, `no_upstream_time` the requests without one
    (both empty from an nginx_requests that did not count them yet).
    """

    requests: int
    statuses: dict[str, int]
    latency_ms: dict[int, int]
    upstream_ms: dict[int, int] = field(default_factory=dict)
    no_upstream_time: int = 0
    # Per named route (nginx_requests named_routes): (requests, errors, exact times in ms).
    named: dict[str, tuple[int, int, dict[int, int]]] = field(default_factory=dict)


@dataclass(frozen=True)
class LbWindow:
    """One load balancer's read of its request log (nginx_requests state=read).

    `problem` says why its counts cannot stand for what the load balancer served (no window
    came back, or the log lost the part after the mark); None when they can.
    """

    host: str
    since: float | None = None
    until: float | None = None
    seconds: float | None = None
    colours: dict[str, ColourCounts] = field(default_factory=dict)
    lost: bool = False
    rotated: bool = False
    unrouted: int | None = None
    excluded: int | None = None
    skipped: int | None = None
    problem: str | None = None

    def counts(self, colour: str) -> ColourCounts:
        return self.colours.get(colour) or ColourCounts(0, {}, {})


def _whole(value: Any, where: str) -> int:
    """A count: a whole number >= 0 (JSON may carry it as 12.0)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or value != int(value)
    ):
        raise GoldenSignalsError(f"{where} must be a whole number >= 0, got {value!r}")
    return int(value)


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise GoldenSignalsError(f"{where} must be a number of seconds, got {value!r}")
    return float(value)


def _mapping(value: Any, where: str) -> Mapping[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise GoldenSignalsError(f"{where} must be a mapping, got {value!r}")
    return value


def _ms_histogram(data: Mapping[str, Any], key: str, where: str) -> dict[int, int]:
    """The histogram `data[key]` (count per whole millisecond, keys as strings) by int."""
    counts: dict[int, int] = {}
    for ms, count in _mapping(data.get(key), f"{where}.{key}").items():
        text = str(ms)
        if not text.isdigit():
            raise GoldenSignalsError(
                f"{where}.{key} has the key {ms!r}: keys are whole milliseconds, e.g. '12'"
            )
        counts[int(text)] = counts.get(int(text), 0) + _whole(count, f"{where}.{key}[{ms!r}]")
    return counts


def _colour_counts(data: Any, where: str) -> ColourCounts:
    data = _mapping(data, where)
    if "requests" not in data:
        raise GoldenSignalsError(f"{where} has no requests count")
    statuses = {
        str(status): _whole(count, f"{where}.statuses[{status!r}]")
        for status, count in _mapping(data.get("statuses"), f"{where}.statuses").items()
    }
    named = {
        str(route): (
            _whole(
                _mapping(figures, f"{where}.named_routes").get("requests", 0),
                f"{where}.named_routes[{route!r}].requests",
            ),
            _whole(figures.get("errors", 0), f"{where}.named_routes[{route!r}].errors"),
            _ms_histogram(figures, "latency_ms", f"{where}.named_routes[{route!r}]"),
        )
        for route, figures in _mapping(data.get("named_routes"), f"{where}.named_routes").items()
    }
    return ColourCounts(
        _whole(data["requests"], f"{where}.requests"),
        statuses,
        _ms_histogram(data, "latency_ms", where),
        _ms_histogram(data, "upstream_ms", where),
        _optional_count(data, "no_upstream_time", where) or 0,
        named,
    )


def _optional_count(entry: Mapping[str, Any], key: str, where: str) -> int | None:
    value = entry.get(key)
    return None if value is None else _whole(value, f"{where}.{key}")


def lb_window_from_dict(entry: Any, index: int) -> LbWindow:
    """One entry of lb_windows: an nginx_requests result with the load balancer's `host`.

    A result without a window (the read failed, the host was unreachable, the task was
    skipped) becomes a window with a problem, so the verdict can name the load balancer.
    """
    where = f"lb_windows[{index}]"
    if not isinstance(entry, Mapping):
        raise GoldenSignalsError(f"{where} must be the result of nginx_requests, not {entry!r}")
    host = entry.get("host")
    if not isinstance(host, str) or not host.strip():
        raise GoldenSignalsError(
            f"{where} has no host: add the load balancer's name to each nginx_requests "
            "result, e.g. item | combine({'host': item.item}) over a loop's results"
        )
    host = host.strip()
    where = f"lb_windows[{index}] ({host})"
    window = entry.get("window")
    failed = entry.get("failed") is True or entry.get("unreachable") is True
    if failed or entry.get("skipped") is True or not isinstance(window, Mapping):
        why = entry.get("msg") or entry.get("skip_reason")
        return LbWindow(
            host,
            problem=f"load balancer {host} gave no window" + (f" ({why})" if why else ""),
        )
    for key in ("since", "until", "seconds"):
        if key not in window:
            raise GoldenSignalsError(f"{where}.window has no {key}")
    seconds = _seconds(window["seconds"], f"{where}.window.seconds")
    if seconds < 0:
        raise GoldenSignalsError(f"{where}.window.seconds is {seconds:g}, below 0")
    for key in ("lost", "rotated"):
        if not isinstance(entry.get(key, False), bool):
            raise GoldenSignalsError(f"{where}.{key} must be true or false")
    colours = {
        str(name): _colour_counts(counts, f"{where}.colours.{name}")
        for name, counts in _mapping(entry.get("colours"), f"{where}.colours").items()
    }
    lost = entry.get("lost", False)
    return LbWindow(
        host,
        since=_seconds(window["since"], f"{where}.window.since"),
        until=_seconds(window["until"], f"{where}.window.until"),
        seconds=seconds,
        colours=colours,
        lost=lost,
        rotated=entry.get("rotated", False),
        unrouted=_optional_count(entry, "unrouted", where),
        excluded=_optional_count(entry, "excluded", where),
        skipped=_optional_count(entry, "unparsed", where),
        problem=(
            f"the log of {host} was rotated or truncated and the part after the mark was lost"
            if lost
            else None
        ),
    )


def once_per_host(windows: tuple[Any, ...], name: str, each: str) -> tuple[Any, ...]:
    """`windows` when no host has two of them; else the error naming the hosts."""
    hosts = [w.host for w in windows]
    twice = sorted({h for h in hosts if hosts.count(h) > 1})
    if twice:
        raise GoldenSignalsError(f"{name} has {', '.join(twice)} more than once: {each}")
    return windows


def lb_windows_from_params(data: Any) -> tuple[LbWindow, ...]:
    if not isinstance(data, (list, tuple)) or not data:
        raise GoldenSignalsError(
            "lb_windows is required with source=lb: one nginx_requests (state=read) result per "
            "load balancer, each with its host"
        )
    windows = tuple(lb_window_from_dict(entry, i) for i, entry in enumerate(data))
    return once_per_host(windows, "lb_windows", "one window per load balancer")


@dataclass(frozen=True)
class HostWindow:
    """One app host's read of the judged colour's own use (colour_usage state=read).

    `problem` says why the host gave no window; the other fields are None where the host
    could not measure that part (named in the matching *_problem).
    """

    host: str
    seconds: float | None = None
    cpu_percent: float | None = None
    cpu_seconds: float | None = None
    cpu_problem: str | None = None
    restarted: bool = False
    process_bytes: float | None = None
    memory_problem: str | None = None
    host_memory_percent: float | None = None
    disk_percent: float | None = None
    log_events: int | None = None
    log_tracebacks: int | None = None
    log_lines: int | None = None
    log_excerpts: tuple[tuple[str, ...], ...] = ()
    log_problem: str | None = None
    problem: str | None = None


def _optional_number(data: Mapping[str, Any], key: str, where: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise GoldenSignalsError(f"{where}.{key} must be a number or null, got {value!r}")
    return float(value)


def _optional_text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else str(value)


def host_window_from_dict(entry: Any, index: int, name: str = "host_windows") -> HostWindow:
    """One entry of host_windows: a colour_usage read with the app host's `host`."""
    where = f"{name}[{index}]"
    if not isinstance(entry, Mapping):
        raise GoldenSignalsError(f"{where} must be the result of colour_usage, not {entry!r}")
    host = entry.get("host")
    if not isinstance(host, str) or not host.strip():
        raise GoldenSignalsError(
            f"{where} has no host: add the app host's name to each colour_usage result, "
            "e.g. item | combine({'host': item.item}) over a loop's results"
        )
    host = host.strip()
    where = f"{name}[{index}] ({host})"
    window = entry.get("window")
    failed = entry.get("failed") is True or entry.get("unreachable") is True
    if failed or entry.get("skipped") is True or not isinstance(window, Mapping):
        why = entry.get("msg") or entry.get("skip_reason")
        return HostWindow(
            host, problem=f"app host {host} gave no window" + (f" ({why})" if why else "")
        )
    seconds = _seconds(window.get("seconds"), f"{where}.window.seconds")
    cpu = _mapping(entry.get("cpu"), f"{where}.cpu")
    memory = _mapping(entry.get("memory"), f"{where}.memory")
    disk = _mapping(entry.get("disk"), f"{where}.disk")
    log = entry.get("log")
    events = tracebacks = lines = None
    excerpts: tuple[tuple[str, ...], ...] = ()
    if log is not None:
        log = _mapping(log, f"{where}.log")
        events = _whole(log.get("events"), f"{where}.log.events")
        tracebacks = _whole(log.get("tracebacks", 0), f"{where}.log.tracebacks")
        lines = _whole(log.get("lines", 0), f"{where}.log.lines")
        raw = log.get("excerpts") or []
        if not isinstance(raw, list) or not all(isinstance(e, list) for e in raw):
            raise GoldenSignalsError(f"{where}.log.excerpts must be a list of lists of lines")
        excerpts = tuple(tuple(str(line) for line in e) for e in raw)
    log_problem = _optional_text(entry, "log_problem")
    if log is None and log_problem is None:
        log_problem = f"app host {host} read no journal"
    return HostWindow(
        host,
        seconds=seconds,
        cpu_percent=_optional_number(cpu, "percent_of_host", f"{where}.cpu"),
        cpu_seconds=_optional_number(cpu, "seconds", f"{where}.cpu"),
        cpu_problem=_optional_text(cpu, "problem"),
        restarted=cpu.get("restarted") is True,
        process_bytes=_optional_number(memory, "process_bytes", f"{where}.memory"),
        memory_problem=_optional_text(memory, "problem"),
        host_memory_percent=_optional_number(memory, "host_percent", f"{where}.memory"),
        disk_percent=_optional_number(disk, "percent", f"{where}.disk"),
        log_events=events,
        log_tracebacks=tracebacks,
        log_lines=lines,
        log_excerpts=excerpts,
        log_problem=log_problem,
    )


def host_windows_from_params(data: Any, name: str = "host_windows") -> tuple[HostWindow, ...]:
    if data is None:
        return ()
    if not isinstance(data, (list, tuple)):
        raise GoldenSignalsError(
            f"{name} must be a list: one colour_usage (state=read) result per app host "
            "of the colour, each with its host"
        )
    windows = tuple(host_window_from_dict(entry, i, name) for i, entry in enumerate(data))
    return once_per_host(windows, name, "one window per app host")


def _host_value(window: HostWindow, signal: str) -> tuple[float | None, str | None]:
    """(the value one host measured for `signal`, or None and why it has none)."""
    if window.problem is not None:
        return None, window.problem
    if signal == "cpu":
        if window.cpu_percent is None:
            return None, window.cpu_problem or f"{window.host} measured no CPU use"
        return window.cpu_percent, None
    if signal == "process_memory":
        if window.process_bytes is None:
            return None, window.memory_problem or f"{window.host} measured no memory use"
        return window.process_bytes / 1e6, None
    if signal == "memory":
        value = window.host_memory_percent
        return value, None if value is not None else f"{window.host} could not read its memory"
    if signal == "disk":
        value = window.disk_percent
        return value, None if value is not None else f"{window.host} could not read its disk use"
    raise AssertionError(f"not a host signal: {signal}")


def _host_evidence(window: HostWindow, signal: str, value: float | None) -> dict[str, Any]:
    evidence: dict[str, Any] = {"value": value, "seconds": window.seconds}
    if signal == "cpu":
        evidence.update(cpu_seconds=window.cpu_seconds, restarted=window.restarted)
    if window.problem is not None:
        evidence = {"error": window.problem}
    return evidence


def host_measure(settings: Settings, signal: str) -> Measured:
    """The worst (highest) value of a saturation signal over the colour's app hosts."""
    values: dict[str, float] = {}
    missing: list[str] = []
    hosts: dict[str, Any] = {}
    for window in settings.host_windows:
        value, why = _host_value(window, signal)
        hosts[window.host] = _host_evidence(window, signal, value)
        if value is None:
            missing.append(why or f"{window.host} gave nothing")
            continue
        values[window.host] = value
    evidence = {"hosts": hosts}
    partial = "; ".join(missing) or None
    if not values:
        return Measured(None, partial, evidence)
    worst = max(values, key=values.__getitem__)
    reason = f"highest at {worst}" if len(values) > 1 else f"at {worst}"
    return Measured(values[worst], reason, evidence, partial)


def log_rate(windows: Sequence[HostWindow]) -> tuple[float | None, dict[str, Any], list[str]]:
    """Error events per minute in `windows` (added over the hosts, per minute of the longest
    window), each host's evidence, and why a host gave none; None without a usable host."""
    events = 0
    seconds = 0.0
    missing: list[str] = []
    hosts: dict[str, Any] = {}
    for window in windows:
        if window.problem is not None or window.log_events is None:
            why = window.problem or window.log_problem or f"{window.host} read no journal"
            hosts[window.host] = {"error": why}
            missing.append(why)
            continue
        events += window.log_events
        seconds = max(seconds, window.seconds or 0.0)
        hosts[window.host] = {
            "events": window.log_events,
            "tracebacks": window.log_tracebacks,
            "lines": window.log_lines,
            "seconds": window.seconds,
            "excerpts": [list(e) for e in window.log_excerpts],
        }
    if len(missing) == len(windows) or seconds <= 0:
        return None, hosts, missing or ["the app hosts' windows are 0 s long"]
    return events * 60 / seconds, hosts, missing


def log_errors_measure(settings: Settings) -> Measured:
    """Error events per minute in the colour's journals, added over its app hosts, less
    the old colour's own rate before the switch when it was measured: a service that
    always logs some errors is judged on what the release added, never below 0."""
    rate, hosts, missing = log_rate(settings.host_windows)
    events = sum(h.get("events", 0) for h in hosts.values())
    evidence: dict[str, Any] = {"hosts": hosts, "events": events, "rate": rate}
    partial = "; ".join(missing) or None
    if rate is None:
        return Measured(None, partial, evidence)
    reason = f"{events} events, {rate:.1f}/min"
    if settings.baseline_host_windows:
        old_rate, old_hosts, old_missing = log_rate(settings.baseline_host_windows)
        evidence["baseline"] = {"rate": old_rate, "hosts": old_hosts}
        if old_rate is not None:
            evidence["baseline"]["colour"] = settings.compare_colour
            reason += f", less the old colour's {old_rate:.1f}/min before the switch"
            return Measured(max(rate - old_rate, 0.0), reason, evidence, partial)
        evidence["baseline"]["problem"] = "; ".join(old_missing)
    return Measured(rate, reason, evidence, partial)


@dataclass(frozen=True)
class DependencyWindow:
    """What one app host's probes of the declared dependencies answered (dependency_probe),
    and the colours the host runs. `probes` maps a dependency to its error (None: it
    answered); `problem` says why the host gave no probes."""

    host: str
    colours: tuple[str, ...]
    probes: dict[str, str | None] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)
    problem: str | None = None


def dependency_window_from_dict(entry: Any, index: int) -> DependencyWindow:
    where = f"dependency_windows[{index}]"
    if not isinstance(entry, Mapping):
        raise GoldenSignalsError(f"{where} must be the result of dependency_probe, not {entry!r}")
    host = entry.get("host")
    if not isinstance(host, str) or not host.strip():
        raise GoldenSignalsError(f"{where} has no host: add the app host's name to each result")
    colours = entry.get("colours")
    if not isinstance(colours, list) or not all(isinstance(c, str) for c in colours):
        raise GoldenSignalsError(
            f"{where} ({host}) has no colours: add the colours the host runs, e.g. ['green']"
        )
    probes = entry.get("probes")
    if entry.get("failed") is True or entry.get("unreachable") is True or probes is None:
        why = entry.get("msg")
        return DependencyWindow(
            host.strip(),
            tuple(colours),
            problem=f"app host {host} probed nothing" + (f" ({why})" if why else ""),
        )
    if not isinstance(probes, list):
        raise GoldenSignalsError(f"{where}.probes must be a list")
    found: dict[str, str | None] = {}
    targets: dict[str, str] = {}
    for probe in probes:
        if not isinstance(probe, Mapping) or not isinstance(probe.get("name"), str):
            raise GoldenSignalsError(f"{where}.probes has {probe!r}: each needs a name")
        ok = probe.get("ok") is True
        found[probe["name"]] = None if ok else str(probe.get("error") or "no answer")
        targets[probe["name"]] = str(probe.get("target") or "")
    return DependencyWindow(host.strip(), tuple(colours), found, targets)


def dependency_windows_from_params(data: Any) -> tuple[DependencyWindow, ...]:
    if data is None:
        return ()
    if not isinstance(data, (list, tuple)):
        raise GoldenSignalsError(
            "dependency_windows must be a list: one dependency_probe result per app host of "
            "either colour, each with its host and colours"
        )
    return tuple(dependency_window_from_dict(entry, i) for i, entry in enumerate(data))


def _probed(windows: Sequence[DependencyWindow], name: str) -> tuple[dict[str, str], list[str]]:
    """(host: error of those that could not reach `name`, hosts that reached it)."""
    failed = {w.host: w.probes[name] for w in windows if w.probes.get(name) is not None}
    reached = [w.host for w in windows if name in w.probes and w.probes[name] is None]
    return failed, reached  # type: ignore[return-value]


def _hosts_said(failed: Mapping[str, str]) -> str:
    return ", ".join(f"{host}: {error}" for host, error in failed.items())


def dependency_measure(settings: Settings) -> Measured:
    """How many declared dependencies the new colour cannot reach while the old one can.

    A dependency the old colour's hosts cannot reach either is down for everyone: that is
    not the release's doing, so the measurement is inconclusive naming it, never critical.
    """
    colour = settings.colour
    new = [w for w in settings.dependency_windows if colour in w.colours]
    old = [w for w in settings.dependency_windows if any(c != colour for c in w.colours)]
    names = list(dict.fromkeys(n for w in settings.dependency_windows for n in w.probes))
    evidence: dict[str, Any] = {
        "hosts": {
            w.host: {"colours": list(w.colours), "error": w.problem}
            if w.problem
            else {"colours": list(w.colours), "probes": dict(w.probes)}
            for w in settings.dependency_windows
        }
    }
    blamed: list[str] = []
    everyone: list[str] = []
    unknown = [w.problem for w in settings.dependency_windows if w.problem]
    for name in names:
        new_failed, _ = _probed(new, name)
        if not new_failed:
            continue
        old_failed, old_reached = _probed(old, name)
        target = next((w.targets.get(name) for w in new if w.targets.get(name)), "")
        label = f"{name} ({target})" if target else name
        if old_reached:
            blamed.append(
                f"{label} is unreachable from {colour} ({_hosts_said(new_failed)}) while "
                f"{', '.join(old_reached)} of the old colour reach it"
            )
        elif old_failed:
            everyone.append(
                f"{label} is down for both colours ({_hosts_said({**new_failed, **old_failed})})"
                ": not the release's doing"
            )
        else:
            unknown.append(
                f"{label} is unreachable from {colour} ({_hosts_said(new_failed)}) and no "
                "host of the old colour probed it, so whose doing it is cannot be told"
            )
    evidence["unreachable_from_new_only"] = blamed
    evidence["down_for_both"] = everyone
    if blamed:
        partial = "; ".join(everyone + unknown) or None
        return Measured(float(len(blamed)), "; ".join(blamed), evidence, partial)
    if everyone or unknown:
        return Measured(None, "; ".join(everyone + unknown), evidence)
    reached = len(names)
    return Measured(
        0.0, f"{reached} dependenc{'y' if reached == 1 else 'ies'} answered every host", evidence
    )


def cpu_per_request_measure(
    settings: Settings, requests: float | None, window_s: float
) -> Measured:
    """Milliseconds of CPU the colour's processes spent per request: their CPU rate over
    its hosts (each host's CPU seconds over its own window) divided by the request rate
    the load balancers saw. A rate over a rate, so windows of different lengths (the
    hosts' start with the analysis, the load balancers' at the switch) still compare.
    Unlike the CPU share, it does not fall when a busy host starves the colour."""
    cpu_rate = 0.0
    missing: list[str] = []
    hosts: dict[str, Any] = {}
    for window in settings.host_windows:
        value, why = _host_value(window, "cpu")
        if value is None or window.cpu_seconds is None or not window.seconds:
            missing.append(why or f"{window.host} measured no CPU use")
            continue
        cpu_rate += window.cpu_seconds / window.seconds
        hosts[window.host] = {"cpu_seconds": window.cpu_seconds, "seconds": window.seconds}
    evidence = {"hosts": hosts}
    if not hosts:
        return Measured(None, "; ".join(missing) or "no host measured CPU", evidence)
    if not requests or window_s <= 0:
        return Measured(None, "no requests of the colour in the window", evidence)
    request_rate = requests / window_s
    return Measured(
        1000 * cpu_rate / request_rate,
        f"{cpu_rate:.3g} CPU s/s at {request_rate:.3g} req/s",
        evidence,
        "; ".join(missing) or None,
    )


def host_signals(
    settings: Settings, thresholds: Mapping[str, Mapping[str, float | None]]
) -> dict[str, SignalResult]:
    """cpu, memory, disk, process_memory and log_errors of the colour from its app hosts."""
    signals: dict[str, SignalResult] = {}
    for name in ("cpu", "memory", "disk", "process_memory"):
        signals[name] = judge_signal(name, host_measure(settings, name), thresholds)
    signals["log_errors"] = judge_signal("log_errors", log_errors_measure(settings), thresholds)
    return signals


def baseline_windows_from_params(data: Any, compare_colour: str | None) -> tuple[LbWindow, ...]:
    """The load balancers' reads of the time before the switch (nginx_requests state=read
    from a mark taken before it), each with its host; the old colour is compare_colour."""
    if data is None or (isinstance(data, (list, tuple)) and not data):
        return ()
    if compare_colour is None:
        raise GoldenSignalsError(
            "baseline_windows needs compare_colour: the colour that served before the switch"
        )
    if not isinstance(data, (list, tuple)):
        raise GoldenSignalsError(
            "baseline_windows must be a list: one nginx_requests (state=read) result per "
            "load balancer, read from a mark taken before the switch, each with its host"
        )
    windows = tuple(lb_window_from_dict(entry, i) for i, entry in enumerate(data))
    return once_per_host(windows, "baseline_windows", "one per load balancer")


def _longest(windows: Iterable[LbWindow]) -> float:
    return max((w.seconds for w in windows if w.seconds is not None), default=0.0)


ROUTE_SIGNALS = ("error_rate", "latency_p95", "latency_p99")


@dataclass(frozen=True)
class RouteRule:
    """A route judged by levels of its own (a slow generation endpoint, say) and left out
    of the colour's latency signals."""

    route: str
    levels: dict[str, dict[str, float | None]]
    min_requests: int

    def name(self, signal: str) -> str:
        return f"{signal}[{self.route}]"


def route_rules_from_params(data: Any) -> tuple[RouteRule, ...]:
    """`routes`: [{route: /generate, latency_p95: {critical: 5}, min_requests: 10}]."""
    if not data:
        return ()
    if not isinstance(data, (list, tuple)):
        raise GoldenSignalsError("routes must be a list such as [{route: /generate, ...}]")
    rules: list[RouteRule] = []
    for index, entry in enumerate(data):
        where = f"routes[{index}]"
        if not isinstance(entry, Mapping):
            raise GoldenSignalsError(f"{where} must be a mapping such as {{route: /generate}}")
        route = entry.get("route")
        if not isinstance(route, str) or not route.startswith("/") or "*" in route[:-1]:
            raise GoldenSignalsError(
                f"{where}.route must be a path (/generate) or a prefix ending in * "
                f"(/reports/*), got {route!r}"
            )
        where = f"routes[{index}] ({route})"
        unknown = sorted(set(entry) - {"route", "min_requests", *ROUTE_SIGNALS})
        if unknown:
            raise GoldenSignalsError(
                f"{where} has {', '.join(unknown)}; a route takes route, min_requests and "
                f"levels for {', '.join(ROUTE_SIGNALS)}"
            )
        overrides = {name: entry[name] for name in ROUTE_SIGNALS if name in entry}
        if not overrides:
            raise GoldenSignalsError(
                f"{where} sets no levels: give at least one of {', '.join(ROUTE_SIGNALS)}, "
                "e.g. latency_p95: {critical: 5}"
            )
        # A route's levels are the ones given: the colour's defaults are for its other
        # requests (a 5 s endpoint must not trip the 2 s P0 meant for them).
        base = {name: dict.fromkeys(SIGNALS[name].levels) for name in overrides}
        levels = merge_thresholds(base, overrides, where)
        try:
            validate_thresholds(levels)
        except GoldenSignalsError as exc:
            raise GoldenSignalsError(f"{where}: {exc}") from exc
        floor = entry.get("min_requests", 20)
        if isinstance(floor, bool) or not isinstance(floor, int) or floor < 1:
            raise GoldenSignalsError(f"{where}.min_requests must be 1 or more, got {floor!r}")
        rules.append(RouteRule(route, levels, floor))
    routes = [rule.route for rule in rules]
    if len(set(routes)) != len(routes):
        raise GoldenSignalsError(f"routes names a route twice: {routes}")
    return tuple(rules)


def route_signals(settings: Settings, colour: str) -> dict[str, SignalResult]:
    """Each named route's own signals, from its figures in every intact window.

    Too few requests to a route leaves its signals not judged (they do not count): a
    quiet endpoint says nothing either way, and the colour's own signals still decide.
    """
    results: dict[str, SignalResult] = {}
    for rule in settings.route_rules:
        requests = errors = 0
        latency: dict[int, int] = {}
        for window in settings.lb_windows:
            if window.problem is not None or window.seconds is None:
                continue
            figures = window.counts(colour).named.get(rule.route)
            if figures is None:
                continue
            requests += figures[0]
            errors += figures[1]
            for ms, count in figures[2].items():
                latency[ms] = latency.get(ms, 0) + count
        stats = LbStats(colour, requests, errors, requests, latency, {}, None, [], {}, 0)
        measures = {
            "error_rate": stats.error_rate(),
            "latency_p95": stats.latency(0.95),
            "latency_p99": stats.latency(0.99),
        }
        for signal in rule.levels:
            measured = measures[signal]
            measured.evidence = {**measured.evidence, "route": rule.route, "requests": requests}
            result = judge_signal(signal, measured, rule.levels)
            if requests < rule.min_requests:
                result.verdict = NOT_JUDGED
                result.reason = (
                    f"not judged: {requests} requests to {rule.route} in the window, fewer "
                    f"than its min_requests {rule.min_requests}"
                )
            else:
                result.reason = f"{rule.route}: {result.reason}"
            results[rule.name(signal)] = result
    return results


def without_named_routes(
    stats: LbStats, settings: Settings, windows: tuple[LbWindow, ...] | None = None
) -> LbStats:
    """The colour's figures with the named routes' request times taken out, so a route
    judged by its own levels does not decide the colour's latency too (its statuses
    still count in the colour's error rate)."""
    if not settings.route_rules:
        return stats
    latency = dict(stats.latency_ms)
    for window in settings.lb_windows if windows is None else windows:
        if window.problem is not None or window.seconds is None:
            continue
        for rule in settings.route_rules:
            figures = window.counts(stats.colour).named.get(rule.route)
            for ms, count in (figures[2] if figures else {}).items():
                left = latency.get(ms, 0) - count
                if left > 0:
                    latency[ms] = left
                else:
                    latency.pop(ms, None)
    return replace(stats, latency_ms=latency)


def lb_window_end(settings: Settings) -> float | None:
    """The latest end of the load balancers' windows: when the analysed window ended."""
    ends = [w.until for w in settings.lb_windows if w.until is not None]
    return max(ends) if ends else None


def nearest_rank(q: float, n: int) -> int:
    """ceil(q n), at least 1: the rank of the q-quantile among n sorted values.

    q is taken as the decimal it is written as (0.95, not the binary float just below it),
    so 95% of 20 is rank 19 exactly.
    """
    if not 0 <= q <= 1:
        raise ValueError(f"a quantile is between 0 and 1, got {q}")
    return max(1, math.ceil(Fraction(repr(q)) * n))


def exact_quantile_ms(q: float, latency_ms: Mapping[int, int]) -> int | None:
    """The nearest-rank q-quantile of exact times: the smallest v with count(<= v) >= ceil(q n).

    `latency_ms` maps a time in whole milliseconds to how many requests took it, so this is
    the quantile of the individual times, not an interpolation. None without observations.
    """
    n = sum(latency_ms.values())
    if n == 0:
        return None
    rank = nearest_rank(q, n)
    seen = 0
    for ms in sorted(latency_ms):
        seen += latency_ms[ms]
        if seen >= rank:
            return ms
    raise AssertionError("unreachable: the rank is at most the number of observations")


@dataclass
class LbStats:
    """One colour's requests, responses by status and exact times, summed over the windows.

    `latency_ms` are the request times (what users got, and what is judged); `upstream_ms`
    the upstream times (what the colour's servers took), shown beside them.
    """

    colour: str
    requests: int
    errors: int
    responses: int
    latency_ms: dict[int, int]
    windows: dict[str, Any]
    problem: str | None
    intact: list[str]
    upstream_ms: dict[int, int]
    no_upstream_time: int

    def error_rate(self) -> Measured:
        if self.responses == 0:
            return Measured(None, f"no responses of {self.colour} in the window")
        return Measured(
            self.errors / self.responses,
            f"{self.errors} of {self.responses} responses failed",
        )

    def latency(self, q: float) -> Measured:
        n = sum(self.latency_ms.values())
        value = exact_quantile_ms(q, self.latency_ms)
        if value is None:
            return Measured(None, f"no request times of {self.colour} in the window")
        p50 = exact_quantile_ms(0.5, self.latency_ms)
        assert p50 is not None
        return Measured(
            value / 1000,
            f"the request time of rank {nearest_rank(q, n)} of {n}",
            {"p50": p50 / 1000, "observations": n},
        )

    def upstream(self) -> dict[str, Any]:
        """The exact upstream time quantiles in seconds (None without observations), the
        number of upstream times and of requests without one."""
        quantiles = {
            name: exact_quantile_ms(q, self.upstream_ms)
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        }
        return {
            **{name: None if ms is None else ms / 1000 for name, ms in quantiles.items()},
            "observations": sum(self.upstream_ms.values()),
            "no_upstream_time": self.no_upstream_time,
        }


def lb_stats(
    settings: Settings, colour: str, windows: tuple[LbWindow, ...] | None = None
) -> LbStats:
    """Sum one colour over every load balancer's window; evidence per host.

    Windows with a problem are named in `problem` and left out of the sums, so the values
    cover the intact windows only (and the request signals are not judged).
    """
    error_re = re.compile(settings.error_status_regex)
    requests = errors = responses = no_upstream_time = 0
    latency: dict[int, int] = {}
    upstream: dict[int, int] = {}
    shown: dict[str, Any] = {}
    problems: list[str] = []
    intact: list[str] = []
    for window in settings.lb_windows if windows is None else windows:
        if window.seconds is None:
            shown[window.host] = {"error": window.problem}
            problems.append(window.problem or f"load balancer {window.host} gave no window")
            continue
        counts = window.counts(colour)
        failed = sum(c for s, c in counts.statuses.items() if error_re.fullmatch(s))
        shown[window.host] = {
            "since": window.since,
            "until": window.until,
            "seconds": window.seconds,
            "requests": counts.requests,
            "errors": failed,
            "statuses": dict(sorted(counts.statuses.items())),
            "lost": window.lost,
            "rotated": window.rotated,
            "unrouted": window.unrouted,
            "excluded": window.excluded,
            "unparsed": window.skipped,
        }
        if window.problem is not None:
            problems.append(window.problem)
            continue
        intact.append(window.host)
        requests += counts.requests
        errors += failed
        responses += sum(counts.statuses.values())
        for ms, count in counts.latency_ms.items():
            latency[ms] = latency.get(ms, 0) + count
        for ms, count in counts.upstream_ms.items():
            upstream[ms] = upstream.get(ms, 0) + count
        no_upstream_time += counts.no_upstream_time
    problem = None
    if problems:
        cover = (
            f"the values shown cover {', '.join(intact)} only"
            if intact
            else "no load balancer gave a usable window"
        )
        problem = "; ".join(problems) + f"; {cover}"
    return LbStats(
        colour,
        requests,
        errors,
        responses,
        latency,
        shown,
        problem,
        intact,
        upstream_ms=upstream,
        no_upstream_time=no_upstream_time,
    )


def analyse_lb(
    settings: Settings,
    thresholds: Mapping[str, Mapping[str, float | None]],
    health: Mapping[str, str] | None = None,
) -> Analysis:
    """Every signal of settings.colour from the load balancers' windows.

    `health` maps each of settings.health_targets to "up" (it answered 200) or the error.
    Traffic is the requests over the longest window; saturation is not measured here.
    """
    assert settings.colour is not None
    lengths = [w.seconds for w in settings.lb_windows if w.seconds is not None]
    window_s = max(lengths) if lengths else None
    signals: dict[str, SignalResult] = {}

    if settings.health_targets:
        states = {url: (health or {}).get(url, "not requested") for url in settings.health_targets}
        signals["targets_down"] = targets_down_signal(
            states, "health targets", "answer 200", thresholds
        )
    else:
        signals["targets_down"] = not_configured(
            "targets_down",
            "no health_targets given: source=lb requests no targets itself",
            thresholds.get("targets_down", {}),
        )

    stats = without_named_routes(lb_stats(settings, settings.colour), settings)
    requests = None if stats.problem else float(stats.requests)
    if stats.problem is not None:
        gate: str | None = stats.problem
    else:
        gate = request_gate(requests, None, settings.min_requests, window_s or 0.0)
        if gate is not None and stats.requests == 0:
            seen = sorted({c for w in settings.lb_windows for c in w.colours})
            if settings.colour not in seen:
                gate += (
                    f"; no load balancer logged a request of colour {settings.colour!r}"
                    f" (colours logged: {', '.join(seen) or 'none'})"
                )
    if not stats.intact:
        traffic = Measured(None, "no load balancer gave a usable window")
    elif window_s:
        traffic = Measured(stats.requests / window_s)
    else:
        traffic = Measured(None, "the load balancers' windows are 0 s long")
    p95 = stats.latency(0.95)
    error_rate = stats.error_rate()
    measures = {
        "traffic": traffic,
        "error_rate": error_rate,
        "latency_p95": p95,
        "latency_p99": stats.latency(0.99),
    }
    # Judged on the request time (what users got); the upstream time is shown beside it.
    upstream = {"upstream": stats.upstream()}
    for name, measured in measures.items():
        extra = upstream if name.startswith("latency_") else {}
        measured.evidence = {**measured.evidence, **extra, "windows": stats.windows}
        signals[name] = judge_signal(name, measured, thresholds, gate)
    if gate is None:
        hosts = ", ".join(stats.intact)
        signals["traffic"].reason += f" ({stats.requests} requests in {window_s:g} s at {hosts})"

    signals.update(route_signals(settings, settings.colour))
    signals.update(_resource_signals(settings, thresholds, None))
    if settings.host_windows:
        signals["cpu_per_request"] = judge_signal(
            "cpu_per_request",
            cpu_per_request_measure(settings, requests, window_s or 0.0),
            thresholds,
            gate,
        )
    else:
        signals["cpu_per_request"] = not_configured(
            "cpu_per_request",
            "no host_windows given: colour_usage measures the colour on its app hosts",
            thresholds.get("cpu_per_request", {}),
        )

    comparison = None
    if settings.compare_colour is not None:
        baseline = settings.baseline_windows or None
        old = without_named_routes(
            lb_stats(settings, settings.compare_colour, baseline), settings, baseline
        )
        old_requests = None if old.problem else float(old.requests)
        evidence: dict[str, Any] = {"colour": old.colour, "windows": old.windows}
        if baseline is not None:
            evidence["before_switch"] = True
        comparison = compare(
            thresholds,
            settings.min_requests,
            window_s or 0.0,
            (requests, stats.problem, p95, error_rate),
            (old_requests, old.problem, old.latency(0.95), old.error_rate()),
            evidence,
            baseline_window_s=_longest(baseline) if baseline is not None else None,
            medians=(stats.latency(0.5), old.latency(0.5)),
        )
    return _finish(signals, comparison, window_s, requests)


# --------------------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------------------

_RE2_SPECIAL = set("\\.+*?()|[]{}^$")


def promql_string(value: str) -> str:
    """`value` as a double-quoted PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def regex_alternation(values: Iterable[str]) -> str:
    """An RE2 regex that matches exactly one of `values` (PromQL anchors =~ and !~)."""
    return "|".join("".join(f"\\{c}" if c in _RE2_SPECIAL else c for c in v) for v in values)


def promql_duration(seconds: int) -> str:
    """300 -> '5m', 3600 -> '1h', 90 -> '90s'."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def matchers(*parts: str | None) -> str:
    """The non-empty matcher lists joined inside braces."""
    return "{" + ",".join(p for p in parts if p) + "}"


def prometheus_queries(settings: Settings, window_s: int) -> dict[str, str]:
    """Every PromQL query the analysis runs, by measurement name; instant queries at window end."""
    w = promql_duration(window_s)
    routes = (
        f"{settings.route_label}!~{promql_string(regex_alternation(settings.exclude_routes))}"
        if settings.exclude_routes
        else None
    )
    errors = f"{settings.status_label}=~{promql_string(settings.error_status_regex)}"
    requests_metric, buckets = settings.requests_metric, settings.bucket_metric

    def request_queries(selector: str) -> dict[str, str]:
        base = matchers(selector, routes)
        failed = matchers(selector, routes, errors)
        return {
            "traffic": f"sum(rate({requests_metric}{base}[{w}]))",
            "error_rate": (
                f"(sum(rate({requests_metric}{failed}[{w}])) or vector(0)) "
                f"/ sum(rate({requests_metric}{base}[{w}]))"
            ),
            "latency_p95": f"histogram_quantile(0.95, sum by (le) (rate({buckets}{base}[{w}])))",
            "latency_p99": f"histogram_quantile(0.99, sum by (le) (rate({buckets}{base}[{w}])))",
        }

    queries = request_queries(settings.selector)
    queries["targets_down"] = f"1 - avg(up{matchers(settings.selector)})"
    if settings.node_selector is not None:
        node = settings.node_selector
        idle = matchers(node, 'mode="idle"')
        disk = matchers(node, f"mountpoint={promql_string(settings.disk_mountpoint)}")
        queries["cpu"] = (
            f"100 * max(1 - sum by (instance) (rate(node_cpu_seconds_total{idle}[{w}])) "
            f"/ sum by (instance) (rate(node_cpu_seconds_total{matchers(node)}[{w}])))"
        )
        queries["memory"] = (
            f"100 * max(1 - node_memory_MemAvailable_bytes{matchers(node)} "
            f"/ node_memory_MemTotal_bytes{matchers(node)})"
        )
        queries["disk"] = (
            f"100 * max(1 - node_filesystem_avail_bytes{disk} / node_filesystem_size_bytes{disk})"
        )
    if settings.db_selector is not None:
        db = matchers(settings.db_selector)
        queries["db_connections"] = (
            f"100 * max(sum by (instance) (pg_stat_activity_count{db}) "
            f"/ max by (instance) (pg_settings_max_connections{db}))"
        )
    if settings.compare_selector is not None:
        old = request_queries(settings.compare_selector)
        queries.update({f"compare_{k}": old[k] for k in ("traffic", "error_rate", "latency_p95")})
    return queries


@dataclass(frozen=True)
class QueryAnswer:
    """The single value of an instant query, or why there is none."""

    value: float | None
    reason: str | None = None


def parse_query_answer(query: str, status: int | None, body: Any, error: str | None) -> QueryAnswer:
    """Read Prometheus' /api/v1/query response: one finite value, or an explanation."""
    if status is None:
        return QueryAnswer(None, f"Prometheus is unreachable: {error}")
    if not isinstance(body, Mapping):
        return QueryAnswer(
            None, f"Prometheus answered HTTP {status} without a JSON body ({error or 'not JSON'})"
        )
    if body.get("status") != "success":
        return QueryAnswer(
            None,
            f"Prometheus refused {query!r} (HTTP {status}, {body.get('errorType', 'error')}): "
            f"{body.get('error', 'no error text')}",
        )
    data = body.get("data") or {}
    result_type, result = data.get("resultType"), data.get("result")
    try:
        if result_type == "scalar":
            raw = result[1]
        elif result_type == "vector":
            if not result:
                return QueryAnswer(
                    None,
                    f"no series matched {query!r}: the metric is missing or the selector "
                    "matches nothing",
                )
            if len(result) > 1:
                return QueryAnswer(None, f"{query!r} returned {len(result)} series, expected one")
            raw = result[0]["value"][1]
        else:
            return QueryAnswer(None, f"{query!r} returned a {result_type}, expected a vector")
        value = float(raw)
    except (TypeError, ValueError, KeyError, IndexError):
        return QueryAnswer(
            None, f"Prometheus sent a result for {query!r} that is not a number: {result!r}"
        )
    if math.isnan(value):
        return QueryAnswer(None, f"{query!r} is NaN: no observations in the window")
    if math.isinf(value):
        return QueryAnswer(None, f"{query!r} is {value}: not a usable value")
    return QueryAnswer(value)


def analyse_prometheus(
    settings: Settings,
    thresholds: Mapping[str, Mapping[str, float | None]],
    window_s: int,
    queries: Mapping[str, str],
    answers: Mapping[str, QueryAnswer],
) -> Analysis:
    """Every signal from the answers to prometheus_queries()."""

    def measured(name: str) -> Measured:
        answer = answers[name]
        return Measured(answer.value, answer.reason, {"query": queries[name]})

    traffic = measured("traffic")
    requests = None if traffic.value is None else traffic.value * window_s
    gate = request_gate(requests, traffic.reason, settings.min_requests, window_s)
    signals = {"targets_down": judge_signal("targets_down", measured("targets_down"), thresholds)}
    for name in ("traffic", "error_rate", "latency_p95", "latency_p99"):
        signals[name] = judge_signal(name, measured(name), thresholds, gate)
    signals.update(_resource_signals(settings, thresholds, measured))
    if gate is None:
        signals["traffic"].reason += f" ({requests:g} requests in {window_s} s)"

    comparison = None
    if settings.compares:
        old_traffic = measured("compare_traffic")
        old_requests = None if old_traffic.value is None else old_traffic.value * window_s
        comparison = compare(
            thresholds,
            settings.min_requests,
            window_s,
            (requests, traffic.reason, measured("latency_p95"), measured("error_rate")),
            (
                old_requests,
                old_traffic.reason,
                measured("compare_latency_p95"),
                measured("compare_error_rate"),
            ),
            {
                "queries": {
                    k[len("compare_") :]: queries[k] for k in queries if k.startswith("compare_")
                }
            },
        )
    return _finish(signals, comparison, float(window_s), requests)


# --------------------------------------------------------------------------------------
# Analysis loop
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalysisLimits:
    """How many measurements an analysis takes, and how many bad ones it tolerates."""

    count: int = 5
    failure_limit: int = 0
    consecutive_failure_limit: int = 0
    inconclusive_limit: int = 1

    def validate(self) -> AnalysisLimits:
        if not isinstance(self.count, int) or self.count < 1:
            raise GoldenSignalsError(f"analysis.count must be 1 or more, got {self.count!r}")
        for name in ("failure_limit", "consecutive_failure_limit", "inconclusive_limit"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise GoldenSignalsError(f"analysis.{name} must be 0 or more, got {value!r}")
        return self


@dataclass(frozen=True)
class Decision:
    """continue, pass or fail; `verdict` is the outcome (None while continuing)."""

    action: str
    verdict: str | None
    reason: str
    measurements: int
    counts: dict[str, int]
    consecutive_critical: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "verdict": self.verdict,
            "reason": self.reason,
            "measurements": self.measurements,
            "counts": self.counts,
            "consecutive_critical": self.consecutive_critical,
        }


def _history_entry(entry: Any, index: int) -> tuple[str, bool]:
    if isinstance(entry, str):
        verdict, p0 = entry, False
    elif isinstance(entry, Mapping):
        verdict, p0 = entry.get("verdict"), bool(entry.get("p0", False))
    else:
        raise GoldenSignalsError(f"analysis history entry {index} must be a verdict or a mapping")
    if verdict not in MEASURED_VERDICTS:
        raise GoldenSignalsError(
            f"analysis history entry {index} has verdict {verdict!r}; "
            f"expected one of {', '.join(MEASURED_VERDICTS)}"
        )
    return verdict, p0


def analysis_decision(history: Sequence[Any], limits: AnalysisLimits) -> Decision:
    """Decide an analysis loop from its measurements so far, checked in this order:

    1. any measurement with p0      -> fail (critical): immediate rollback
    2. criticals > failure_limit    -> fail (critical)
    3. consecutive_failure_limit > 0 and a run of that many criticals in a row -> fail (critical)
    4. inconclusives > inconclusive_limit -> fail (inconclusive)
    5. fewer than `count` measurements -> continue
    6. `count` reached: pass (ok, or warning if any warning or tolerated critical), unless no
       measurement was ok or warning, which fails (critical if any, else inconclusive)
    """
    limits.validate()
    entries = [_history_entry(entry, i) for i, entry in enumerate(history, start=1)]
    counts = {verdict: sum(1 for v, _ in entries if v == verdict) for verdict in MEASURED_VERDICTS}
    longest = run = 0
    for verdict, _ in entries:
        run = run + 1 if verdict == CRITICAL else 0
        longest = max(longest, run)
    n = len(entries)

    def decide(action: str, verdict: str | None, reason: str) -> Decision:
        return Decision(action, verdict, reason, n, counts, longest)

    first_p0 = next((i for i, (_, p0) in enumerate(entries, start=1) if p0), None)
    if first_p0 is not None:
        return decide(
            "fail", CRITICAL, f"measurement {first_p0} tripped a P0 rule: roll back immediately"
        )
    if counts[CRITICAL] > limits.failure_limit:
        return decide(
            "fail",
            CRITICAL,
            f"{counts[CRITICAL]} critical measurements, more than failure_limit "
            f"{limits.failure_limit}",
        )
    if limits.consecutive_failure_limit and longest >= limits.consecutive_failure_limit:
        return decide(
            "fail",
            CRITICAL,
            f"{longest} critical measurements in a row, consecutive_failure_limit is "
            f"{limits.consecutive_failure_limit}",
        )
    if counts[INCONCLUSIVE] > limits.inconclusive_limit:
        return decide(
            "fail",
            INCONCLUSIVE,
            f"{counts[INCONCLUSIVE]} inconclusive measurements, more than inconclusive_limit "
            f"{limits.inconclusive_limit}: the analysis cannot vouch for the release",
        )
    if n < limits.count:
        return decide("continue", None, f"{n} of {limits.count} measurements taken")
    passing = counts[OK] + counts[WARNING]
    if passing == 0:
        verdict = CRITICAL if counts[CRITICAL] else INCONCLUSIVE
        return decide("fail", verdict, f"none of the {n} measurements was ok or warning")
    verdict = OK if passing == n and counts[WARNING] == 0 else WARNING
    summary = ", ".join(f"{counts[v]} {v}" for v in MEASURED_VERDICTS if counts[v])
    return decide("pass", verdict, f"{n} measurements within the limits: {summary}")


# --------------------------------------------------------------------------------------
# Canary steps: the two colours over the same window, while both serve
# --------------------------------------------------------------------------------------

CANARY_TEST_LATENCY = "Mann-Whitney U (one-sided, normal approximation, tie-corrected)"
CANARY_TEST_ERRORS = "Fisher's exact test (one-sided)"


@dataclass(frozen=True)
class RankTest:
    """A one-sided Mann-Whitney U test of 'a is slower than b'.

    `u` is a's U statistic, `p_value` the chance of a U this large or larger were both
    drawn from one distribution, `effect` U / (n_a n_b): the chance that a request of a
    is slower than one of b, ties counting half (0.5: no difference).
    """

    n_a: int
    n_b: int
    u: float
    z: float
    p_value: float
    effect: float


def normal_sf(z: float) -> float:
    """The standard normal's upper tail, P(Z >= z)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def mann_whitney_greater(a: Mapping[int, int], b: Mapping[int, int]) -> RankTest:
    """Whether the values counted in `a` tend to be larger than those in `b` (histograms
    of exact values: nginx times requests in whole milliseconds, so ties are the rule and
    the tie correction matters). Normal approximation with a continuity correction, as
    scipy.stats.mannwhitneyu(a, b, alternative="greater", method="asymptotic")."""
    n_a, n_b = sum(a.values()), sum(b.values())
    if n_a == 0 or n_b == 0:
        raise GoldenSignalsError("a rank test needs requests of both colours")
    rank_sum_a = 0.0
    below = 0
    tie_term = 0
    for value in sorted(set(a) | set(b)):
        count_a, count_b = a.get(value, 0), b.get(value, 0)
        tied = count_a + count_b
        if not tied:
            continue
        mid_rank = below + (tied + 1) / 2.0
        rank_sum_a += count_a * mid_rank
        tie_term += tied**3 - tied
        below += tied
    n = n_a + n_b
    u = rank_sum_a - n_a * (n_a + 1) / 2.0
    mean = n_a * n_b / 2.0
    variance = n_a * n_b / 12.0 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0:
        return RankTest(n_a, n_b, u, 0.0, 1.0, u / (n_a * n_b))
    z = (u - mean - 0.5) / math.sqrt(variance)
    return RankTest(n_a, n_b, u, z, normal_sf(z), u / (n_a * n_b))


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_greater(errors_a: int, n_a: int, errors_b: int, n_b: int) -> float:
    """One-sided Fisher's exact test that a's error rate is higher than b's: the chance,
    with the margins fixed, of a having `errors_a` errors or more (hypergeometric tail),
    as scipy.stats.fisher_exact([[ea, na-ea], [eb, nb-eb]], alternative="greater")."""
    for name, errors, total in (("a", errors_a, n_a), ("b", errors_b, n_b)):
        if not 0 <= errors <= total:
            raise GoldenSignalsError(f"errors of {name} ({errors}) must be within 0..{total}")
    errors = errors_a + errors_b
    n = n_a + n_b
    if errors == 0 or n_a == 0:
        return 1.0
    log_total = _log_choose(n, n_a)
    top = min(n_a, errors)
    p = sum(
        math.exp(_log_choose(errors, k) + _log_choose(n - errors, n_a - k) - log_total)
        for k in range(errors_a, top + 1)
    )
    return min(1.0, p)


def histogram_median(counts: Mapping[int, int]) -> float | None:
    """The median of exact values counted in a histogram (mean of the middle two)."""
    n = sum(counts.values())
    if n == 0:
        return None
    low_rank, high_rank = (n - 1) // 2, n // 2
    seen = 0
    low = None
    for value in sorted(counts):
        seen += counts[value]
        if low is None and seen > low_rank:
            low = value
        if seen > high_rank:
            return (low + value) / 2.0
    return None


def histogram_trimmed_mean(counts: Mapping[int, int], trim: float = 0.1) -> float | None:
    """The mean of the values counted in a histogram without the lowest and the highest
    `trim` share of them (a cold start's few slow requests do not decide it; at whole
    milliseconds a median moves in steps of one, a trimmed mean does not)."""
    n = sum(counts.values())
    if n == 0:
        return None
    cut = int(n * trim)
    keep_from, keep_to = cut, n - cut  # ranks [keep_from, keep_to) are kept
    total = 0.0
    seen = 0
    for value in sorted(counts):
        low, high = seen, seen + counts[value]
        total += value * max(0, min(high, keep_to) - max(low, keep_from))
        seen = high
    return total / (keep_to - keep_from)


@dataclass(frozen=True)
class CanarySettings:
    """How a canary step is judged (bluegreen_analysis_canary_*)."""

    alpha: float = 0.01
    latency_ratio: float = 1.5
    error_rate_margin: float = 0.001
    min_requests: int = 30
    share_tolerance: float = 10.0

    def validate(self) -> None:
        if not 0 < self.alpha < 0.5:
            raise GoldenSignalsError(
                f"alpha is {self.alpha:g}: give a level in (0, 0.5), e.g. 0.01"
            )
        if self.latency_ratio < 1:
            raise GoldenSignalsError(
                f"latency_ratio is {self.latency_ratio:g}: give 1 or more, e.g. 1.5 (the new "
                "colour's trimmed mean latency at least 1.5 times the old one's)"
            )
        if not 0 <= self.error_rate_margin < 1:
            raise GoldenSignalsError(
                f"error_rate_margin is {self.error_rate_margin:g}: give a share in [0, 1)"
            )
        if self.min_requests < 2:
            raise GoldenSignalsError(f"min_requests is {self.min_requests}: give 2 or more")
        if not 0 < self.share_tolerance <= 100:
            raise GoldenSignalsError(
                f"share_tolerance is {self.share_tolerance:g}: give percentage points in (0, 100]"
            )


def canary_steps_from_params(value: Any, name: str = "canary steps") -> list[int]:
    """The traffic shares of a canary, in percent: ascending whole numbers in 1..99
    (from a list or a comma-separated text such as "5,25,50"); [] means no canary."""
    if value is None or value == "" or value == []:
        return []
    items: list[Any] = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise GoldenSignalsError(f"{name} must be a list of percentages, e.g. [5, 25, 50]")
    steps = []
    for item in items:
        text = str(item).strip().rstrip("%").strip()
        if isinstance(item, bool) or not text.isdigit() or not 1 <= int(text) <= 99:
            raise GoldenSignalsError(
                f"{name} has {item!r}: each step is a whole percentage from 1 to 99 of the "
                "traffic sent to the new colour, e.g. 5,25,50 (100 is the switch itself)"
            )
        steps.append(int(text))
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise GoldenSignalsError(
            f"{name} are {steps}: give them in increasing order, each once, e.g. 5,25,50"
        )
    return steps


def _merged(windows: Sequence[LbWindow], colour: str) -> tuple[int, int, dict[int, int]]:
    """A colour's requests, errors (5xx) and latency histogram over every load balancer."""
    requests = errors = 0
    latency: dict[int, int] = {}
    for window in windows:
        counts = window.counts(colour)
        requests += counts.requests
        errors += sum(n for status, n in counts.statuses.items() if status.startswith("5"))
        for ms, n in counts.latency_ms.items():
            latency[ms] = latency.get(ms, 0) + n
    return requests, errors, latency


def _p_text(p: float) -> str:
    return f"p={p:.2g}" if p >= 1e-4 else "p<0.0001"


def canary_verdict(
    lb_windows: Any,
    colour: str,
    compare_colour: str,
    percent: int,
    settings: CanarySettings,
) -> dict[str, Any]:
    """The verdict on one canary step: `colour` (the new one) served about `percent` of the
    traffic and `compare_colour` the rest, over the same window on every load balancer.

    fail when a test finds the new colour worse beyond chance (p below alpha) and by a
    margin that matters (its latency's 10 %-trimmed mean at least latency_ratio times the
    old one's; its error rate more than error_rate_margin above the old one's);
    inconclusive when a load balancer gave no window or either colour served fewer than
    min_requests; pass otherwise. The verdict names each test, its sample sizes and p-value.
    """
    settings.validate()
    windows = lb_windows_from_params(lb_windows)
    problems = [w.problem for w in windows if w.problem]
    n_new, errors_new, latency_new = _merged(windows, colour)
    n_old, errors_old, latency_old = _merged(windows, compare_colour)
    total = n_new + n_old
    share = round(100.0 * n_new / total, 2) if total else None
    result: dict[str, Any] = {
        "percent": percent,
        "colour": colour,
        "compare_colour": compare_colour,
        "share_measured": share,
        "requests": {colour: n_new, compare_colour: n_old},
        "errors": {colour: errors_new, compare_colour: errors_old},
        "median_ms": {
            colour: histogram_median(latency_new),
            compare_colour: histogram_median(latency_old),
        },
        "seconds": max((w.seconds or 0.0) for w in windows),
        # The window as the load balancers' logs bound it (epoch seconds).
        "since": min((w.since for w in windows if w.since is not None), default=None),
        "until": max((w.until for w in windows if w.until is not None), default=None),
        "tests": [],
        "too_few": False,
    }
    head = f"step {percent} %: {colour} served {n_new} requests, {compare_colour} {n_old}"
    if share is not None:
        head += f" ({share:g} % measured)"
    if problems:
        return {**result, "action": INCONCLUSIVE, "reason": f"{head}; " + "; ".join(problems)}
    short = [c for c, n in ((colour, n_new), (compare_colour, n_old)) if n < settings.min_requests]
    if short:
        return {
            **result,
            "action": INCONCLUSIVE,
            "too_few": True,
            "reason": f"{head}: fewer than {settings.min_requests} requests of "
            f"{' and '.join(short)}, too few to compare",
        }
    tests = [
        _latency_test(latency_new, latency_old, colour, compare_colour, settings),
        _error_test((errors_new, n_new), (errors_old, n_old), colour, compare_colour, settings),
    ]
    failed = [t for t in tests if t["verdict"] == "fail"]
    reasons = "; ".join(t["reason"] for t in (failed or tests))
    if share is not None and abs(share - percent) > settings.share_tolerance:
        reasons += (
            f"; the measured share is {abs(share - percent):.1f} points from the step's "
            f"{percent} % (few clients, or one client sending most requests)"
        )
    return {
        **result,
        "tests": tests,
        "action": "fail" if failed else "pass",
        "reason": f"{head}: {reasons}",
    }


def _latency_test(
    new: Mapping[int, int],
    old: Mapping[int, int],
    colour: str,
    compare_colour: str,
    settings: CanarySettings,
) -> dict[str, Any]:
    test = mann_whitney_greater(new, old)
    mean_new, mean_old = histogram_trimmed_mean(new) or 0.0, histogram_trimmed_mean(old) or 0.0
    ratio = mean_new / mean_old if mean_old else (math.inf if mean_new else 1.0)
    slower = test.p_value < settings.alpha
    verdict = "fail" if slower and ratio >= settings.latency_ratio else "pass"
    ratio_text = f"{ratio:.2f}x" if math.isfinite(ratio) else "above 0 ms against 0 ms"
    reason = (
        f"latency: trimmed mean {mean_new:.2f} ms on {colour} against {mean_old:.2f} ms on "
        f"{compare_colour} ({ratio_text}; medians {histogram_median(new):g} and "
        f"{histogram_median(old):g} ms); {CANARY_TEST_LATENCY}, n={test.n_a}/{test.n_b}, "
        f"U={test.u:g}, {_p_text(test.p_value)}"
    )
    if verdict == "fail":
        reason += f": slower beyond chance (alpha {settings.alpha:g}) and by {ratio_text}"
    elif slower:
        reason += f": slower beyond chance, but below {settings.latency_ratio:g}x"
    return {
        "signal": "latency",
        "test": CANARY_TEST_LATENCY,
        "n": {colour: test.n_a, compare_colour: test.n_b},
        "statistic": test.u,
        "z": round(test.z, 3),
        "p_value": test.p_value,
        "effect": round(test.effect, 4),
        "trimmed_mean_ms": {colour: round(mean_new, 3), compare_colour: round(mean_old, 3)},
        "ratio": round(ratio, 3) if math.isfinite(ratio) else None,
        "verdict": verdict,
        "reason": reason,
    }


def _error_test(
    new: tuple[int, int],
    old: tuple[int, int],
    colour: str,
    compare_colour: str,
    settings: CanarySettings,
) -> dict[str, Any]:
    (errors_new, n_new), (errors_old, n_old) = new, old
    p = fisher_greater(errors_new, n_new, errors_old, n_old)
    rate_new, rate_old = errors_new / n_new, errors_old / n_old
    worse = p < settings.alpha and rate_new > rate_old + settings.error_rate_margin
    reason = (
        f"errors: {errors_new} of {n_new} on {colour} ({100 * rate_new:.2f} %) against "
        f"{errors_old} of {n_old} on {compare_colour} ({100 * rate_old:.2f} %); "
        f"{CANARY_TEST_ERRORS}, {_p_text(p)}"
    )
    if worse:
        reason += f": more errors beyond chance (alpha {settings.alpha:g})"
    return {
        "signal": "errors",
        "test": CANARY_TEST_ERRORS,
        "n": {colour: n_new, compare_colour: n_old},
        "errors": {colour: errors_new, compare_colour: errors_old},
        "p_value": p,
        "verdict": "fail" if worse else "pass",
        "reason": reason,
    }
