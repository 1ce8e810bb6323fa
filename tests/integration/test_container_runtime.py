"""The container runtime (bluegreen_service_runtime: container) on the single-host lab.

The sample service's images (`make image-artifacts`: 1.0.0 from the Dockerfile bluegreen
generates, 2.0.0 from the project's own Dockerfile, and a 2.0.3 whose error rate goes bad
after 200 requests) are released as "containerapp" beside the lab's own sampleapp, on
the Docker engine and Compose that the role installs from Debian's packages: one
Compose project per colour, its migrations in a one-off container of the new image, its
image's HEALTHCHECK one more gate. One test, in order, each release building on the last,
all under steady user traffic through nginx: the first release, a second one with a
migration, `rollback --with-data`, the second again, a plain rollback, and a bad release
that the post-switch analysis rolls back by itself.
"""

from __future__ import annotations

import json
import sys

import pytest
from conftest import ROOT, SINGLE, bluegreen
from side_service import SideService

sys.path.insert(0, str(ROOT / "bench"))

from _load import Writer, check_writes, inventory_url

pytestmark = [
    pytest.mark.lab,
    pytest.mark.lab_group("single"),
    pytest.mark.usefixtures("lab"),
]

SERVICE = SideService("containerapp", SINGLE, "single1", public_port=8092)
APP = SERVICE.name
on_host = SERVICE.on_host
V1, V2, BAD = "1.0.0", "2.0.0", "2.0.3+errors30.after200req"
# The sample's Alembic heads: 1.0.0 creates the notes table, 2.0.0 adds a column.
V1_HEAD, V2_HEAD = "0001", "0002"
DATABASE = f"/var/lib/{APP}/{APP}.db"
public = SERVICE.public


def revision() -> str:
    return on_host(f"sqlite3 {DATABASE} 'SELECT version_num FROM alembic_version'").strip()


def containers(colour: str) -> list[dict]:
    """`docker inspect` of the colour's Compose project's running containers."""
    ids = on_host(f"docker ps -q --filter label=com.docker.compose.project={APP}-{colour}").split()
    return json.loads(on_host(f"docker inspect {' '.join(ids)}")) if ids else []


def release(version: str):
    return bluegreen("release", "--version", version, "-i", SERVICE.inventory)


def steps_of(result) -> dict[str, dict]:
    return SERVICE.journal(result.report["custom_stats"]["bluegreen_release_id"])


def test_container_runtime_releases_and_rolls_back_by_itself_by_command_and_with_data() -> None:
    for version in (V1, V2, BAD):
        artifact = ROOT / "artifacts" / "image" / f"sampleapp-{version}.tar.gz"
        if not artifact.exists():
            pytest.fail(f"{artifact} is missing; run `make image-artifacts` first")
    SERVICE.clear()
    SERVICE.traffic()
    try:
        run_releases()
    finally:
        SERVICE.stop_traffic()


