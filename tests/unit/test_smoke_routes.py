"""Smoke routes: which routes can be sent, how an answer is judged, what a message says,
and that a header value or a body never shows; the filters the roles call."""

from __future__ import annotations

import datetime
import importlib.util
import json
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from ansible.module_utils.smoke_routes import (
    ARGUMENT_SPEC_OPTIONS,
    KEYS,
    MAX_BODY_BYTES,
    Reply,
    SmokeRoute,
    SmokeRouteError,
    answer_problem,
    json_at,
    load_step_routes,
    same_json,
    smoke_answer,
    smoke_failure_message,
    smoke_route_problems,
    smoke_routes,
)

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "Bearer s3cr3t-t0ken-from-vault"
BODY = '{"password": "hunter2-from-vault"}'


def test_old_style_routes_are_read_as_before() -> None:
    routes = smoke_routes([{"path": "/"}, {"path": "/notes?limit=1", "status": 200},
                           {"path": "/jobs", "method": "post", "status": "202"}])  # fmt: skip

    assert routes == [
        SmokeRoute("/"),
        SmokeRoute("/notes?limit=1"),
        SmokeRoute("/jobs", method="POST", status=202),
    ]
    assert all(not r.reads_body and r.follow_redirects and r.body is None for r in routes)
    assert routes[0].request_headers() == {}


def test_the_suboptions_ansible_fills_with_null_count_as_unset() -> None:
    from_ansible = {key: None for key in KEYS} | {"path": "/", "method": "GET", "status": 200}

    assert smoke_route_problems([from_ansible]) == []
    assert smoke_routes([from_ansible]) == [SmokeRoute("/")]
    assert set(ARGUMENT_SPEC_OPTIONS) == set(KEYS)
    assert ARGUMENT_SPEC_OPTIONS["headers"]["no_log"] and ARGUMENT_SPEC_OPTIONS["body"]["no_log"]


def test_a_json_body_is_encoded_and_typed_unless_the_headers_name_a_type() -> None:
    route, typed = smoke_routes(
        [
            {"path": "/api/projects", "method": "POST", "json": {"name": "smoke", "n": [1]}},
            {"path": "/p", "json": [], "headers": {"content-type": "application/vnd.x+json"}},
        ]
    )

    assert json.loads(route.body or b"") == {"name": "smoke", "n": [1]}
    assert route.request_headers() == {"Content-Type": "application/json"}
    assert typed.request_headers() == {"content-type": "application/vnd.x+json"}
    assert typed.body == b"[]"


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ("/health", "smoke[0] is a string, not a route; give a dict such as {path: /health"),
        ({"status": 200}, "smoke[0] has no path; give the path to request, e.g. path: /health"),
        ({"path": "health"}, "smoke[0] (GET health): path must start with '/'; write /health"),
        ({"path": "/a b"}, "smoke[0] (GET /a b): path contains a space"),
        ({"path": "/x", "expect_txt": "ok"},
         "smoke[0] (GET /x): unknown key 'expect_txt' (did you mean expect_text?); a route's "
         "keys are method, path, headers, body, json, status, expect_text, expect_json, "
         "follow_redirects"),
        ({"path": "/x", "method": "GE T"}, "method 'GE T' is not an HTTP method"),
        ({"path": "/x", "method": "post", "body": "a", "json": {"a": 1}},
         "smoke[0] (POST /x): sets both body and json; keep one"),
        ({"path": "/x", "body": {"a": 1}}, "body is a dict; body is a string sent as is"),
        ({"path": "/x", "json": {"on": datetime.date(2025, 1, 1)}}, "json has a value JSON"),
        ({"path": "/x", "headers": ["Authorization"]}, "headers is a list; give a dict"),
        ({"path": "/x", "headers": {"X-Count": 5}},
         "the value of header X-Count is a number, not a string; quote it in YAML"),
        ({"path": "/x", "headers": {"Bad Name": "v"}}, "'Bad Name' is not a header name"),
        ({"path": "/x", "headers": {"Authorization": TOKEN + "\n"}},
         "the value of header Authorization contains a line break"),
        ({"path": "/x", "status": "ok"}, "status 'ok' is not an HTTP status"),
        ({"path": "/x", "status": 99}, "status 99 is not an HTTP status"),
        ({"path": "/x", "expect_text": ["ok"]}, "expect_text must be the text the body contains"),
        ({"path": "/x", "expect_json": "ok"}, "expect_json is a string; give a dict"),
        ({"path": "/x", "expect_json": {"data..id": 1}}, "path 'data..id' has an empty part"),
        ({"path": "/x", "method": "HEAD", "expect_text": "ok"}, "a HEAD answer has no body"),
        ({"path": "/x", "follow_redirects": "maybe"}, "follow_redirects must be true or false"),
    ],
)  # fmt: skip
def test_a_route_that_cannot_be_sent_is_named_with_its_fix(route: Any, message: str) -> None:
    problems = smoke_route_problems([route])

    assert len(problems) == 1, problems
    assert message in problems[0]
    with pytest.raises(SmokeRouteError, match="smoke\\[0\\]"):
        smoke_routes([route])


