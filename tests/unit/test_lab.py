"""The lab's shape comes from the static inventories (under inventories/ or anywhere, by
path); its image name from its recipe."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bluegreen import cli
from bluegreen import lab as lab_module
from bluegreen.errors import ExitCode, InputError
from bluegreen.lab import (
    IMAGE_PACKAGES,
    LABEL,
    PROFILE_LABEL,
    Lab,
    LabError,
    LabHost,
    LabInventory,
    LabInventoryError,
    hosts_from_inventory,
    image_tag,
    lab_inventory,
    network_name,
)

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_lab_hosts_follow_the_lab_inventory() -> None:
    hosts = hosts_from_inventory(ROOT / "inventories/lab/hosts.yml", "lab")

    assert [h.name for h in hosts] == ["lb1", "app-blue", "app-green", "db1"]
    assert hosts[0] == LabHost("lb1", "lab", 2201, {80: 8080})
    assert hosts[0].container_name == "bluegreen-lab-lb1"


def test_a_host_in_several_groups_is_one_container() -> None:
    hosts = hosts_from_inventory(ROOT / "inventories/lab-single/hosts.yml", "lab-single")

    assert hosts == [LabHost("single1", "lab-single", 2211, {80: 8081, 443: 8443, 8092: 18092})]


def test_image_is_rebuilt_when_its_package_list_changes() -> None:
    assert image_tag(IMAGE_PACKAGES) == image_tag(reversed(IMAGE_PACKAGES))
    assert image_tag(IMAGE_PACKAGES) != image_tag((*IMAGE_PACKAGES, "htop"))
    assert image_tag().startswith("bluegreen-lab:")


def test_unknown_lab_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="known labs are the folders of inventories/"):
        hosts_from_inventory(tmp_path / "nope" / "hosts.yml", "nope")


def test_host_without_ssh_port_is_refused(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    lonely: {}\n")
    with pytest.raises(LabError, match="host lonely has no ansible_port"):
        hosts_from_inventory(inventory, "broken")


def test_each_lab_has_its_own_network_so_host_names_resolve_inside_it() -> None:
    lab = hosts_from_inventory(ROOT / "inventories/lab/hosts.yml", "lab")
    single = hosts_from_inventory(ROOT / "inventories/lab-single/hosts.yml", "lab-single")

    assert {h.network for h in lab} == {"bluegreen-lab"}
    assert {h.network for h in single} == {"bluegreen-lab-single"}
    assert network_name("scratch-x-lab") == "bluegreen-scratch-x-lab"


# --- an inventory outside the project (-i PATH) ----------------------------------------

SHOP_LAB = """\
all:
  children:
    lab_hosts:
      children:
        lb:
          hosts:
            shop1:
              ansible_port: 2291
              bluegreen_lab_published_ports: {80: 8091}
        app:
          hosts:
            shop1:
              bluegreen_service_colours: [blue, green]
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bluegreen project with the lab inventory, run from inside it."""
    root = tmp_path / "bluegreen"
    (root / "playbooks").mkdir(parents=True)
    (root / "ansible.cfg").write_text("[defaults]\n")
    (root / "inventories" / "lab").mkdir(parents=True)
    (root / "inventories" / "lab" / "hosts.yml").write_text(
        (ROOT / "inventories/lab/hosts.yml").read_text()
    )
    monkeypatch.chdir(root)
    monkeypatch.delenv("BLUEGREEN_PROJECT_DIR", raising=False)
    monkeypatch.delenv("BLUEGREEN_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return root


@pytest.fixture
def shop_lab(tmp_path: Path) -> Path:
    """A lab inventory kept in another repository (the service's own)."""
    folder = tmp_path / "shop" / "deploy" / "shop-lab"
    folder.mkdir(parents=True)
    (folder / "hosts.yml").write_text(SHOP_LAB)
    return folder


@pytest.mark.parametrize("given", ["folder", "hosts file"])
def test_a_lab_inventory_outside_the_project_is_named_after_its_folder(
    project: Path, shop_lab: Path, given: str
) -> None:
    path = shop_lab if given == "folder" else shop_lab / "hosts.yml"

    hosts = Lab(project).hosts([str(path)])

    assert lab_inventory(project, str(path)) == LabInventory("shop-lab", shop_lab / "hosts.yml")
    assert hosts == [LabHost("shop1", "shop-lab", 2291, {80: 8091})]
    assert hosts[0].container_name == "bluegreen-shop-lab-shop1"
    assert hosts[0].network == "bluegreen-shop-lab"


def test_a_name_under_inventories_is_still_a_lab(project: Path) -> None:
    assert lab_inventory(project, "lab") == LabInventory(
        "lab", (project / "inventories/lab/hosts.yml").resolve()
    )


def test_a_missing_inventory_path_is_named(project: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "lab"

    message = f"inventory '{missing}' is neither a path nor a name"
    with pytest.raises(InputError, match=re.escape(message)):
        lab_inventory(project, str(missing))


def test_a_folder_without_hosts_yml_is_named(project: Path, tmp_path: Path) -> None:
    empty = tmp_path / "shop" / "empty"
    empty.mkdir(parents=True)

    with pytest.raises(LabInventoryError, match=re.escape(f"({empty}) has no hosts.yml")) as raised:
        lab_inventory(project, str(empty))
    assert raised.value.exit_code == ExitCode.USAGE


def test_an_outside_inventory_may_not_take_the_name_of_one_in_the_project(
    project: Path, tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere" / "lab"
    other.mkdir(parents=True)
    (other / "hosts.yml").write_text(SHOP_LAB)

    with pytest.raises(LabInventoryError, match=r"has the name of .*inventories/lab.*rename"):
        lab_inventory(project, str(other))


class FakeContainer:
    def __init__(self, name: str, profile: str, status: str = "running") -> None:
        self.name = name
        self.status = status
        self.labels = {LABEL: "1", PROFILE_LABEL: profile}
        self.removed = False

    def remove(self, force: bool = False, v: bool = False) -> None:
        self.removed = True


class FakeDocker:
    """The docker client calls `lab status` and `lab down` make, over fake containers."""

    def __init__(self, containers: list[FakeContainer]) -> None:
        self.all = containers
        self.containers = self
        self.networks = self

    def list(self, all: bool = False, filters: dict | None = None, names=None) -> list:
        if names is not None:  # networks.list: none left to remove
            return []
        return [c for c in self.all if not c.removed]


@pytest.fixture
def docker(monkeypatch: pytest.MonkeyPatch) -> FakeDocker:
    fake = FakeDocker(
        [
            FakeContainer("bluegreen-shop-lab-shop1", "shop-lab"),
            FakeContainer("bluegreen-lab-lb1", "lab"),
        ]
    )
    monkeypatch.setattr(lab_module, "_docker_client", lambda: fake)
    monkeypatch.setattr(lab_module, "ssh_answers", lambda port, **kwargs: port == 2291)
    return fake


def test_lab_status_reads_an_inventory_given_by_path(
    project: Path, shop_lab: Path, docker: FakeDocker
) -> None:
    out = runner.invoke(cli.app, ["lab", "status", "-i", str(shop_lab), "--json"])

    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == [
        {
            "name": "shop1",
            "lab": "shop-lab",
            "container": "bluegreen-shop-lab-shop1",
            "state": "running",
            "ssh": "up",
            "ssh_port": 2291,
            "published_ports": {"80": 8091},
        }
    ]


def test_lab_down_by_path_removes_only_that_labs_containers(
    project: Path, shop_lab: Path, docker: FakeDocker
) -> None:
    out = runner.invoke(cli.app, ["lab", "down", "-i", str(shop_lab)])

    assert out.exit_code == 0, out.output
    assert {c.name: c.removed for c in docker.all} == {
        "bluegreen-shop-lab-shop1": True,
        "bluegreen-lab-lb1": False,
    }


def test_lab_up_takes_names_and_a_path_but_not_the_configured_inventory(
    project: Path, shop_lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "bluegreen.toml").write_text('[defaults]\ninventory = "prod"\n')
    started: list[list[str]] = []
    monkeypatch.setattr(Lab, "up", lambda self, inventories: started.append(inventories) or [])

    plain = runner.invoke(cli.app, ["lab", "up"])
    both = runner.invoke(cli.app, ["lab", "up", "lab", "-i", str(shop_lab)])

    assert plain.exit_code == both.exit_code == 0, plain.output + both.output
    assert started == [["lab"], ["lab", str(shop_lab)]]


def test_lab_up_names_a_missing_inventory_path(project: Path, tmp_path: Path) -> None:
    missing = tmp_path / "shop" / "nope"

    out = runner.invoke(cli.app, ["lab", "up", "-i", str(missing)], terminal_width=300)

    assert out.exit_code == ExitCode.USAGE
    assert f"inventory '{missing}' is neither a path nor a name" in out.output
