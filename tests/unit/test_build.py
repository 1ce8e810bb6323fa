"""bluegreen build: version rewriting, project checks, targets, the tarball, offline builds
from tiny local wheels and sdists (a requirements-only project, lock files, included files,
Requires-Python, reproducibility), and real builds from PyPI (slow)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from packaging.tags import Tag

from bluegreen.build import (
    MANIFEST_NAME,
    ArtifactExists,
    LockedPin,
    PipError,
    ProjectError,
    artifact_path,
    build_artifact,
    lock_constraints,
    normalized_version,
    project_lock,
    python_requirement_problem,
    rewrite_version,
    target,
    target_platforms,
    target_tags,
    uv_index_options,
    write_tarball,
)
from bluegreen.errors import ExitCode

REPO = Path(__file__).resolve().parents[2]
SAMPLEAPP = REPO / "examples" / "sampleapp"
REQUIREMENTS = "requirements.txt"

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


def test_a_host_platform_accepts_every_manylinux_tag_up_to_its_glibc() -> None:
    tags = target_platforms("manylinux_2_36_x86_64")
    assert tags[:2] == ["manylinux_2_36_x86_64", "manylinux_2_35_x86_64"]
    for accepted in ("manylinux_2_28_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64", "any"):
        assert accepted in tags
    assert "manylinux_2_37_x86_64" not in tags
    assert not any("aarch64" in tag for tag in tags)
    assert target_platforms("manylinux2014_aarch64")[:2] == [
        "manylinux_2_17_aarch64",
        "manylinux2014_aarch64",
    ]


@pytest.mark.parametrize("platform", ["macosx_11_0_arm64", "linux_x86_64", "manylinux_2_36"])
def test_a_platform_that_is_not_manylinux_is_refused_naming_the_form(platform: str) -> None:
    with pytest.raises(ProjectError, match=r"manylinux_2_<glibc minor>_<x86_64\|aarch64>"):
        target_platforms(platform)


def test_the_target_python_is_a_full_version_debian_12s_by_default() -> None:
    assert target().python_full_version == "3.11.2"
    assert target().platform == "manylinux_2_36_x86_64"
    assert target("3.12").python_full_version == "3.12.0"
    hosts = target("3.11.7", "manylinux_2_36_aarch64")
    assert (hosts.python_version, hosts.abi, hosts.uv_platform) == (
        "3.11",
        "cp311",
        "aarch64-manylinux_2_36",
    )


@pytest.mark.parametrize("version", ["3", "3.11.2.1", "py3.11", "3.11.x", ""])
def test_a_python_version_that_is_not_x_y_z_is_refused(version: str) -> None:
    with pytest.raises(ProjectError, match=r"--python-version .* is not X\.Y or X\.Y\.Z"):
        target(version)


def test_uv_resolves_from_the_indexes_pip_is_configured_with() -> None:
    pip_config = {
        "global.index-url": "https://mirror.example/simple",
        "global.extra-index-url": "file:///a/simple file:///b/simple",
        "global.find-links": "/global/wheels",
        ":env:.find-links": "/env/wheels",
        "global.constraint": "/etc/constraints.txt",
        "install.no-index": "1",
        "global.cert": "/etc/ssl/ca.crt",
    }
    assert uv_index_options(pip_config) == [
        "--index-url",
        "https://mirror.example/simple",
        "--extra-index-url",
        "file:///a/simple",
        "--extra-index-url",
        "file:///b/simple",
        "--find-links",
        "/env/wheels",
        "--constraint",
        "/etc/constraints.txt",
        "--index-strategy",
        "unsafe-best-match",
    ]
    assert uv_index_options({"download.no-index": "true"})[0] == "--no-index"
    assert uv_index_options({}) == []


def test_missing_project_files_is_a_usage_error_naming_the_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        ProjectError, match=r"has no pyproject\.toml, setup\.py or requirements\.txt"
    ) as caught:
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


def test_pips_reason_on_stdout_reaches_the_message(tmp_path: Path) -> None:
    # pip prints a ResolutionImpossible's explanation on stdout, warnings on stderr.
    fake_python = tmp_path / "python"
    fake_python.write_text(
        "#!/bin/sh\n"
        "echo 'WARNING: a warning on stderr' >&2\n"
        "echo 'ERROR: the reason, printed on stdout'\n"
        "exit 1\n"
    )
    fake_python.chmod(0o755)
    project = write_project(tmp_path / "demo")

    with pytest.raises(PipError) as caught:
        build_artifact(project, tmp_path / "out", python=str(fake_python))

    assert "ERROR: the reason, printed on stdout" in str(caught.value)
    assert "WARNING: a warning on stderr" in str(caught.value)


def tiny_wheel(directory: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A pure-Python wheel of ``name`` whose METADATA requires ``requires``."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {requirement}\n" for requirement in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = "".join(
        f"{path},sha256="
        f"{base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()}"
        f",{len(text.encode())}\n"
        for path, text in files.items()
    )
    files[f"{info}/RECORD"] = record + f"{info}/RECORD,,\n"
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def use_only_index(monkeypatch: pytest.MonkeyPatch, wheels: Path, tmp_path: Path) -> None:
    """pip and uv find packages in ``wheels`` and nowhere else, whatever this machine's
    configuration says."""
    for key in [k for k in os.environ if k.startswith(("PIP_", "UV_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("UV_NO_CONFIG", "1")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))


@pytest.fixture
def local_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tiny wheels in a directory that pip and uv use as their only index.

    site_core needs needed_b below Python 3.11.3 (the marker of issue 15), arm_only on
    aarch64 and win_only on Windows.
    """
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    tiny_wheel(
        wheels,
        "site_core",
        "1.0",
        (
            'needed_b; python_full_version < "3.11.3"',
            'arm_only; platform_machine == "aarch64"',
            'win_only; sys_platform == "win32"',
        ),
    )
    for name in ("needed_b", "arm_only", "win_only", "gunicorn"):
        tiny_wheel(wheels, name, "2.0")
    use_only_index(monkeypatch, wheels, tmp_path)
    return wheels


