# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""What the container runtime decides (bluegreen_service_runtime: container): pure
functions that the modules run on the app host and ``bluegreen build --image`` runs on
the controller, unit-tested without Docker.

A colour of the container runtime is one Compose project, ``<service>-<colour>``, run by
the colour's systemd unit in the foreground; its image is the one ``bluegreen build
--image`` saved into the artifact, loaded on the host and tagged ``<artifact
name>:<version>``. A one-off container of the same image (the migration, a hook) runs
with the colour's user, environment, configuration and data, as the colour does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

VIRTUALENV = "virtualenv"
CONTAINER = "container"
RUNTIMES = (VIRTUALENV, CONTAINER)
# The artifact's member that holds `docker save` output, and the image's release root.
IMAGE_MEMBER = "image.tar"
IMAGE_WORKDIR = "/app"
# Docker's tag grammar: https://docs.docker.com/reference/cli/docker/image/tag/
_TAG_CHARACTERS = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")

HEALTHY = "healthy"
UNHEALTHY = "unhealthy"
STARTING = "starting"
NO_HEALTHCHECK = "none"


class ImageTagError(ValueError):
    """A name or version that cannot name a Docker image."""


def docker_tag(version: str) -> str:
    """``version`` as a Docker tag: a PEP 440 local label's ``+`` written ``-``."""
    tag = version.replace("+", "-")
    if len(tag) > 128:
        raise ImageTagError(
            f"version {version} is {len(tag)} characters, and a Docker tag holds at most 128: "
            "build the image under a shorter version (or local label)"
        )
    if not _TAG_CHARACTERS.match(tag):
        others = sorted(set(re.sub(r"[A-Za-z0-9_.-]", "", tag)))
        raise ImageTagError(
            f"version {version!r} cannot be a Docker image tag: it holds "
            f"{' '.join(others) or tag[:1] or 'nothing'} where a tag allows letters, digits, "
            "_ . and - (and + in a local label, written -), starting with a letter, digit or "
            "_; build the image under a version without them (an epoch such as 1! is the "
            "usual one)"
        )
    return tag


def image_tag(name: str, version: str) -> str:
    """``<name>:<version>`` as Docker accepts it: the name lowercased, the version as
    ``docker_tag`` writes it."""
    repository = name.lower()
    if not _REPOSITORY.match(repository):
        raise ImageTagError(
            f"{name!r} cannot name a Docker image (lower case letters and digits, with "
            "single . _ or - between them): build it under a name that can (--name)"
        )
    return f"{repository}:{docker_tag(version)}"


def compose_project(service: str, colour: str) -> str:
    """The Compose project of one colour; Compose keeps only [a-z0-9_-] of a name."""
    return re.sub(r"[^a-z0-9_-]", "", f"{service}-{colour}".lower())


def environment_names(env_file_names: Iterable[str]) -> list[str]:
    """The variables a container gets from the process that starts it, by name only:
    their values (secrets among them) stay in the colour's env file and that process's
    environment, never on a command line or in a Compose file."""
    return sorted(set(env_file_names))


def one_off_argv(
    engine: str,
    image: str,
    *,
    user: str,
    env_names: Sequence[str],
    volumes: Sequence[str],
    command: Sequence[str],
    workdir: str = IMAGE_WORKDIR,
) -> list[str]:
    """``docker run`` of one command in a fresh container of the colour's image: the
    host's network (the database address is the host's), the service's user, its
    configuration and data, and the named variables taken from the caller's environment."""
    argv = [engine, "run", "--rm", "-i", "--network", "host", "--user", user, "--workdir", workdir]
    for name in env_names:
        argv += ["--env", name]
    for volume in volumes:
        argv += ["--volume", volume]
    return [*argv, image, *command]


def health_states(inspected: str) -> list[dict[str, Any]]:
    """Each container's health from ``docker inspect`` JSON: its status (``none`` for an
    image without a HEALTHCHECK) and the output of its last check."""
    states = []
    for container in json.loads(inspected or "[]"):
        health = (container.get("State") or {}).get("Health")
        log = (health or {}).get("Log") or []
        last = log[-1] if log else {}
        states.append(
            {
                "name": str(container.get("Name", "")).lstrip("/"),
                "status": health.get("Status", STARTING) if health else NO_HEALTHCHECK,
                "exit_code": last.get("ExitCode"),
                "output": str(last.get("Output", "")).strip(),
                "checked_at": docker_time(str(last.get("Start", ""))),
            }
        )
    return states


