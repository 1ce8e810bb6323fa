"""What the release reports say, compared with the journal they are rendered from and
with the lab itself.

The release tests (test_release.py, test_signals.py) release through the `bluegreen`
command and then call these checks: the JSON report from `bluegreen report --journal
<the lb's journal>` against the journal records and against what nginx and each colour
answer; the HTML report opened in headless Chromium, its screenshot kept under
test-artifacts/.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import BLUEGREEN, JOURNAL_PATH, LAB, ROOT, Answer, Outcome, live, shell

ARTIFACTS = ROOT / "test-artifacts"
COLOUR_PORTS = {"blue": 8001, "green": 8002}
COLOUR_HOSTS = {"blue": "app-blue", "green": "app-green"}


def journal_copy(tmp_path: Path) -> tuple[Path, list[dict]]:
    """The lb's journal, copied to the controller, and its records."""
    lines = shell("lb1", f"cat {JOURNAL_PATH}")["stdout_lines"]
    path = tmp_path / "journal.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path, [json.loads(line) for line in lines if line.startswith("{")]


def report(journal: Path, release_id: str, fmt: str = "json") -> str:
    completed = subprocess.run(
        [*BLUEGREEN, "report", release_id, "-i", LAB, "--journal", str(journal), "--format", fmt],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def version_on(colour: str) -> str | None:
    """The version a colour answers with, asked on its app host directly; for a colour
    that names none (SAMPLEAPP_BARE), the release its running process was started from."""
    answer = shell(
        COLOUR_HOSTS[colour],
        f"curl -s -o /dev/null -D - http://127.0.0.1:{COLOUR_PORTS[colour]}/ "
        "| sed -n 's/^X-Bluegreen-Version: //Ip' | tr -d '\\r'",
    )
    if answer["stdout"].strip():
        return answer["stdout"].strip()
    # Its interpreter is /opt/sampleapp/releases/<version>/venv/bin/python.
    started = shell(
        COLOUR_HOSTS[colour],
        f"pid=$(systemctl show -p MainPID --value sampleapp@{colour}); "
        "[ \"$pid\" -gt 0 ] && tr '\\0' '\\n' < /proc/$pid/cmdline | head -n 1",
    )
    program = started["stdout"].strip()
    return program.split("/releases/", 1)[1].split("/", 1)[0] if "/releases/" in program else None


def checks(document: dict) -> dict[str, dict]:
    return {check["id"]: check for check in document["checks"]}


def records_of(records: list[dict], release_id: str) -> dict[str, dict]:
    steps: dict[str, dict] = {}
    for record in records:
        if record["release_id"] == release_id:
            steps[record["step"]] = record
    return steps


def released_report_matches(result: Outcome, old: str, tmp_path: Path) -> None:
    """The report of a successful release of the version now live, `old` kept warm."""
    release_id = result.report["custom_stats"]["bluegreen_release_id"]
    journal, records = journal_copy(tmp_path)
    steps = records_of(records, release_id)
    document = json.loads(report(journal, release_id))
    found = checks(document)
    answer = live()
    new = answer.version

    assert document["decision"]["outcome"] == "released"
    assert (document["colour"], document["version"]) == (answer.colour, new)
    assert version_on(document["colour"]) == new
    assert version_on(document["previous_colour"]) == old
    assert found["artifact"]["status"] == "passed"
    published = (ROOT / "artifacts" / f"sampleapp-{new}.tar.gz.sha256").read_text().split()[0]
    assert found["artifact"]["evidence"]["sha256"] == published
    assert found["artifact"]["evidence"]["sha256_on_app_hosts"] == published
    snapshot = steps["snapshot"]["evidence"]
    assert found["backup"]["status"] == "passed"
    assert found["backup"]["evidence"]["snapshot_id"] == snapshot["snapshot_id"]
    assert found["backup"]["evidence"]["size_bytes"] == snapshot["size_bytes"]
    assert [f["sha256"] for f in found["backup"]["evidence"]["files"]] == [
        f["sha256"] for f in snapshot["files"]
    ]
    for check_id in ("policy", "migrations", "health", "smoke", "version", "switch"):
        assert found[check_id]["status"] == "passed", found[check_id]
    assert found["version"]["evidence"]["seen"] == [new]
    assert found["post_switch_signals"]["status"] in ("passed", "warning", "inconclusive")
    assert found["post_switch_signals"]["time"] == steps["analysis"]["finished_at"]
    assert found["pre_switch_signals"]["status"] in ("passed", "warning")
    assert document["rollback"]["command"] == f"bluegreen rollback -i {LAB}"
    assert [item["step"] for item in document["timeline"]] == [
        r["step"] for r in records if r["release_id"] == release_id
    ]
    series = document["signals"]["post_switch"]["series"]
    assert len(series) == steps["analysis"]["evidence"]["decision"]["measurements"]
    assert any(point["values"].get("traffic") for point in series)

    html_report = tmp_path / f"{release_id}.html"
    html_report.write_text(report(journal, release_id, "html"))
    screenshot_and_dom(html_report, "report-released", ["passed", "released", "switch"])


def failed_before_switch_report_matches(
    result: Outcome, before: Answer, bad_version: str, tmp_path: Path
) -> None:
    """The report of a release whose new colour never became healthy."""
    release_id = result.report["custom_stats"]["bluegreen_release_id"]
    journal, records = journal_copy(tmp_path)
    document = json.loads(report(journal, release_id))
    found = checks(document)

    assert document["decision"]["outcome"] == "failed_before_switch"
    assert document["decision"]["failed_step"] == "deploy"
    idle = "green" if before.colour == "blue" else "blue"
    assert version_on(idle) != bad_version  # the idle colour was put back
    assert found["artifact"]["status"] == "passed"
    assert found["health"]["status"] == "failed"
    assert "not healthy" in found["health"]["summary"]
    for check_id in ("smoke", "version", "switch", "post_switch_signals"):
        assert found[check_id]["status"] == "not run", found[check_id]
    assert not [c for c in document["checks"] if c["status"] == "passed" and c["time"] is None]
    assert document["rollback"]["command"] is None
    failed = [r for r in records if r["release_id"] == release_id and r["outcome"] == "failed"]
    assert document["decision"]["failed_message"] == failed[0]["message"]


def rolled_back_report_matches(result: Outcome, bad_version: str, tmp_path: Path) -> None:
    """The report of a release the post-switch analysis rolled back by itself."""
    release_id = result.report["custom_stats"]["bluegreen_release_id"]
    journal, records = journal_copy(tmp_path)
    document = json.loads(report(journal, release_id))
    found = checks(document)
    after = live()

    assert document["decision"]["outcome"] == "rolled_back"
    assert document["colour"] != after.colour and document["previous_colour"] == after.colour
    assert version_on(document["colour"]) == bad_version  # kept warm, not live
    assert found["switch"]["status"] == "passed"
    assert found["post_switch_signals"]["status"] == "failed"
    rows = {row["signal"]: row for row in document["signals"]["post_switch"]["signals"]}
    # The analysis record with its signals (a failure record of the step follows it).
    analysis = next(
        r
        for r in records
        if r["release_id"] == release_id and r["step"] == "analysis" and "signals" in r["evidence"]
    )
    journaled = analysis["evidence"]["signals"]["error_rate"]
    assert rows["error_rate"]["verdict"] == journaled["verdict"] == "critical"
    assert rows["error_rate"]["value"] == journaled["value"]
    assert rows["error_rate"]["critical"] == journaled["critical"]
    assert document["rollback"]["command"] is None
    assert "back" in document["rollback"]["note"]

    html_report = tmp_path / f"{release_id}.html"
    html_report.write_text(report(journal, release_id, "html"))
    screenshot_and_dom(html_report, "report-rolled-back", ["failed", "critical", "rolled_back"])


def screenshot_and_dom(page: Path, name: str, expected: list[str]) -> None:
    """Render the report in headless Chromium: a screenshot under test-artifacts/ and the
    DOM, which must carry the verdicts."""
    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("chromium is not installed; run `make deps` (SYSTEM_PACKAGES)")
    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / f"{name}.png"
    png.unlink(missing_ok=True)
    flags = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={page.parent / 'chromium'}",
    ]
    shot = subprocess.run(
        [*flags, f"--screenshot={png}", "--window-size=1280,2200", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert png.exists(), shot.stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, len(data)
    dom = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    assert 'id="readiness"' in dom and "<svg" in dom
    for word in expected:
        assert word in dom, word
    (ARTIFACTS / f"{name}.dom.html").write_text(dom)