def write_site(directory: Path, requirements: str = "site-core\n") -> Path:
    """A Django-like site: manage.py, a settings package, requirements.txt, and the junk a
    working copy has (VCS data, caches, a virtualenv, a SQLite database)."""
    for package in ("mysite", "home"):
        (directory / package).mkdir(parents=True)
        (directory / package / "__init__.py").write_text("")
    (directory / "manage.py").write_text("#!/usr/bin/env python\n")
    (directory / "manage.py").chmod(0o755)
    (directory / "mysite" / "wsgi.py").write_text("application = None\n")
    (directory / REQUIREMENTS).write_text(requirements)
    junk = [".git/HEAD", "home/__pycache__/x.pyc", "env/pyvenv.cfg", "env/bin/python", "db.sqlite3"]
    for path in junk:
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_text("junk")
    return directory


def wheelhouse_of(artifact: Path) -> set[str]:
    with tarfile.open(artifact) as tar:
        return {Path(name).name.split("-")[0] for name in tar.getnames() if "/wheelhouse/" in name}


@pytest.mark.parametrize(
    ("python_version", "platform", "wheels"),
    [
        ("3.11.2", "manylinux_2_36_x86_64", {"site_core", "needed_b"}),
        ("3.11.7", "manylinux_2_36_x86_64", {"site_core"}),
        ("3.11.7", "manylinux_2_36_aarch64", {"site_core", "arm_only"}),
    ],
)
@pytest.mark.usefixtures("local_index")
def test_markers_are_judged_for_the_hosts_python_and_platform(
    tmp_path: Path, python_version: str, platform: str, wheels: set[str]
) -> None:
    site = write_site(tmp_path / "site")

    artifact = build_artifact(
        site,
        tmp_path / "out",
        version="1.0.0",
        name="mysite",
        python_version=python_version,
        platform=platform,
    )

    assert wheelhouse_of(artifact.path) == wheels
    with tarfile.open(artifact.path) as tar:
        manifest = json.loads(tar.extractfile(f"mysite-1.0.0/{MANIFEST_NAME}").read())
    assert (manifest["python_full_version"], manifest["platform"]) == (python_version, platform)


