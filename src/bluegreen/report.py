"""The release report, rendered from the release journal: Markdown, self-contained HTML, JSON.

Every line of the report is evidence the journal holds; nothing is assumed. The report
has a fixed list of checks (``CHECKS``): a check whose evidence is not in the journal is
shown as "not run", never as passed. A check is "failed" only when the journal says that
step failed in that check's task (``FAILED_TASKS``).

Everything here is a pure function of journal entries (a list of dicts, as written by
library/release_journal.py, from the primary load balancer or the controller's copy),
except the file helpers at the end (``read_entries``, ``write_reports``).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bluegreen.errors import BluegreenError, InputError
from bluegreen_module_utils.release_contract import CLOSING_STEPS, outcome_label, outcomes_of_tone

REPORT_FORMATS = ("md", "html", "json")
SCHEMA_VERSION = 1

PASSED = "passed"
FAILED = "failed"
WARNING = "warning"
INCONCLUSIVE = "inconclusive"
SKIPPED = "skipped"
NOT_RUN = "not run"

# The readiness checks, in the order a release runs them: (id, title, journal step).
CHECKS: tuple[tuple[str, str, str], ...] = (
    ("policy", "Release window and approval", "policy"),
    ("artifact", "Artifact checksum", "preflight"),
    ("backup", "Database snapshot, verified", "snapshot"),
    ("migrations", "Migrations applied", "migrate"),
    ("health", "Health of the new colour", "deploy"),
    ("smoke", "Smoke routes", "deploy"),
    ("version", "Version header", "deploy"),
    ("healthcheck", "Image HEALTHCHECK of the new colour", "deploy"),
    ("pre_switch_signals", "Golden signals before the switch", "pre_switch_analysis"),
    ("canary", "Canary steps, each against the live colour", "canary"),
    ("switch", "Traffic switch on every load balancer", "switch"),
    ("post_switch_signals", "Golden signals after the switch", "analysis"),
)

# Which check a failed task belongs to (the failure record names the task). A step that
# fails in another task leaves its checks "not run": the failure is in the decision.
FAILED_TASKS: dict[str, str] = {
    "Refuse the release the policy does not allow": "policy",
    "Refuse a missing or malformed version": "artifact",
    "Refuse a release without its artifact": "artifact",
    "Refuse an artifact whose checksum does not match": "artifact",
    "Apply the release's migrations, refusing breaking ones": "migrations",
    "Run the service's migration command from the new release": "migrations",
}
# colour_start runs the health, smoke and version checks in one task and names the one
# that failed (the failure record's evidence ``check``); journals written before it name
# the task of each check.
CHECKED_BY_MODULE = ("health", "smoke", "version", "healthcheck")
FAILED_TASKS_BEFORE_COLOUR_START: dict[str, str] = {
    "Wait for the idle colour to answer its health check": "health",
    "Stop the release because the idle colour is not healthy": "health",
    "Stop the release when a smoke route answers wrongly": "smoke",
    "Check that the idle colour runs the released version": "version",
}
# Steps whose every failure is the failure of one check.
FAILED_STEPS: dict[str, str] = {
    "policy": "policy",
    "snapshot": "backup",
    "switch": "switch",
    "pre_switch_analysis": "pre_switch_signals",
    "canary": "canary",
}

# Journal steps that end a command, and what each outcome means, are the contract's
# (module_utils/release_contract.py): CLOSING_STEPS and outcome_label().
SIGNAL_VERDICTS = {
    "ok": PASSED,
    "warning": WARNING,
    "inconclusive": INCONCLUSIVE,
    "critical": FAILED,
}
# Signals drawn in the chart: the ones a release is judged on.
CHART_SIGNALS = ("error_rate", "latency_p95", "traffic")


class ReportError(BluegreenError):
    """A report cannot be made from what was given; the message says why."""


@dataclass
class Check:
    id: str
    title: str
    status: str
    summary: str
    time: str | None = None
    step: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


# --- choosing the release --------------------------------------------------------------


def release_ids(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """Ids of the releases (not rollbacks, backups, maintenance) in journal order.

    A release ends with a ``release`` record; an id that ended with another command's
    final record is that command. An id with neither is an unfinished release. (An
    automatic rollback inside a release journals a ``rollback`` step too.)
    """
    ids: list[str] = []
    steps: dict[str, set[str]] = {}
    for entry in entries:
        rid = str(entry.get("release_id") or "")
        if not rid:
            continue
        if rid not in ids:
            ids.append(rid)
        steps.setdefault(rid, set()).add(str(entry.get("step")))
    return [rid for rid in ids if "release" in steps[rid] or not steps[rid] & set(CLOSING_STEPS)]


def entries_of(entries: Sequence[Mapping[str, Any]], release_id: str | None) -> list[dict]:
    """The records of one release (default: the last release in the journal), in order."""
    ids = release_ids(entries)
    if release_id is None:
        if not ids:
            raise ReportError("the journal holds no release yet; release one first")
        release_id = ids[-1]
    chosen = [dict(e) for e in entries if e.get("release_id") == release_id]
    if not chosen:
        recent = ", ".join(ids[-5:]) or "none"
        raise InputError(f"release {release_id!r} is not in the journal; recent releases: {recent}")
    return chosen


# --- evidence per check ----------------------------------------------------------------


def _last(records: Sequence[Mapping[str, Any]], step: str) -> dict | None:
    found = [r for r in records if r.get("step") == step]
    return dict(found[-1]) if found else None


def _time(record: Mapping[str, Any] | None) -> str | None:
    if not record:
        return None
    return record.get("finished_at") or record.get("ts")


def _evidence(record: Mapping[str, Any] | None) -> dict:
    value = (record or {}).get("evidence")
    return dict(value) if isinstance(value, Mapping) else {}


def _fmt_bytes(value: Any) -> str:
    if not isinstance(value, int | float):
        return "?"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _policy_check(records: Sequence[Mapping[str, Any]]) -> Check | None:
    record = _last(records, "policy")
    if record is None:
        return None
    ev = _evidence(record)
    status = PASSED if record.get("outcome") == "ok" else FAILED
    kept = {
        key: ev.get(key)
        for key in ("window", "forced", "force_reason", "approval_required", "approved_by")
    }
    return Check("policy", "", status, record.get("message") or "", _time(record), "policy", kept)


def _artifact_check(records: Sequence[Mapping[str, Any]]) -> Check | None:
    preflight = _last(records, "preflight")
    ev = _evidence(preflight)
    deploy = _evidence(_last(records, "deploy"))
    if preflight is None or preflight.get("outcome") != "ok" or not ev.get("artifact_sha256"):
        return None
    sha = ev["artifact_sha256"]
    evidence = {
        "sha256": sha,
        "size_bytes": ev.get("artifact_size_bytes"),
        "published_sha256_matches": ev.get("published_sha256_matches"),
    }
    summary = (
        f"sha256 {sha} matches the published checksum ({_fmt_bytes(ev.get('artifact_size_bytes'))})"
    )
    status = PASSED if ev.get("published_sha256_matches") else FAILED
    if deploy.get("artifact_sha256"):
        evidence["sha256_on_app_hosts"] = deploy["artifact_sha256"]
        if deploy["artifact_sha256"] == sha:
            summary += "; the same on the app hosts"
        else:
            status, summary = FAILED, summary + "; DIFFERENT on the app hosts"
    return Check("artifact", "", status, summary, _time(preflight), "preflight", evidence)


def _backup_check(records: Sequence[Mapping[str, Any]]) -> Check | None:
    record = _last(records, "snapshot")
    if record is None or record.get("outcome") == "failed":
        return None
    if record.get("outcome") == "skipped":
        return Check(
            "backup", "", SKIPPED, record.get("message") or "no database", _time(record), "snapshot"
        )
    ev = _evidence(record)
    files = [
        {"path": f.get("path"), "size": f.get("size"), "sha256": f.get("sha256")}
        for f in ev.get("files") or []
        if isinstance(f, Mapping)
    ]
    evidence = {
        "snapshot_id": ev.get("snapshot_id"),
        "path": ev.get("path"),
        "size_bytes": ev.get("size_bytes"),
        "files": files,
        "verified": ev.get("verified"),
        "checks": list(ev.get("checks") or []),
        "encryption": ev.get("encryption"),
    }
    checksums = ", ".join(f"{f['path']} sha256 {f['sha256']}" for f in files) or "no files"
    verified = ev.get("verified") is True
    summary = (
        f"snapshot {ev.get('snapshot_id')} ({_fmt_bytes(ev.get('size_bytes'))}): {checksums}; "
        + _encryption_words(ev.get("encryption"))
        + ("verified by a real read" if verified else "NOT verified")
    )
    return Check(
        "backup", "", PASSED if verified else FAILED, summary, _time(record), "snapshot", evidence
    )


def _encryption_words(encryption: object) -> str:
    """How the snapshot is kept at rest, for the backup check's summary."""
    if not isinstance(encryption, Mapping):
        return "not encrypted (owner-only files); "
    recipients = encryption.get("recipients") or []
    return f"encrypted with {encryption.get('tool')} to {len(recipients)} recipient(s); "


