"""Decisions for the nginx_color module, as pure functions.

Nothing here reads files, runs commands or opens sockets: the module does the I/O (the
write, test, reload and put-back through module_utils/nginx_config.py) and asks these
functions what the request means, what the file should contain, which colour the file
routes to and whether the probes prove the switch. That keeps every rule testable
without an nginx host.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ansible.module_utils.nginx_config import FileChange, NginxConfigError

COLOURS = ("blue", "green")
DEFAULT_DIRECTORY = "/etc/nginx/bluegreen"
MARKER_PREFIX = "# managed by bluegreen nginx_color:"
# Cap on a single probe request, so one hung connection cannot eat the whole probe_timeout.
PROBE_REQUEST_TIMEOUT = 2.0
# Floor on a single probe request, so a nearly spent probe_timeout still gets a real try.
PROBE_REQUEST_MIN_TIMEOUT = 0.1

_NAME_RE = re.compile(r"[a-z0-9_]+")
# The flag file: green serves while it exists, blue otherwise. nginx tests it per request.
FLAG_SUFFIX = ".green-live"
# A colour without servers still needs a valid upstream block: one server that is down,
# so a request routed there gets 502 at once rather than a connection attempt.
NO_SERVER = "127.0.0.1:9 down"
# `colour=` marks a file written before the switch became a flag (one `<name>_live`
# upstream, switched by rewriting the file and reloading); it is read, never written.
_MARKER_RE = re.compile(
    re.escape(MARKER_PREFIX)
    + r" name=(?P<name>[a-z0-9_]+) (?:colour=(?P<colour>blue|green)|flag=(?P<flag>/\S+))"
)
_FLAG_PATH_RE = re.compile(r"/[A-Za-z0-9._/-]+")
_HOST_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PORT_RE = re.compile(r"[0-9]{1,5}")
# Characters that would end the server directive or the upstream block early, so a value
# containing them could inject arbitrary nginx configuration.
_FORBIDDEN_OPTION_CHARS = frozenset(";{}#\"'\\\n\r")


class NginxColorError(NginxConfigError):
    """A request or a file nginx_color refuses to act on; the message says what to do."""


@dataclass(frozen=True)
class Marker:
    """What the first line of a managed file records.

    A current file records the flag file that picks the colour (`flag`); a file from
    before the flag switch records the one colour its `<name>_live` upstream serves.
    """

    name: str
    colour: str | None = None
    flag: str | None = None


@dataclass(frozen=True)
class ProbeSettings:
    """How to prove, through nginx, that traffic reaches the requested colour."""

    url: str
    host_header: str | None
    header: str
    successes: int
    timeout: float
    interval: float


@dataclass(frozen=True)
class SwitchRequest:
    """A validated nginx_color request; colour None means read the active colour only."""

    name: str
    path: str
    colour: str | None
    servers: tuple[str, ...]
    servers_by_colour: dict[str, tuple[str, ...]]
    flag_path: str | None
    keepalive: int
    server_options: str
    test_command: tuple[str, ...]
    reload_command: tuple[str, ...]
    probe: ProbeSettings | None


@dataclass(frozen=True)
class ProbeResult:
    """One probe response; status and header are None when the request itself failed."""

    status: int | None
    header: str | None
    error: str | None = None
    # The version the server named (precheck only, when a version header is asked for).
    version: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "header": self.header,
            "error": self.error,
            "version": self.version,
        }


@dataclass(frozen=True)
class ProbeOutcome:
    """The verdict of a probe run: confirmed when `streak` reached the required count."""

    confirmed: bool
    probes: int
    streak: int
    last: ProbeResult


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise NginxColorError(
            f"name {name!r} is not valid: use lowercase letters, digits and underscores only "
            "(it names the nginx upstreams '<name>_blue' and '<name>_green')"
        )
    return name


def validate_colour(colour: object) -> str:
    if colour not in COLOURS:
        raise NginxColorError(f"colour {colour!r} is not valid: use one of {', '.join(COLOURS)}")
    return str(colour)


def resolve_colour(requested: str | None, live: str | None) -> str | None:
    """The colour to switch to: 'other' is the one that is not live now."""
    if requested != "other":
        return requested
    if live is None:
        raise NginxColorError(
            "colour=other needs a live colour to switch away from, and none is recorded yet; "
            "name the colour (blue or green) for the first switch"
        )
    return "green" if live == "blue" else "blue"


def _is_valid_host(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    labels = host.split(".")
    if all(label.isdigit() for label in labels):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return len(host) <= 253 and all(_HOST_LABEL_RE.fullmatch(label) for label in labels)


def validate_server(server: object) -> str:
    """Return `server` if it is 'host:port' (host a name, an IPv4 or a bracketed IPv6)."""
    if isinstance(server, str):
        host, sep, port = server.rpartition(":")
        if sep and _is_valid_host(host) and _PORT_RE.fullmatch(port) and 1 <= int(port) <= 65535:
            return server
    raise NginxColorError(
        f"server {server!r} is not valid: write it as host:port, e.g. 10.0.0.5:8001, "
        "app-green.example.com:8001 or [2001:db8::5]:8001"
    )


def servers_by_colour(servers: Mapping[str, Any] | None, colour: str) -> dict[str, tuple[str, ...]]:
    """The validated colour -> servers mapping; the servers of `colour` must not be empty."""
    if not servers:
        raise NginxColorError(
            f"servers is required to switch to {colour}: give a mapping such as "
            f"{{blue: ['10.0.0.5:8001'], green: ['10.0.0.5:8002']}}"
        )
    for key, entries in servers.items():
        if key not in COLOURS:
            raise NginxColorError(
                f"servers has a key {key!r}; its keys must be colours: {', '.join(COLOURS)}"
            )
        if not isinstance(entries, list):
            raise NginxColorError(
                f"servers.{key} must be a list of host:port strings, not {type(entries).__name__}"
            )
        for entry in entries:
            validate_server(entry)
    if not servers.get(colour):
        raise NginxColorError(
            f"servers.{colour} is empty or missing: list at least one host:port for {colour} "
            "before switching traffic to it"
        )
    return {key: tuple(servers.get(key) or ()) for key in COLOURS}


def servers_for(servers: Mapping[str, Any] | None, colour: str) -> tuple[str, ...]:
    """Validate the whole colour -> servers mapping and return the servers of `colour`."""
    return servers_by_colour(servers, colour)[colour]


def validate_flag_path(flag: object) -> str:
    """An absolute path nginx can test in an `if (-f ...)` and an include glob never reads."""
    if (
        not isinstance(flag, str)
        or not _FLAG_PATH_RE.fullmatch(flag)
        or flag.endswith(".conf")
        or "/../" in flag + "/"
    ):
        raise NginxColorError(
            f"flag_path {flag!r} is not valid: give an absolute path of letters, digits, "
            "'.', '_', '-' and '/' that does not end in .conf (nginx tests it on every "
            "request; an include of *.conf must not read it), e.g. "
            "/etc/nginx/bluegreen/sampleapp.green-live"
        )
    return flag


def validate_server_options(options: object) -> str:
    if not isinstance(options, str):
        raise NginxColorError(f"server_options must be a string, not {type(options).__name__}")
    bad = sorted(set(options) & _FORBIDDEN_OPTION_CHARS)
    if bad:
        raise NginxColorError(
            f"server_options {options!r} contains {''.join(bad)!r}; give only nginx server "
            "parameters separated by spaces, e.g. 'max_fails=0 weight=2'"
        )
    return options.strip()


def validate_keepalive(keepalive: object) -> int:
    if not isinstance(keepalive, int) or isinstance(keepalive, bool) or keepalive < 0:
        raise NginxColorError(
            f"keepalive {keepalive!r} is not valid: give the number of idle upstream "
            "connections to keep per worker, or 0 to leave keepalive out"
        )
    return keepalive


def validate_command(command: object, option: str) -> tuple[str, ...]:
    if (
        not isinstance(command, list)
        or not command
        or not all(isinstance(part, str) and part for part in command)
    ):
        raise NginxColorError(
            f"{option} must be a non-empty list of strings (the program and its arguments), "
            f"got {command!r}"
        )
    return tuple(command)


def probe_settings(params: Mapping[str, Any]) -> ProbeSettings | None:
    """Validate the probe_* options; None when probing is switched off (empty probe_url)."""
    url = params.get("probe_url") or ""
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise NginxColorError(
            f"probe_url {url!r} is not valid: give an http:// or https:// URL served by this "
            "nginx, or an empty string to skip probing"
        )
    successes = params.get("probe_successes")
    if not isinstance(successes, int) or successes < 1:
        raise NginxColorError(f"probe_successes must be 1 or more, got {successes!r}")
    timeout = params.get("probe_timeout")
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise NginxColorError(f"probe_timeout must be more than 0 seconds, got {timeout!r}")
    interval = params.get("probe_interval")
    if not isinstance(interval, (int, float)) or interval < 0:
        raise NginxColorError(f"probe_interval must be 0 seconds or more, got {interval!r}")
    header = params.get("probe_header") or ""
    if not header:
        raise NginxColorError("probe_header must name the response header that carries the colour")
    return ProbeSettings(
        url=url,
        host_header=params.get("probe_host_header") or None,
        header=header,
        successes=successes,
        timeout=float(timeout),
        interval=float(interval),
    )


def default_path(name: str) -> str:
    return f"{DEFAULT_DIRECTORY}/{name}.upstream.conf"


def default_flag_path(path: str, name: str) -> str:
    """The flag file beside the managed include: `<directory>/<name>.green-live`."""
    return posixpath.join(posixpath.dirname(path) or "/", f"{name}{FLAG_SUFFIX}")


def flag_path_for(requested: str | None, marker: Marker | None, path: str, name: str) -> str:
    """The flag file to use: the one asked for, else the one the file records, else the default."""
    return validate_flag_path(requested or recorded_flag_path(marker, path, name))


def recorded_flag_path(marker: Marker | None, path: str, name: str) -> str:
    """The flag file nginx tests now: the one the include records, else the default."""
    if marker is not None and marker.flag:
        return marker.flag
    return default_flag_path(path, name)


def build_request(params: Mapping[str, Any]) -> SwitchRequest:
    """Turn the module parameters into a SwitchRequest, or raise NginxColorError."""
    name = validate_name(params.get("name"))
    colour = params.get("colour")
    by_colour: dict[str, tuple[str, ...]] = {}
    if colour is not None:
        colour = validate_colour(colour)
        by_colour = servers_by_colour(params.get("servers"), colour)
    flag = params.get("flag_path")
    return SwitchRequest(
        name=name,
        path=params.get("path") or default_path(name),
        colour=colour,
        servers=by_colour.get(colour or "", ()),
        servers_by_colour=by_colour,
        flag_path=validate_flag_path(flag) if flag else None,
        keepalive=validate_keepalive(params.get("keepalive")),
        server_options=validate_server_options(params.get("server_options")),
        test_command=validate_command(params.get("test_command"), "test_command"),
        reload_command=validate_command(params.get("reload_command"), "reload_command"),
        probe=probe_settings(params),
    )


def marker_line(name: str, flag: str) -> str:
    return f"{MARKER_PREFIX} name={name} flag={flag}"


def render_upstreams(
    name: str,
    servers: Mapping[str, tuple[str, ...] | list[str]],
    keepalive: int,
    server_options: str,
    flag: str,
) -> str:
    """The full content of the managed include: both colours' upstreams, always defined.

    Which one serves is not in this file: the site proxies to `<name>_green` while `flag`
    exists and to `<name>_blue` otherwise, tested per request, so a switch needs no reload.
    """
    suffix = f" {server_options}" if server_options else ""
    lines = [
        marker_line(name, flag),
        "# Written by bluegreen nginx_color; edits are replaced on the next switch.",
        f"# Both colours stay defined. The site routes to {name}_green while {flag}",
        f"# exists and to {name}_blue otherwise; creating or removing it switches, no reload.",
    ]
    for colour in COLOURS:
        entries = servers.get(colour) or ()
        lines.append(f"upstream {name}_{colour} {{")
        if entries:
            lines.extend(f"    server {server}{suffix};" for server in entries)
        else:
            lines.append(f"    # {colour} has no servers yet: its requests get 502 at once.")
            lines.append(f"    server {NO_SERVER};")
        if keepalive:
            lines.append(f"    keepalive {keepalive};")
        lines.append("}")
    return "\n".join(lines) + "\n"


def parse_marker(content: str) -> Marker | None:
    """The marker on the first line of `content`, or None when there is none."""
    match = _MARKER_RE.fullmatch(content.split("\n", 1)[0].rstrip())
    if match is None:
        return None
    return Marker(name=match.group("name"), colour=match.group("colour"), flag=match.group("flag"))


def read_marker(content: str | None, name: str, path: str) -> Marker | None:
    """The marker of the managed file at `path`; None when the file does not exist."""
    if content is None:
        return None
    marker = parse_marker(content)
    if marker is None:
        raise NginxColorError(
            f"{path} exists but is not managed by bluegreen: its first line is not "
            f"'{marker_line(name, '<flag file>')}'. Move the file aside (and any nginx include "
            "that depends on it), or point path at a file bluegreen owns, then run again"
        )
    if marker.name != name:
        raise NginxColorError(
            f"{path} is managed by bluegreen for name={marker.name}, not name={name}: "
            f"use path to give {name} its own file, or set name={marker.name}"
        )
    return marker


def live_colour(marker: Marker | None, flag_exists: bool) -> str | None:
    """The colour nginx routes to: the flag decides, or an older file's one upstream."""
    if marker is None:
        return None
    if marker.colour is not None:
        return marker.colour
    return "green" if flag_exists else "blue"