def test_every_problem_is_named_by_index_and_path_and_no_secret_is_quoted() -> None:
    routes = [
        {"path": "/ok"},
        {"path": "/api/projects", "method": "POST", "headers": {"Authorization": TOKEN + "\n"},
         "body": BODY, "json": {"a": 1}},
        {"path": "/api/status", "headers": {"Authorization": TOKEN}, "expect_jsn": {}},
    ]  # fmt: skip

    problems = smoke_route_problems(routes, "bluegreen_service_smoke_routes")

    assert [p.split(":")[0] for p in problems] == [
        "bluegreen_service_smoke_routes[1] (POST /api/projects)",
        "bluegreen_service_smoke_routes[1] (POST /api/projects)",
        "bluegreen_service_smoke_routes[2] (GET /api/status)",
    ]
    with pytest.raises(SmokeRouteError) as raised:
        smoke_routes(routes)
    for text in (*problems, str(raised.value)):
        assert "s3cr3t" not in text and "hunter2" not in text
    assert smoke_route_problems({"path": "/"}) == [
        "smoke is a dict; give a list of routes, e.g. [{path: /health, status: 200}]"
    ]
    assert smoke_route_problems(None) == []


def test_a_route_never_shows_its_secrets_in_its_repr() -> None:
    (route,) = smoke_routes([{"path": "/a", "headers": {"Authorization": TOKEN}, "body": BODY}])

    assert "s3cr3t" not in repr(route) and "hunter2" not in repr(route)
    assert route.secrets() == [TOKEN, BODY]


# Judging an answer.


def test_a_dotted_path_reads_keys_and_list_indexes() -> None:
    document = {"status": "ok", "data": [{"id": 1, "tags": ["a"]}], "1": "key"}

    assert json_at(document, "status") == "ok"
    assert json_at(document, "data.0.id") == 1
    assert json_at(document, "data.0.tags.0") == "a"
    assert json_at(document, "1") == "key"
    assert json_at(document, "data.1.id") is json_at(document, "nope")
    assert json_at(document, "status.0") is json_at(document, "nope")
    assert json_at(document, "data.\u00b2") is json_at(document, "nope")


def test_values_compare_as_json() -> None:
    assert same_json(1, 1.0) and same_json({"a": [1, None]}, {"a": [1, None]})
    assert not same_json(1, True) and not same_json(True, 1) and not same_json("1", 1)
    assert not same_json({"a": 1, "b": 2}, {"a": 1}) and not same_json([1], [1, 2])


ROUTE = SmokeRoute("/api/status", expect_json={"status": "ok", "data.0.id": 1})


@pytest.mark.parametrize(
    ("route", "reply", "problem"),
    [
        (SmokeRoute("/api/projects", method="POST", status=201), Reply(500),
         "POST /api/projects answered 500, expected 201"),
        (SmokeRoute("/"), Reply(None, error="Connection refused"),
         "GET / answered nothing (Connection refused), expected 200"),
        (SmokeRoute("/healthz", expect_text="ok"), Reply(200, body=b"degraded"),
         "GET /healthz answered 200 but its body does not contain 'ok'"),
        (SmokeRoute("/healthz", expect_text="ok"), Reply(200, body=b"x", truncated=True),
         "GET /healthz answered 200 but its body does not contain 'ok' in its first 1 MiB"),
        (ROUTE, Reply(200, body=b'{"status": "ok", "data": [{"id": 2}]}'),
         "GET /api/status answered 200 but data.0.id is 2, expected 1"),
        (ROUTE, Reply(200, body=b'{"status": "down", "data": []}'),
         'GET /api/status answered 200 but status is "down", expected "ok" and data.0.id is '
         "missing"),
        (ROUTE, Reply(200, body=b"<html>ok</html>"),
         "GET /api/status answered 200 but its body is not JSON"),
        (ROUTE, Reply(200, body=b'{"status": ', truncated=True),
         "GET /api/status answered 200 but its body is not JSON (only its first 1 MiB was read)"),
        (ROUTE, Reply(200, error="timed out"),
         "GET /api/status answered 200 but its body could not be read (timed out)"),
        (ROUTE, Reply(200, body=b'{"status": "ok", "data": [{"id": 1.0}]}'), ""),
        (SmokeRoute("/"), Reply(200), ""),
    ],
)  # fmt: skip
def test_a_wrong_answer_says_exactly_what_was_wrong(
    route: SmokeRoute, reply: Reply, problem: str
) -> None:
    assert answer_problem(route, reply) == problem


