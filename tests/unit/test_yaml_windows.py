"""The YAML duplication check counts each repeated 8-line window once, and only real repeats."""

from __future__ import annotations

from pathlib import Path

import pytest

from bluegreen.yaml_windows import Place, main, scan

# Eight lines a playbook and a role both hold: the same step written twice.
STEP = """\
- name: Read the live colour
  nginx_color:
    name: app
    path: /etc/nginx/app.conf
  register: live
  run_once: true
  delegate_to: lb1
  tags: [status]
"""


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    write(tmp_path, "playbooks/release.yml", f"---\n{STEP}- name: Only here\n  debug: {{}}\n")
    # The same step indented differently, with a comment and a blank line inside it.
    lines = ["    " + line for line in STEP.splitlines()]
    indented = "\n".join([*lines[:4], "", "    # why", *lines[4:]])
    write(tmp_path, "roles/bluegreen_lb/tasks/main.yml", f"# The lb role\n{indented}\n")
    # Seven of the eight lines only: shorter than a window, so no repeat.
    write(tmp_path, "roles/bluegreen_switch/tasks/main.yml", "".join(STEP.splitlines(True)[:7]))
    # Outside playbooks/ and roles/: not read.
    write(tmp_path, "inventories/lab/group_vars/all.yml", STEP)
    return tmp_path


def test_a_step_written_twice_is_one_repeated_window_at_both_places(tree: Path) -> None:
    windows = scan(tree)

    assert len(windows) == 1
    [window] = windows
    assert window.lines == tuple(line.strip() for line in STEP.splitlines())
    assert window.places == (
        Place(Path("playbooks/release.yml"), 2, 9),
        Place(Path("roles/bluegreen_lb/tasks/main.yml"), 2, 11),
    )


def test_lines_that_occur_once_or_in_shorter_runs_are_not_counted(tmp_path: Path) -> None:
    write(tmp_path, "playbooks/a.yml", STEP)
    write(tmp_path, "roles/r/tasks/main.yml", "".join(STEP.splitlines(True)[1:]) + "- other\n")

    assert scan(tmp_path) == []


def test_a_longer_repeat_counts_each_distinct_window(tmp_path: Path) -> None:
    nine = STEP + "  become: true\n"
    write(tmp_path, "playbooks/a.yml", nine)
    write(tmp_path, "roles/r/handlers/main.yml", nine)

    assert len(scan(tmp_path)) == 2


def test_the_check_fails_only_above_its_threshold(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tree), "--max", "1"]) == 0
    out = capsys.readouterr().out
    assert "1 repeated 8-line windows in playbooks and roles (at most 1): ok" in out

    assert main([str(tree), "--max", "0"]) == 1
    out = capsys.readouterr().out
    assert "playbooks/release.yml:2-9, roles/bluegreen_lb/tasks/main.yml:2-11" in out
    assert "(at most 0): too many" in out
