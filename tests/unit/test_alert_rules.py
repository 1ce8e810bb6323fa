"""The Prometheus alerting rules and scrape configuration of roles/bluegreen_monitoring.

The role renders them with Ansible (entry points `rules` and `config`) from the same
thresholds file the release analysis reads; here they are rendered the same way, on
localhost without a Prometheus (bluegreen_monitoring_reload false), and checked with
promtool, which Debian's `prometheus` package ships.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils.golden_signals import build_settings, prometheus_queries

ROOT = Path(__file__).resolve().parents[2]
THRESHOLDS_FILE = ROOT / "roles" / "bluegreen_analysis" / "files" / "thresholds.yml"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
LEVEL_SEVERITY = {"p0": "p0", "critical": "p1", "warning": "warning"}
SIGNAL_ALERT = {
    "targets_down": "BluegreenTargetsDown",
    "error_rate": "BluegreenErrorRate",
    "latency_p95": "BluegreenLatencyP95",
    "latency_p99": "BluegreenLatencyP99",
    "cpu": "BluegreenCpuBusy",
    "memory": "BluegreenMemoryUsed",
    "disk": "BluegreenDiskUsed",
    "db_connections": "BluegreenDbConnections",
}

PLAYBOOK = """
- name: Render {entry} of bluegreen_monitoring
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Render {entry}
      ansible.builtin.include_role:
        name: bluegreen_monitoring
        tasks_from: {entry}
"""

# Hosts are only read from the inventory, never contacted: the play runs on localhost.
INVENTORY = {
    "all": {
        "children": {
            "lb": {"hosts": {"lb1": {}}},
            "app": {
                "hosts": {
                    "app-blue": {"bluegreen_service_colours": ["blue"]},
                    "app-green": {"bluegreen_service_colours": ["green"]},
                }
            },
            "db": {"hosts": {"db1": {}}},
            "monitoring": {"hosts": {"lb1": {}}},
        }
    }
}

Render = Callable[..., Path]


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip(
            "promtool is not installed: it comes with Debian's prometheus package "
            "(apt-get install prometheus, or make deps)"
        )
    return path


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory, promtool: str) -> Render:
    """Render an entry point of the role with `extra` vars; the directory it wrote to.

    promtool is required because the role's templates validate with it before writing.
    """

    def run(entry: str, inventory: dict[str, Any] | None = None, **extra: Any) -> Path:
        out = tmp_path_factory.mktemp(entry)
        (out / "playbook.yml").write_text(PLAYBOOK.format(entry=entry))
        (out / "inventory.yml").write_text(json.dumps(inventory or {"all": {}}))
        variables = {
            "bluegreen_monitoring_reload": False,
            "bluegreen_monitoring_rules_dir": str(out / "rules"),
            "bluegreen_monitoring_config_file": str(out / "prometheus.yml"),
            "ansible_python_interpreter": sys.executable,
            **extra,
        }
        (out / "vars.json").write_text(json.dumps(variables))
        result = subprocess.run(
            [
                str(ANSIBLE_PLAYBOOK),
                "-i",
                str(out / "inventory.yml"),
                "-e",
                f"@{out / 'vars.json'}",
                str(out / "playbook.yml"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return out

    return run


def rules_of(out: Path) -> list[dict[str, Any]]:
    document = yaml.safe_load((out / "rules" / "bluegreen.rules.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def find_rule(rules: list[dict[str, Any]], alert: str, severity: str) -> dict[str, Any] | None:
    found = [r for r in rules if r["alert"] == alert and r["labels"]["severity"] == severity]
    assert len(found) <= 1, found
    return found[0] if found else None


def compared_with(rule: dict[str, Any]) -> float:
    """The number the rule's value is compared with (`... > 0.05`, before any `and`)."""
    match = re.search(r" > ([-+0-9.eE]+)(?: and |$)", rule["expr"])
    assert match, rule["expr"]
    return float(match.group(1))


