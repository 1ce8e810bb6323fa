# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Smoke routes: the requests sent to a started colour before it gets traffic, checked
before anything is probed, and how each answer is judged.

Pure, so pytest checks it without a network: module_utils/colour_probe.py sends the
requests; colour_start and colour_state call it, and so does the bluegreen_service role's
inventory check (through filter_plugins/smoke_routes.py). Header values and bodies may be
secrets (a bearer token from vault): nothing here puts one in a message, a repr or an
answer. Routes are shown by header names and body length only.

It imports nothing of ours, so the filter can load it outside a module.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean

KEYS = (
    "method",
    "path",
    "headers",
    "body",
    "json",
    "status",
    "expect_text",
    "expect_json",
    "follow_redirects",
)

# The suboptions of the modules' `smoke` option. no_log makes Ansible hide header values
# and the body wherever they would appear (the task's invocation, the host's syslog, the
# result). `json` is not hidden: Ansible would hide each of its values, so a `1` in it
# would turn every 1 of the result into stars; a secret body goes in `body`. No key is
# required here: smoke_routes() names a route without a path by its index.
ARGUMENT_SPEC_OPTIONS: dict[str, dict[str, Any]] = {
    "path": {"type": "str"},
    "method": {"type": "str", "default": "GET"},
    "headers": {"type": "dict", "no_log": True},
    "body": {"type": "raw", "no_log": True},
    "json": {"type": "raw"},
    "status": {"type": "int", "default": 200},
    "expect_text": {"type": "str"},
    "expect_json": {"type": "dict"},
    "follow_redirects": {"type": "bool", "default": True},
}

# Methods that change nothing on a well-behaved service (RFC 9110, section 9.2.1): the
# only ones the pre-switch load step sends by default.
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

MAX_BODY_BYTES = 1024 * 1024
SHOWN_CHARS = 80

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field names and methods
_MISSING = object()


class SmokeRouteError(ValueError):
    """Smoke routes that cannot be sent as given; the message names each and its fix."""


@dataclass(frozen=True)
class SmokeRoute:
    """One valid smoke route. The header values and the body stay out of its repr."""

    path: str
    method: str = "GET"
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    body: bytes | None = field(default=None, repr=False)
    body_is_json: bool = False
    expect_text: str | None = None
    expect_json: Mapping[str, Any] = field(default_factory=dict)
    follow_redirects: bool = True

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def reads_body(self) -> bool:
        """Whether the answer's body is judged (otherwise it is not even read)."""
        return self.expect_text is not None or bool(self.expect_json)

    def request_headers(self) -> dict[str, str]:
        """The headers to send: the route's, with a JSON body's Content-Type unless they
        name one."""
        headers = dict(self.headers)
        if self.body_is_json and not any(n.lower() == "content-type" for n in headers):
            headers["Content-Type"] = "application/json"
        return headers

    def secrets(self) -> list[str]:
        """What must never be shown: the header values and the body."""
        values = [value for value in self.headers.values() if value]
        if self.body and not self.body_is_json:
            values.append(self.body.decode("utf-8"))
        return values


