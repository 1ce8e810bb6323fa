"""bluegreen build: version rewriting, project checks, the tarball, and one real build."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from bluegreen.build import (
    MANIFEST_NAME,
    ArtifactExists,
    PipError,
    ProjectError,
    artifact_path,
    build_artifact,
    normalized_version,
    rewrite_version,
    target_platforms,
    write_tarball,
)
from bluegreen.errors import ExitCode

REPO = Path(__file__).resolve().parents[2]
SAMPLEAPP = REPO / "examples" / "sampleapp"

PYPROJECT = """\
# a comment that must survive
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[tool.other]
version = "9.9.9"

[project]
name = "Demo_App"
version = '1.0.0'  # bumped by release tooling
dependencies = []

[project.urls]
version = "https://example.invalid/version"
"""


def write_project(directory: Path, pyproject: str = PYPROJECT) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pyproject.toml").write_text(pyproject)
    return directory


def test_rewrite_version_changes_only_the_project_version() -> None:
    rewritten = rewrite_version(PYPROJECT, "2.0.1+crash")
    data = tomllib.loads(rewritten)
    assert data["project"]["version"] == "2.0.1+crash"
    assert data["tool"]["other"]["version"] == "9.9.9"
    assert data["project"]["urls"]["version"] == "https://example.invalid/version"
    assert "# a comment that must survive" in rewritten
    assert 'version = "2.0.1+crash"  # bumped by release tooling\n' in rewritten
    assert len(rewritten.splitlines()) == len(PYPROJECT.splitlines())


def test_rewrite_version_keeps_windows_line_endings() -> None:
    rewritten = rewrite_version(PYPROJECT.replace("\n", "\r\n"), "3.0.0")
    assert 'version = "3.0.0"  # bumped by release tooling\r\n' in rewritten


@pytest.mark.parametrize(
    ("pyproject", "complaint"),
    [
        ('[project]\nname = "x"\ndynamic = ["version"]\n', "declares the version dynamic"),
        ('[project]\nname = "x"\n', "has no version"),
        ('[tool.poetry]\nname = "x"\nversion = "1.0"\n', "no \\[project\\] table"),
        ("[project\nname = ", "not valid TOML"),
        ('[project]\nname = "x"\nversion = """1.0"""\n', "could not find the version line"),
    ],
)
def test_rewrite_version_refuses_what_it_cannot_rewrite(pyproject: str, complaint: str) -> None:
    with pytest.raises(ProjectError, match=complaint):
        rewrite_version(pyproject, "2.0.0")


def test_versions_are_normalized_and_validated() -> None:
    assert normalized_version("2.0.1+CRASH") == "2.0.1+crash"
    assert normalized_version("v2.0") == "2.0"
    with pytest.raises(ProjectError, match="not a valid PEP 440 version"):
        normalized_version("latest")


def test_artifact_is_named_by_normalized_name_and_version(tmp_path: Path) -> None:
    path = artifact_path(tmp_path, "Demo_App", "2.0.2+HTTP500")
    assert path == tmp_path / "demo-app-2.0.2+http500.tar.gz"


def test_manylinux2014_target_also_accepts_pep600_and_2_28_wheels() -> None:
    assert target_platforms("manylinux2014_x86_64") == [
        "manylinux2014_x86_64",
        "manylinux_2_17_x86_64",
        "manylinux_2_28_x86_64",
        "any",
    ]
    assert target_platforms("manylinux_2_17_aarch64")[2] == "manylinux_2_28_aarch64"
    assert target_platforms("macosx_11_0_arm64") == ["macosx_11_0_arm64", "any"]


def test_missing_pyproject_is_a_usage_error_naming_the_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProjectError, match=r"has no pyproject\.toml") as caught:
        build_artifact(tmp_path / "empty", tmp_path / "out")
    assert str(tmp_path / "empty") in str(caught.value)
    assert caught.value.exit_code == ExitCode.USAGE


def test_missing_project_directory_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="does not exist"):
        build_artifact(tmp_path / "nowhere", tmp_path / "out")


def test_version_cannot_be_set_on_a_setup_py_only_project(tmp_path: Path) -> None:
    project = tmp_path / "legacy"
    project.mkdir()
    (project / "setup.py").write_text("from setuptools import setup\nsetup(name='legacy')\n")
    with pytest.raises(ProjectError, match=r"set the version in setup\.py"):
        build_artifact(project, tmp_path / "out", version="1.0.0")


def test_dynamic_version_with_requested_version_fails_before_building(tmp_path: Path) -> None:
    project = write_project(tmp_path / "dyn", '[project]\nname = "dyn"\ndynamic = ["version"]\n')
    with pytest.raises(ProjectError, match="dynamic"):
        build_artifact(project, tmp_path / "out", version="1.0.0")


@pytest.mark.parametrize(("version", "existing"), [(None, "1.0.0"), ("2.0.0", "2.0.0")])
def test_existing_artifact_is_not_rebuilt_without_force(
    tmp_path: Path, version: str | None, existing: str
) -> None:
    project = write_project(tmp_path / "demo")
    out = tmp_path / "out"
    out.mkdir()
    present = out / f"demo-app-{existing}.tar.gz"
    present.write_bytes(b"the released artifact")
    with pytest.raises(ArtifactExists, match="--force") as caught:
        build_artifact(project, out, version=version)
    assert caught.value.path == present
    assert present.read_bytes() == b"the released artifact"


def test_pip_failure_carries_pip_output_and_command(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "broken",
        '[build-system]\nrequires = []\nbuild-backend = "no_such_backend_xyz"\n'
        '[project]\nname = "broken"\nversion = "1.0.0"\n',
    )
    with pytest.raises(PipError, match="building the wheel of") as caught:
        build_artifact(project, tmp_path / "out")
    message = str(caught.value)
    assert "no_such_backend_xyz" in message
    assert "command: " in message and " -m pip wheel --no-deps" in message
    assert not (tmp_path / "out" / "broken-1.0.0.tar.gz").exists()


def test_tarball_is_sorted_owned_by_root_and_reproducible(tmp_path: Path) -> None:
    wheel = tmp_path / "b-1.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel bytes")
    members = [("a-1.0/wheelhouse/b-1.0-py3-none-any.whl", wheel), ("a-1.0/m.json", b"{}\n")]
    first, second = tmp_path / "one.tar.gz", tmp_path / "two.tar.gz"
    write_tarball(first, members, mtime=1_700_000_000)
    write_tarball(second, list(reversed(members)), mtime=1_700_000_000)

    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        entries = tar.getmembers()
    assert [e.name for e in entries] == [
        "a-1.0",
        "a-1.0/m.json",
        "a-1.0/wheelhouse",
        "a-1.0/wheelhouse/b-1.0-py3-none-any.whl",
    ]
    assert {(e.uid, e.gid, e.mtime) for e in entries} == {(0, 0, 1_700_000_000)}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["b-1.0-py3-none-any.whl", "one.tar.gz", "two.tar.gz"]
    )


def offline_pip_env() -> dict[str, str]:
    """An environment in which pip sees no index, no config and no extra find-links."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.mark.slow