def _migration_check(records: Sequence[Mapping[str, Any]]) -> Check | None:
    """Migrations from their own record (kept when the deploy fails later), else from
    the deploy record of releases journaled before the step had one."""
    record = _last(records, "migrate")
    if record is None or record.get("outcome") != "ok":
        record = _last(records, "deploy")
        if record is None or record.get("outcome") != "ok":
            return None
    migration = _evidence(record).get("migration")
    if not isinstance(migration, Mapping):
        return None
    applied = [str(r) for r in migration.get("applied") or []]
    summary = (
        f"applied {', '.join(applied)}: "
        f"{migration.get('previous') or 'empty'} -> {migration.get('current')}"
        if applied
        else f"nothing to apply, schema at {migration.get('current')}"
    )
    summary += f" ({migration.get('executed_statements', 0)} statements executed)"
    return Check(
        "migrations", "", PASSED, summary, _time(record), str(record["step"]), dict(migration)
    )


def _deploy_checks(records: Sequence[Mapping[str, Any]]) -> dict[str, Check]:
    record = _last(records, "deploy")
    if record is None or record.get("outcome") != "ok":
        return {}
    ev = _evidence(record)
    when = _time(record)
    checks: dict[str, Check] = {}
    health = ev.get("health")
    if isinstance(health, Mapping):
        healthy = health.get("healthy") is True
        summary = (
            f"{ev.get('colour')} runs {health.get('version')}: health answered "
            f"{health.get('health_status')}, unit {health.get('state')}, "
            f"{health.get('restarts', 0)} restarts"
        )
        checks["health"] = Check(
            "health", "", PASSED if healthy else FAILED, summary, when, "deploy", dict(health)
        )
    smoke = [dict(a) for a in ev.get("smoke") or [] if isinstance(a, Mapping)]
    if smoke:
        ok = all(a.get("ok") is True for a in smoke)
        # A wrong answer says what was wrong with it (a status, a text, a JSON value).
        summary = "; ".join(
            a.get("problem")
            or f"{a.get('method', 'GET')} {a.get('path')} -> {a.get('status')} "
            f"(expected {a.get('expected')})"
            for a in smoke
        )
        checks["smoke"] = Check(
            "smoke", "", PASSED if ok else FAILED, summary, when, "deploy", {"answers": smoke}
        )
    version = ev.get("version_check")
    if isinstance(version, Mapping) and version.get("seen"):
        seen = [str(v) for v in version.get("seen") or []]
        ok = seen == [str(version.get("expected"))]
        summary = (
            f"every smoke answer named version {', '.join(seen)}; "
            f"expected {version.get('expected')}"
        )
        checks["version"] = Check(
            "version", "", PASSED if ok else FAILED, summary, when, "deploy", dict(version)
        )
    gates = ev.get("healthcheck")
    if isinstance(gates, Mapping) and gates:
        checks["healthcheck"] = _healthcheck_check(gates, when)
    return checks