def run_releases() -> None:
    # The first release: the engine installed and started by the role, the image loaded
    # from the artifact, the schema created by a one-off container of it.
    first = release(V1)
    assert first.exit_code == 0, first.report
    status, first_colour, version = public()
    assert (status, version) == (200, V1)
    assert revision() == V1_HEAD
    running = containers(first_colour)
    assert len(running) == 1, running
    web = running[0]
    assert web["Config"]["Image"] == f"sampleapp:{V1}"
    # The service's user (not root, not the image's own), its limits, the host's network.
    uid, gid = on_host(f"id -u {APP}; id -g {APP}").split()
    assert web["Config"]["User"] == f"{uid}:{gid}"
    assert web["HostConfig"]["NetworkMode"] == "host"
    assert web["HostConfig"]["NanoCpus"] == 1_000_000_000
    assert web["HostConfig"]["Memory"] == 256 * 1024 * 1024
    # Its image's HEALTHCHECK gated the start, and the journal says so.
    assert web["State"]["Health"]["Status"] == "healthy"
    deploy = steps_of(first)["deploy"]["evidence"]
    assert deploy["healthcheck"][SERVICE.host]["verdict"] == "healthy", deploy
    # Nothing of a virtualenv on the host, and the image never written there as a file.
    release_dir = f"/opt/{APP}/releases/{V1}"
    assert on_host(f"test -e {release_dir}/venv && echo yes || echo no").strip() == "no"
    assert on_host(f"find / -xdev -name image.tar -path '*{APP}*' | wc -l").strip() == "0"
    # The secrets-free Compose file names the image through the colour's environment.
    compose = on_host(f"cat /etc/{APP}/compose.yml")
    assert "${BLUEGREEN_IMAGE}" in compose and V1 not in compose

    # A second release with a migration: applied in a container of the 2.0.0 image
    # (its project's own Dockerfile), the snapshot taken first; 1.0.0 stays warm. Users
    # write all along, through the port the lab publishes for the service's nginx site.
    url = inventory_url(SINGLE, port=SERVICE.public_port)
    with Writer(url, tag="container-release") as release_writes:
        second = release(V2)
    assert second.exit_code == 0, second.report
    assert second.outcome == "released", second.report
    status, second_colour, version = public()
    assert (status, version) == (200, V2) and second_colour != first_colour
    assert revision() == V2_HEAD
    steps = steps_of(second)
    assert steps["deploy"]["evidence"]["migration"]["applied"] == [V2_HEAD], steps["deploy"]
    assert steps["analysis"]["outcome"] == "ok", steps["analysis"]
    assert containers(first_colour)[0]["Config"]["Image"] == f"sampleapp:{V1}"

    # Back with the data: 2.0.0's migration undone (downgraded in a one-off container of
    # its image, since every step can be), traffic on 1.0.0, no acknowledged write lost.
    with Writer(url, tag="container-rollback") as rollback_writes:
        with_data = bluegreen("rollback", "--with-data", "-i", SERVICE.inventory)
    assert with_data.exit_code == 0, with_data.report
    for writes in (release_writes, rollback_writes):
        tally = check_writes(url, writes.writes)
        assert tally.acknowledged > 0 and tally.lost == 0, tally.as_dict()
    assert public()[::2] == (200, V1)
    assert revision() == V1_HEAD

    # 2.0.0 again, then a plain rollback: traffic back on the warm 1.0.0, the schema
    # where 2.0.0 left it (its migration only added).
    again = release(V2)
    assert again.exit_code == 0, again.report
    assert public()[::2] == (200, V2)
    plain = bluegreen("rollback", "-i", SERVICE.inventory)
    assert plain.exit_code == 0, plain.report
    assert public()[::2] == (200, V1)
    assert revision() == V2_HEAD

    # An old release the host still has (0.9.0, as an earlier deploy would have left it:
    # installed, its artifact, its image), which nothing runs any more.
    on_host(
        f"install -d /opt/{APP}/releases/0.9.0 && touch -d '2 days ago' "
        f"/opt/{APP}/releases/0.9.0/.bluegreen-installed "
        f"&& touch /opt/{APP}/artifacts/sampleapp-0.9.0.tar.gz "
        f"&& docker tag sampleapp:{V1} sampleapp:0.9.0"
    )

    # A release whose error rate goes bad under the traffic: rolled back by itself.
    bad = release(BAD)
    assert bad.exit_code == 4, bad.report
    assert bad.outcome == "rolled_back", bad.report
    assert "error_rate" in bad.message, bad.message
    assert public()[::2] == (200, V1)
    steps = steps_of(bad)
    assert steps["rollback"]["evidence"]["bad_version"] == BAD, steps["rollback"]

    # Its deploy kept what the colours run (1.0.0, and the bad release until it goes) and
    # what the idle colour ran before it (2.0.0, should it have been put back there), and
    # nothing else (bluegreen_service_keep_releases 0): 0.9.0 went, release, artifact and image.
    assert sorted(on_host(f"ls /opt/{APP}/releases").split()) == sorted([V1, V2, BAD])
    assert sorted(on_host(f"ls /opt/{APP}/artifacts").split()) == sorted(
        f"sampleapp-{version}.tar.gz" for version in (V1, V2, BAD)
    )
    images = on_host("docker image ls --format '{{.Repository}}:{{.Tag}}' sampleapp").split()
    assert sorted(images) == sorted(
        [f"sampleapp:{V1}", f"sampleapp:{V2}", "sampleapp:2.0.3-errors30.after200req"]
    )