def flag_content(colour: str | None, name: str) -> bytes | None:
    """What the flag file holds for `colour`: present for green, absent (None) otherwise."""
    if colour != "green":
        return None
    return (
        f"green is live for {name}: nginx routes to {name}_green while this file exists\n".encode()
    )


def switch_changes(
    path: str,
    before: bytes | None,
    after: bytes,
    flag: str,
    flag_before: bytes | None,
    previous_colour: str | None,
    colour: str,
    name: str,
) -> list[FileChange]:
    """The files to change, in order, to serve `colour` from `after`.

    When the include itself changes (servers, options, an older file, the first install)
    the flag is first set for the colour serving now, so the reload changes no route;
    nginx loads the include (tested first); then the flag moves traffic. A plain switch is
    the flag alone: nothing for nginx to load, so nothing to reload.
    """
    if before == after:
        return [FileChange(flag, flag_before, flag_for(colour, flag_before, name))]
    holding = flag_for(previous_colour or colour, flag_before, name)
    return [
        FileChange(flag, flag_before, holding),
        FileChange(path, before, after, loaded=True),
        FileChange(flag, holding, flag_for(colour, holding, name)),
    ]


def flag_for(colour: str, current: bytes | None, name: str) -> bytes | None:
    """The flag's content to serve `colour`: what it holds when that says so already."""
    wanted = flag_content(colour, name)
    return current if (wanted is None) == (current is None) else wanted


