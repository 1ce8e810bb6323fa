"""The container runtime's decisions (module_utils/container_runtime.py): image tags,
Compose projects and files, one-off containers, the HEALTHCHECK gate's verdict, where a
container's usage is counted, and what the runtime refuses."""

from __future__ import annotations

import json

import pytest
import yaml
from ansible.module_utils.container_runtime import (
    HEALTHY,
    NO_HEALTHCHECK,
    STARTING,
    UNHEALTHY,
    ImageTagError,
    cgroup_paths,
    cgroup_usage_files,
    compose_document,
    compose_project,
    docker_time,
    health_states,
    health_verdict,
    image_load_problem,
    image_tag,
    loaded_image_id,
    one_off_argv,
    runtime_problems,
    unhealthy_container_message,
)


def test_image_tag_is_the_name_and_a_docker_safe_version() -> None:
    assert image_tag("sampleapp", "2.0.0") == "sampleapp:2.0.0"
    assert image_tag("SampleApp", "1.0.0+build.7") == "sampleapp:1.0.0-build.7"


@pytest.mark.parametrize("version", ["", "-1", ".1", "1/2"])
def test_a_version_docker_cannot_tag_is_refused_naming_it(version: str) -> None:
    with pytest.raises(ImageTagError, match="cannot be a Docker image tag"):
        image_tag("sampleapp", version)


def test_a_name_docker_cannot_name_is_refused() -> None:
    with pytest.raises(ImageTagError, match="cannot name a Docker image"):
        image_tag("sample app", "1.0.0")


def test_compose_project_keeps_what_compose_keeps() -> None:
    assert compose_project("sampleapp", "green") == "sampleapp-green"
    assert compose_project("My.App", "blue") == "myapp-blue"


def test_one_off_container_passes_variables_by_name_only() -> None:
    argv = one_off_argv(
        "/usr/bin/docker",
        "sampleapp:2.0.0",
        user="999:998",
        env_names=["DATABASE_URL", "PORT"],
        volumes=["/etc/sampleapp:/etc/sampleapp:ro"],
        command=["venv/bin/alembic", "upgrade", "head"],
    )
    assert argv[:4] == ["/usr/bin/docker", "run", "--rm", "-i"]
    assert argv[argv.index("--network") + 1] == "host"
    assert argv[argv.index("--user") + 1] == "999:998"
    assert argv[argv.index("--workdir") + 1] == "/app"
    assert argv[argv.index("DATABASE_URL") - 1 : argv.index("DATABASE_URL") + 1] == [
        "--env",
        "DATABASE_URL",
    ]
    assert not [part for part in argv if "=" in part]
    assert argv[-4:] == ["sampleapp:2.0.0", "venv/bin/alembic", "upgrade", "head"]


def test_compose_document_holds_no_version_colour_or_secret() -> None:
    document = compose_document(
        command="gunicorn --bind 0.0.0.0:${PORT} app:wsgi",
        env_names=["PORT", "SECRET_KEY", "PORT"],
        volumes=["/etc/a:/etc/a:ro", "/var/lib/a:/var/lib/a"],
        user="999:998",
        health_path="/health",
        cpus="1.5",
        memory="512m",
    )
    web = document["services"]["web"]
    assert web["image"] == "${BLUEGREEN_IMAGE}"
    assert web["network_mode"] == "host"
    # Compose would interpolate ${PORT} in the command; the container's shell must.
    assert web["command"] == ["/bin/sh", "-c", "exec gunicorn --bind 0.0.0.0:$${PORT} app:wsgi"]
    assert web["environment"] == [
        "PORT",
        "SECRET_KEY",
        "BLUEGREEN_HEALTH_URL=http://127.0.0.1:${PORT}/health",
    ]
    assert web["cpus"] == 1.5 and web["mem_limit"] == "512m"
    assert document["version"] == "2.4"
    # It is YAML Compose reads back the same.
    assert yaml.safe_load(yaml.safe_dump(document)) == document


def test_compose_document_without_limits_sets_none() -> None:
    web = compose_document(command="x", env_names=[], volumes=[], user="1:1", health_path="/h")[
        "services"
    ]["web"]
    assert "cpus" not in web and "mem_limit" not in web


def inspected(*healths: dict | None) -> str:
    return json.dumps(
        [
            {"Name": f"/app-green_web_{number}", "State": {"Health": health} if health else {}}
            for number, health in enumerate(healths, 1)
        ]
    )