@dataclass(frozen=True)
class Reply:
    """What a route got back: a status (None when nothing answered), the version header,
    and at most MAX_BODY_BYTES of the body when the route judges it."""

    status: int | None
    version: str | None = None
    body: bytes = b""
    truncated: bool = False
    error: str | None = None
    charset: str = "utf-8"

    def text(self) -> str:
        try:
            return self.body.decode(self.charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


# Checking the routes.


# In the order they are tried: a bool is an int, and Ansible's templated values are
# subclasses (_AnsibleTaggedInt).
_KINDS = ((bool, "a boolean"), ((int, float), "a number"), (str, "a string"),
          (Mapping, "a dict"), (list, "a list"))  # fmt: skip


def _kind(value: Any) -> str:
    """What a value is, for a message that must not show it."""
    if value is None:
        return "null"
    kind = next((kind for types, kind in _KINDS if isinstance(value, types)), None)
    return kind or f"a {type(value).__name__}"


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _status(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and _digits(value.strip()):
        value = int(value)
    return value if isinstance(value, int) and 100 <= value <= 599 else None


def _bool(value: Any) -> bool | None:
    try:
        return boolean(value, strict=True)
    except TypeError:
        return None


def _encoded(value: Any) -> str | None:
    """The JSON text of ``value``; None when it has no JSON form (a YAML date, NaN)."""
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return None


def _expect_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    return str(value) if isinstance(value, (str, int, float)) else None


def _label(where: str, route: Mapping[str, Any]) -> str:
    """The route as messages name it: its index, with its method and path when they read."""
    path, method = route.get("path"), route.get("method", "GET")
    if not isinstance(path, str) or not path:
        return where
    shown = f"{method.upper()} {path}" if isinstance(method, str) and method else path
    return f"{where} ({shown})"


def _unknown_keys(label: str, route: Mapping[str, Any]) -> list[str]:
    problems = []
    for key in sorted(str(k) for k in route if k not in KEYS):
        close = difflib.get_close_matches(key, KEYS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"{label}: unknown key '{key}'{hint}; a route's keys are {', '.join(KEYS)}")
    return problems


def _path_problems(where: str, label: str, path: Any) -> list[str]:
    if path is None or path == "":
        return [f"{where} has no path; give the path to request, e.g. path: /health"]
    if not isinstance(path, str):
        return [f"{where}: path is {_kind(path)}; give a path starting with '/', e.g. /health"]
    if not path.startswith("/"):
        return [f"{label}: path must start with '/'; write /{path}"]
    if re.search(r"[\s\x00-\x1f\x7f]", path):
        return [
            f"{label}: path contains a space or a control character; percent-encode it "
            "(a space is %20)"
        ]
    return []


def _header_problems(label: str, headers: Any) -> list[str]:
    # A header's value is never quoted here, even when it is wrong: it may be a secret.
    if not isinstance(headers, Mapping):
        return [
            f"{label}: headers is {_kind(headers)}; give a dict of header name to value, "
            "e.g. headers: {Authorization: 'Bearer {{ vault_api_token }}'}"
        ]
    problems = []
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            problems.append(
                f"{label}: {name!r} is not a header name; use letters, digits and '-', "
                "e.g. Authorization or X-Api-Key"
            )
        elif not isinstance(value, str):
            problems.append(
                f"{label}: the value of header {name} is {_kind(value)}, not a string; "
                "quote it in YAML"
            )
        elif "\r" in value or "\n" in value:
            problems.append(
                f"{label}: the value of header {name} contains a line break (a secret "
                "read from a file often ends with one); strip it, e.g. "
                "'Bearer {{ vault_api_token | trim }}'"
            )
    return problems


def _body_problems(label: str, route: Mapping[str, Any]) -> list[str]:
    body, document = route.get("body"), route.get("json")
    if body is not None and document is not None:
        return [
            f"{label}: sets both body and json; keep one (body is sent as is, json is sent "
            "JSON-encoded)"
        ]
    if body is not None and not isinstance(body, str):
        return [
            f"{label}: body is {_kind(body)}; body is a string sent as is, so give a "
            "structure as json instead"
        ]
    if document is not None and _encoded(document) is None:
        return [
            f"{label}: json has a value JSON cannot encode (a YAML date or .nan, say); quote it"
        ]
    return []


def _expectation_problems(label: str, route: Mapping[str, Any]) -> list[str]:
    problems = []
    text = route.get("expect_text")
    if text is not None and not _expect_text(text):
        problems.append(
            f"{label}: expect_text must be the text the body contains, e.g. expect_text: ok"
        )
    expected = route.get("expect_json")
    if expected is not None and not isinstance(expected, Mapping):
        problems.append(
            f"{label}: expect_json is {_kind(expected)}; give a dict of dotted path to "
            "value, e.g. expect_json: {status: ok, data.0.id: 1}"
        )
    elif expected:
        for path, value in expected.items():
            if isinstance(path, bool) or not isinstance(path, (str, int)):
                problems.append(f"{label}: expect_json path {path!r} is not a dotted path")
            elif "" in str(path).split("."):
                problems.append(
                    f"{label}: expect_json path '{path}' has an empty part; separate its "
                    "parts with single dots, e.g. data.0.id"
                )
            elif _encoded(value) is None:
                problems.append(
                    f"{label}: expect_json {path} expects a value that is not JSON "
                    "(a YAML date, say); quote it"
                )
    method = route.get("method", "GET")
    if isinstance(method, str) and method.upper() == "HEAD" and (text or expected):
        problems.append(
            f"{label}: a HEAD answer has no body, so expect_text and expect_json cannot "
            "pass; use GET"
        )
    return problems


def _route_problems(where: str, raw: Any) -> list[str]:
    if not isinstance(raw, Mapping):
        return [
            f"{where} is {_kind(raw)}, not a route; give a dict such as "
            "{path: /health, status: 200}"
        ]
    # Ansible gives every suboption it knows, None when not set.
    route = {key: value for key, value in raw.items() if value is not None}
    label = _label(where, route)
    problems = _unknown_keys(label, route)
    problems += _path_problems(where, label, route.get("path"))
    method = route.get("method", "GET")
    if not isinstance(method, str) or not _TOKEN.fullmatch(method):
        problems.append(
            f"{label}: method {method!r} is not an HTTP method; give one such as GET or POST"
        )
    if "headers" in route:
        problems += _header_problems(label, route["headers"])
    problems += _body_problems(label, route)
    if "status" in route and _status(route["status"]) is None:
        problems.append(
            f"{label}: status {route['status']!r} is not an HTTP status; give the one the "
            "route must answer, from 100 to 599, e.g. 201"
        )
    problems += _expectation_problems(label, route)
    if "follow_redirects" in route and _bool(route["follow_redirects"]) is None:
        problems.append(f"{label}: follow_redirects must be true or false")
    return problems


def smoke_route_problems(routes: Any, name: str = "smoke") -> list[str]:
    """What is wrong with ``routes`` (the option or variable ``name``), one message per
    problem naming the route by its index and path and saying what to write instead;
    empty when every route can be sent."""
    if routes is None:
        return []
    if isinstance(routes, (str, bytes, Mapping)) or not isinstance(routes, Sequence):
        return [
            f"{name} is {_kind(routes)}; give a list of routes, e.g. "
            "[{path: /health, status: 200}]"
        ]
    return [
        problem
        for index, raw in enumerate(routes)
        for problem in _route_problems(f"{name}[{index}]", raw)
    ]


def _smoke_route(raw: Mapping[str, Any]) -> SmokeRoute:
    route = {key: value for key, value in raw.items() if value is not None}
    body, body_is_json = route.get("body"), False
    if route.get("json") is not None:
        body, body_is_json = _encoded(route["json"]), True
    text = route.get("expect_text")
    return SmokeRoute(
        path=route["path"],
        method=route.get("method", "GET").upper(),
        status=_status(route.get("status", 200)) or 200,
        headers=dict(route.get("headers") or {}),
        body=None if body is None else body.encode("utf-8"),
        body_is_json=body_is_json,
        expect_text=None if text is None else _expect_text(text),
        expect_json={str(path): value for path, value in (route.get("expect_json") or {}).items()},
        follow_redirects=bool(_bool(route.get("follow_redirects", True))),
    )


def smoke_routes(routes: Any, name: str = "smoke") -> list[SmokeRoute]:
    """The routes, checked; raises SmokeRouteError with every problem when any has one."""
    problems = smoke_route_problems(routes, name)
    if problems:
        raise SmokeRouteError("; ".join(problems))
    return [_smoke_route(raw) for raw in routes or []]


def load_step_routes(routes: Any) -> list[dict[str, Any]]:
    """The smoke routes the pre-switch load step sends by default, as ``{path, method,
    status}``: those that only read (GET, HEAD, OPTIONS) and send no headers and no body.
    Without its headers a route that needs a token measures its 401, and their values
    must not reach synthetic_load's arguments, which do not hide them."""
    chosen = []
    for raw in routes or []:
        if not isinstance(raw, Mapping):
            continue
        route = {key: value for key, value in raw.items() if value is not None}
        method = str(route.get("method", "GET")).upper()
        sends = bool(route.get("headers")) or "body" in route or "json" in route
        if method not in READ_ONLY_METHODS or sends:
            continue
        chosen.append(
            {"path": route.get("path"), "method": method, "status": route.get("status", 200)}
        )
    return chosen


# Judging an answer.


def json_at(document: Any, path: str) -> Any:
    """The value at the dotted ``path`` (``data.0.id``: a number indexes a list);
    ``_MISSING`` when there is none."""
    value = document
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and _digits(part) and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def same_json(actual: Any, expected: Any) -> bool:
    """Whether two values are the same JSON: 1 and 1.0 are, 1 and true or "1" are not."""
    if isinstance(expected, Mapping):
        return (
            isinstance(actual, Mapping)
            and set(actual) == {str(key) for key in expected}
            and all(same_json(actual[str(key)], value) for key, value in expected.items())
        )
    if isinstance(expected, (list, tuple)):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(map(same_json, actual, expected))
        )
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    return actual == expected


def _cut(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def _hidden(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced, as is and as a JSON string holds it: a service
    may echo a request header or body back."""
    for secret in secrets:
        for form in (secret, json.dumps(secret, ensure_ascii=False)[1:-1]):
            text = text.replace(form, "********")
    return text


def _shown(value: Any) -> str:
    """A JSON value for a message: 2, "ok", null."""
    text = _encoded(value)
    return _cut(text if text is not None else repr(value))


def _json_problems(route: SmokeRoute, document: Any) -> list[str]:
    problems = []
    for path, expected in route.expect_json.items():
        actual = json_at(document, path)
        if actual is _MISSING:
            problems.append(f"{path} is missing")
        elif not same_json(actual, expected):
            shown = _hidden(_shown(actual), route.secrets())
            problems.append(f"{path} is {shown}, expected {_shown(expected)}")
    return problems


def answer_problem(route: SmokeRoute, reply: Reply) -> str:
    """What is wrong with the answer, as a message ('' when it is right): "POST /api
    answered 500, expected 201", "GET /api/status answered 200 but data.0.id is 2,
    expected 1"."""
    if reply.status is None:
        error = _hidden(str(reply.error), route.secrets())
        return f"{route.name} answered nothing ({error}), expected {route.status}"
    got = f"{route.name} answered {reply.status}"
    if reply.status != route.status:
        return f"{got}, expected {route.status}"
    if reply.error:
        return f"{got} but its body could not be read ({_hidden(reply.error, route.secrets())})"
    mib = MAX_BODY_BYTES // (1024 * 1024)
    if route.expect_text is not None and route.expect_text not in reply.text():
        within = f" in its first {mib} MiB" if reply.truncated else ""
        return f"{got} but its body does not contain '{_cut(route.expect_text)}'{within}"
    if route.expect_json:
        try:
            document = json.loads(reply.body)
        except ValueError:
            cut = f" (only its first {mib} MiB was read)" if reply.truncated else ""
            return f"{got} but its body is not JSON{cut}"
        problems = _json_problems(route, document)
        if problems:
            return f"{got} but {' and '.join(problems)}"
    return ""


def sent_description(headers: Sequence[str], body_bytes: int) -> str:
    """What a route sent besides its method and path, values hidden: "headers:
    Authorization (value hidden); body of 42 bytes"; '' for neither."""
    parts = []
    if headers:
        parts.append(f"headers: {', '.join(f'{name} (value hidden)' for name in headers)}")
    if body_bytes:
        parts.append(f"body of {body_bytes} bytes")
    return "; ".join(parts)


def smoke_answer(route: SmokeRoute, reply: Reply) -> dict[str, Any]:
    """One route's answer, judged, as the modules return it and the journal keeps it:
    header names and the body's length, never their values."""
    problem = answer_problem(route, reply)
    error = _hidden(reply.error, route.secrets()) if reply.error else reply.error
    return {
        "method": route.method,
        "path": route.path,
        "expected": route.status,
        "status": reply.status,
        "version": reply.version,
        "ok": not problem,
        "problem": problem,
        "error": error,
        "headers": list(route.headers),
        "body_bytes": len(route.body or b""),
    }


def smoke_failure_message(colour: str, host: str, answers: Sequence[Mapping[str, Any]]) -> str:
    """Why the release stops: smoke routes that answered wrongly ('' when none did)."""
    parts = []
    for answer in answers:
        if answer["ok"]:
            continue
        problem = answer.get("problem")
        if not problem:
            status = answer["status"]
            got = f"nothing ({answer.get('error')})" if status is None else str(status)
            problem = (
                f"{answer['method']} {answer['path']} answered {got}, expected {answer['expected']}"
            )
        sent = sent_description(answer.get("headers") or [], answer.get("body_bytes") or 0)
        parts.append(f"{problem} [{sent}]" if sent else problem)
    if not parts:
        return ""
    return (
        f"smoke probe failed on the {colour} colour of {host}: {'; '.join(parts)}. "
        "Traffic was not switched."
    )
