"""release_install: the decisions (module_utils/release_install.py) and the module on a
real artifact, virtualenv and offline pip in a temporary directory."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import pytest
import release_install
from ansible.module_utils.release_install import (
    ABSENT,
    INSTALLED,
    OTHER,
    checksum_problem,
    manifest_problem,
    marker_state,
    newest_wheel,
    pip_arguments,
    pip_failure_message,
    venv_arguments,
    wheel_version,
)
from conftest import RunModule

SHA = "a" * 64


@pytest.mark.parametrize(
    ("marker", "state"),
    [(None, ABSENT), (SHA + "\n", INSTALLED), (SHA, INSTALLED), ("b" * 64 + "\n", OTHER)],
)
def test_the_marker_says_whether_this_artifact_is_installed(marker: str | None, state: str):
    assert marker_state(marker, SHA) == state


def test_a_missing_or_corrupt_copy_is_named_with_both_checksums() -> None:
    assert checksum_problem("app-1.tar.gz", "app1", SHA, SHA) == ""
    assert "is not on app1" in checksum_problem("app-1.tar.gz", "app1", None, SHA)
    corrupt = checksum_problem("app-1.tar.gz", "app1", "b" * 64, SHA)
    assert f"has SHA-256 {'b' * 64}, expected {SHA}; the copy is corrupt" in corrupt


@pytest.mark.parametrize(
    ("manifest", "installable"),
    [
        ({}, True),
        ({"kind": "wheel"}, True),
        ({"kind": "tree", "requirements": "requirements.txt"}, True),
        ({"kind": "tree"}, False),
        ({"kind": "docker"}, False),
    ],
)
def test_only_wheel_and_tree_artifacts_with_requirements_are_installed(
    manifest: dict, installable: bool
) -> None:
    problem = manifest_problem(manifest, "app-1.tar.gz")
    assert (problem == "") is installable
    if not installable:
        assert "build it again" in problem


def test_pip_installs_offline_what_the_artifact_names() -> None:
    offline = [
        "/r/venv/bin/pip",
        "install",
        "--no-index",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--find-links",
        "/r/wheelhouse",
    ]
    assert pip_arguments("/r", {}, "shop", "2.0") == [*offline, "shop==2.0"]
    tree = {"kind": "tree", "requirements": "requirements.txt", "with": ["gunicorn"]}
    assert pip_arguments("/r", tree, "shop", "2.0") == [
        *offline,
        "-r",
        "/r/requirements.txt",
        "gunicorn",
    ]


def test_with_a_pip_wheel_the_venvs_python_runs_pip_from_it_and_the_venv_has_no_pip() -> None:
    wheel = "/usr/share/python-wheels/pip-23.0.1-py3-none-any.whl"

    assert venv_arguments("/usr/bin/python3", "/r", wheel) == [
        "/usr/bin/python3",
        "-m",
        "venv",
        "--without-pip",
        "/r/venv",
    ]
    assert venv_arguments("/usr/bin/python3", "/r", None) == [
        "/usr/bin/python3",
        "-m",
        "venv",
        "/r/venv",
    ]
    assert pip_arguments("/r", {}, "shop", "2.0", wheel)[:3] == [
        "/r/venv/bin/python",
        f"{wheel}/pip",
        "install",
    ]


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("pip-23.0.1-py3-none-any.whl", (23, 0, 1)),
        ("/x/pip-24.2-py3-none-any.whl", (24, 2)),
        ("pip-25.0rc1-py3-none-any.whl", (25,)),
        ("pip.whl", ()),
    ],
)
def test_a_wheels_version_is_read_from_its_name(name: str, version: tuple[int, ...]) -> None:
    assert wheel_version(name) == version


def test_the_newest_pip_wheel_is_chosen_by_version_not_by_name() -> None:
    wheels = ["/a/pip-9.0.1-py3-none-any.whl", "/b/pip-23.0.1-py3-none-any.whl"]
    assert newest_wheel(wheels) == "/b/pip-23.0.1-py3-none-any.whl"
    assert newest_wheel([]) is None


def test_a_pip_failure_quotes_pips_reason_and_the_build_that_fixes_it() -> None:
    output = [f"line {n}" for n in range(30)] + ["No matching distribution found for flask"]
    message = pip_failure_message(
        name="shop",
        version="2.0",
        release_dir="/opt/shop/releases/2.0",
        host="app1",
        rc=1,
        output=output,
        host_python="3.11.2 x86_64",
        manifest={"python_full_version": "3.13.1", "platform": "manylinux_2_36_x86_64"},
    )
    assert "into /opt/shop/releases/2.0/venv on app1 (pip exited 1)" in message
    assert "No matching distribution found for flask" in message
    assert "line 15" not in message and "line 16" in message
    assert "built for Python 3.13.1 on manylinux_2_36_x86_64" in message
    assert "--python-version 3.11.2`" in message
    unknown = pip_failure_message(
        name="shop",
        version="2.0",
        release_dir="/r",
        host="app1",
        rc=1,
        output=[],
        host_python="",
        manifest={},
    )
    assert "app1 runs Python ?" in unknown and "--python-version 3.11.2`" in unknown


# The module, for real: a tree artifact whose requirements are empty or name a
# distribution its wheelhouse lacks.


def artifact(tmp_path: Path, requirements: str = "", kind: str = "tree") -> tuple[Path, str]:
    path = tmp_path / "shop-2.0.tar.gz"
    manifest = {"kind": kind, "requirements": "requirements.txt", "python_version": "3.11"}
    files = {
        "shop-2.0/bluegreen-artifact.json": json.dumps(manifest).encode(),
        "shop-2.0/requirements.txt": requirements.encode(),
        "shop-2.0/wheelhouse/.keep": b"",
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def arguments(path: Path, sha256: str, release_dir: Path) -> dict:
    return {
        "name": "shop",
        "package": "shop",
        "version": "2.0",
        "artifact": str(path),
        "sha256": sha256,
        "release_dir": str(release_dir),
        "python": sys.executable,
        "host": "app1",
    }


def test_installs_once_then_finds_it_installed(tmp_path: Path, run_module: RunModule) -> None:
    path, sha256 = artifact(tmp_path)
    release_dir = tmp_path / "releases" / "2.0"
    args = arguments(path, sha256, release_dir)

    checked = run_module(release_install.main, args, check_mode=True, diff=True)
    assert checked["changed"] and checked["diff"]["after"]["installed"] == sha256
    assert not release_dir.exists()

    first = run_module(release_install.main, args)
    assert (first["changed"], first["state"]) == (True, ABSENT), first
    assert (release_dir / "venv" / "bin" / "python").exists()
    assert (release_dir / ".bluegreen-installed").read_text() == sha256 + "\n"

    again = run_module(release_install.main, args)
    assert (again["changed"], again["state"]) == (False, INSTALLED), again


def test_the_install_runs_the_hosts_pip_wheel_and_leaves_no_pip_in_the_venv(
    tmp_path: Path, run_module: RunModule
) -> None:
    path, sha256 = artifact(tmp_path, requirements="")
    release_dir = tmp_path / "releases" / "2.0"
    bundled = sorted((Path(sys.base_prefix) / "lib").glob("python3*/ensurepip/_bundled/pip-*.whl"))
    assert bundled, "this Python keeps no pip wheel for ensurepip"

    result = run_module(release_install.main, arguments(path, sha256, release_dir))

    assert result["changed"] and not result.get("failed"), result
    assert (release_dir / "venv" / "bin" / "python").exists()
    assert not (release_dir / "venv" / "bin" / "pip").exists()


def test_without_a_pip_wheel_the_venv_gets_its_own_pip(
    tmp_path: Path, run_module: RunModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, sha256 = artifact(tmp_path, requirements="")
    release_dir = tmp_path / "releases" / "2.0"
    monkeypatch.setattr(release_install, "pip_wheel", lambda module: None)

    result = run_module(release_install.main, arguments(path, sha256, release_dir))

    assert result["changed"] and not result.get("failed"), result
    assert (release_dir / "venv" / "bin" / "pip").exists()


def test_a_named_pip_wheel_that_is_missing_is_refused_and_changes_nothing(
    tmp_path: Path, run_module: RunModule
) -> None:
    path, sha256 = artifact(tmp_path)
    release_dir = tmp_path / "releases" / "2.0"
    args = arguments(path, sha256, release_dir) | {"pip_wheel": str(tmp_path / "pip-1-x.whl")}

    result = run_module(release_install.main, args)

    assert result["failed"] and "pip_wheel" in result["msg"] and "not a file" in result["msg"]
    assert not release_dir.exists()


def test_an_interrupted_install_is_removed_and_installed_again(
    tmp_path: Path, run_module: RunModule
) -> None:
    path, sha256 = artifact(tmp_path)
    release_dir = tmp_path / "releases" / "2.0"
    release_dir.mkdir(parents=True)
    (release_dir / "half-unpacked").write_text("x")

    result = run_module(release_install.main, arguments(path, sha256, release_dir))

    assert result["changed"], result
    assert not (release_dir / "half-unpacked").exists()
    assert (release_dir / ".bluegreen-installed").read_text() == sha256 + "\n"


def test_refusals_change_nothing(tmp_path: Path, run_module: RunModule) -> None:
    path, sha256 = artifact(tmp_path)
    release_dir = tmp_path / "releases" / "2.0"

    corrupt = run_module(release_install.main, arguments(path, "b" * 64, release_dir))
    assert corrupt["failed"] and "the copy is corrupt" in corrupt["msg"], corrupt
    assert not release_dir.exists()

    release_dir.mkdir(parents=True)
    (release_dir / ".bluegreen-installed").write_text("c" * 64 + "\n")
    other = run_module(release_install.main, arguments(path, sha256, release_dir))
    assert other["failed"] and "A version names one artifact" in other["msg"], other
    assert sorted(p.name for p in release_dir.iterdir()) == [".bluegreen-installed"]


def test_an_artifact_kind_it_cannot_install_is_refused_and_removed(
    tmp_path: Path, run_module: RunModule
) -> None:
    path, sha256 = artifact(tmp_path, kind="docker")
    release_dir = tmp_path / "releases" / "2.0"

    result = run_module(release_install.main, arguments(path, sha256, release_dir))

    assert result["failed"] and "is a docker artifact" in result["msg"], result
    assert not release_dir.exists()


def test_a_failed_pip_install_names_pips_reason_and_leaves_no_marker(
    tmp_path: Path, run_module: RunModule
) -> None:
    path, sha256 = artifact(tmp_path, requirements="bluegreen-missing-dist==1.0\n")
    release_dir = tmp_path / "releases" / "2.0"

    result = run_module(release_install.main, arguments(path, sha256, release_dir))

    assert result["failed"], result
    assert "No matching distribution found for bluegreen-missing-dist" in result["msg"]
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"app1 runs Python {python}" in result["msg"], result["msg"]
    assert not (release_dir / ".bluegreen-installed").exists()