def test_health_states_read_status_and_last_check() -> None:
    states = health_states(
        inspected(
            {"Status": "unhealthy", "Log": [{"ExitCode": 1, "Output": "refused\n"}]},
            None,
        )
    )
    assert states == [
        {
            "name": "app-green_web_1",
            "status": UNHEALTHY,
            "exit_code": 1,
            "output": "refused",
            "checked_at": None,
        },
        {
            "name": "app-green_web_2",
            "status": NO_HEALTHCHECK,
            "exit_code": None,
            "output": "",
            "checked_at": None,
        },
    ]


@pytest.mark.parametrize(
    ("statuses", "verdict"),
    [
        ([], STARTING),
        ([NO_HEALTHCHECK], NO_HEALTHCHECK),
        ([HEALTHY, NO_HEALTHCHECK], HEALTHY),
        ([HEALTHY, STARTING], STARTING),
        ([STARTING, UNHEALTHY], UNHEALTHY),
    ],
)
def test_health_verdict(statuses: list[str], verdict: str) -> None:
    assert health_verdict([{"status": status} for status in statuses]) == verdict


def test_unhealthy_message_names_the_container_and_its_last_output() -> None:
    message = unhealthy_container_message(
        "sampleapp",
        "green",
        "app-green",
        [{"name": "sampleapp-green_web_1", "status": UNHEALTHY, "exit_code": 1, "output": "boom"}],
        31.0,
    )
    assert "sampleapp green on app-green" in message
    assert "sampleapp-green_web_1: unhealthy (last check exited 1: boom)" in message
    assert "within 31 s" in message


def test_an_artifact_without_an_image_is_refused_with_the_build_that_fixes_it() -> None:
    assert "bluegreen build ... --image" in image_load_problem(None, "sampleapp-1.0.0.tar.gz")
    assert image_load_problem({"id": "sha256:ab"}, "sampleapp-1.0.0.tar.gz") == ""


def test_loaded_image_id() -> None:
    assert loaded_image_id("Loaded image ID: sha256:abc\n") == "sha256:abc"
    assert loaded_image_id("Loaded image: sampleapp:1.0.0\n") is None


def test_cgroup_paths_of_v1_and_v2() -> None:
    v1 = "12:memory:/docker/x/a\n4:cpu,cpuacct:/docker/x/a\n1:name=systemd:/docker/x/a\n"
    paths = cgroup_paths(v1)
    assert paths["memory"] == "/docker/x/a" and paths["cpuacct"] == "/docker/x/a"
    files = cgroup_usage_files(paths, root="/cg")
    # cpuacct alone, or mounted with cpu (Debian links cpuacct to cpu,cpuacct).
    assert files["cpu"] == [
        "/cg/cpuacct/docker/x/a/cpuacct.usage",
        "/cg/cpu,cpuacct/docker/x/a/cpuacct.usage",
    ]
    assert files["memory"] == ["/cg/memory/docker/x/a/memory.usage_in_bytes"]
    v2 = cgroup_usage_files(cgroup_paths("0::/system.slice/docker-1.scope\n"), root="/cg")
    assert v2 == {
        "cpu": ["/cg/system.slice/docker-1.scope/cpu.stat"],
        "memory": ["/cg/system.slice/docker-1.scope/memory.current"],
    }


def test_separately_mounted_cpuacct() -> None:
    files = cgroup_usage_files(cgroup_paths("3:cpuacct:/a\n2:cpu:/a\n"), root="/cg")
    assert files["cpu"][0] == "/cg/cpuacct/a/cpuacct.usage"


def test_the_container_runtime_refuses_what_needs_a_virtualenv() -> None:
    assert runtime_problems("virtualenv", [{"at": "after_install"}], "command") == []
    problems = runtime_problems("container", [{"at": "after_install"}], "command")
    assert len(problems) == 2
    assert problems[0].startswith("bluegreen_service_hooks")
    assert runtime_problems("container", [], "alembic") == []


def test_a_verdict_from_checks_before_the_gate_opened_is_still_starting() -> None:
    stale = {"status": UNHEALTHY, "checked_at": 100.0}
    fresh = {"status": UNHEALTHY, "checked_at": 200.0}
    assert health_verdict([stale], since=150.0) == STARTING
    assert health_verdict([fresh], since=150.0) == UNHEALTHY
    assert health_verdict([{"status": NO_HEALTHCHECK, "checked_at": None}], since=150.0) == (
        NO_HEALTHCHECK
    )


def test_docker_times_with_nanoseconds_and_zones() -> None:
    assert docker_time("1970-01-01T00:00:10.123456789Z") == pytest.approx(10.123456)
    assert docker_time("1970-01-01T01:00:10+01:00") == 10.0
    assert docker_time("") is None
