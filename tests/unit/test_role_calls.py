"""No include of a role validates its arguments at run time (``rolespec_validate:
false``: a validation task at each of the ~30 includes of a release was a tenth of its
tasks). What the inventory sets is checked once per command by role_inputs
(playbooks/service.yml); what the tree passes is checked here, against the entry
point's meta/argument_specs.yml: no unknown argument of the role, every required one
given or defaulted, every literal value among the choices."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INCLUDES = ("ansible.builtin.include_role", "include_role", "ansible.builtin.import_role")
NESTED = ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers")


def task_lists() -> Iterator[tuple[Path, list]]:
    for folder in ("playbooks", "roles"):
        for path in sorted((ROOT / folder).rglob("*.yml")):
            if "/meta/" in str(path) or "/defaults/" in str(path) or "/vars/" in str(path):
                continue
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
            if isinstance(document, list):
                yield path, document


def tasks_in(items: list) -> Iterator[dict]:
    for item in items:
        if not isinstance(item, dict):
            continue
        yield item
        for key in NESTED:
            if isinstance(item.get(key), list):
                yield from tasks_in(item[key])


def role_calls() -> list[tuple[str, dict, dict]]:
    """(where, the include's arguments, its vars) of every include of a role."""
    calls = []
    for path, document in task_lists():
        for task in tasks_in(document):
            for key in INCLUDES:
                if isinstance(task.get(key), dict):
                    where = f"{path.relative_to(ROOT)}: {task.get('name')}"
                    calls.append((where, task[key], task.get("vars") or {}))
    return calls


@functools.cache
def names_set_elsewhere() -> frozenset[str]:
    """Names some task of the tree sets as a fact or passes down in its vars: a required
    argument may come from one (bluegreen_journal_release_id is the release's, passed to
    every step by tasks/step.yml)."""
    names: set[str] = set()
    for _, document in task_lists():
        for task in tasks_in(document):
            for key in ("ansible.builtin.set_fact", "set_fact", "vars"):
                if isinstance(task.get(key), dict):
                    names.update(task[key])
    return frozenset(names)


def unvalidated_calls() -> list[tuple[str, dict, dict]]:
    return [call for call in role_calls() if call[1].get("rolespec_validate") is False]


def spec_of(role: str, entry: str) -> dict[str, Any]:
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"][entry].get("options") or {}


def defaults_of(role: str) -> dict[str, Any]:
    path = ROOT / "roles" / role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def problems(
    role: str, entry: str, given: dict[str, Any], facts: frozenset[str] = frozenset()
) -> list[str]:
    options = spec_of(role, entry)
    found = []
    prefix = role + "_"
    for name, value in given.items():
        if not name.startswith(prefix):
            continue
        if name not in options:
            found.append(f"{name} is not an argument of {role}'s {entry}")
            continue
        choices = options[name].get("choices")
        literal = not (isinstance(value, str) and "{{" in value)
        if choices and literal and value not in choices:
            found.append(f"{name}: {value!r} is not one of {choices}")
    defaults = defaults_of(role)
    for name, option in options.items():
        # A required argument defaulted to "" (the role's placeholder) must be given.
        supplied = name in given or name in facts or defaults.get(name) not in (None, "")
        if option.get("required") and not supplied:
            found.append(f"{name} is required by {role}'s {entry} and neither given nor defaulted")
    return found


def test_no_include_validates_its_role_at_run_time() -> None:
    validated = [
        where for where, include, _ in role_calls() if include.get("rolespec_validate") is not False
    ]
    assert validated == []


def test_the_unvalidated_includes_are_found() -> None:
    # The step wrapper (one per play) and the journal: a tree rewrite that hides them
    # from this scan must not make the checks below pass on nothing.
    roles = [call[1]["name"] for call in unvalidated_calls()]
    assert roles.count("bluegreen_release") >= 40 and roles.count("bluegreen_journal") >= 30


@pytest.mark.parametrize(
    ("where", "include", "given"), unvalidated_calls(), ids=lambda value: str(value)[:60]
)
def test_an_unvalidated_include_passes_its_roles_argument_spec(
    where: str, include: dict, given: dict
) -> None:
    role, entry = include["name"], include.get("tasks_from", "main")
    assert problems(role, entry, given, names_set_elsewhere()) == [], where


def test_a_wrong_argument_or_a_missing_required_one_is_a_problem() -> None:
    assert problems("bluegreen_journal", "main", {"bluegreen_journal_stepp": "x"}) == [
        "bluegreen_journal_stepp is not an argument of bluegreen_journal's main",
        "bluegreen_journal_release_id is required by bluegreen_journal's main and neither "
        "given nor defaulted",
        "bluegreen_journal_step is required by bluegreen_journal's main and neither given "
        "nor defaulted",
    ]
    given = {"bluegreen_journal_step": "x", "bluegreen_journal_outcome": "done"}
    [wrong_choice] = problems(
        "bluegreen_journal", "main", given, frozenset({"bluegreen_journal_release_id"})
    )
    assert wrong_choice.startswith("bluegreen_journal_outcome: 'done' is not one of ['started'")