def scrape_jobs(out: Path) -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((out / "prometheus.yml").read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


def module_queries(exclude_routes: list[str]) -> dict[str, str]:
    """The golden_signals module's PromQL for job="sampleapp" over a 1m window."""
    settings = build_settings(
        {
            "source": "prometheus",
            "prometheus_url": "http://127.0.0.1:9090",
            "selector": 'job="sampleapp"',
            "window": 60,
            "min_requests": 50,
            "latency_metric": "http_request_duration_seconds",
            "requests_metric": "http_requests_total",
            "route_label": "route",
            "status_label": "status",
            "exclude_routes": exclude_routes,
            "error_status_regex": "5..",
        }
    )
    return prometheus_queries(settings, 60)


def check_rules(promtool: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, "check", "rules", str(out / "rules" / "bluegreen.rules.yml")],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def default_rules(render: Render) -> Path:
    return render("rules")


def test_rendered_rules_pass_promtool_check_rules(promtool: str, default_rules: Path) -> None:
    result = check_rules(promtool, default_rules)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_level_of_the_thresholds_file_is_a_rule_with_its_value(default_rules: Path) -> None:
    thresholds = yaml.safe_load(THRESHOLDS_FILE.read_text())
    rules = rules_of(default_rules)
    for signal, alert in SIGNAL_ALERT.items():
        for level, severity in LEVEL_SEVERITY.items():
            value = thresholds[signal].get(level)
            rule = find_rule(rules, alert, severity)
            if value is None:
                assert rule is None, f"{signal}.{level} is null but has a rule: {rule}"
            else:
                assert rule is not None, f"no {severity} rule for {signal}.{level}"
                assert compared_with(rule) == value, (signal, level, rule["expr"])
                assert rule["labels"]["signal"] == signal


def test_error_rate_p0_rule_rolls_back_above_five_percent(default_rules: Path) -> None:
    rule = find_rule(rules_of(default_rules), "BluegreenErrorRate", "p0")
    assert rule is not None
    assert compared_with(rule) == 0.05
    assert rule["labels"] == {"severity": "p0", "app": "sampleapp", "signal": "error_rate"}


def test_service_down_is_a_p0_rule_on_every_target_of_a_colour(default_rules: Path) -> None:
    rule = find_rule(rules_of(default_rules), "BluegreenServiceDown", "p0")
    assert rule is not None
    assert rule["expr"] == 'max by (colour) (up{job="sampleapp"}) == 0'


def test_request_rules_use_the_golden_signals_module_queries_per_colour(
    default_rules: Path,
) -> None:
    module = module_queries(["/health", "/metrics"])
    rules = rules_of(default_rules)
    p95 = find_rule(rules, "BluegreenLatencyP95", "p0")
    assert p95 is not None
    assert p95["expr"].startswith(
        module["latency_p95"].replace("sum by (le)", "sum by (le, colour)") + " > 2.0 and "
    )
    error_rate = find_rule(rules, "BluegreenErrorRate", "p1")
    assert error_rate is not None
    errors, requests = re.findall(r"http_requests_total\{[^}]*\}\[1m\]", module["error_rate"])
    per_colour = f"sum by (colour) (rate({errors})) / sum by (colour) (rate({requests}))"
    assert per_colour in error_rate["expr"]
    assert 'route!~"/health|/metrics"' in requests


def test_an_override_changes_the_rendered_rules(render: Render, promtool: str) -> None:
    out = render(
        "rules",
        bluegreen_monitoring_thresholds={"error_rate": {"p0": 0.1}, "cpu": {"p0": None}},
    )
    rules = rules_of(out)
    error_p0 = find_rule(rules, "BluegreenErrorRate", "p0")
    error_p1 = find_rule(rules, "BluegreenErrorRate", "p1")
    assert error_p0 is not None and compared_with(error_p0) == 0.1
    assert error_p1 is not None and compared_with(error_p1) == 0.05, "the file's critical stays"
    assert find_rule(rules, "BluegreenCpuBusy", "p0") is None, "null switches the level off"
    assert find_rule(rules, "BluegreenCpuBusy", "p1") is not None
    assert check_rules(promtool, out).returncode == 0


def test_excluded_routes_are_escaped_as_the_module_escapes_them(
    render: Render, promtool: str
) -> None:
    routes = ["/v1.0/health", '/say"hi"', "/metrics"]
    out = render("rules", bluegreen_monitoring_exclude_routes=routes)
    module_p95 = module_queries(routes)["latency_p95"]
    rule = find_rule(rules_of(out), "BluegreenLatencyP95", "p1")
    assert rule is not None
    assert rule["expr"].startswith(module_p95.replace("sum by (le)", "sum by (le, colour)"))
    assert check_rules(promtool, out).returncode == 0


def test_scrape_config_labels_each_colour_and_scrapes_every_exporter(
    render: Render, promtool: str
) -> None:
    out = render("config", inventory=INVENTORY)
    config_file = out / "prometheus.yml"
    result = subprocess.run(
        [promtool, "check", "config", str(config_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = scrape_jobs(out)
    app = {group["targets"][0]: group["labels"] for group in jobs["sampleapp"]["static_configs"]}
    assert app == {
        "app-blue:8001": {
            "app": "sampleapp",
            "colour": "blue",
            "host": "app-blue",
            "instance": "app-blue:8001",
        },
        "app-green:8002": {
            "app": "sampleapp",
            "colour": "green",
            "host": "app-green",
            "instance": "app-green:8002",
        },
    }
    nodes = [group["targets"][0] for group in jobs["node"]["static_configs"]]
    assert sorted(nodes) == ["app-blue:9100", "app-green:9100", "db1:9100", "lb1:9100"]
    assert [group["targets"] for group in jobs["postgres"]["static_configs"]] == [["db1:9187"]]


def test_scrape_config_has_no_postgres_job_without_database_hosts(render: Render) -> None:
    inventory = json.loads(json.dumps(INVENTORY))
    inventory["all"]["children"]["db"] = {"hosts": {}}
    out = render("config", inventory=inventory)
    assert list(scrape_jobs(out)) == ["prometheus", "sampleapp", "node"]