@pytest.mark.usefixtures("local_index")
def test_a_requirements_only_site_becomes_a_tree_that_installs_offline(tmp_path: Path) -> None:
    site = write_site(tmp_path / "site")
    out = site / "artifacts"
    tree_before = set(site.rglob("*"))

    artifact = build_artifact(
        site, out, version="1.0.0", name="my_site", with_requirements=["gunicorn"]
    )

    assert (artifact.name, artifact.path) == ("my-site", out / "my-site-1.0.0.tar.gz")
    assert set(site.rglob("*")) - tree_before == {out, artifact.path, artifact.checksum_path}
    extracted = tmp_path / "extracted"
    with tarfile.open(artifact.path) as tar:
        modes = {m.name: m.mode for m in tar.getmembers()}
        tar.extractall(extracted, filter="data")
    root = extracted / "my-site-1.0.0"
    assert sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if "wheelhouse" not in p.parts
    ) == [
        MANIFEST_NAME,
        "home",
        "home/__init__.py",
        "manage.py",
        "mysite",
        "mysite/__init__.py",
        "mysite/wsgi.py",
        REQUIREMENTS,
    ]
    assert modes["my-site-1.0.0/manage.py"] == 0o755
    assert modes["my-site-1.0.0/mysite/wsgi.py"] == 0o644
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert {
        key: manifest[key] for key in ("kind", "name", "normalized_name", "requirements", "with")
    } == {
        "kind": "tree",
        "name": "my_site",
        "normalized_name": "my-site",
        "requirements": REQUIREMENTS,
        "with": ["gunicorn"],
    }
    assert "project_wheel" not in manifest
    assert manifest["install"] == (
        "pip install --no-index --find-links wheelhouse -r requirements.txt gunicorn"
    )
    assert {w["filename"].split("-")[0] for w in manifest["wheels"]} == {
        "site_core",
        "needed_b",
        "gunicorn",
    }

    # What a host runs, here with this machine's Python (3.11.7 needs no needed_b).
    installed = tmp_path / "installed"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-index",
            "--find-links",
            str(root / "wheelhouse"),
            "--target",
            str(installed),
            "-r",
            str(root / REQUIREMENTS),
            *manifest["with"],
        ],
        env=offline_pip_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    assert (installed / "site_core" / "__init__.py").is_file()
    assert (installed / "gunicorn" / "__init__.py").is_file()


@pytest.mark.parametrize(
    ("options", "missing"),
    [
        ({}, "give --name and --version"),
        ({"name": "mysite"}, "give --version"),
        ({"version": "1.0"}, "give --name"),
    ],
)
def test_a_tree_project_needs_a_name_and_a_version(
    tmp_path: Path, options: dict[str, str], missing: str
) -> None:
    site = write_site(tmp_path / "site")
    with pytest.raises(ProjectError, match=missing) as caught:
        build_artifact(site, tmp_path / "out", **options)
    assert "has only requirements.txt" in str(caught.value)
    assert "bluegreen build " in str(caught.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["MySite", "my site", "1site", "-site", "site.com"])
def test_a_name_that_cannot_name_a_service_is_refused(tmp_path: Path, name: str) -> None:
    site = write_site(tmp_path / "site")
    with pytest.raises(ProjectError, match="cannot name a service"):
        build_artifact(site, tmp_path / "out", version="1.0.0", name=name)


def test_a_name_other_than_the_packages_own_is_refused(tmp_path: Path) -> None:
    project = write_project(tmp_path / "demo")
    with pytest.raises(ProjectError, match="differs from 'Demo_App'"):
        build_artifact(project, tmp_path / "out", name="shop")


def test_a_tree_whose_top_level_holds_a_release_name_is_refused(tmp_path: Path) -> None:
    site = write_site(tmp_path / "site")
    (site / "wheelhouse").mkdir()
    (site / "wheelhouse" / "old.whl").write_text("")
    with pytest.raises(ProjectError, match="has wheelhouse at its top level"):
        build_artifact(site, tmp_path / "out", version="1.0.0", name="mysite")