def _healthcheck_check(gates: Mapping[str, Any], when: str) -> Check:
    """The container runtime's gate on each host: what the image's HEALTHCHECK said."""
    verdicts = {
        str(host): (gate or {}).get("verdict") if isinstance(gate, Mapping) else None
        for host, gate in gates.items()
    }
    ok = all(verdict in ("healthy", "none") for verdict in verdicts.values())
    summary = "; ".join(
        f"{host}: "
        + {"healthy": "healthy", "none": "the image defines no HEALTHCHECK"}.get(
            str(verdict), str(verdict or "not checked")
        )
        for host, verdict in verdicts.items()
    )
    return Check("healthcheck", "", PASSED if ok else FAILED, summary, when, "deploy", dict(gates))


def _signals_table(signals: Mapping[str, Any]) -> list[dict]:
    rows = []
    for name, signal in signals.items():
        if not isinstance(signal, Mapping):
            continue
        rows.append(
            {
                "signal": name,
                "value": signal.get("value"),
                "unit": signal.get("unit"),
                "warning": signal.get("warning"),
                "critical": signal.get("critical"),
                "p0_threshold": signal.get("p0_threshold"),
                "verdict": signal.get("verdict"),
                "reason": signal.get("reason"),
            }
        )
    return rows


def _last_analysis(records: Sequence[Mapping[str, Any]], step: str) -> dict | None:
    """The last record of an analysis step that carries its measurements (a failed
    analysis is followed by a failure record of the same step without them)."""
    found = [r for r in records if r.get("step") == step and "decision" in _evidence(r)]
    return dict(found[-1]) if found else None


def _analysis_check(records: Sequence[Mapping[str, Any]], step: str, check_id: str) -> Check | None:
    record = _last_analysis(records, step)
    ev = _evidence(record)
    decision = ev.get("decision")
    if record is None or not isinstance(decision, Mapping):
        return None
    verdict = str(decision.get("verdict") or ev.get("verdict") or "")
    status = SIGNAL_VERDICTS.get(verdict, FAILED if decision.get("action") == "fail" else NOT_RUN)
    summary = (
        f"{decision.get('action')} ({verdict}) after {decision.get('measurements')} "
        f"measurements: {decision.get('reason')}"
    )
    evidence = {
        "decision": dict(decision),
        "requests": ev.get("requests"),
        "signals": _signals_table(ev.get("signals") or {}),
        "series": list(ev.get("series") or []),
    }
    return Check(check_id, "", status, summary, _time(record), step, evidence)


def _switch_check(records: Sequence[Mapping[str, Any]]) -> Check | None:
    record = _last(records, "switch")
    if record is None or record.get("outcome") != "ok":
        return None
    ev = _evidence(record)
    per_lb = ", ".join(
        f"{lb} in {ms} ms, {(ev.get('probes') or {}).get(lb)} probes through nginx"
        for lb, ms in (ev.get("switch_ms") or {}).items()
    )
    summary = f"{record.get('message')} ({per_lb})" if per_lb else str(record.get("message"))
    return Check("switch", "", PASSED, summary, _time(record), "switch", ev)


def _canary_check(records: Sequence[Mapping[str, Any]]) -> Check | None:
    """Every canary step's verdict (none: the release switched at once)."""
    steps = [r for r in records if r.get("step") == "canary" and "percent" in _evidence(r)]
    if not steps:
        return None
    failed = [r for r in steps if r.get("outcome") != "ok"]
    summary = "; ".join(str(r.get("message")) for r in (failed or steps))
    evidence = {"steps": [_evidence(r) for r in steps]}
    status = FAILED if failed else PASSED
    return Check("canary", "", status, summary, _time(steps[-1]), "canary", evidence)


