#!/usr/bin/python
# Copyright: (c) 2025, bluegreen contributors
# Apache License 2.0 (see the project's pyproject.toml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nginx_color
short_description: Switch a blue/green service's live colour in nginx, reload-free, and prove it
description:
  - Manages one nginx include file that defines both colours' upstreams,
    C(upstream <name>_blue { ... }) and C(upstream <name>_green { ... }), and one flag file,
    O(flag_path). nginx routes to green while the flag file exists and to blue otherwise, because
    the site tests it on every request with C(if -f), so a switch creates or removes the
    flag, takes effect on the next request and reloads nothing. A reload would close the idle
    keep-alive connections of clients and of any proxy in front of nginx, and a request already
    on its way over one would get no answer.
  - "The first line of the include is a marker comment,
    C(# managed by bluegreen nginx_color: name=<name> flag=<flag_path>), and the live colour is
    read from it and the flag. A file at O(path) without that marker is refused, never
    overwritten. A file written by an older bluegreen (marker C(colour=<colour>), one
    C(<name>_live) upstream) is read as serving that colour and rewritten on the next switch."
  - Without O(colour) the module only reads the file and the flag and returns the active colour.
  - With O(colour) it renders both upstreams. When the include already has exactly that
    content only the flag changes, if it must. When the include changes (first install,
    servers or options changed, an older file), the flag is first set for the colour serving
    now, the new content goes to a temporary file in the same directory and is renamed over
    O(path), O(test_command) checks the configuration and O(reload_command) reloads nginx
    gracefully; only then does the flag move traffic. If the check or the reload fails, every
    file is put back (and nginx reloaded again after a failed reload) and the task fails, so
    the previous colour keeps serving.
  - Finally the module sends requests to O(probe_url) through nginx until O(probe_successes)
    consecutive responses carry O(probe_header) with the new colour, which proves that nginx
    routes to it. If that does not happen within O(probe_timeout) the task fails and returns
    RV(previous_colour) so the caller can switch back. When nothing changed it still probes,
    so a re-run proves that traffic is where it should be.
  - "A canary (O(canary) above 0) sends only that share of clients to O(colour): the site
    hashes each client into one of 100 buckets (C(split_clients), 1 % each, C(c00) to
    C(c99)) and routes a request to a colour while the file C(<canary directory>/<colour>/<bucket>)
    exists, the flag deciding for every other bucket. The module adds the files of buckets
    C(c00) up to the share (raising a share only adds, so a client once on the new colour
    stays there) and removes any other; the flag is not touched and nothing is probed (a
    share cannot be proven by a few requests). Every switch (O(canary=0)) removes the bucket
    files after the flag moved, so a switch back also ends a canary. The canary directory is
    C(<directory of the flag>/<name>.canary)."
  - "Include the file from an C(http) block, e.g. C(include /etc/nginx/bluegreen/*.conf;), and
    in the server that serves the application a variable set to C(blue), set to C(green) by an
    C(if -f) test of O(flag_path), and C(proxy_pass http://<name>_$variable;). The site that
    the bluegreen_lb role renders does exactly this."
version_added: "0.1.0"
options:
  name:
    description:
      - Name of the service. The upstream is called C(<name>_live).
      - Lowercase letters, digits and underscores only, so it is always a valid nginx name.
    type: str
    required: true
  colour:
    description:
      - The colour that should receive traffic.
      - V(other) means the colour that is not live now (a rollback); it fails when no
        colour is live yet.
      - Omit it to read the active colour without changing anything.
    type: str
    choices: [blue, green, other]
  servers:
    description:
      - The backends of each colour, as a mapping from colour to a list of C(host:port) strings.
      - Required when O(colour) is set; the list for O(colour) must not be empty. Hosts may be
        names, IPv4 addresses or bracketed IPv6 addresses.
      - Giving both colours (not only the one switched to) lets every entry be checked on every run.
    type: dict
  path:
    description:
      - The include file that holds the live upstream.
      - Defaults to C(/etc/nginx/bluegreen/<name>.upstream.conf). Missing directories are
        created with mode C(0755); the file is written with mode C(0644).
      - Temporary files in that directory end in C(.tmp), so an C(include *.conf) never reads one.
    type: path
  flag_path:
    description:
      - The flag file; green serves while it exists, blue otherwise. The site must test this
        path (with C(if -f)) and nginx's workers must be able to see it.
      - Defaults to the flag the include records, else C(<directory of path>/<name>.green-live).
      - Giving a different path than the include records rewrites the include (and reloads
        nginx once); the site must test the new path by then.
      - An absolute path of letters, digits, C(.), C(_), C(-) and C(/), not ending in C(.conf).
      - When Ansible cannot run, C(touch) on it sends traffic to green and C(rm) to blue.
    type: path
  keepalive:
    description:
      - Idle connections to the upstream that each nginx worker keeps open
        (the C(keepalive) directive), which spares a TCP handshake per proxied request.
      - V(0) leaves the directive out.
      - Keepalive needs C(proxy_http_version 1.1;) and C(proxy_set_header Connection "";) in the
        proxying location.
    type: int
    default: 32
  server_options:
    description:
      - Parameters appended to every C(server) line of the upstream.
      - The default V(max_fails=0) stops nginx from marking a colour's only server as down after
        a few errors, which would make a single-server colour unavailable for C(fail_timeout).
      - Characters that could end the directive or the block (C(;), C({), C(}), C(#), quotes,
        backslashes, newlines) are refused.
    type: str
    default: max_fails=0
  test_command:
    description:
      - Command that checks the nginx configuration after the file is written, as a list of
        program and arguments (run without a shell).
      - When it exits non-zero the previous file is put back and the task fails with its stderr.
    type: list
    elements: str
    default: [nginx, -t]
  reload_command:
    description:
      - Command that makes nginx load the new configuration gracefully (old workers finish their
        requests), as a list of program and arguments (run without a shell).
    type: list
    elements: str
    default: [systemctl, reload, nginx]
  probe_url:
    description:
      - "URL, served by this nginx, that the module requests after the switch to confirm which
        colour answers. Each request opens a new connection (C(Connection: close)) so it is
        served by a current worker."
      - Any HTTP status counts, as long as O(probe_header) names the colour; redirects are not
        followed. C(https) URLs verify the certificate.
      - Set to an empty string to skip probing (then nothing proves the switch).
    type: str
    default: http://127.0.0.1/
  probe_host_header:
    description:
      - Host header to send with each probe, to reach the right C(server_name) when O(probe_url)
        uses an IP address.
    type: str
  probe_header:
    description:
      - Response header in which the application (or the nginx location of each colour) names
        the colour that served the request.
    type: str
    default: X-Bluegreen-Colour
  probe_successes:
    description:
      - How many consecutive responses must carry the new colour. A response with another colour,
        without the header, or a failed request starts the count again.
      - More than one is needed because old nginx workers finish their connections after a reload.
    type: int
    default: 5
  probe_timeout:
    description:
      - Seconds to wait for O(probe_successes) consecutive confirmations before failing.
      - A single request waits at most 2 seconds, so one hung connection cannot use up the time.
    type: float
    default: 30.0
  probe_interval:
    description:
      - Seconds to wait between probe requests.
    type: float
    default: 0.1
  precheck_path:
    description:
      - Before a switch changes the file, GET this path directly on every server of
        O(colour) (C(http://<server><path>), from this host) and refuse to switch unless
        each answers 200. Nothing is written when one does not.
      - This is the last guard against sending traffic to a colour that is down, for
        example a rollback to a colour whose service was stopped.
      - Empty (the default) skips the check.
    type: str
    default: ""
  precheck_version_header:
    description:
      - With O(precheck_path), the response header in which each server names its
        version, read during the precheck and returned in RV(precheck).
    type: str
    default: ""
  precheck_refuse_versions:
    description:
      - With O(precheck_version_header), versions (mapped to the reason) that traffic
        must not go to; a server of O(colour) that names one of them makes the switch
        refused, nothing written. A rollback passes the versions the release journal
        marks bad or never verified. While some are listed, a server that names no
        version in O(precheck_version_header) is refused too, since it may run one.
    type: dict
    default: {}
  canary:
    description:
      - With O(colour), the percentage of clients (by the site's buckets) sent to O(colour)
        while the flag keeps the live colour for the others, from V(1) to V(99).
      - V(0) (the default) is a switch of all traffic, which also ends any canary.
      - O(colour) must not be the live colour; the O(precheck_path) check runs as for a switch.
    type: int
    default: 0
extends_documentation_fragment:
  - action_common_attributes
  - action_common_attributes.files
attributes:
  check_mode:
    support: full
    details: In check mode nothing is written, reloaded or probed; RV(changed) and the diff
      tell what would change.
  diff_mode:
    support: full
  platform:
    platforms: posix
  safe_file_operations:
    support: full
  vault:
    support: none
notes:
  - The backends must name their colour in O(probe_header), e.g. the application sets it from its
    environment, or each colour's nginx location adds it with C(add_header).
  - Run the module on every load-balancer host; switching several hosts together is the calling
    playbook's job.
seealso:
  - name: nginx upstream module
    description: The upstream, server and keepalive directives that the managed file uses.
    link: https://nginx.org/en/docs/http/ngx_http_upstream_module.html
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Read which colour is live for sampleapp
  nginx_color:
    name: sampleapp
  register: sampleapp_live

- name: Send sampleapp traffic to green and wait until nginx serves green
  nginx_color:
    name: sampleapp
    colour: green
    servers:
      blue: ["10.0.0.11:8001", "10.0.0.12:8001"]
      green: ["10.0.0.11:8002", "10.0.0.12:8002"]
    probe_url: http://127.0.0.1/healthz
    probe_host_header: sampleapp.example.com
  register: sampleapp_switch

- name: Show how long the switch took
  ansible.builtin.debug:
    msg: "{{ sampleapp_switch.previous_colour }} -> {{ sampleapp_switch.active_colour }}
      in {{ sampleapp_switch.switch_ms }} ms"

- name: Switch back to blue on a host where nginx runs under a different service manager
  nginx_color:
    name: sampleapp
    colour: blue
    servers:
      blue: ["127.0.0.1:8001"]
      green: ["127.0.0.1:8002"]
    path: /usr/local/etc/nginx/bluegreen/sampleapp.upstream.conf
    test_command: [/usr/local/sbin/nginx, -t]
    reload_command: [/usr/local/sbin/nginx, -s, reload]
    keepalive: 0
    server_options: max_fails=0 weight=1
    probe_successes: 10
    probe_timeout: 60
"""

RETURN = r"""
previous_colour:
  description:
    - The colour the file routed to before the task; V(null) when there was no file.
    - Also returned when a switch fails, so the caller knows where to switch back.
  returned: always
  type: str
  sample: blue
active_colour:
  description:
    - The colour the file routes to after the task (in check mode, the colour it would route to).
    - V(null) when only reading and there is no file.
  returned: always
  type: str
  sample: green
canary:
  description:
    - The canary after the task, the colour its bucket files send clients to and their
      share in percent; V(null) when there is none (after any switch).
  returned: success
  type: dict
  sample: {colour: green, percent: 25}
previous_canary:
  description: The canary before the task, as RV(canary).
  returned: success
  type: dict
  sample: {colour: green, percent: 5}
path:
  description: The managed include file.
  returned: always
  type: str
  sample: /etc/nginx/bluegreen/sampleapp.upstream.conf
flag_path:
  description: The flag file that routes to green while it exists.
  returned: always
  type: str
  sample: /etc/nginx/bluegreen/sampleapp.green-live
reloaded:
  description:
    - Whether nginx was reloaded (only when the include itself changed).
    - In check mode, whether it would be.
  returned: always
  type: bool
  sample: false
switch_ms:
  description:
    - Milliseconds from the start of writing the flag (or the include) until the probes
      confirmed the new colour (until the last file was written when probing is off).
    - V(null) when nothing was switched (no change, read only, or check mode).
  returned: always
  type: float
  sample: 412.7
probes:
  description: How many probe requests were sent; V(0) when probing was skipped.
  returned: always
  type: int
  sample: 7
precheck:
  description: Answer of each server of O(colour) to O(precheck_path); empty when not checked.
  returned: always
  type: dict
  sample: {"app-green:8002": {"status": 200, "header": "green", "error": null}}
last_probe:
  description: The last probe response; V(null) when no probe was sent.
  returned: always
  type: dict
  contains:
    status:
      description: HTTP status of the response; V(null) when the request failed.
      type: int
      sample: 200
    header:
      description: Value of O(probe_header) in the response; V(null) when it was absent.
      type: str
      sample: green
    error:
      description: Why the request failed (connection refused, timeout); V(null) when it did not.
      type: str
      sample: null
  sample: {status: 200, header: green, error: null}
diff:
  description: Content of the file before and after, with the path as both headers.
  returned: when diff mode is on and a colour was requested
  type: dict
  contains:
    before:
      description: Previous content (empty when there was no file).
      type: str
    after:
      description: New content.
      type: str
    before_header:
      description: The path.
      type: str
    after_header:
      description: The path.
      type: str
rc:
  description: Exit code of the command that failed.
  returned: when test_command or reload_command failed
  type: int
  sample: 1
stdout:
  description: Standard output of the command that failed.
  returned: when test_command or reload_command failed
  type: str
  sample: ""
stderr:
  description: Standard error of the command that failed.
  returned: when test_command or reload_command failed
  type: str
  sample: 'nginx: [emerg] invalid parameter "bogus" in /etc/nginx/bluegreen/app.upstream.conf:4'
cmd:
  description: The command that failed.
  returned: when test_command or reload_command failed
  type: list
  elements: str
  sample: [nginx, -t]
"""

import http.client
import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.nginx_color import (
    NginxColorError,
    ProbeResult,
    ProbeSettings,
    SwitchRequest,
    build_diff,
    build_request,
    canary_buckets,
    canary_changes,
    canary_diff,
    canary_directory,
    canary_share,
    check_failed_message,
    default_path,
    flag_diff,
    flag_path_for,
    live_colour,
    precheck_failed_message,
    probe_failed_message,
    read_marker,
    recorded_flag_path,
    reload_failed_message,
    render_upstreams,
    resolve_colour,
    switch_changes,
    validate_canary,
    validate_name,
    wait_for_colour,
)
from ansible.module_utils.nginx_config import (
    FileChange,
    NginxConfigError,
    apply_changes,
    as_text,
    read_file,
)

PRECHECK_TIMEOUT_S = 5.0

ARGUMENT_SPEC: dict[str, dict[str, Any]] = dict(
    name=dict(type="str", required=True),
    colour=dict(type="str", choices=["blue", "green", "other"]),
    servers=dict(type="dict"),
    path=dict(type="path"),
    flag_path=dict(type="path"),
    keepalive=dict(type="int", default=32),
    server_options=dict(type="str", default="max_fails=0"),
    test_command=dict(type="list", elements="str", default=["nginx", "-t"]),
    reload_command=dict(type="list", elements="str", default=["systemctl", "reload", "nginx"]),
    probe_url=dict(type="str", default="http://127.0.0.1/"),
    precheck_path=dict(type="str", default=""),
    precheck_version_header=dict(type="str", default=""),
    precheck_refuse_versions=dict(type="dict", default={}),
    probe_host_header=dict(type="str"),
    probe_header=dict(type="str", default="X-Bluegreen-Colour"),
    probe_successes=dict(type="int", default=5),
    probe_timeout=dict(type="float", default=30.0),
    probe_interval=dict(type="float", default=0.1),
    canary=dict(type="int", default=0),
)


def probe_once(settings: ProbeSettings, timeout: float, version_header: str = "") -> ProbeResult:
    """One GET on a fresh connection; the status and the colour header that came back."""
    url = urlsplit(settings.url)
    connection_class = (
        http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(url.hostname or "", url.port, timeout=timeout)
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    headers = {"Connection": "close", "User-Agent": "bluegreen-nginx_color"}
    if settings.host_header:
        headers["Host"] = settings.host_header
    try:
        connection.request("GET", target, headers=headers)
        response = connection.getresponse()
        response.read()
        return ProbeResult(
            status=response.status,
            header=response.getheader(settings.header),
            version=response.getheader(version_header) if version_header else None,
        )
    except (OSError, http.client.HTTPException) as exc:
        return ProbeResult(status=None, header=None, error=str(exc) or type(exc).__name__)
    finally:
        connection.close()


def precheck(request: SwitchRequest, path: str, version_header: str = "") -> dict[str, ProbeResult]:
    """GET `path` on every server of the requested colour, straight, not through nginx."""
    header = request.probe.header if request.probe else "X-Bluegreen-Colour"
    if not path.startswith("/"):
        path = "/" + path
    return {
        server: probe_once(
            ProbeSettings(
                url=f"http://{server}{path}",
                host_header=None,
                header=header,
                successes=1,
                timeout=PRECHECK_TIMEOUT_S,
                interval=0,
            ),
            PRECHECK_TIMEOUT_S,
            version_header,
        )
        for server in request.servers
    }


@dataclass(frozen=True)
class Current:
    """What is on disk before the task: the include, its flag and the colour they route to.

    `flag_path` is the flag to use from now on; `recorded_flag` the one nginx tests now
    (they differ when the caller moves the flag).
    """

    before: bytes | None
    flag_path: str
    flag_before: bytes | None
    colour: str | None
    recorded_flag: str
    recorded_flag_before: bytes | None
    canary_directory: str
    buckets: dict[str, frozenset[str]]

    @property
    def canary(self) -> dict[str, Any] | None:
        return canary_share(self.buckets)


def read_current(name: str, path: str, requested_flag: str | None) -> Current:
    """Read the include and its flag; raises NginxConfigError for a file bluegreen does not own."""
    before = read_file(path)
    marker = read_marker(as_text(before), name, path)
    flag = flag_path_for(requested_flag, marker, path, name)
    recorded = recorded_flag_path(marker, path, name)
    recorded_before = read_file(recorded)
    directory = canary_directory(flag, name)
    return Current(
        before=before,
        flag_path=flag,
        flag_before=read_file(flag) if flag != recorded else recorded_before,
        colour=live_colour(marker, recorded_before is not None),
        recorded_flag=recorded,
        recorded_flag_before=recorded_before,
        canary_directory=directory,
        buckets=read_buckets(directory),
    )


def read_buckets(directory: str) -> dict[str, frozenset[str]]:
    """Each colour's canary bucket files present now."""
    found = {}
    for colour in ("blue", "green"):
        try:
            found[colour] = canary_buckets(os.listdir(os.path.join(directory, colour)))
        except FileNotFoundError:
            found[colour] = frozenset()
    return found


def apply_switch(
    module: AnsibleModule,
    request: SwitchRequest,
    colour: str,
    current: Current,
    changes: list[FileChange],
) -> None:
    """Write the files in order (testing and reloading for the include); on any failure
    every file is put back and the task fails.

    After a failed reload nginx is reloaded once more, so it serves the files put back.
    """
    previous_colour = current.colour
    failed = apply_changes(module, changes, request.test_command, request.reload_command)
    if failed is None:
        return
    if failed.step == "write":
        module.fail_json(
            msg=f"could not write {failed.path}: {failed.stderr}; every file was put back, so "
            "traffic is where it was. Check that its directory exists or can be created and is "
            "writable (become: true)",
            changed=False,
            path=request.path,
            flag_path=current.flag_path,
            previous_colour=previous_colour,
            active_colour=previous_colour,
        )
    message = check_failed_message if failed.step == "test" else reload_failed_message
    details = {} if failed.step == "test" else {"second_reload_stderr": failed.second_reload_stderr}
    restore_error = "; ".join(f"{path}: {error}" for path, error in failed.restore_errors.items())
    module.fail_json(
        msg=message(
            command=failed.command,
            path=request.path,
            stderr=failed.stderr,
            colour=colour,
            previous_colour=previous_colour,
            restore_error=restore_error or None,
            **details,
        ),
        rc=failed.rc,
        stdout=failed.stdout,
        stderr=failed.stderr,
        cmd=list(failed.command),
        changed=not failed.restored,
        path=request.path,
        flag_path=current.flag_path,
        previous_colour=previous_colour,
        active_colour=previous_colour if failed.restored else colour,
    )


def switch(
    module: AnsibleModule, request: SwitchRequest, colour: str, current: Current
) -> dict[str, Any]:
    """Make nginx route `request.name` to `colour` and prove it; the result to return.

    With a canary share only that share of clients moves: the flag keeps the live colour
    and nothing can prove a share by probing (the analysis measures it from the log).
    """
    previous_colour = current.colour
    percent = validate_canary(module.params["canary"])
    if percent and colour == previous_colour:
        raise NginxColorError(
            f"{colour} is live already: a canary sends a share of the traffic to the colour "
            "that is not live; give that colour, or canary 0 for a switch"
        )
    after_text = render_upstreams(
        request.name,
        request.servers_by_colour,
        request.keepalive,
        request.server_options,
        current.flag_path,
    )
    after = after_text.encode("utf-8")
    planned = switch_changes(
        request.path,
        current.before,
        after,
        current.flag_path,
        current.flag_before,
        previous_colour,
        (previous_colour or colour) if percent else colour,
        request.name,
    )
    if current.recorded_flag != current.flag_path:
        # The flag moved: nginx tests the new one once the include is loaded.
        planned.append(FileChange(current.recorded_flag, current.recorded_flag_before, None))
    # After the flag: a switch to the canary's colour moves its clients nowhere new, and a
    # switch back sends them back only once the flag says where everyone else goes.
    planned += canary_changes(
        current.canary_directory, current.buckets, colour if percent else None, percent
    )
    changes = [change for change in planned if change.before != change.after]
    changed = bool(changes)
    moves = colour != previous_colour
    canary_after = {"colour": colour, "percent": percent} if percent else None
    result: dict[str, Any] = dict(
        changed=changed,
        path=request.path,
        flag_path=current.flag_path,
        reloaded=any(change.loaded for change in changes),
        previous_colour=previous_colour,
        active_colour=previous_colour if percent else colour,
        previous_canary=current.canary,
        canary=canary_after,
        switch_ms=None,
        probes=0,
        last_probe=None,
    )
    result["precheck"] = {}
    if module._diff:
        flag_changes = [change for change in changes if change.path == current.flag_path]
        flag_after = flag_changes[-1].after if flag_changes else current.flag_before
        result["diff"] = [
            build_diff(as_text(current.before) or "", after_text, request.path),
            flag_diff(current.flag_path, current.flag_before, flag_after),
        ]
        if current.canary or canary_after:
            result["diff"].append(
                canary_diff(current.canary_directory, current.canary, canary_after)
            )
    if module.check_mode:
        return result

    started = time.monotonic()
    if moves and module.params["precheck_path"]:
        answers = precheck(
            request, module.params["precheck_path"], module.params["precheck_version_header"]
        )
        result["precheck"] = {server: answer.as_dict() for server, answer in answers.items()}
        refused = precheck_failed_message(
            colour,
            previous_colour,
            module.params["precheck_path"],
            answers,
            module.params["precheck_refuse_versions"],
            module.params["precheck_version_header"],
        )
        if refused:
            module.fail_json(
                msg=refused,
                **dict(result, changed=False, reloaded=False, active_colour=previous_colour),
            )
    if changed:
        apply_switch(module, request, colour, current, changes)
        after = read_current(request.name, request.path, current.flag_path)
        result["active_colour"], result["canary"] = after.colour, after.canary
    if request.probe is not None and not percent:
        settings = request.probe
        outcome = wait_for_colour(
            lambda timeout: probe_once(settings, timeout),
            colour,
            settings,
            clock=time.monotonic,
            sleep=time.sleep,
        )
        result["probes"] = outcome.probes
        result["last_probe"] = outcome.last.as_dict()
        if not outcome.confirmed:
            module.fail_json(
                msg=probe_failed_message(
                    path=request.path,
                    colour=colour,
                    previous_colour=previous_colour,
                    switched=changed,
                    settings=settings,
                    outcome=outcome,
                ),
                **result,
            )
    if changed:
        result["switch_ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        name = validate_name(module.params["name"])
        path = module.params["path"] or default_path(name)
        current = read_current(name, path, module.params["flag_path"])
        request = build_request(
            dict(module.params, colour=resolve_colour(module.params["colour"], current.colour))
        )
    except NginxConfigError as exc:
        module.fail_json(msg=str(exc), changed=False)

    if request.colour is None:
        module.exit_json(
            changed=False,
            path=request.path,
            flag_path=current.flag_path,
            reloaded=False,
            previous_colour=current.colour,
            active_colour=current.colour,
            previous_canary=current.canary,
            canary=current.canary,
            switch_ms=None,
            probes=0,
            last_probe=None,
        )
    try:
        result = switch(module, request, request.colour, current)
    except NginxConfigError as exc:
        module.fail_json(msg=str(exc), changed=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