def test_the_text_is_decoded_in_the_answers_charset() -> None:
    route = SmokeRoute("/", expect_text="café")

    assert answer_problem(route, Reply(200, body="café".encode("latin-1"), charset="latin-1")) == ""
    assert answer_problem(route, Reply(200, body="café".encode(), charset="no-such")) == ""
    assert MAX_BODY_BYTES == 1024 * 1024


def test_an_answer_names_headers_and_body_length_and_hides_an_echoed_secret() -> None:
    (route,) = smoke_routes(
        [{"path": "/api/me", "method": "POST", "headers": {"Authorization": TOKEN},
          "body": BODY, "expect_json": {"user": "smoke"}}]
    )  # fmt: skip
    echoed = json.dumps({"user": f"{TOKEN} / {BODY}"}).encode()

    answer = smoke_answer(route, Reply(200, "2.0", echoed))

    assert answer == {
        "method": "POST",
        "path": "/api/me",
        "expected": 200,
        "status": 200,
        "version": "2.0",
        "ok": False,
        "problem": answer["problem"],
        "error": None,
        "headers": ["Authorization"],
        "body_bytes": len(BODY),
    }
    assert answer["problem"] == (
        'POST /api/me answered 200 but user is "******** / ********", expected "smoke"'
    )
    message = smoke_failure_message("green", "app1", [answer])
    assert f"[headers: Authorization (value hidden); body of {len(BODY)} bytes]" in message
    for text in (json.dumps(answer), message):
        assert "s3cr3t" not in text and "hunter2" not in text


def test_the_failure_message_keeps_the_old_wording_for_old_answers() -> None:
    old = [{"method": "GET", "path": "/a", "expected": 200, "status": 500, "ok": False}]
    new = [smoke_answer(SmokeRoute("/a"), Reply(500))]

    assert smoke_failure_message("green", "app1", old) == smoke_failure_message(
        "green", "app1", new
    ) == ("smoke probe failed on the green colour of app1: GET /a answered 500, expected "
          "200. Traffic was not switched.")  # fmt: skip
    assert smoke_failure_message("green", "app1", [smoke_answer(SmokeRoute("/"), Reply(200))]) == ""


# The routes of the load step, and the filters.


def test_the_load_step_gets_the_read_only_routes_without_headers_or_body() -> None:
    routes = [
        {"path": "/", "status": 200},
        {"path": "/notes", "method": "head", "expect_text": "x", "follow_redirects": False},
        {"path": "/api/projects", "method": "POST", "json": {"a": 1}, "status": 201},
        {"path": "/api/status", "headers": {"Authorization": TOKEN}},
        {"path": "/search", "method": "GET", "body": "q=1"},
        {"path": "/o", "method": "options", "headers": None},
        {"path": "/h", "headers": {}},
    ]

    assert load_step_routes(routes) == [
        {"path": "/", "method": "GET", "status": 200},
        {"path": "/notes", "method": "HEAD", "status": 200},
        {"path": "/o", "method": "OPTIONS", "status": 200},
        {"path": "/h", "method": "GET", "status": 200},
    ]
    assert load_step_routes(None) == []


def filters() -> dict[str, Any]:
    """The filters of filter_plugins/smoke_routes.py, loaded as Ansible loads them."""
    path = ROOT / "filter_plugins" / "smoke_routes.py"
    spec = importlib.util.spec_from_file_location("bluegreen_filter_smoke_routes", path)
    assert spec is not None and spec.loader is not None
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    return plugin.FilterModule().filters()


def test_the_analysis_role_sends_the_filtered_smoke_routes_by_default() -> None:
    defaults = yaml.safe_load((ROOT / "roles/bluegreen_analysis/defaults/main.yml").read_text())
    environment = jinja2.Environment()
    environment.filters.update(filters())
    smoke = [{"path": "/"}, {"path": "/api", "headers": {"Authorization": TOKEN}}]

    rendered = environment.from_string(defaults["bluegreen_analysis_pre_switch_routes"]).render(
        bluegreen_service_smoke_routes=smoke
    )

    assert "s3cr3t" not in rendered
    assert yaml.safe_load(rendered) == [{"path": "/", "method": "GET", "status": 200}]


def test_the_service_check_names_the_variable_and_hides_the_secrets() -> None:
    problems = filters()["bluegreen_smoke_route_problems"](
        [{"path": "api", "headers": {"Authorization": 1}}], "bluegreen_service_smoke_routes"
    )

    assert problems == [
        "bluegreen_service_smoke_routes[0] (GET api): path must start with '/'; write /api",
        "bluegreen_service_smoke_routes[0] (GET api): the value of header Authorization is a "
        "number, not a string; quote it in YAML",
    ]
    check = yaml.safe_load((ROOT / "roles/bluegreen_service/tasks/check.yml").read_text())
    assert any("bluegreen_smoke_route_problems" in json.dumps(task) for task in check)