def _failure(records: Sequence[Mapping[str, Any]]) -> dict | None:
    """The first failed step of the release (the one that stopped it), if any."""
    for record in records:
        if record.get("outcome") == "failed" and record.get("step") not in CLOSING_STEPS:
            if record.get("step") == "analysis":
                continue  # the analysis says why in its own check
            return dict(record)
    return None


def _failed_check(failure: Mapping[str, Any] | None) -> str | None:
    if failure is None:
        return None
    evidence = _evidence(failure)
    if evidence.get("check") in CHECKED_BY_MODULE:
        return str(evidence["check"])
    task = str(evidence.get("task") or "")
    return (
        FAILED_TASKS.get(task)
        or FAILED_TASKS_BEFORE_COLOUR_START.get(task)
        or FAILED_STEPS.get(str(failure.get("step")))
    )


def readiness(records: Sequence[Mapping[str, Any]]) -> list[Check]:
    """Every check of ``CHECKS``, with its evidence, or failed, or not run."""
    found: dict[str, Check | None] = {
        "policy": _policy_check(records),
        "artifact": _artifact_check(records),
        "backup": _backup_check(records),
        "pre_switch_signals": _analysis_check(records, "pre_switch_analysis", "pre_switch_signals"),
        "canary": _canary_check(records),
        "switch": _switch_check(records),
        "post_switch_signals": _analysis_check(records, "analysis", "post_switch_signals"),
    }
    found.update(_deploy_checks(records))
    found["migrations"] = _migration_check(records)
    failure = _failure(records)
    failed_id = _failed_check(failure)
    checks = []
    for check_id, title, step in CHECKS:
        check = found.get(check_id)
        if check is None and check_id == failed_id and failure is not None:
            check = Check(
                check_id,
                title,
                FAILED,
                str(failure.get("message") or "failed"),
                _time(failure),
                str(failure.get("step")),
                {"task": _evidence(failure).get("task"), "host": failure.get("host")},
            )
        if check is None:
            check = Check(check_id, title, NOT_RUN, _not_run_reason(check_id, records), step=step)
        check.title = title
        checks.append(check)
    return checks


def _not_run_reason(check_id: str, records: Sequence[Mapping[str, Any]]) -> str:
    deploy = _last(records, "deploy")
    if (
        check_id == "migrations"
        and _last(records, "migrate") is None
        and deploy
        and deploy.get("outcome") == "ok"
    ):
        return "no migration tool is configured for this service"
    if check_id == "smoke" and deploy and deploy.get("outcome") == "ok":
        return "no smoke routes are configured"
    if check_id == "healthcheck" and deploy and deploy.get("outcome") == "ok":
        return "the service runs in a virtualenv (bluegreen_service_runtime): no image to check"
    if check_id == "pre_switch_signals":
        return "no pre-switch analysis in the journal"
    return "no evidence in the journal: the release stopped before this check, or skipped it"


# --- the report ------------------------------------------------------------------------


def _final(records: Sequence[Mapping[str, Any]]) -> dict | None:
    return _last(records, "release")


