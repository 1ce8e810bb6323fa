"""The outcome of a command and the line that explains it: module_utils/release_outcome, the
release_outcome module, and the other messages of issue 15 (finding 5) that say where
users' traffic is: the pre-switch analysis failure and the data rollback.

Every message here is matched word for word: the journal, the report, the notifications
and the CLI show them, and each must say only what happened.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import release_outcome
import yaml
from ansible.module_utils.data_rollback import downgrade_message, rolled_back_message
from ansible.module_utils.golden_signals import (
    Sample,
    TargetSample,
    analyse_scrape,
    build_settings,
    merge_thresholds,
    parse_exposition,
)
from ansible.module_utils.release_outcome import (
    CommandFacts,
    Failure,
    facts_from_params,
    failure_outcome,
    release_message,
    unverified_reason,
)
from ansible.module_utils.release_outcome import release_outcome as decide_outcome
from ansible.module_utils.synthetic_load import Outcome, load_step, summarise
from golden_signals import ARGUMENT_SPEC as GOLDEN_SIGNALS_SPEC

ROOT = Path(__file__).resolve().parents[2]

DEPLOY = Failure("deploy", "app-green", "green is not healthy after 60 s")
SWITCH = Failure("switch", "lb1", "nginx -t failed")
ANALYSIS = Failure("analysis", "localhost", "post-switch analysis of green failed (critical): P0")
PASSED = {"decision": {"action": "pass", "verdict": "ok", "reason": "3 measurements ok"}}
KEPT = {"decision": {"action": "fail", "verdict": "inconclusive", "reason": "no traffic"}}
COLOURS: dict[str, Any] = {"live_colour": "blue", "idle_colour": "green", "version": "2.0.0"}
RECOVERED = "interrupted release R0 of 1.9.0 rolled back: traffic never left blue"


def facts(command: str = "release", **values: Any) -> CommandFacts:
    return CommandFacts(command=command, **{**COLOURS, "release_id": "R1", **values})


# (facts, outcome, message): every branch of the decision tree, with today's wording.
CASES: dict[str, tuple[CommandFacts, str, str]] = {
    "released, analysis off": (
        facts(),
        "unverified",
        "2.0.0 is live on green but UNVERIFIED: its post-switch analysis is off; a rollback "
        "goes back to it only with --allow-unverified; blue stays warm for a rollback",
    ),
    "released, analysis passed": (
        facts(analysis=PASSED),
        "released",
        "2.0.0 is live on green; blue stays warm for a rollback; "
        "post-switch analysis passed (ok): 3 measurements ok",
    ),
    "released, analysis inconclusive and kept by policy": (
        facts(analysis=KEPT),
        "unverified",
        "2.0.0 is live on green but UNVERIFIED: its post-switch analysis was inconclusive: "
        "no traffic; a rollback goes back to it only with --allow-unverified; blue stays "
        "warm for a rollback",
    ),
    "released, analysis inconclusive and paused by policy": (
        facts(analysis=KEPT, paused=True),
        "paused",
        "2.0.0 is live on green but its post-switch analysis was inconclusive: no traffic; "
        "the release is PAUSED for a person, holding the lock: `bluegreen promote` keeps it, "
        "`bluegreen rollback` sends traffic back; blue stays warm for a rollback",
    ),
    "paused asked, but the analysis passed": (
        facts(analysis=PASSED, paused=True),
        "released",
        "2.0.0 is live on green; blue stays warm for a rollback; "
        "post-switch analysis passed (ok): 3 measurements ok",
    ),
    "released after recovering an interrupted release": (
        facts(recover_action="close", recover_message=RECOVERED, analysis=PASSED),
        "released",
        "2.0.0 is live on green; blue stays warm for a rollback; post-switch analysis "
        f"passed (ok): 3 measurements ok (before this release: {RECOVERED})",
    ),
    "released with a known previous version": (
        facts(live_version="1.0.0", analysis=PASSED),
        "released",
        "2.0.0 is live on green; blue stays warm for a rollback; "
        "post-switch analysis passed (ok): 3 measurements ok",
    ),
    "version live already": (
        facts(unchanged=True),
        "unchanged",
        "2.0.0 is live on blue already; nothing to do",
    ),
    "deploy failed": (
        facts(failure=DEPLOY),
        "failed_before_switch",
        "deploy failed on app-green: green is not healthy after 60 s -- traffic stayed on blue",
    ),
    "deploy failed, previous version known": (
        facts(failure=DEPLOY, live_version="1.0.0"),
        "failed_before_switch",
        "deploy failed on app-green: green is not healthy after 60 s -- traffic stayed on blue",
    ),
    "deploy failed after its migration": (
        facts(failure=DEPLOY, schema_moved={"previous": "06884b17c50f", "current": "c941aaca38c2"}),
        "failed_before_switch",
        "deploy failed on app-green: green is not healthy after 60 s -- traffic stayed on blue; "
        "its migration stays applied (schema 06884b17c50f -> c941aaca38c2), so blue now runs "
        "on the new schema: fix forward with a new release, or take the schema back with "
        "`bluegreen rollback --with-data`",
    ),
    "deploy failed after a recovery": (
        facts(failure=DEPLOY, recover_action="restore_idle", recover_message=RECOVERED),
        "failed_before_switch",
        "deploy failed on app-green: green is not healthy after 60 s -- traffic stayed on blue"
        f" (before this release: {RECOVERED})",
    ),
    "switch cut short, sent back": (
        facts(failure=SWITCH, switched_back=True),
        "failed_before_switch",
        "switch failed on lb1: nginx -t failed -- traffic stayed on blue",
    ),
    "switch cut short, send-back failed": (
        facts(failure=SWITCH, switched_back=False),
        "failed",
        "switch failed on lb1: nginx -t failed -- traffic may be split between colours; "
        "run `bluegreen status`",
    ),
    "analysis failed, traffic back": (
        facts(failure=ANALYSIS, switched=True, switched_back=True),
        "rolled_back",
        f"analysis failed on localhost: {ANALYSIS.msg} -- traffic is back on blue, "
        "2.0.0 is marked bad",
    ),
    "analysis failed, send-back failed": (
        facts(failure=ANALYSIS, switched=True, switched_back=False),
        "failed",
        f"analysis failed on localhost: {ANALYSIS.msg} -- traffic may be split between "
        "colours; run `bluegreen status`",
    ),
    "failed after the switch, send-back not recorded": (
        facts(failure=ANALYSIS, switched=True),
        "failed",
        f"analysis failed on localhost: {ANALYSIS.msg} -- traffic may be split between "
        "colours; run `bluegreen status`",
    ),
    "failure without step, host or message": (
        facts(failure=Failure.from_dict({}), switched=True),
        "failed",
        "a step failed on ?:  -- traffic may be split between colours; run `bluegreen status`",
    ),
    "rollback": (
        facts("rollback", success_outcome="rolled_back"),
        "rolled_back",
        "traffic is back on green; blue stays warm",
    ),
    "rollback to the colour that is live": (
        facts("rollback", success_outcome="rolled_back", unchanged=True),
        "unchanged",
        "traffic is on blue already",
    ),
    "rollback that finished an interrupted release": (
        facts(
            "rollback",
            success_outcome="rolled_back",
            recover_action="rollback",
            recover_message=RECOVERED,
        ),
        "rolled_back",
        RECOVERED,
    ),
    "rollback after closing an interrupted release": (
        facts(
            "rollback", success_outcome="rolled_back", recover_action="close", recover_message="ok"
        ),
        "rolled_back",
        "traffic is back on green; blue stays warm (before this rollback: ok)",
    ),
    "rollback of a stopped command that had done nothing": (
        facts("rollback", success_outcome="rolled_back", recover_only=True, unchanged=True),
        "unchanged",
        "nothing to undo: the stopped command had not taken the lock or changed anything",
    ),
    "data rollback": (
        facts("rollback", success_outcome="rolled_back", success_message="schema downgraded"),
        "rolled_back",
        "schema downgraded",
    ),
    "rollback whose switch failed": (
        facts("rollback", success_outcome="rolled_back", failure=SWITCH, switched_back=True),
        "failed_before_switch",
        "switch failed on lb1: nginx -t failed -- traffic stayed on blue",
    ),
    "backup": (
        facts("backup", success_outcome="backed_up"),
        "backed_up",
        "snapshot R1 taken and verified",
    ),
    "backup failed": (
        facts("backup", success_outcome="backed_up", failure=Failure("backup", "db1", "disk")),
        "failed_before_switch",
        "backup failed on db1: disk -- traffic stayed on blue",
    ),
    "restore": (
        facts("restore", success_outcome="restored", success_message="database restored"),
        "restored",
        "database restored",
    ),
    # Issue 15, finding 5: nothing was serving before a first release.
    "first release failed before the switch": (
        facts(failure=DEPLOY, live_version=""),
        "failed_before_switch",
        "deploy failed on app-green: green is not healthy after 60 s -- nothing was serving "
        "before this release and nothing was switched",
    ),
    "first release: switch failed and sent back": (
        facts(failure=SWITCH, switched_back=True, live_version=""),
        "failed_before_switch",
        "switch failed on lb1: nginx -t failed -- nothing was serving before this release "
        "and nothing was switched",
    ),
    "first release, analysis off": (
        facts(live_version=""),
        "unverified",
        "2.0.0 is live on green but UNVERIFIED: its post-switch analysis is off; a rollback "
        "goes back to it only with --allow-unverified; there is no previous release to "
        "roll back to",
    ),
    "first release released, analysis passed": (
        facts(live_version="", analysis=PASSED),
        "released",
        "2.0.0 is live on green; there is no previous release to roll back to; "
        "post-switch analysis passed (ok): 3 measurements ok",
    ),
    "first release: send-back failed": (
        facts(failure=SWITCH, switched_back=False, live_version=""),
        "failed",
        "switch failed on lb1: nginx -t failed -- traffic may be split between colours; "
        "run `bluegreen status`",
    ),
}


@pytest.mark.parametrize(("given", "outcome", "message"), CASES.values(), ids=CASES.keys())
def test_each_failure_point_has_its_outcome_and_message(
    given: CommandFacts, outcome: str, message: str
) -> None:
    assert decide_outcome(given) == outcome
    assert release_message(given, outcome) == message


@pytest.mark.parametrize(
    ("switched", "switched_back", "outcome"),
    [
        (False, None, "failed_before_switch"),
        (False, True, "failed_before_switch"),
        (False, False, "failed"),
        (True, None, "failed"),
        (True, True, "rolled_back"),
        (True, False, "failed"),
    ],
)
def test_a_failure_is_rolled_back_only_when_traffic_came_back(
    switched: bool, switched_back: bool | None, outcome: str
) -> None:
    assert failure_outcome(switched, switched_back) == outcome


def test_a_first_release_claims_no_old_colour() -> None:
    for given in (facts(live_version=""), facts(failure=DEPLOY, live_version="")):
        message = release_message(given, decide_outcome(given))
        assert "stays warm" not in message
        assert "stayed on" not in message


# --- the module ------------------------------------------------------------------------


def module_args(**values: Any) -> dict[str, Any]:
    """The arguments finish.yml passes; omitted ones are left out as `default(omit)` does."""
    return {"command": "release", "release_id": "R1", **COLOURS, **values}


def test_module_decides_a_failed_first_release(run_module) -> None:
    failure = {"step": "deploy", "host": "app-green", "task": "Wait", "msg": DEPLOY.msg}

    result = run_module(release_outcome.main, module_args(failure=failure, live_version=""))

    assert result["changed"] is False
    assert result["outcome"] == "failed_before_switch"
    assert result["message"] == CASES["first release failed before the switch"][2]


def test_module_keeps_todays_wording_when_the_live_version_is_unknown(run_module) -> None:
    result = run_module(release_outcome.main, module_args(live_version=None, analysis=PASSED))

    assert result["outcome"] == "released"
    assert result["message"] == CASES["released, analysis passed"][2]


def test_module_decides_the_same_in_check_mode(run_module) -> None:
    args = module_args(failure={"step": "switch", "host": "lb1", "msg": "nginx -t failed"})

    result = run_module(release_outcome.main, args, check_mode=True)

    assert (result["changed"], result["outcome"]) == (False, "failed_before_switch")


def test_module_refuses_an_unknown_command(run_module) -> None:
    result = run_module(release_outcome.main, module_args(command="deploy"))

    assert result["failed"]
    assert "command" in result["msg"]


def test_params_without_optional_values_are_the_defaults() -> None:
    given = facts_from_params({"command": "backup", "release_id": None, "failure": None})

    assert given == CommandFacts(command="backup")


def test_examples_and_return_are_valid_yaml() -> None:
    examples = yaml.safe_load(release_outcome.EXAMPLES)
    returned = yaml.safe_load(release_outcome.RETURN)

    assert all(
        set(task["release_outcome"]) <= set(release_outcome.ARGUMENT_SPEC) for task in examples
    )
    assert returned.keys() == {"outcome", "message"}


def test_finish_passes_every_fact_and_reads_the_live_version_as_unknown_by_default() -> None:
    tasks = yaml.safe_load((ROOT / "roles/bluegreen_release/tasks/finish.yml").read_text())
    args = named(tasks, "Decide and explain the outcome")["release_outcome"]

    assert args.keys() == release_outcome.ARGUMENT_SPEC.keys()
    assert args["live_version"] == "{{ bluegreen_release_live_version | default(none) }}"


# --- messages built in playbooks and roles ----------------------------------------------


# Ansible's templating is controller code: importing it here would switch every later
# in-process module run of this pytest process to controller mode (module warnings would
# go to the display instead of the result), so templates render in a child process.
_RENDER = """
import json, sys
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