def docker_time(text: str) -> float | None:
    """Seconds since the epoch of a Docker timestamp (RFC 3339, nanoseconds), or None."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if not match:
        return None
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    fraction = (match.group(2) or "0")[:6].ljust(6, "0")
    return datetime.fromisoformat(f"{match.group(1)}.{fraction}{zone}").timestamp()


def health_verdict(states: Sequence[Mapping[str, Any]], since: float | None = None) -> str:
    """``healthy`` when every container with a HEALTHCHECK says so (``none`` when no
    container has one), ``unhealthy`` as soon as one does, ``starting`` otherwise; no
    container at all is ``starting``: the colour has not come up yet. With ``since``, a
    verdict whose last check ran before then is still ``starting``: a colour that was not
    restarted keeps what its checks said while, say, its schema was behind, until the
    next check."""
    if not states:
        return STARTING
    if since is not None and any(
        state["status"] != NO_HEALTHCHECK and (state.get("checked_at") or 0) < since
        for state in states
    ):
        return STARTING
    checked = [state["status"] for state in states if state["status"] != NO_HEALTHCHECK]
    if not checked:
        return NO_HEALTHCHECK
    if UNHEALTHY in checked:
        return UNHEALTHY
    return HEALTHY if all(status == HEALTHY for status in checked) else STARTING


def unhealthy_container_message(
    service: str, colour: str, host: str, states: Sequence[Mapping[str, Any]], waited_s: float
) -> str:
    """Why the image's HEALTHCHECK gate failed, with each container's last check output."""
    lines = [
        f"{state['name']}: {state['status']}"
        + (
            f" (last check exited {state['exit_code']}: {state['output'][-300:]})"
            if state["output"]
            else ""
        )
        for state in states
    ]
    return (
        f"{service} {colour} on {host} answered its health path, but its image's HEALTHCHECK "
        f"did not say healthy within {waited_s:.0f} s: "
        + ("; ".join(lines) or "no container of the colour is running")
        + ". Fix the image's HEALTHCHECK or what it checks, then release again."
    )


def image_load_problem(manifest_image: Mapping[str, Any] | None, artifact: str) -> str:
    """Why the container runtime cannot install an artifact ('' when it can)."""
    if not manifest_image or not manifest_image.get("id"):
        return (
            f"{artifact} carries no container image, and bluegreen_service_runtime is "
            "container: build it with `bluegreen build ... --image` (under a new version), "
            "or release it with bluegreen_service_runtime: virtualenv"
        )
    return ""


def loaded_image_id(load_output: str) -> str | None:
    """The image ID that ``docker load`` reports (``Loaded image ID: sha256:...``), or
    None when it names the image by tag only."""
    for line in load_output.splitlines():
        if line.startswith("Loaded image ID:"):
            return line.split(":", 1)[1].strip()
    return None


def compose_document(
    *,
    command: str,
    env_names: Sequence[str],
    volumes: Sequence[str],
    user: str,
    health_path: str,
    cpus: str = "",
    memory: str = "",
    stop_grace_s: int = 30,
) -> dict[str, Any]:
    """The Compose file of a service's colours (one file; the colour's unit names the
    project and passes the colour's environment): its image and port come from that
    environment (``${BLUEGREEN_IMAGE}``, ``${PORT}``), so the file holds no version, no
    colour and no secret. Format 2.4, which Debian 12's Compose (1.29) and Compose v2
    both read, for ``cpus`` and ``mem_limit`` outside swarm."""
    web: dict[str, Any] = {
        "image": "${BLUEGREEN_IMAGE}",
        # The colour's port on the host's own addresses, as the virtualenv runtime
        # listens: nginx, the probes and the database are reached as before.
        "network_mode": "host",
        "user": user,
        "working_dir": IMAGE_WORKDIR,
        # Compose would read $NAME in the command itself; $$ leaves it to the shell in
        # the container, which has the colour's environment.
        "command": ["/bin/sh", "-c", "exec " + command.replace("$", "$$")],
        "environment": [
            *environment_names(env_names),
            f"BLUEGREEN_HEALTH_URL=http://127.0.0.1:${{PORT}}{health_path}",
        ],
        "volumes": list(volumes),
        # systemd restarts the colour (Restart=on-failure), and counts it.
        "restart": "no",
        "stop_grace_period": f"{stop_grace_s}s",
    }
    if cpus:
        web["cpus"] = float(cpus)
    if memory:
        web["mem_limit"] = memory
    return {"version": "2.4", "services": {"web": web}}


def cgroup_paths(proc_cgroup: str) -> dict[str, str]:
    """A process's cgroup per controller, from /proc/<pid>/cgroup: v1 lines name their
    controllers (``4:memory:/path``, ``2:cpu,cpuacct:/path``); v2's one line is ``0::/path``,
    returned under ``""``."""
    paths: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        _number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def cgroup_usage_files(
    paths: Mapping[str, str], root: str = "/sys/fs/cgroup"
) -> dict[str, list[str]]:
    """Where the kernel keeps a container's CPU time and memory, most direct first."""
    cpu, memory = [], []
    if "" in paths:
        cpu.append(f"{root}{paths['']}/cpu.stat")
        memory.append(f"{root}{paths['']}/memory.current")
    for controller, path in paths.items():
        if "cpuacct" in controller.split(","):
            cpu.append(f"{root}/{controller}{path}/cpuacct.usage")
        if controller == "memory":
            memory.append(f"{root}/memory{path}/memory.usage_in_bytes")
    if "cpuacct" in paths:
        cpu.append(f"{root}/cpu,cpuacct{paths['cpuacct']}/cpuacct.usage")
    return {"cpu": cpu, "memory": memory}


def runtime_problems(runtime: str, hooks: Sequence[Any], migrate_tool: str) -> list[str]:
    """What the container runtime cannot do yet with this service's inventory."""
    if runtime != CONTAINER:
        return []
    problems = []
    if hooks:
        problems.append(
            "bluegreen_service_hooks: release hooks run in the release's virtualenv, which "
            "the container runtime has none of; run them from the image's own start "
            "command, or use bluegreen_service_runtime: virtualenv"
        )
    if migrate_tool == "command":
        problems.append(
            "bluegreen_service_migrate_tool command runs in the release's virtualenv, which "
            "the container runtime has none of: use alembic or django (run in a one-off "
            "container of the image), or bluegreen_service_runtime: virtualenv"
        )
    return problems