def test_sampleapp_artifact_installs_offline_at_the_built_version(tmp_path: Path) -> None:
    pyproject_before = (SAMPLEAPP / "pyproject.toml").read_text()
    out = tmp_path / "artifacts"

    artifact = build_artifact(SAMPLEAPP, out, version="2.0.0")

    assert (SAMPLEAPP / "pyproject.toml").read_text() == pyproject_before
    assert artifact.path == out / "sampleapp-2.0.0.tar.gz"
    assert (artifact.name, artifact.version) == ("sampleapp", "2.0.0")
    assert artifact.size == artifact.path.stat().st_size
    digest = hashlib.sha256(artifact.path.read_bytes()).hexdigest()
    assert artifact.sha256 == digest
    assert artifact.checksum_path.read_text() == f"{digest}  sampleapp-2.0.0.tar.gz\n"
    checked = subprocess.run(
        ["sha256sum", "-c", artifact.checksum_path.name],
        cwd=out,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    extracted = tmp_path / "extracted"
    with tarfile.open(artifact.path) as tar:
        assert {m.name.split("/")[0] for m in tar.getmembers()} == {"sampleapp-2.0.0"}
        tar.extractall(extracted, filter="data")
    root = extracted / "sampleapp-2.0.0"
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    wheelhouse = root / "wheelhouse"
    wheel_files = sorted(p.name for p in wheelhouse.iterdir())
    assert manifest["name"] == "sampleapp"
    assert manifest["normalized_name"] == "sampleapp"
    assert manifest["version"] == "2.0.0"
    assert manifest["python_version"] == "3.11"
    assert manifest["platform"] == "manylinux2014_x86_64"
    assert manifest["built_at"].endswith("Z")
    assert manifest["project_wheel"] == "sampleapp-2.0.0-py3-none-any.whl"
    assert [w["filename"] for w in manifest["wheels"]] == wheel_files
    for wheel in manifest["wheels"]:
        content = (wheelhouse / wheel["filename"]).read_bytes()
        assert hashlib.sha256(content).hexdigest() == wheel["sha256"]
    assert all(name.endswith(".whl") for name in wheel_files)
    assert any(name.startswith("psycopg_binary-") for name in wheel_files)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = offline_pip_env()
    install = subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            "sampleapp==2.0.0",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    installed = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('sampleapp'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert installed.stdout.strip() == "2.0.0"
    migrate = subprocess.run(
        [str(venv / "bin" / "sampleapp-migrate"), "upgrade", "head"],
        env={**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    assert "Running upgrade  -> 0001" in migrate.stderr

    with pytest.raises(ArtifactExists):
        build_artifact(SAMPLEAPP, out, version="2.0.0")
    rebuilt = build_artifact(SAMPLEAPP, out, version="2.0.0", force=True)
    assert rebuilt.path == artifact.path
    assert rebuilt.checksum_path.read_text().split()[0] == rebuilt.sha256
    assert sorted(p.name for p in out.iterdir()) == [
        "sampleapp-2.0.0.tar.gz",
        "sampleapp-2.0.0.tar.gz.sha256",
    ]


@pytest.mark.slow
def test_build_never_touches_the_project_tree_and_keeps_nested_build_packages(
    tmp_path: Path,
) -> None:
    project = write_project(
        tmp_path / "svc",
        '[build-system]\nrequires = ["setuptools>=68"]\n'
        'build-backend = "setuptools.build_meta"\n'
        '[project]\nname = "demo-svc"\nversion = "0.3.0"\n'
        '[tool.setuptools.packages.find]\nwhere = ["src"]\n',
    )
    for package in ("src/demo_svc", "src/demo_svc/build"):
        (project / package).mkdir(parents=True)
        (project / package / "__init__.py").write_text("")
    (project / "build").mkdir()
    (project / "build" / "stale.txt").write_text("leftover of an old build")
    out = project / "artifacts"
    out.mkdir()
    (out / "notes.txt").write_text("not part of any build")
    tree_before = sorted(str(p.relative_to(project)) for p in project.rglob("*"))

    artifact = build_artifact(project, out, version="0.3.1")

    assert artifact.path == out / "demo-svc-0.3.1.tar.gz"
    tree_after = sorted(str(p.relative_to(project)) for p in project.rglob("*"))
    assert set(tree_after) - set(tree_before) == {
        "artifacts/demo-svc-0.3.1.tar.gz",
        "artifacts/demo-svc-0.3.1.tar.gz.sha256",
    }
    with tarfile.open(artifact.path) as tar:
        wheel_member = tar.getmember("demo-svc-0.3.1/wheelhouse/demo_svc-0.3.1-py3-none-any.whl")
        wheel_bytes = tar.extractfile(wheel_member).read()
    with zipfile.ZipFile(io.BytesIO(wheel_bytes)) as wheel:
        names = wheel.namelist()
    assert "demo_svc/build/__init__.py" in names
    assert not any("stale" in name or "notes" in name for name in names)