def decision(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What became of the release and why, from its final record and its analysis."""
    final = _final(records)
    ev = _evidence(final)
    outcome = ev.get("outcome") if final else None
    failure = _failure(records)
    analysis = _evidence(_last_analysis(records, "analysis")).get("decision")
    reason = (final or {}).get("message") or (
        "the release has not recorded its end: it is still running, or its controller died"
        " (the next release or rollback recovers it)"
    )
    return {
        "outcome": outcome or "unfinished",
        "summary": outcome_label(outcome) or "unfinished: no final record in the journal",
        "reason": reason,
        "failed_step": failure.get("step") if failure else None,
        "failed_message": failure.get("message") if failure else None,
        "analysis": dict(analysis) if isinstance(analysis, Mapping) else None,
    }


def rollback_advice(
    records: Sequence[Mapping[str, Any]], inventory: str, outcome: str
) -> dict[str, Any]:
    """The exact command that undoes the release, or why none is needed."""
    ev = _evidence(_final(records))
    previous, colour = ev.get("previous_colour"), ev.get("colour")
    command = f"bluegreen rollback -i {inventory}"
    playbook = f"ansible-playbook -i inventories/{inventory} playbooks/rollback.yml"
    if outcome in ("released", "unverified", "paused"):
        note = (
            f"sends traffic back from {colour} to {previous}, which stayed warm on the"
            " previous release; data is not touched"
        )
    elif outcome == "rolled_back":
        note = f"traffic was sent back to {previous} automatically; nothing left to roll back"
        command = playbook = None
    elif outcome in ("failed_before_switch", "unchanged"):
        note = f"traffic never moved (it is on {previous or colour}); nothing to roll back"
        command = playbook = None
    elif outcome == "held":
        note = (
            f"traffic never moved (it is on {previous}); `bluegreen abort -i {inventory}` ends "
            "the held release, `bluegreen promote` switches it"
        )
        command = playbook = None
    else:
        note = (
            f"check where traffic is first (`bluegreen status -i {inventory}`); if it is on"
            " the new colour, this sends it back"
        )
    return {"command": command, "playbook_command": playbook, "note": note}


def timeline(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "time": _time(r),
            "started_at": r.get("started_at"),
            "step": r.get("step"),
            "outcome": r.get("outcome"),
            "duration_s": r.get("duration_s"),
            "host": r.get("host"),
            "message": r.get("message"),
        }
        for r in records
    ]


def build_report(
    entries: Sequence[Mapping[str, Any]],
    release_id: str | None = None,
    inventory: str = "INVENTORY",
) -> dict[str, Any]:
    """The report of one release (default: the last), as the JSON document."""
    records = entries_of(entries, release_id)
    rid = str(records[0].get("release_id"))
    final = _final(records)
    ev = _evidence(final)
    deploy = _evidence(_last(records, "deploy"))
    preflight = _evidence(_last(records, "preflight"))
    policy = _evidence(_last(records, "policy"))
    chosen = decision(records)
    starts = [r.get("started_at") for r in records if r.get("started_at")]
    ends = [_time(r) for r in records if _time(r)]
    return {
        "schema": SCHEMA_VERSION,
        "release_id": rid,
        "inventory": inventory,
        "version": ev.get("version") or deploy.get("version") or preflight.get("version"),
        "colour": ev.get("colour") or deploy.get("colour"),
        "previous_colour": ev.get("previous_colour"),
        "started_at": min(starts) if starts else None,
        "finished_at": _time(final) if final else (max(ends) if ends else None),
        "duration_s": (final or {}).get("duration_s"),
        "approved_by": policy.get("approved_by"),
        "forced_window": policy.get("force_reason") if policy.get("forced") else None,
        "decision": chosen,
        "checks": [asdict(c) for c in readiness(records)],
        "signals": {
            "pre_switch": _analysis_signals(records, "pre_switch_analysis"),
            "post_switch": _analysis_signals(records, "analysis"),
            "switched_at": _time(_last(records, "switch"))
            if (_last(records, "switch") or {}).get("outcome") == "ok"
            else None,
        },
        "rollback": rollback_advice(records, inventory, chosen["outcome"]),
        "timeline": timeline(records),
    }


def _analysis_signals(records: Sequence[Mapping[str, Any]], step: str) -> dict | None:
    record = _last_analysis(records, step)
    ev = _evidence(record)
    if record is None or "signals" not in ev:
        return None
    series = list(ev.get("series") or [])
    decision = ev.get("decision") if isinstance(ev.get("decision"), Mapping) else {}
    return {
        "verdict": ev.get("verdict"),
        "requests": ev.get("requests"),
        # The decision's count, as the readiness check says it; the series when a record
        # has no decision (the series holds the windows that came with data only).
        "measurements": decision.get("measurements", len(series)),
        "signals": _signals_table(ev.get("signals") or {}),
        "comparison": _comparison(ev.get("comparison")),
        "series": series,
    }


def _comparison(comparison: Any) -> dict | None:
    """The last measurement's comparison with the old colour: both sides' figures and
    the verdict of each comparison signal (None when the analysis compared nothing)."""
    if not isinstance(comparison, Mapping):
        return None
    baseline = comparison.get("baseline") if isinstance(comparison.get("baseline"), Mapping) else {}
    new = comparison.get("new") if isinstance(comparison.get("new"), Mapping) else {}
    return {
        "verdict": comparison.get("verdict"),
        "old_colour": baseline.get("colour"),
        "before_switch": bool(baseline.get("before_switch")),
        "old": {
            "requests": baseline.get("requests"),
            "latency_p50": baseline.get("latency_p50"),
            "latency_p95": baseline.get("latency_p95"),
            "error_rate": baseline.get("error_rate"),
        },
        "new": {
            "latency_p50": new.get("latency_p50"),
            "latency_p95": new.get("latency_p95"),
            "error_rate": new.get("error_rate"),
        },
        "signals": _signals_table(
            {
                k: comparison[k]
                for k in ("latency_p50_ratio", "latency_p95_ratio", "error_rate_diff")
                if k in comparison
            }
        ),
    }


def comparison_lines(comparison: Mapping[str, Any]) -> list[str]:
    """What the comparison with the old colour says, as sentences both renderers show."""
    when = "before the switch" if comparison.get("before_switch") else "in the same windows"
    old, new = comparison["old"], comparison["new"]
    return [
        f"Compared with {comparison.get('old_colour') or 'the old colour'} {when}: "
        f"median {_value(old.get('latency_p50'), 's')}, p95 {_value(old.get('latency_p95'), 's')}"
        f" and error rate {_value(old.get('error_rate'), 'ratio')} over "
        f"{_value(old.get('requests'))} requests; the new colour: median "
        f"{_value(new.get('latency_p50'), 's')}, p95 {_value(new.get('latency_p95'), 's')}, "
        f"error rate {_value(new.get('error_rate'), 'ratio')}. "
        f"Verdict: {comparison.get('verdict')}."
    ]


# --- rendering -------------------------------------------------------------------------


def _value(value: Any, unit: str | None = None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if unit == "ratio":
            return f"{value * 100:.2f} %"
        if unit == "s":
            return f"{value * 1000:.0f} ms"
        value = f"{value:.4g}"
    return f"{value} {unit or ''}".strip()


def _md(text: Any) -> str:
    return str(text if text is not None else "-").replace("|", "\\|").replace("\n", " ")


STATUS_MARKS = {
    PASSED: "✅ passed",
    FAILED: "❌ failed",
    WARNING: "⚠️ warning",
    INCONCLUSIVE: "❔ inconclusive",
    SKIPPED: "⏭️ skipped",
    NOT_RUN: "⬜ not run",
}


def render_markdown(report: Mapping[str, Any]) -> str:
    lines = [
        f"# Release report: {report.get('version')} on {report.get('inventory')}",
        "",
        f"- Release: `{report['release_id']}`",
        f"- Decision: **{report['decision']['summary']}**",
        f"- Reason: {report['decision']['reason']}",
        f"- Colours: {report.get('previous_colour') or '-'} -> {report.get('colour') or '-'}",
        f"- Started: {report.get('started_at') or '-'}; "
        f"finished: {report.get('finished_at') or '-'}"
        + (f" ({report['duration_s']} s)" if report.get("duration_s") is not None else ""),
        f"- Approved by: {report.get('approved_by') or 'nobody (not required or not given)'}",
    ]
    if report.get("forced_window"):
        lines.append(f"- Release window forced: {report['forced_window']}")
    lines += ["", "## Readiness", "", "| check | status | evidence | time |", "|---|---|---|---|"]
    for check in report["checks"]:
        lines.append(
            f"| {_md(check['title'])} | {STATUS_MARKS.get(check['status'], check['status'])} "
            f"| {_md(check['summary'])} | {_md(check['time'])} |"
        )
    for phase, title in (("pre_switch", "before"), ("post_switch", "after")):
        lines += ["", f"## Golden signals {title} the switch", ""]
        block = report["signals"].get(phase)
        if not block:
            lines.append("Not run: no measurements in the journal.")
            continue
        lines += [
            f"Verdict: **{block.get('verdict')}** over {block.get('measurements')} "
            f"measurements ({_value(block.get('requests'))} requests in the last one).",
            "",
            "| signal | value | warning | critical | P0 | verdict | reason |",
            "|---|---|---|---|---|---|---|",
        ]
        comparison = block.get("comparison")
        rows = block["signals"] + (comparison["signals"] if comparison else [])
        for row in rows:
            unit = row.get("unit")
            lines.append(
                f"| {row['signal']} | {_value(row['value'], unit)} "
                f"| {_value(row['warning'], unit)} "
                f"| {_value(row['critical'], unit)} | {_value(row['p0_threshold'], unit)} "
                f"| {row['verdict']} | {_md(row['reason'])} |"
            )
        if comparison:
            lines += ["", *comparison_lines(comparison)]
    lines += ["", "## Timeline", "", "| time | step | outcome | duration | message |"]
    lines.append("|---|---|---|---|---|")
    for item in report["timeline"]:
        duration = f"{item['duration_s']} s" if item.get("duration_s") is not None else "-"
        lines.append(
            f"| {_md(item['time'])} | {item['step']} | {item['outcome']} | {duration} "
            f"| {_md(item['message'])} |"
        )
    rollback = report["rollback"]
    lines += ["", "## Rollback", ""]
    if rollback.get("command"):
        lines += [
            "```sh",
            rollback["command"],
            f"# or, without the CLI: {rollback['playbook_command']}",
            "```",
            "",
        ]
    lines.append(str(rollback["note"]))
    return "\n".join(lines) + "\n"


def render_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n"


# --- HTML ------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:72em;
color:#1d2430;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}
h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;margin:.5em 0}
th,td{text-align:left;vertical-align:top;padding:.3em .5em;border-bottom:1px solid #e6e6e6}
th{background:#f4f6f8}code,pre{font-family:ui-monospace,monospace;font-size:.92em}
pre{background:#f4f6f8;padding:.7em;overflow-x:auto}
.s{display:inline-block;padding:0 .5em;border-radius:.7em;font-weight:600;white-space:nowrap}
.passed,.ok{background:#d9f2df;color:#135b25}
.failed,.critical{background:#fbdcdc;color:#8a1010}
.warning{background:#fff0c2;color:#6b4e00}.inconclusive,.unfinished{background:#e8e0f7;color:#4b2a85}
.skipped,.not.run,.not_configured,.not_judged{background:#eceff2;color:#4a5561}
.ev{color:#3b4652;word-break:break-all}.meta td:first-child{width:12em;color:#5a6470}
svg text{font:11px system-ui,sans-serif;fill:#3b4652}
"""
# An outcome's badge is coloured by its tone in the contract (good, bad, neutral).
_TONE_STYLES = {
    "good": "background:#d9f2df;color:#135b25",
    "bad": "background:#fbdcdc;color:#8a1010",
    "neutral": "background:#eceff2;color:#4a5561",
}
_CSS += "".join(
    ",".join(f".{outcome}" for outcome in outcomes_of_tone(tone)) + f"{{{style}}}\n"
    for tone, style in _TONE_STYLES.items()
)

_POINT_COLOURS = {"ok": "#2e8b47", "warning": "#c99700", "critical": "#c62828"}


def _e(text: Any) -> str:
    return html.escape("-" if text is None else str(text), quote=True)


def _badge(status: str) -> str:
    return f'<span class="s {_e(status)}">{_e(status)}</span>'


def _epoch(text: Any) -> float | None:
    if isinstance(text, int | float):
        return float(text)
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def chart_points(report: Mapping[str, Any], signal: str) -> list[dict[str, Any]]:
    """The measurements of one signal before and after the switch: seconds relative to
    the switch, value, verdict and phase."""
    switched = _epoch(report["signals"].get("switched_at"))
    points = []
    for phase in ("pre_switch", "post_switch"):
        block = report["signals"].get(phase) or {}
        for item in block.get("series") or []:
            at = _epoch(item.get("at"))
            value = (item.get("values") or {}).get(signal)
            if at is None or not isinstance(value, int | float) or math.isnan(value):
                continue
            offset = at - switched if switched is not None else at
            points.append(
                {
                    "t": round(offset, 3),
                    "value": value,
                    "verdict": item.get("verdict"),
                    "phase": phase,
                }
            )
    return points


def _thresholds(report: Mapping[str, Any], signal: str) -> dict[str, Any]:
    for phase in ("post_switch", "pre_switch"):
        for row in (report["signals"].get(phase) or {}).get("signals") or []:
            if row["signal"] == signal:
                return row
    return {}


def render_svg_chart(
    report: Mapping[str, Any], signal: str, width: int = 420, height: int = 150
) -> str:
    """One small line chart: the signal per measurement, the switch as a vertical line,
    warning and critical thresholds as dashed lines."""
    points = chart_points(report, signal)
    limits = _thresholds(report, signal)
    unit = limits.get("unit")
    left, right, top, bottom = 56, 10, 18, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    title = f"{signal} ({unit})" if unit else signal
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
        f'<text x="{left}" y="12">{_e(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" '
        'fill="#fafbfc" stroke="#d0d5db"/>',
    ]
    if not points:
        parts.append(
            f'<text x="{left + 8}" y="{top + plot_h / 2}">'
            f"no measurements of {_e(signal)}</text></svg>"
        )
        return "".join(parts)
    thresholds = [
        (limits.get(k), colour)
        for k, colour in (("warning", "#c99700"), ("critical", "#c62828"))
        if isinstance(limits.get(k), int | float)
    ]
    values = [p["value"] for p in points] + [t for t, _ in thresholds]
    times = [p["t"] for p in points] + [0.0]
    v_min, v_max = min(0.0, *values), max(values)
    v_max = v_max if v_max > v_min else v_min + 1.0
    t_min, t_max = min(times), max(times)
    t_max = t_max if t_max > t_min else t_min + 1.0

    def x(t: float) -> float:
        return round(left + (t - t_min) / (t_max - t_min) * plot_w, 1)

    def y(v: float) -> float:
        return round(top + plot_h - (v - v_min) / (v_max - v_min) * plot_h, 1)

    for value, colour in thresholds:
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value)}" y2="{y(value)}" '
            f'stroke="{colour}" stroke-dasharray="4 3"/>'
        )
    if report["signals"].get("switched_at"):
        parts.append(
            f'<line x1="{x(0)}" x2="{x(0)}" y1="{top}" y2="{top + plot_h}" stroke="#1d2430"/>'
            f'<text x="{x(0) + 3}" y="{top + 11}">switch</text>'
        )
    path = " ".join(f"{x(p['t'])},{y(p['value'])}" for p in points)
    parts.append(f'<polyline points="{path}" fill="none" stroke="#3367d6" stroke-width="1.5"/>')
    for p in points:
        colour = _POINT_COLOURS.get(str(p["verdict"]), "#7a5cc2")
        parts.append(
            f'<circle cx="{x(p["t"])}" cy="{y(p["value"])}" r="3.5" fill="{colour}">'
            f"<title>{_e(p['phase'])} {p['t']:+.0f} s: {_e(_value(p['value'], unit))} "
            f"({_e(p['verdict'])})</title></circle>"
        )
    parts.append(
        f'<text x="2" y="{top + 9}">{_e(_value(v_max, unit))}</text>'
        f'<text x="2" y="{top + plot_h}">{_e(_value(v_min, unit))}</text>'
        f'<text x="{left}" y="{height - 8}">{t_min:+.0f} s</text>'
        f'<text x="{left + plot_w - 40}" y="{height - 8}">{t_max:+.0f} s</text></svg>'
    )
    return "".join(parts)