def test_a_bad_with_requirement_is_refused(tmp_path: Path) -> None:
    site = write_site(tmp_path / "site")
    with pytest.raises(ProjectError, match="--with 'gunicorn ==' is not a requirement"):
        build_artifact(
            site,
            tmp_path / "out",
            version="1.0.0",
            name="mysite",
            with_requirements=["gunicorn =="],
        )


@pytest.mark.usefixtures("local_index")
def test_an_unresolvable_requirement_fails_with_the_resolvers_reason(tmp_path: Path) -> None:
    site = write_site(tmp_path / "site", "site-core\nneeded-b>=3\n")
    with pytest.raises(PipError, match="resolving the dependencies") as caught:
        build_artifact(site, tmp_path / "out", version="1.0.0", name="mysite")
    assert "needed-b>=3" in str(caught.value)
    assert "No solution found" in str(caught.value)
    assert not (tmp_path / "out" / "mysite-1.0.0.tar.gz").exists()


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


TINY_BACKEND = '''\
"""A PEP 517 backend in a few lines: a wheel of [project], stamped with SOURCE_DATE_EPOCH
as real backends do, else with the time of the build; [tool.tiny] sets its tag or a
failure."""

import base64
import hashlib
import os
import time
import tomllib
import zipfile


def _project():
    with open("pyproject.toml", "rb") as handle:
        data = tomllib.load(handle)
    return data["project"], data.get("tool", {}).get("tiny", {})


def _metadata(project):
    lines = ["Metadata-Version: 2.1", "Name: " + project["name"], "Version: " + project["version"]]
    if "requires-python" in project:
        lines.append("Requires-Python: " + project["requires-python"])
    lines += ["Requires-Dist: " + requirement for requirement in project.get("dependencies", [])]
    return "\\n".join(lines) + "\\n"


def _dist_info(project):
    return project["name"].replace("-", "_") + "-" + project["version"] + ".dist-info"


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    project, _ = _project()
    os.makedirs(os.path.join(metadata_directory, _dist_info(project)))
    with open(os.path.join(metadata_directory, _dist_info(project), "METADATA"), "w") as out:
        out.write(_metadata(project))
    return _dist_info(project)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project, tiny = _project()
    if "fail" in tiny:
        raise RuntimeError(tiny["fail"])
    tag = tiny.get("tag", "py3-none-any")
    package = project["name"].replace("-", "_")
    info = _dist_info(project)
    stamp = os.environ.get("SOURCE_DATE_EPOCH")
    files = {
        package + "/__init__.py": "BUILT = " + repr(stamp or time.time_ns()) + "\\n",
        info + "/METADATA": _metadata(project),
        info + "/WHEEL": "Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: " + tag + "\\n",
    }
    record = ""
    for path, text in files.items():
        digest = hashlib.sha256(text.encode()).digest()
        record += path + ",sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        record += "," + str(len(text.encode())) + "\\n"
    files[info + "/RECORD"] = record + info + "/RECORD,,\\n"
    date = time.gmtime(int(stamp) if stamp else time.time())[:6]
    name = package + "-" + project["version"] + "-" + tag + ".whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as archive:
        for path, text in files.items():
            archive.writestr(zipfile.ZipInfo(path, date), text)
    return name
'''