def trusted(value):
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [trusted(item) for item in value]
    return value

request = json.load(sys.stdin)
result = Templar(loader=DataLoader(), variables=trusted(request["variables"])).template(
    trust_as_template(request["template"]))
print(json.dumps(result))
"""


def render(template: str, variables: dict[str, Any]) -> Any:
    """`template` rendered by Ansible with `variables`, whose strings are templates too."""
    completed = subprocess.run(
        [sys.executable, "-c", _RENDER],
        input=json.dumps({"template": template, "variables": variables}),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout)


def named(entries: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(entry for entry in entries if entry.get("name") == name)


GREEN = "http://app-green:8002"
BLUE = "http://app-blue:8001"


def load_of(answers: dict[str, list[int | None]]) -> dict[str, Any]:
    """The synthetic_load summary of a step whose servers gave these statuses (None: none)."""
    step = load_step(
        {
            "targets": list(answers),
            "routes": [{"path": "/"}],
            "rate": 10,
            "concurrency": 4,
            "duration": 5,
            "timeout": 10,
        }
    )
    outcomes = [
        Outcome(target, step.routes[0], 0.1 * index, 0.01, status, None if status else "Timeout")
        for target, statuses in answers.items()
        for index, status in enumerate(statuses)
    ]
    return summarise(step, outcomes, 0.0, 5.0)


def signals_of_green_without_metrics() -> dict[str, Any]:
    """What golden_signals says of a colour whose /metrics answers 404 (no service counts)."""
    url = f"{GREEN}/metrics"
    params = {name: spec.get("default") for name, spec in GOLDEN_SIGNALS_SPEC.items()}
    settings = build_settings({**params, "source": "scrape", "targets": [url], "min_requests": 20})
    start, end = Sample("scrape", 100.0), Sample("scrape", 105.0)
    start.groups["targets"] = {url: TargetSample(100.0, None, "HTTP 404")}
    end.groups["targets"] = {url: TargetSample(105.0, None, "HTTP 404")}
    thresholds = merge_thresholds({}, {}, "thresholds")
    return analyse_scrape(settings, thresholds, start, end).as_dict()


def signals_of_green_with_metrics() -> dict[str, Any]:
    url = f"{GREEN}/metrics"
    params = {name: spec.get("default") for name, spec in GOLDEN_SIGNALS_SPEC.items()}
    settings = build_settings({**params, "source": "scrape", "targets": [url], "min_requests": 20})
    line = 'http_requests_total{method="GET",route="/",status="%s"} %d\n'
    start, end = Sample("scrape", 100.0), Sample("scrape", 105.0)
    start.groups["targets"] = {url: TargetSample(100.0, parse_exposition(line % ("200", 0)))}
    end.groups["targets"] = {
        url: TargetSample(105.0, parse_exposition(line % ("200", 30) + line % ("500", 20)))
    }
    thresholds = merge_thresholds({}, {}, "thresholds")
    return analyse_scrape(settings, thresholds, start, end).as_dict()


def pre_switch_failure(result: dict[str, Any]) -> str:
    """The message of the task that stops a release on a bad pre-switch analysis."""
    tasks = yaml.safe_load((ROOT / "roles/bluegreen_analysis/tasks/pre_switch.yml").read_text())
    task = named(tasks, "Stop the release before the switch when the new colour's signals are bad")
    variables = {
        **task["vars"],
        "hostvars": {"localhost": {"bluegreen_analysis_pre_switch_result": result}},
        "bluegreen_service_servers": {"blue": ["app-blue:8001"], "green": ["app-green:8002"]},
        "bluegreen_analysis_metrics_path": "/metrics",
    }
    return render(task["ansible.builtin.fail"]["msg"], variables)


CRITICAL = {"action": "fail", "verdict": "critical", "reason": "measurement 1 tripped a P0 rule"}


def test_pre_switch_failure_counts_the_answers_the_load_step_saw() -> None:
    signals = signals_of_green_without_metrics()
    result = {
        "colour": "green",
        "compared_with": None,
        "decision": CRITICAL,
        "requests": signals["requests"],
        "window_s": signals["window_s"],
        "signals": signals["signals"],
        "comparison": None,
        "load": load_of({GREEN: [200] * 50}),
    }

    message = pre_switch_failure(result)

    assert "answered 0 requests" not in message
    assert message.startswith("pre-switch analysis of green failed (critical): measurement 1")
    assert message.endswith(
        "green answered 50 of the 50 requests the load step sent it in 5.0 s (HTTP 200: 50). "
        "The service's /metrics on green could not be read "
        f"({GREEN}/metrics: HTTP 404), so its own counts of requests, errors and latency "
        "are missing. Traffic was not switched."
    )


def test_pre_switch_failure_leaves_the_compared_colour_out_of_the_counts() -> None:
    signals = signals_of_green_with_metrics()
    result = {
        "colour": "green",
        "compared_with": "blue",
        "decision": CRITICAL,
        "requests": signals["requests"],
        "window_s": signals["window_s"],
        "signals": signals["signals"],
        "comparison": None,
        "load": load_of({GREEN: [200] * 30 + [500] * 15 + [None] * 5, BLUE: [200] * 50}),
    }

    message = pre_switch_failure(result)

    assert "could not be read" not in message
    assert message.endswith(
        "green answered 45 of the 50 requests the load step sent it in 5.0 s "
        "(HTTP 200: 30, 500: 15); 5 got no answer (compared with blue). Traffic was not switched."
    )


def data_rollback_message(mode: str, downgrade: dict[str, str]) -> str:
    """The success message of `bluegreen rollback --with-data` (module_utils/data_rollback)."""
    return rolled_back_message(mode, "blue", "1.0.0", "green", "2.0.0", "a1b2", downgrade)


DJANGO_APPS = [f"app{n:02}.0001_initial" for n in range(21)]


def test_data_rollback_names_only_the_migrations_it_undid() -> None:
    downgrade = {
        "previous": ",".join([*DJANGO_APPS, "wagtailcore.0094_alter_page_locale"]),
        "current": ",".join([*DJANGO_APPS, "wagtailcore.0093_uploadedfile"]),
    }

    message = data_rollback_message("downgrade", downgrade)

    assert message == (
        "traffic is back on blue (1.0.0); schema downgraded from "
        "wagtailcore.0094_alter_page_locale to wagtailcore.0093_uploadedfile (every row kept); "
        "green (2.0.0) stays warm"
    )


def test_data_rollback_of_one_alembic_revision_is_worded_as_before() -> None:
    message = data_rollback_message("downgrade", {"previous": "b2c3", "current": "a1b2"})

    assert "schema downgraded from b2c3 to a1b2 (every row kept)" in message


def test_journal_of_the_downgrade_names_only_the_migrations_it_undid() -> None:
    message = downgrade_message(
        ",".join([*DJANGO_APPS, "wagtailcore.0094_alter_page_locale"]),
        ",".join([*DJANGO_APPS, "wagtailcore.0093_uploadedfile"]),
        "2.0.0",
    )

    assert message == (
        "schema downgraded from wagtailcore.0094_alter_page_locale to "
        "wagtailcore.0093_uploadedfile with the migrations of 2.0.0; every row is kept"
    )


@pytest.mark.parametrize(
    ("params", "outcome"),
    [
        ({"recover_only": True}, "unchanged"),
        ({"recover_only": True, "recover_action": "close"}, "unchanged"),
        ({"recover_only": True, "recover_action": "restore_idle"}, "rolled_back"),
        ({}, "rolled_back"),
    ],
)
def test_a_rollback_that_only_undoes_a_stopped_command_which_changed_nothing_is_unchanged(
    params: dict[str, Any], outcome: str
) -> None:
    facts = facts_from_params({"command": "rollback", "success_outcome": "rolled_back", **params})
    assert decide_outcome(facts) == outcome


def test_an_unverified_release_says_which_signals_were_inconclusive_and_why() -> None:
    analysis = {
        "decision": {"action": "fail", "verdict": "inconclusive", "reason": "2 inconclusive"},
        "signals": {
            "traffic": {"verdict": "inconclusive", "reason": "only 3 requests"},
            "error_rate": {"verdict": "inconclusive", "reason": "only 3 requests"},
            "cpu": {"verdict": "ok", "reason": "fine"},
            "dependencies": {"verdict": "inconclusive", "reason": "catalog is down for both"},
        },
    }

    assert unverified_reason(analysis) == (
        "its post-switch analysis was inconclusive: 2 inconclusive (traffic, error_rate: "
        "only 3 requests; dependencies: catalog is down for both)"
    )