def render_html(report: Mapping[str, Any]) -> str:
    """One HTML file with its CSS and charts inline: no external assets, readable offline."""
    chosen = report["decision"]
    meta = [
        ("release", f"<code>{_e(report['release_id'])}</code>"),
        ("decision", f"{_badge(chosen['outcome'])} {_e(chosen['summary'])}"),
        ("reason", _e(chosen["reason"])),
        ("colours", f"{_e(report.get('previous_colour'))} &rarr; {_e(report.get('colour'))}"),
        ("started / finished", f"{_e(report.get('started_at'))} / {_e(report.get('finished_at'))}"),
        ("approved by", _e(report.get("approved_by") or "nobody (not required or not given)")),
    ]
    if report.get("forced_window"):
        meta.append(("window forced", _e(report["forced_window"])))
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Release {_e(report.get('version'))} on {_e(report.get('inventory'))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Release report: {_e(report.get('version'))} on {_e(report.get('inventory'))}</h1>",
        '<table class="meta">',
        *(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in meta),
        "</table>",
        "<h2>Readiness</h2>",
        '<table id="readiness"><tr><th>check</th><th>status</th><th>evidence</th>'
        "<th>time</th></tr>",
    ]
    for check in report["checks"]:
        out.append(
            f'<tr data-check="{_e(check["id"])}" data-status="{_e(check["status"])}">'
            f"<td>{_e(check['title'])}</td><td>{_badge(check['status'])}</td>"
            f'<td class="ev">{_e(check["summary"])}</td><td>{_e(check["time"])}</td></tr>'
        )
    out.append("</table>")
    out.append("<h2>Golden signals before and after the switch</h2>")
    out.append('<div id="charts">')
    out += [render_svg_chart(report, signal) for signal in CHART_SIGNALS]
    out.append("</div>")
    for phase, title in (("pre_switch", "before"), ("post_switch", "after")):
        block = report["signals"].get(phase)
        out.append(f"<h2>Signals {title} the switch</h2>")
        if not block:
            out.append(f"<p>{_badge(NOT_RUN)} no measurements in the journal.</p>")
            continue
        out.append(
            f"<p>Verdict {_badge(str(block.get('verdict')))} over "
            f"{block.get('measurements')} measurements.</p>"
            f'<table id="signals-{phase}"><tr><th>signal</th><th>value</th><th>warning</th>'
            "<th>critical</th><th>P0</th><th>verdict</th><th>reason</th></tr>"
        )
        comparison = block.get("comparison")
        for row in block["signals"] + (comparison["signals"] if comparison else []):
            unit = row.get("unit")
            out.append(
                f"<tr><td>{_e(row['signal'])}</td><td>{_e(_value(row['value'], unit))}</td>"
                f"<td>{_e(_value(row['warning'], unit))}</td>"
                f"<td>{_e(_value(row['critical'], unit))}</td>"
                f"<td>{_e(_value(row['p0_threshold'], unit))}</td>"
                f"<td>{_badge(str(row['verdict']))}</td>"
                f'<td class="ev">{_e(row["reason"])}</td></tr>'
            )
        out.append("</table>")
        if comparison:
            out += [
                f'<p class="comparison">{_e(line)}</p>' for line in comparison_lines(comparison)
            ]
    out.append("<h2>Timeline</h2>")
    out.append(
        '<table id="timeline"><tr><th>time</th><th>step</th><th>outcome</th><th>duration</th>'
        "<th>message</th></tr>"
    )
    for item in report["timeline"]:
        duration = f"{item['duration_s']} s" if item.get("duration_s") is not None else "-"
        out.append(
            f"<tr><td>{_e(item['time'])}</td><td>{_e(item['step'])}</td>"
            f"<td>{_badge(str(item['outcome']))}</td><td>{_e(duration)}</td>"
            f'<td class="ev">{_e(item["message"])}</td></tr>'
        )
    out.append("</table>")
    rollback = report["rollback"]
    out.append("<h2>Rollback</h2>")
    if rollback.get("command"):
        out.append(
            f'<pre id="rollback-command">{_e(rollback["command"])}\n'
            f"# or, without the CLI: {_e(rollback['playbook_command'])}</pre>"
        )
    out.append(f"<p>{_e(rollback['note'])}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


RENDERERS = {"md": render_markdown, "html": render_html, "json": render_json}


def render(report: Mapping[str, Any], fmt: str) -> str:
    if fmt not in RENDERERS:
        raise InputError(f"unknown report format {fmt!r}; use one of {', '.join(REPORT_FORMATS)}")
    return RENDERERS[fmt](report)


# --- files -----------------------------------------------------------------------------


def read_entries(path: Path) -> list[dict[str, Any]]:
    """Journal entries from a JSON-lines file; a line cut short by a crash is skipped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise InputError(
            f"journal {path} does not exist; give one with --journal FILE or release first"
        ) from None
    entries = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            entries.append(record)
    return entries


def controller_journal(state_dir: Path, inventory: str, app: str | None = None) -> Path:
    """The controller's copy of the journal: state/journal/<inventory>/<app>.jsonl."""
    folder = state_dir / "journal" / inventory
    if app:
        return folder / f"{app}.jsonl"
    found = sorted(folder.glob("*.jsonl"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise InputError(
            f"no journal for inventory {inventory!r} under {folder}; release first, or give"
            " --journal FILE (for example a copy of the one on the primary load balancer)"
        )
    apps = ", ".join(p.stem for p in found)
    raise InputError(f"{folder} holds journals of several services ({apps}); name one with --app")


def write_reports(
    entries: Sequence[Mapping[str, Any]],
    directory: Path,
    release_id: str | None = None,
    inventory: str | None = None,
) -> list[Path]:
    """Write <release_id>.md, .html and .json of a release (default: the last) into
    ``directory`` (state/reports/<inventory>/); the inventory defaults to its name."""
    directory = Path(directory)
    report = build_report(entries, release_id, inventory or directory.name)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in REPORT_FORMATS:
        path = directory / f"{report['release_id']}.{fmt}"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(render(report, fmt), encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written