def tiny_project(
    directory: Path,
    name: str,
    version: str,
    dependencies: tuple[str, ...] = (),
    more: str = "",
) -> Path:
    """A package built by TINY_BACKEND, needing nothing from an index to build;
    ``more`` is appended to its pyproject.toml."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tiny_backend.py").write_text(TINY_BACKEND)
    (directory / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "tiny_backend"\nbackend-path = ["."]\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\n'
        f"dependencies = {list(dependencies)!r}\n" + more
    )
    return directory


def tiny_sdist(directory: Path, name: str, version: str, more: str = "") -> Path:
    """An sdist of a TINY_BACKEND package (and no wheel of it) in ``directory``."""
    source = tiny_project(
        directory.parent / "sdist-sources" / f"{name}-{version}", name, version, more=more
    )
    (source / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    sdist = directory / f"{name}-{version}.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(source, arcname=source.name)
    return sdist


def manifest_of(artifact: Path) -> dict:
    with tarfile.open(artifact) as tar:
        root = tar.getnames()[0].split("/")[0]
        return json.loads(tar.extractfile(f"{root}/{MANIFEST_NAME}").read())


def uv_lock(version: str) -> str:
    return (
        'version = 1\nrequires-python = ">=3.11"\n\n'
        # The project's own entry, at the version it had when it was locked.
        '[[package]]\nname = "demo-svc"\nversion = "0.9.0"\nsource = { editable = "." }\n'
        'dependencies = [{ name = "dep" }]\n\n'
        f'[[package]]\nname = "dep"\nversion = "{version}"\n'
        'source = { registry = "../wheels" }\n'
    )


def poetry_lock(version: str) -> str:
    return (
        f'[[package]]\nname = "dep"\nversion = "{version}"\n'
        'description = ""\noptional = false\n'
        'python-versions = "*"\nfiles = []\n\n'
        '[metadata]\nlock-version = "2.0"\npython-versions = "^3.11"\ncontent-hash = "0"\n'
    )


def pylock(version: str, marker: str | None = None) -> str:
    return (
        'lock-version = "1.0"\ncreated-by = "uv"\nrequires-python = ">=3.11"\n\n'
        f'[[packages]]\nname = "dep"\nversion = "{version}"\n'
        + (f"marker = {marker!r}\n" if marker else "")
        + 'index = "https://pypi.org/simple"\n'
    )


def test_a_lock_file_gets_exactly_its_versions_not_the_newest(
    tmp_path: Path, local_index: Path
) -> None:
    for version in ("1.0", "2.0"):
        tiny_wheel(local_index, "dep", version)
    project = tiny_project(tmp_path / "svc", "demo-svc", "1.0.0", ("dep",))
    (project / "uv.lock").write_text(uv_lock("1.0"))

    artifact = build_artifact(project, tmp_path / "out", version="1.0.1")

    manifest = manifest_of(artifact.path)
    assert [w["filename"] for w in manifest["wheels"]] == [
        "demo_svc-1.0.1-py3-none-any.whl",
        "dep-1.0-py3-none-any.whl",
    ]
    assert manifest["lock"] == "uv.lock"


@pytest.mark.parametrize(
    ("lock", "content"),
    [
        ("uv.lock", uv_lock("1.0")),
        ("poetry.lock", poetry_lock("1.0")),
        ("pylock.toml", pylock("1.0")),
    ],
)
def test_each_kind_of_lock_pins_what_it_took_from_an_index(
    tmp_path: Path, lock: str, content: str
) -> None:
    (tmp_path / lock).write_text(
        content
        # Not from an index: a pin on them would hold the hosts to a package of that name
        # on the index, which is not the one locked.
        + {
            "uv.lock": '\n[[package]]\nname = "tool"\nversion = "0.1"\n'
            'source = { git = "https://example.invalid/tool.git" }\n',
            "poetry.lock": '\n[[package]]\nname = "tool"\nversion = "0.1"\n'
            '[package.source]\ntype = "git"\nurl = "https://example.invalid/tool.git"\n',
            "pylock.toml": '\n[[packages]]\nname = "tool"\nversion = "0.1"\n'
            'vcs = { type = "git", url = "https://example.invalid/tool.git" }\n',
        }[lock]
    )
    lock_found = project_lock(tmp_path)
    assert lock_found is not None
    assert lock_constraints(lock_found.pins) == ["dep==1.0"]


def test_a_package_locked_at_several_versions_is_held_to_them() -> None:
    pins = [
        LockedPin("numpy", "1.26.4", 'python_full_version >= "3.9"'),
        LockedPin("numpy", "1.24.4", 'python_full_version < "3.9"'),
        LockedPin("Django", "4.2.1"),
        LockedPin("django", "5.0.6"),
    ]
    assert lock_constraints(pins) == [
        "django>=4.2.1,<=5.0.6",
        'numpy==1.26.4 ; python_full_version >= "3.9"',
        'numpy==1.24.4 ; python_full_version < "3.9"',
    ]


def test_a_lock_the_requirements_contradict_fails_naming_the_lock(
    tmp_path: Path, local_index: Path
) -> None:
    for version in ("1.0", "2.0"):
        tiny_wheel(local_index, "dep", version)
    project = tiny_project(tmp_path / "svc", "demo-svc", "1.0.0", ("dep>=2",))
    (project / "uv.lock").write_text(uv_lock("1.0"))

    with pytest.raises(PipError, match=r"at the versions uv\.lock pins") as caught:
        build_artifact(project, tmp_path / "out")
    assert "dep" in str(caught.value) and "No solution found" in str(caught.value)


def test_a_resolution_that_leaves_a_locked_version_is_refused_naming_both(
    tmp_path: Path, local_index: Path
) -> None:
    # The lock pins dep for Windows only, so nothing holds the hosts' dep to it.
    for version in ("1.0", "2.0"):
        tiny_wheel(local_index, "dep", version)
    project = tiny_project(tmp_path / "svc", "demo-svc", "1.0.0", ("dep",))
    (project / "pylock.toml").write_text(pylock("1.0", marker='sys_platform == "win32"'))

    with pytest.raises(
        ProjectError, match=r"pylock\.toml locks dep at 1\.0 but it resolved to 2\.0"
    ):
        build_artifact(project, tmp_path / "out")


def test_two_lock_files_are_refused(tmp_path: Path) -> None:
    project = tiny_project(tmp_path / "svc", "demo-svc", "1.0.0")
    (project / "uv.lock").write_text(uv_lock("1.0"))
    (project / "poetry.lock").write_text(poetry_lock("1.0"))
    with pytest.raises(ProjectError, match=r"holds uv\.lock and poetry\.lock"):
        build_artifact(project, tmp_path / "out")


def test_two_builds_of_the_same_files_are_byte_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_index: Path
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    tiny_wheel(local_index, "dep", "1.0")
    tiny_sdist(local_index, "from-sdist", "1.0")
    project = tiny_project(tmp_path / "svc", "demo-svc", "1.0.0", ("dep", "from-sdist"))
    for path in project.iterdir():
        os.utime(path, (1_700_000_000, 1_700_000_000))
    os.utime(project / "pyproject.toml", (1_700_000_100, 1_700_000_100))

    first = build_artifact(project, tmp_path / "one")
    second = build_artifact(project, tmp_path / "two")

    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()
    manifest = manifest_of(first.path)
    newest = datetime.fromtimestamp(1_700_000_100, UTC)
    assert manifest["built_at"] == newest.strftime("%Y-%m-%dT%H:%M:%SZ")
    with tarfile.open(first.path) as tar:
        assert {member.mtime for member in tar.getmembers()} == {1_700_000_100}
        built = tar.extractfile("demo-svc-1.0.0/wheelhouse/from_sdist-1.0-py3-none-any.whl")
        with zipfile.ZipFile(io.BytesIO(built.read())) as wheel:
            assert {entry.date_time for entry in wheel.infolist()} == {newest.timetuple()[:6]}


@pytest.mark.parametrize(
    ("requires_python", "host", "problem"),
    [
        (">=3.12", "3.11.2", "the project requires Python >=3.12 but the hosts run 3.11.2"),
        (">=3.11", "3.11.2", None),
        ("~=3.11", "3.13.5", None),
        ("~=3.11.0", "3.13.5", "requires Python ~=3.11.0 but the hosts run 3.13.5"),
        (">=3.12", "3.12.0rc1", None),
        (None, "3.11.2", None),
        ("", "3.11.2", None),
        (">=3.x", "3.11.2", "Requires-Python '>=3.x' is not a version specifier"),
        (">=3.11", "3.11.2+", "'3.11.2+' is not a Python version"),
    ],
)
def test_python_requirement_problem_says_why_the_hosts_cannot_run_the_project(
    requires_python: str | None, host: str, problem: str | None
) -> None:
    found = python_requirement_problem(requires_python, host)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


@pytest.mark.usefixtures("local_index")
def test_a_project_the_hosts_python_cannot_run_is_refused_naming_both(tmp_path: Path) -> None:
    project = tiny_project(
        tmp_path / "svc", "demo-svc", "1.0.0", more='requires-python = ">=3.12"\n'
    )
    with pytest.raises(
        ProjectError,
        match=r"requires Python >=3\.12 but the hosts run 3\.11\.2 \(--python-version\)",
    ):
        build_artifact(project, tmp_path / "out")
    assert not (tmp_path / "out" / "demo-svc-1.0.0.tar.gz").exists()

    artifact = build_artifact(project, tmp_path / "out", python_version="3.12.3")
    assert manifest_of(artifact.path)["requires_python"] == ">=3.12"


def write_service_files(project: Path) -> None:
    """What a service reads at run time besides its code, and junk beside it."""
    for path, text in {
        "alembic.ini": "[alembic]\n",
        "migrations/env.py": "",
        "migrations/versions/0001_first.py": "",
        "migrations/__pycache__/env.cpython-311.pyc": "junk",
        "scripts/seed.sql": "select 1;\n",
        "scripts/other.sql": "not included",
        "README.md": "not included",
    }.items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(text)


@pytest.mark.usefixtures("local_index")
def test_included_files_land_at_the_release_root_and_in_the_manifest(tmp_path: Path) -> None:
    project = tiny_project(
        tmp_path / "svc",
        "demo-svc",
        "1.0.0",
        more='[tool.bluegreen]\ninclude = ["alembic.ini", "migrations/"]\n',
    )
    write_service_files(project)

    artifact = build_artifact(project, tmp_path / "out", include=["./scripts/seed.sql"])

    files = [
        "alembic.ini",
        "migrations/env.py",
        "migrations/versions/0001_first.py",
        "scripts/seed.sql",
    ]
    with tarfile.open(artifact.path) as tar:
        names = {name for name in tar.getnames() if tar.getmember(name).isfile()}
        assert tar.extractfile("demo-svc-1.0.0/alembic.ini").read() == b"[alembic]\n"
    assert names == {
        f"demo-svc-1.0.0/{MANIFEST_NAME}",
        "demo-svc-1.0.0/wheelhouse/demo_svc-1.0.0-py3-none-any.whl",
        *(f"demo-svc-1.0.0/{path}" for path in files),
    }
    manifest = manifest_of(artifact.path)
    assert manifest["files"] == files
    assert (manifest["lock"], manifest["requires_python"]) == (None, None)


@pytest.mark.parametrize(
    ("include", "complaint"),
    [
        ("nothing.ini", "'nothing.ini' does not exist in"),
        ("../outside.ini", "'../outside.ini' is not inside"),
        (".", "'.' is not inside"),
        ("/etc/hostname", "'/etc/hostname' is not inside"),
        ("link.ini", "'link.ini' leads out of"),
        ("wheelhouse", "'wheelhouse' would land on wheelhouse in the release directory"),
    ],
)
def test_an_include_that_is_missing_leaves_the_project_or_collides_is_refused(
    tmp_path: Path, include: str, complaint: str
) -> None:
    project = tiny_project(tmp_path / "svc", "demo-svc", "1.0.0")
    (tmp_path / "outside.ini").write_text("")
    (project / "link.ini").symlink_to(tmp_path / "outside.ini")
    (project / "wheelhouse").mkdir()
    with pytest.raises(ProjectError, match=complaint):
        build_artifact(project, tmp_path / "out", include=[include])


def test_include_is_refused_for_a_tree_that_carries_every_file_already(tmp_path: Path) -> None:
    site = write_site(tmp_path / "site")
    with pytest.raises(ProjectError, match="drop --include"):
        build_artifact(site, tmp_path / "out", name="mysite", version="1.0", include=["manage.py"])


def test_the_hosts_accept_their_own_platforms_tags_and_pure_python_only() -> None:
    tags = target_tags(target("3.11.2", "manylinux_2_36_x86_64"))
    for accepted in (
        "py3-none-any",
        "cp311-cp311-manylinux_2_17_x86_64",
        "cp311-abi3-manylinux_2_28_x86_64",
        "cp39-abi3-manylinux2014_x86_64",
    ):
        assert Tag(*accepted.split("-")) in tags, accepted
    for refused in (
        "cp311-cp311-linux_x86_64",
        "cp312-cp312-manylinux_2_17_x86_64",
        "cp311-cp311-manylinux_2_39_x86_64",
        "cp311-cp311-manylinux_2_17_aarch64",
        "py2-none-any",
    ):
        assert Tag(*refused.split("-")) not in tags, refused


def test_a_dependency_published_only_as_an_sdist_is_built_here(
    tmp_path: Path, local_index: Path
) -> None:
    tiny_sdist(local_index, "only-sdist", "1.0")
    site = write_site(tmp_path / "site", "site-core\nonly-sdist\n")

    artifact = build_artifact(site, tmp_path / "out", name="mysite", version="1.0")

    assert {w["filename"] for w in manifest_of(artifact.path)["wheels"]} == {
        "needed_b-2.0-py3-none-any.whl",
        "only_sdist-1.0-py3-none-any.whl",
        "site_core-1.0-py3-none-any.whl",
    }


def test_a_release_with_wheels_wins_over_a_newer_one_without(
    tmp_path: Path, local_index: Path
) -> None:
    tiny_wheel(local_index, "dep", "1.0")
    tiny_sdist(local_index, "dep", "2.0")
    site = write_site(tmp_path / "site", "dep\n")

    artifact = build_artifact(site, tmp_path / "out", name="mysite", version="1.0")

    assert [w["filename"] for w in manifest_of(artifact.path)["wheels"]] == [
        "dep-1.0-py3-none-any.whl"
    ]


def test_an_sdist_that_builds_a_wheel_the_hosts_cannot_install_is_refused(
    tmp_path: Path, local_index: Path
) -> None:
    tiny_sdist(local_index, "compiled", "1.0", '[tool.tiny]\ntag = "cp311-cp311-linux_x86_64"\n')
    site = write_site(tmp_path / "site", "compiled\n")

    with pytest.raises(
        ProjectError, match=r"compiled 1\.0 has no wheel for Python 3\.11\.2"
    ) as caught:
        build_artifact(site, tmp_path / "out", name="mysite", version="1.0")
    assert "compiled-1.0-cp311-cp311-linux_x86_64.whl" in str(caught.value)
    assert "build its wheel on a host like the target" in str(caught.value)
    assert not (tmp_path / "out" / "mysite-1.0.tar.gz").exists()


def test_a_dependency_that_fails_to_build_shows_the_backends_error(
    tmp_path: Path, local_index: Path
) -> None:
    tiny_sdist(
        local_index,
        "broken-ext",
        "1.0",
        '[tool.tiny]\nfail = "gcc: error: Python.h: not found"\n',
    )
    site = write_site(tmp_path / "site", "broken-ext\n")

    with pytest.raises(PipError, match=r"building a wheel of broken-ext-1\.0\.tar\.gz") as caught:
        build_artifact(site, tmp_path / "out", name="mysite", version="1.0")
    assert "RuntimeError: gcc: error: Python.h: not found" in str(caught.value)


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
    assert manifest["kind"] == "wheel"
    assert manifest["python_version"] == "3.11"
    assert manifest["python_full_version"] == "3.11.2"
    assert manifest["platform"] == "manylinux_2_36_x86_64"
    assert manifest["install"] == (
        "pip install --no-index --find-links wheelhouse sampleapp==2.0.0"
    )
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


@pytest.mark.slow
@pytest.mark.parametrize(
    ("requires", "backend"),
    [("setuptools>=68", "setuptools.build_meta"), ("hatchling", "hatchling.build")],
)
def test_real_backends_build_the_same_wheel_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, requires: str, backend: str
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    project = write_project(
        tmp_path / "svc",
        f'[build-system]\nrequires = ["{requires}"]\nbuild-backend = "{backend}"\n'
        '[project]\nname = "demo-svc"\nversion = "0.3.0"\n',
    )
    (project / "demo_svc").mkdir()
    (project / "demo_svc" / "__init__.py").write_text("")

    first = build_artifact(project, tmp_path / "one")
    time.sleep(2)  # a zip entry's time has two seconds' resolution
    second = build_artifact(project, tmp_path / "two")

    assert first.path.read_bytes() == second.path.read_bytes()
