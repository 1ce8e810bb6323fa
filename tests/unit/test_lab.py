"""The lab's shape comes from the static inventories; its image name from its recipe."""

from __future__ import annotations

from pathlib import Path

import pytest

from bluegreen.lab import (
    IMAGE_PACKAGES,
    LabError,
    LabHost,
    hosts_from_inventory,
    image_tag,
    network_name,
)

ROOT = Path(__file__).resolve().parents[2]


def test_lab_hosts_follow_the_lab_inventory() -> None:
    hosts = hosts_from_inventory(ROOT / "inventories/lab/hosts.yml", "lab")

    assert [h.name for h in hosts] == ["lb1", "app-blue", "app-green", "db1"]
    assert hosts[0] == LabHost("lb1", "lab", 2201, {80: 8080})
    assert hosts[0].container_name == "bluegreen-lab-lb1"


def test_a_host_in_several_groups_is_one_container() -> None:
    hosts = hosts_from_inventory(ROOT / "inventories/lab-single/hosts.yml", "lab-single")

    assert hosts == [LabHost("single1", "lab-single", 2211, {80: 8081})]


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
