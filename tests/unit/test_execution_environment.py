"""execution-environment.yml: ansible-builder makes a build context from it that installs
the collection built from this tree, with pyproject.toml's versions of Ansible."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from bluegreen.collection import ROOT, build, project_version, tarball_name

BIN = Path(sys.executable).parent


def pyproject_requirements() -> dict[str, Requirement]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        dependencies = tomllib.load(handle)["project"]["dependencies"]
    return {req.name.lower(): req for req in map(Requirement, dependencies)}


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build context `ansible-builder create` makes, beside a freshly built collection."""
    tree = tmp_path_factory.mktemp("ee")
    for name in ("execution-environment.yml", "bindep.txt"):
        shutil.copy2(ROOT / name, tree / name)
    build(tree / "build")
    completed = subprocess.run(
        [
            str(BIN / "ansible-builder"),
            "create",
            "--file",
            "execution-environment.yml",
            "--context",
            "context",
            "--output-filename",
            "Containerfile",
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return tree / "context"


def test_the_context_carries_the_collection_built_from_this_tree(context: Path) -> None:
    copied = context / "_build" / "collections" / tarball_name()
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())

    assert copied.is_file()
    assert requirements["collections"] == [
        {"name": f"collections/{tarball_name()}", "type": "file"}
    ]


def test_the_galaxy_stage_installs_the_collection_as_the_containerfile_runs_it(
    context: Path, tmp_path: Path
) -> None:
    containerfile = (context / "Containerfile").read_text()
    assert "COPY _build /build\nWORKDIR /build\n" in containerfile
    assert (
        "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml"
        in containerfile
    )
    (tmp_path / "ansible.cfg").touch()

    # The same command in the same directory (/build is the context's _build).
    completed = subprocess.run(
        [
            str(BIN / "ansible-galaxy"),
            "collection",
            "install",
            "-r",
            "requirements.yml",
            "--collections-path",
            str(tmp_path / "collections"),
        ],
        cwd=context / "_build",
        # Only the image's own collections path: ansible-lint installs the tree's collection
        # into ~/.ansible/collections, where ansible-galaxy would find it "already installed".
        env=os.environ
        | {
            "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "collections"),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    manifest = tmp_path / "collections" / "ansible_collections" / "bluegreen" / "release"
    info = json.loads((manifest / "MANIFEST.json").read_text())["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == (
        "bluegreen",
        "release",
        project_version(),
    )
    assert (manifest / "plugins" / "modules" / "nginx_color.py").is_file()


def test_ansible_and_python_dependencies_are_pyprojects(context: Path) -> None:
    wanted = pyproject_requirements()
    containerfile = (context / "Containerfile").read_text()
    [install_refs] = re.findall(r'^ARG ANSIBLE_INSTALL_REFS="(.*)"$', containerfile, re.M)
    python = {
        req.name.lower(): req
        for req in map(Requirement, (context / "_build" / "requirements.txt").read_text().split())
    }

    assert sorted(map(Requirement, install_refs.split()), key=str) == sorted(
        [wanted["ansible-core"], wanted["ansible-runner"]], key=str
    )
    assert python.keys() == {"pyyaml", "jinja2", "cryptography"}
    for name, requirement in python.items():
        assert requirement.specifier == wanted[name].specifier, name


def test_system_packages_come_from_bindep(context: Path) -> None:
    packages = {
        line.split()[0]
        for line in (context / "_build" / "bindep.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }

    assert {"openssh-clients", "procps-ng", "hostname", "tzdata"} <= packages


def test_the_base_image_is_a_placeholder_without_a_registry_host(context: Path) -> None:
    definition = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    image = definition["images"]["base_image"]["name"]
    containerfile = (context / "Containerfile").read_text()

    assert image == "bluegreen-ee-base:latest"
    assert f'ARG EE_BASE_IMAGE="{image}"' in containerfile
    assert "FROM $EE_BASE_IMAGE AS base" in containerfile