def next_streak(streak: int, result: ProbeResult, colour: str) -> int:
    """Consecutive confirmations after `result`: a mismatch or an error starts over."""
    if result.header is not None and result.header.strip() == colour:
        return streak + 1
    return 0


def wait_for_colour(
    probe: Callable[[float], ProbeResult],
    colour: str,
    settings: ProbeSettings,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> ProbeOutcome:
    """Probe until `settings.successes` consecutive responses name `colour`, or time runs out.

    `probe` takes a per-request timeout; `clock` and `sleep` are passed in so the loop itself
    stays free of real time and can be tested with a fake clock.
    """
    deadline = clock() + settings.timeout
    probes = streak = 0
    while True:
        remaining = deadline - clock()
        last = probe(max(min(PROBE_REQUEST_TIMEOUT, remaining), PROBE_REQUEST_MIN_TIMEOUT))
        probes += 1
        streak = next_streak(streak, last, colour)
        if streak >= settings.successes:
            return ProbeOutcome(confirmed=True, probes=probes, streak=streak, last=last)
        remaining = deadline - clock()
        if remaining <= 0:
            return ProbeOutcome(confirmed=False, probes=probes, streak=streak, last=last)
        sleep(min(settings.interval, remaining))


def describe_probe(result: ProbeResult, header: str) -> str:
    if result.status is None:
        return f"no response ({result.error})"
    seen = "no such header" if result.header is None else repr(result.header)
    return f"HTTP {result.status} with {header}: {seen}"


def _failed_after_write(command: tuple[str, ...], path: str, stderr: str) -> str:
    return f"{' '.join(command)} failed after writing {path}: {stderr.strip() or 'no error output'}"


def _restore_failed(path: str, colour: str, restore_error: str) -> str:
    return (
        f"putting the previous content of {path} back also failed: {restore_error}. "
        f"{path} still routes to {colour}: restore it by hand (or remove it if there was none), "
        "then run nginx -t and reload nginx"
    )


def _restored(path: str, previous_colour: str | None) -> str:
    if previous_colour is None:
        return f"{path} was removed again"
    return f"the previous upstream (colour {previous_colour}) was restored"


def check_failed_message(
    *,
    command: tuple[str, ...],
    path: str,
    stderr: str,
    colour: str,
    previous_colour: str | None,
    restore_error: str | None = None,
) -> str:
    """For a failed test_command: nginx never loaded the new file; say what is on disk now."""
    failure = _failed_after_write(command, path, stderr)
    if restore_error is not None:
        return f"{failure}; {_restore_failed(path, colour, restore_error)}"
    state = ", so nginx is as it was before" if previous_colour is None else " and is still serving"
    return (
        f"{failure}; {_restored(path, previous_colour)}{state}. Fix the servers or "
        "server_options (or the nginx configuration that includes this file) and run again"
    )


def reload_failed_message(
    *,
    command: tuple[str, ...],
    path: str,
    stderr: str,
    colour: str,
    previous_colour: str | None,
    restore_error: str | None = None,
    second_reload_stderr: str | None = None,
) -> str:
    """For a failed reload: what is on disk, and whether nginx took the restored file."""
    failure = _failed_after_write(command, path, stderr)
    if restore_error is not None:
        return f"{failure}; {_restore_failed(path, colour, restore_error)}"
    if second_reload_stderr is None:
        state = (
            "and nginx was reloaded with it, so traffic is where it was before. "
            "Find out why the reload failed (e.g. systemctl status nginx) and run again"
        )
    else:
        second_error = second_reload_stderr.strip() or "no error output"
        state = (
            f"but reloading nginx again also failed: {second_error}. "
            "nginx may be stopped or still running whatever it loaded last: check it now "
            "(systemctl status nginx; nginx -T) before running again"
        )
    return f"{failure}; {_restored(path, previous_colour)} {state}"


def probe_failed_message(
    *,
    path: str,
    colour: str,
    previous_colour: str | None,
    switched: bool,
    settings: ProbeSettings,
    outcome: ProbeOutcome,
) -> str:
    """For probes that did not confirm `colour`: traffic state and the way back."""
    seen = (
        f"{outcome.probes} probes of {settings.url} in {settings.timeout:g}s did not see "
        f"{settings.successes} consecutive responses with {settings.header}: {colour} "
        f"(the final run of matching responses was {outcome.streak}); last seen: "
        f"{describe_probe(outcome.last, settings.header)}"
    )
    if not switched:
        return (
            f"{path} already routes {colour} (nothing was changed or reloaded), but {seen}. "
            "Check that nginx has loaded this file (nginx -T; reload it), that it includes the "
            f"upstream in the server that answers {settings.url}, and that the {colour} servers "
            f"send {settings.header}"
        )
    way_back = (
        f"run again with colour={previous_colour} to send traffic back"
        if previous_colour
        else "there is no previous colour to switch back to"
    )
    return (
        f"nginx was told to route to {colour} ({path} and its flag file), but {seen}. "
        f"Traffic may not be reaching {colour} (or {colour} does not send "
        f"{settings.header}): check the {colour} servers, or {way_back}"
    )


def build_diff(before: str, after: str, path: str) -> dict[str, str]:
    return {"before": before, "after": after, "before_header": path, "after_header": path}


def flag_diff(flag: str, before: bytes | None, after: bytes | None) -> dict[str, str]:
    """The flag's part of the diff: whether it exists, and so which colour serves."""

    def state(content: bytes | None) -> str:
        return "present: green serves\n" if content is not None else "absent: blue serves\n"

    return build_diff(state(before), state(after), flag)


def precheck_failed_message(
    colour: str,
    previous_colour: str | None,
    path: str,
    answers: Mapping[str, ProbeResult],
    refused_versions: Mapping[str, str] | None = None,
    version_header: str = "",
) -> str | None:
    """Why a switch to `colour` is refused after asking its servers directly, or None.

    A server answers badly, or runs a version in ``refused_versions`` (version -> why,
    for example one the release journal marks bad).
    """
    refused_versions = refused_versions or {}
    bad = {server: answer for server, answer in answers.items() if answer.status != 200}
    refused = {
        server: answer
        for server, answer in answers.items()
        if server not in bad and answer.version in refused_versions
    }
    # Asked for a version while some are refused: a server that names none might run one.
    unnamed = (
        {
            server: answer
            for server, answer in answers.items()
            if server not in bad and not answer.version
        }
        if refused_versions and version_header
        else {}
    )
    if not bad and not refused and not unnamed:
        return None
    details = "; ".join(
        [
            f"{server}{path} answered {answer.status}"
            if answer.status is not None
            else f"{server}{path} did not answer ({answer.error})"
            for server, answer in bad.items()
        ]
        + [
            f"{server} runs {answer.version}, {refused_versions[str(answer.version)]}"
            for server, answer in refused.items()
        ]
        + [
            f"{server} names no version in {version_header}, so it cannot be told from the "
            f"versions a rollback must not go to ({', '.join(sorted(refused_versions))}); set "
            "bluegreen_service_version_header to '' and bluegreen reads what its hosts run"
            for server in unnamed
        ]
    )
    where = f"traffic stays on {previous_colour}" if previous_colour else "nothing was changed"
    advice = (
        f"Start or fix the {colour} colour first (bluegreen status shows its health)"
        if bad
        else f"Release a verified version to {colour} instead (bluegreen history shows them)"
    )
    return f"refusing to switch to {colour}: {details}; nothing was written and {where}. {advice}"


# Canary: the site hashes each client into one of CANARY_BUCKETS buckets (split_clients,
# 1 % each, named c00..c99) and sends a request to a colour while the file
# <canary directory>/<colour>/<bucket> exists; the flag decides for every other bucket.
# A share of N % is the files of buckets c00..c(N-1): raising it adds buckets, so a client
# once on the new colour stays there. Every switch removes them all.
CANARY_BUCKETS = 100
_BUCKET_RE = re.compile(r"c[0-9]{2}")


def canary_directory(flag: str, name: str) -> str:
    """Where the canary's bucket files live: beside the flag, `<name>.canary`."""
    return posixpath.join(posixpath.dirname(flag) or "/", f"{name}.canary")


def bucket_name(index: int) -> str:
    return f"c{index:02d}"


def validate_canary(percent: object) -> int:
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent < 100:
        raise NginxColorError(
            f"canary must be a whole percentage from 0 to 99, not {percent!r}: 0 (the default) "
            "moves all traffic, 5 sends 5 % of clients to the colour"
        )
    return percent


def canary_buckets(names: Iterable[str]) -> frozenset[str]:
    """The bucket files among a directory's names (anything else there is left alone)."""
    return frozenset(name for name in names if _BUCKET_RE.fullmatch(name))


def canary_share(buckets: Mapping[str, frozenset[str]]) -> dict[str, Any] | None:
    """The canary in place: the colour its buckets send traffic to and their share, or
    None. Both colours' buckets at once (a switch cut short) names the larger share."""
    shares = {colour: len(found) for colour, found in buckets.items() if found}
    if not shares:
        return None
    colour = max(sorted(shares), key=lambda c: shares[c])
    return {"colour": colour, "percent": shares[colour]}


def canary_changes(
    directory: str, buckets: Mapping[str, frozenset[str]], colour: str | None, percent: int
) -> list[FileChange]:
    """The bucket files to add and remove so that `percent` % of clients go to `colour`
    (none of any colour for percent 0): additions first, lowest bucket first."""
    wanted = {bucket_name(i) for i in range(percent)} if colour else set()
    adds = [
        FileChange(posixpath.join(directory, colour, name), None, b"")
        for name in sorted(wanted - set(buckets.get(colour or "", ())))
    ]
    removes = [
        FileChange(posixpath.join(directory, found_colour, name), b"", None)
        for found_colour in sorted(buckets)
        for name in sorted(buckets[found_colour])
        if found_colour != colour or name not in wanted
    ]
    return adds + removes


def canary_diff(
    directory: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> dict[str, str]:
    def text(share: Mapping[str, Any] | None) -> str:
        if not share:
            return "no canary\n"
        return f"{share['percent']} % of clients to {share['colour']}\n"

    return {
        "before_header": directory,
        "after_header": directory,
        "before": text(before),
        "after": text(after),
    }
