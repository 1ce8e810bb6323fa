"""What a user sees after prepare released 1.0.0 and converge released 2.0.0.

Runs against the molecule instance through testinfra's ansible backend; every request
is made from inside the container, to 127.0.0.1.
"""

from __future__ import annotations

import json
import posixpath
import re

import pytest

SERVICE = "sampleapp"
COLOURS = ("blue", "green")
PORTS = {"blue": 8001, "green": 8002}
NEW_VERSION = "2.0.0"
OLD_VERSION = "1.0.0"
UPSTREAM_FILE = f"/etc/nginx/bluegreen/{SERVICE}.upstream.conf"
JOURNAL = f"/var/lib/bluegreen/{SERVICE}/journal.jsonl"
LOCK_DIR = f"/var/lib/bluegreen/{SERVICE}/lock"
FLAG = f"/etc/nginx/bluegreen/{SERVICE}.green-live"
MARKER_RE = re.compile(rf"^# managed by bluegreen nginx_color: name={SERVICE} flag={FLAG}$")

testinfra_hosts = ["ansible://lb"]


def response_headers(host, url: str) -> dict[str, str]:
    """Status line under 'status' and the response headers (lower-cased names) of a GET."""
    result = host.run("curl --silent --show-error --max-time 5 -D - -o /dev/null %s", url)
    assert result.rc == 0, f"GET {url} failed: {result.stderr}"
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    headers = {"status": lines[0]}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


def colour_running(host, version: str) -> str:
    """The colour whose release link points at `version`."""
    colours = [
        colour
        for colour in COLOURS
        if posixpath.basename(host.file(f"/opt/{SERVICE}/colours/{colour}").linked_to) == version
    ]
    assert len(colours) == 1, f"expected exactly one colour on {version}, found {colours}"
    return colours[0]


@pytest.fixture
def new_colour(host) -> str:
    return colour_running(host, NEW_VERSION)


@pytest.fixture
def old_colour(host) -> str:
    return colour_running(host, OLD_VERSION)


@pytest.mark.parametrize("colour", COLOURS)
def test_both_colours_run_and_start_at_boot(host, colour):
    unit = host.service(f"{SERVICE}@{colour}")
    assert unit.is_running
    assert unit.is_enabled


def test_the_flag_names_the_colour_that_runs_the_new_version(host, new_colour):
    include = host.file(UPSTREAM_FILE)
    assert include.is_file
    lines = include.content_string.splitlines()
    assert MARKER_RE.match(lines[0]), f"first line of {UPSTREAM_FILE} is not a marker: {lines[0]!r}"
    upstreams = {}
    for line in lines:
        words = line.split()
        if line.startswith("upstream "):
            current = upstreams.setdefault(words[1].removeprefix(f"{SERVICE}_"), [])
        elif words[:1] == ["server"]:
            current.append(words[1].rstrip(";"))
    assert upstreams == {colour: [f"127.0.0.1:{port}"] for colour, port in PORTS.items()}
    assert host.file(FLAG).exists == (new_colour == "green")


def test_nginx_serves_the_new_version_from_the_live_colour(host, new_colour):
    headers = response_headers(host, "http://127.0.0.1/")
    assert " 200" in headers["status"]
    assert headers["x-bluegreen-version"] == NEW_VERSION
    assert headers["x-bluegreen-colour"] == new_colour


def test_the_old_colour_stays_warm_on_the_old_version(host, old_colour, new_colour):
    assert old_colour != new_colour
    headers = response_headers(host, f"http://127.0.0.1:{PORTS[old_colour]}/health")
    assert " 200" in headers["status"]
    assert headers["x-bluegreen-version"] == OLD_VERSION
    assert headers["x-bluegreen-colour"] == old_colour


def test_the_journal_records_the_release_of_the_new_version(host, new_colour, old_colour):
    lines = host.file(JOURNAL).content_string.splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    releases = [
        record
        for record in records
        if record["step"] == "release" and record["evidence"].get("version") == NEW_VERSION
    ]
    assert releases, f"no release record for {NEW_VERSION} in {JOURNAL}"
    last = releases[-1]
    assert last["outcome"] == "ok"
    # The scenario switches the post-switch analysis off (no traffic reaches it), so the
    # release is live but unverified: nothing measured it.
    assert last["evidence"]["outcome"] == "unverified"
    assert "UNVERIFIED" in last["message"]
    assert last["evidence"]["colour"] == new_colour
    assert last["evidence"]["previous_colour"] == old_colour


def test_no_release_lock_is_left_behind(host):
    assert not host.file(LOCK_DIR).exists


@pytest.mark.parametrize("colour", COLOURS)
def test_the_environment_files_are_readable_by_the_service_only(host, colour):
    env_file = host.file(f"/etc/{SERVICE}/{colour}.env")
    assert env_file.is_file
    assert env_file.mode == 0o640
    assert env_file.user == "root"
    assert env_file.group == SERVICE
