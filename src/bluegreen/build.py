"""Building a release artifact from a Python project (``bluegreen build``).

An artifact is one tarball that a host installs without reaching any index. It is one
of two kinds, written in its manifest (``kind``; a manifest without it is a wheel one):

``wheel``: a project pip builds a wheel from (pyproject.toml with [project] or
[build-system], or setup.py / setup.cfg)::

    <output_dir>/<name>-<version>.tar.gz          (and .tar.gz.sha256, sha256sum format)
      <name>-<version>/
        bluegreen-artifact.json                    what was built, for which target, checksums
        wheelhouse/*.whl                           the project's wheel and every dependency's
        alembic.ini, migrations/, ...              what the project includes (see below)

    pip install --no-index --find-links <release>/wheelhouse <name>==<version>

``tree``: a project that only pins its dependencies in requirements.txt (a Django site
made by ``django-admin startproject`` or ``wagtail start``). Its files are the release::

      <name>-<version>/
        bluegreen-artifact.json
        manage.py, mysite/, requirements.txt, ...  the project's files, without VCS data,
                                                   caches, virtualenvs, SQLite databases
        wheelhouse/*.whl                           every wheel requirements.txt resolves to

    pip install --no-index --find-links <release>/wheelhouse -r <release>/requirements.txt

A tree project has no name or version of its own, so both are given (``name``,
``version``). A wheel project's requirements.txt, when there is one, is resolved with it,
so a project that pins its dependencies there gets exactly those versions. Requirements
given ``with`` the project (``--with gunicorn``: a server the project does not require)
are resolved with it too, listed in the manifest and installed beside it.

A wheel project carries the files its service needs at run time besides its wheel
(``alembic.ini``, ``migrations/``) when pyproject.toml lists them in ``[tool.bluegreen]
include`` or they are given with ``--include``: they land at the release root
(``<name>-<version>/alembic.ini``), directories walked with the same rules as a tree's
files, and are listed in the manifest (``files``, as a tree's are).

A lock file in the project directory (``uv.lock``, ``poetry.lock`` or PEP 751's
``pylock.toml``; one at most) constrains the resolution: every package it pins from an
index that the hosts need is shipped at the locked version, checked after resolving, and
the manifest names the lock (``lock``). The project's Requires-Python (from its wheel's
metadata) is recorded (``requires_python``) and a target Python it excludes is refused.

Dependencies are resolved for the *target*, not for the build machine: uv resolves every
environment marker (``python_full_version``, ``platform_machine``, ``sys_platform``,
``implementation_name``...) for CPython at the target's full version (default 3.11.2,
Debian 12's python3) on a manylinux platform (default glibc 2.36 on x86_64, Debian 12),
using the indexes pip is configured with, from wheels only when that resolves, else
allowing sdists. pip then downloads each pin's wheel for that target; a pin that has
none is built here from its sdist, and kept only when the wheel fits the target
(``py3-none-any``, or a tag the hosts' pip accepts): a compiled one must be built on a
host like the target, or replaced.

The same project files give the same artifact, byte for byte: every timestamp (the
tarball's, the manifest's ``built_at``, the zip entries of every wheel built here, which
get it as SOURCE_DATE_EPOCH) is SOURCE_DATE_EPOCH when it is set, else the newest mtime
of the project's files that go into the build. That needs no git and follows
uncommitted edits; a fresh clone gets new mtimes, so a build meant to match across
clones sets ``SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)``.

``<name>`` is normalized as PEP 503 says: the distribution's name for a wheel project,
the given name for a tree (``my_site`` gives ``my-site-1.0.0.tar.gz``); ``<version>`` is
the normalized version (PEP 440, local label included: ``sampleapp-2.0.1+crash.tar.gz``).

``--image`` (``image=True``) adds a container image of the release to the artifact::

      <name>-<version>/
        bluegreen-artifact.json                    with "image": what the image is (below)
        image.tar                                  `docker save` of the image, uncompressed
        wheelhouse/, ...                           the rest, as without --image

The image holds the release directory a host would have: the tarball's files (its
manifest without "image") at /app, and a virtualenv at /app/venv installed offline from
/app/wheelhouse by the commands a host runs (module_utils/release_install.py). The docker
CLI builds it from a base image given with ``--base-image`` or ``[tool.bluegreen.image]
base`` (there is no default: bluegreen pulls nothing it was not told to), with the
Dockerfile bluegreen generates (two stages, a system user of uid 10001, a HEALTHCHECK that
GETs ``$BLUEGREEN_HEALTH_URL`` or ``http://127.0.0.1:$PORT/``) or the project's own
(``--dockerfile``, ``[tool.bluegreen.image] dockerfile``), which gets the release tree as
its build context and the build arguments BASE_IMAGE and BLUEGREEN_VERSION. The manifest's
``image`` names the member, the image's ID and tag (``<name>:<version>``, a ``+`` written
``-``), the base, the Dockerfile (``generated`` or its path in the project), the workdir
(/app), the image's USER (``root`` when it sets none) and whether it has a HEALTHCHECK.
The image's bytes are not reproducible (Docker stamps each layer and the image with the
time it made them), so neither is the tarball of an artifact with one; everything else in
it is the same as without ``--image``.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import HeaderParser
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as distribution_version
from pathlib import Path
from typing import Any, BinaryIO

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from bluegreen.errors import BluegreenError, InputError
from bluegreen_module_utils.container_runtime import IMAGE_MEMBER, IMAGE_WORKDIR, ImageTagError
from bluegreen_module_utils.container_runtime import image_tag as container_image_tag
from bluegreen_module_utils.python_requirement import python_requirement_problem
from bluegreen_module_utils.release_install import PIP_WHEEL_GLOBS, pip_arguments, venv_arguments
from bluegreen_module_utils.service_shape import SERVICE_NAME

MANIFEST_NAME = "bluegreen-artifact.json"
MANIFEST_FORMAT = 1
WHEEL = "wheel"
TREE = "tree"
WHEELHOUSE = "wheelhouse"
REQUIREMENTS_FILE = "requirements.txt"
# Debian 12's python3 and glibc: what the hosts run unless told otherwise.
DEFAULT_PYTHON_VERSION = "3.11.2"
DEFAULT_PLATFORM = "manylinux_2_36_x86_64"
# What a tree artifact's release directory holds besides the project's files.
RELEASE_NAMES = (MANIFEST_NAME, WHEELHOUSE, "venv", ".bluegreen-installed")
# Lock files whose pins a build keeps to.
LOCK_FILES = ("uv.lock", "poetry.lock", "pylock.toml")

# Never part of a build, wherever they are in the tree (a virtualenv of any name is left
# out too: see _ignorer).
# Where a built frontend lands at the release root; the load balancers serve it from there.
FRONTEND_DIR = "frontend"
# A frontend's dependencies are installed by its own build command (npm ci...), not copied.
FRONTEND_COPY_IGNORE = ("node_modules",)
FRONTEND_BUILD_TIMEOUT_S = 1800
COPY_IGNORE_ANYWHERE = (
    ".git",
    ".hg",
    "__pycache__",
    "*.py[co]",
    ".venv",
    "*.egg-info",
    ".tox",
    ".nox",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    "*.sqlite3",
    "*.sqlite3-journal",
    "*.sqlite3-wal",
    "*.sqlite3-shm",
)
# Build leftovers at the project's top level only: a package may well have a
# subpackage called "build".
COPY_IGNORE_TOP = ("build", "dist")
# How many lines of pip's (or uv's) output an error message carries.
PIP_TAIL_LINES = 20
# 1980-01-01: a zip entry cannot be older, so neither can a build's timestamp.
_ZIP_EPOCH = 315532800
# The Python that builds is not the hosts': what the project requires of theirs is
# judged against theirs (python_requirement_problem, the resolution).
_PIP_WHEEL = ("wheel", "--no-deps", "--ignore-requires-python")
_PIN_LINE = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")

_TABLE_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]*?)\s*\]\]?\s*(?:#.*)?$")
_VERSION_LINE = re.compile(r"""^(\s*version\s*=\s*)("[^"\n]*"|'[^'\n]*')(\s*(?:#.*)?)$""")
# The same rule as bluegreen_service_name: the name becomes units, paths and upstreams.
_PYTHON_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
_MANYLINUX = re.compile(r"manylinux(?:2014|_2_(\d+))_(x86_64|aarch64)")
# pip settings that choose where packages come from, and uv's spelling of each.
_PIP_INDEX_OPTIONS = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
}
# Where pip download reads a setting from, first match wins.
_PIP_CONFIG_SECTIONS = (":env:", "download", "global")

# The container image of --image (see the module's docstring).
# A system user no account of the hosts is likely to share.
IMAGE_UID = 10001
IMAGE_USER = "app"
GENERATED_DOCKERFILE = "generated"
IMAGE_SETTINGS = ("base", "dockerfile")
HEALTHCHECK_OPTIONS = "--interval=5s --timeout=3s --start-period=30s --retries=3"
# The pip wheel hosts run pip from (release_install's pip_wheel) is where Debian keeps it,
# or in CPython's own ensurepip bundle (the python images); the install stage gives the
# newest one path of its own, so that pip_arguments can name it before the build.
_IMAGE_PIP_WHEELS = (
    *PIP_WHEEL_GLOBS,
    "/usr/lib/python3*/ensurepip/_bundled/pip-*.whl",
    "/usr/local/lib/python3*/ensurepip/_bundled/pip-*.whl",
)
_IMAGE_PIP_WHEEL = "/tmp/pip.whl"
# An image made by `docker import` (as make runtime-image makes one) has no PATH at all.
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The generated HEALTHCHECK. Redirects are not followed (a 3xx is the service answering),
# nor proxies (Docker hands its configured ones to containers); an error prints one line,
# which docker inspect keeps as the check's output, and exits 1.
HEALTHCHECK_CODE = "; ".join(
    (
        "import os, sys, urllib.request as u",
        "sys.excepthook = lambda kind, error, trace: print('health check failed:', error)",
        "url = os.environ.get('BLUEGREEN_HEALTH_URL') or "
        "'http://127.0.0.1:%s/' % os.environ.get('PORT', '8000')",
        "answer = type('Answer', (u.HTTPErrorProcessor,), "
        "{'http_response': lambda s, q, r: r, 'https_response': lambda s, q, r: r})",
        "status = u.build_opener(answer, u.ProxyHandler({})).open(url, timeout=2).status",
        "print(url, status)",
        "sys.exit(0 if 200 <= status < 400 else 1)",
    )
)
# Docker's grammar of a repository (one path component), a tag and (loosely) a reference.
_DOCKER_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*")
DOCKER_CHECK_TIMEOUT_S = 30
GZIP_LEVEL = 6


class BuildError(BluegreenError):
    """An artifact could not be built."""


class ProjectError(BuildError, InputError):
    """The project directory cannot be built as asked (no project file, bad version...)."""


class PipError(BuildError):
    """pip or uv failed; the message carries the tail of its output and the command."""

    def __init__(
        self, what: str, command: list[str], returncode: int, output: str, tool: str = "pip"
    ) -> None:
        tail = (
            "\n".join(output.strip().splitlines()[-PIP_TAIL_LINES:]) or f"({tool} printed nothing)"
        )
        super().__init__(
            f"{what} failed ({tool} exited {returncode}):\n{tail}\ncommand: {shlex.join(command)}"
        )
        self.command = command
        self.returncode = returncode
        self.output = output


class DockerError(BuildError):
    """The docker CLI failed; the message carries the tail of its output and the command."""

    def __init__(self, what: str, command: list[str], returncode: int, output: str) -> None:
        tail = (
            "\n".join(output.strip().splitlines()[-PIP_TAIL_LINES:]) or "(docker printed nothing)"
        )
        super().__init__(
            f"{what} failed (docker exited {returncode}):\n{tail}\ncommand: {shlex.join(command)}"
        )
        self.command = command
        self.returncode = returncode
        self.output = output


class ArtifactExists(BuildError, InputError):
    """The artifact for this name and version is already there and force was not given."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"artifact {path} already exists; a version is built once, so bump the version, "
            "or rebuild and replace it with --force (build_artifact(force=True))"
        )
        self.path = path


@dataclass(frozen=True)
class Artifact:
    """A built artifact: the tarball and what identifies it."""

    name: str
    version: str
    path: Path
    sha256: str
    size: int
    # The manifest's "image" when the artifact carries a container image.
    image: dict[str, Any] | None = None

    @property
    def checksum_path(self) -> Path:
        return checksum_path(self.path)


@dataclass(frozen=True)
class Target:
    """The interpreter and platform of the hosts that install the artifact."""

    python_full_version: str
    platform: str

    @property
    def python_version(self) -> str:
        return ".".join(self.python_full_version.split(".")[:2])

    @property
    def abi(self) -> str:
        return "cp" + self.python_version.replace(".", "")

    @property
    def uv_platform(self) -> str:
        """The platform as uv's ``--python-platform`` names it (x86_64-manylinux_2_36)."""
        glibc, arch = _manylinux(self.platform)
        return f"{arch}-manylinux_2_{glibc}"


@dataclass(frozen=True)
class Project:
    """A project directory as bluegreen builds it."""

    directory: Path
    kind: str
    pyproject: Path | None


@dataclass(frozen=True)
class LockedPin:
    """A version a lock file pins, and where it applies (``marker``; None: everywhere)."""

    name: str
    version: str
    marker: str | None = None


@dataclass(frozen=True)
class Lock:
    """A lock file of the project and what it pins of packages from an index."""

    path: Path
    pins: tuple[LockedPin, ...]


def normalized_version(version: str) -> str:
    """The PEP 440 normal form of ``version`` (``2.0.1-CRASH`` is refused, ``v2.0`` is 2.0)."""
    try:
        return str(Version(version))
    except InvalidVersion:
        raise ProjectError(
            f"{version!r} is not a valid PEP 440 version; use e.g. 1.2.3, 2.0.0rc1 or "
            "2.0.1+crash (a local label after +)"
        ) from None


def service_name(name: str) -> str:
    """``name`` when it can name a service (lower case, digits, - and _, a letter first)."""
    if not SERVICE_NAME.fullmatch(name):
        raise ProjectError(
            f"--name {name!r} cannot name a service: use lower case letters, digits, - and _, "
            "starting with a letter (e.g. mysite); it must equal bluegreen_service_name"
        )
    return name


def target(
    python_version: str = DEFAULT_PYTHON_VERSION, platform: str = DEFAULT_PLATFORM
) -> Target:
    """The target of a build; ``python_version`` X.Y means X.Y.0 for markers on the full version."""
    match = _PYTHON_VERSION.fullmatch(python_version)
    if not match:
        raise ProjectError(
            f"--python-version {python_version!r} is not X.Y or X.Y.Z: give the version of the "
            f"hosts' python3 (`python3 -V` on a host), e.g. {DEFAULT_PYTHON_VERSION}"
        )
    major, minor, micro = match.group(1), match.group(2), match.group(3) or "0"
    _manylinux(platform)
    return Target(f"{int(major)}.{int(minor)}.{int(micro)}", platform)


def requirement_text(text: str) -> str:
    """``text`` when it is a requirement pip understands (``gunicorn``, ``gunicorn>=22``)."""
    try:
        return str(Requirement(text))
    except InvalidRequirement as exc:
        raise ProjectError(
            f"--with {text!r} is not a requirement ({exc}): give a distribution name with an "
            "optional version, e.g. --with gunicorn or --with 'gunicorn>=22'"
        ) from None


def artifact_path(output_dir: Path, name: str, version: str) -> Path:
    """Where the tarball of ``name`` ``version`` goes (name normalized as PEP 503 says)."""
    return output_dir / f"{canonicalize_name(name)}-{normalized_version(version)}.tar.gz"


def checksum_path(tarball: Path) -> Path:
    return tarball.with_name(tarball.name + ".sha256")


def target_platforms(platform: str) -> list[str]:
    """The ``--platform`` values pip may download wheels for, on a host of ``platform``.

    pip matches platform tags literally, so a host of glibc 2.N accepts every manylinux tag
    up to 2.N, in its PEP 600 spelling and the legacy aliases, and ``any``.
    """
    glibc, arch = _manylinux(platform)
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags: list[str] = []
    for minor in range(glibc, 4, -1):
        tags.append(f"manylinux_2_{minor}_{arch}")
        if minor in legacy:
            tags.append(f"{legacy[minor]}_{arch}")
    return [*tags, "any"]


def uv_index_options(pip_config: Mapping[str, str]) -> list[str]:
    """uv options for the indexes pip is configured with (``pip config list`` lines as a
    mapping of ``section.key`` to value), so that uv resolves from where pip downloads."""
    options: list[str] = []
    for key, flag in _PIP_INDEX_OPTIONS.items():
        value = _pip_setting(pip_config, key)
        for item in value.split() if value else []:
            options += [flag, item]
    if _pip_setting(pip_config, "no-index").lower() in ("1", "true", "yes", "on"):
        options.append("--no-index")
    if options:
        # pip looks for each package on every index; uv only does when told.
        options += ["--index-strategy", "unsafe-best-match"]
    return options


def rewrite_version(pyproject_text: str, version: str) -> str:
    """``pyproject_text`` with the static ``version`` of its ``[project]`` table replaced.

    Only that one line changes (comments and layout stay); the result is parsed again to
    prove the new version is what a build backend will read.
    """
    project = _parse_toml(pyproject_text).get("project")
    if not isinstance(project, dict):
        raise ProjectError(
            "pyproject.toml has no [project] table, so bluegreen cannot set the version: "
            "set it where your build backend reads it and build without --version"
        )
    if "version" in project.get("dynamic", []):
        raise ProjectError(
            "pyproject.toml declares the version dynamic (it is computed by the build "
            "backend), so bluegreen cannot set it: build without --version, or replace "
            'the dynamic version with a static version = "..." in [project]'
        )
    if "version" not in project:
        raise ProjectError(
            'pyproject.toml\'s [project] table has no version; add version = "..." to it'
        )

    lines = pyproject_text.splitlines(keepends=True)
    in_project = False
    for index, line in enumerate(lines):
        body = line.rstrip("\r\n")
        header = _TABLE_HEADER.match(body)
        if header:
            in_project = header.group(1) == "project"
            continue
        match = _VERSION_LINE.match(body) if in_project else None
        if match:
            lines[index] = f'{match.group(1)}"{version}"{match.group(3)}{line[len(body) :]}'
            break
    else:
        raise ProjectError(
            "could not find the version line of [project] in pyproject.toml; write it as "
            'version = "X.Y.Z" on a line of its own inside [project]'
        )

    rewritten = "".join(lines)
    if _parse_toml(rewritten).get("project", {}).get("version") != version:
        raise ProjectError(
            "rewriting the version of pyproject.toml did not take effect; write it as "
            'version = "X.Y.Z" on a line of its own inside [project]'
        )
    return rewritten


def build_artifact(
    project_dir: Path,
    output_dir: Path,
    version: str | None = None,
    python_version: str = DEFAULT_PYTHON_VERSION,
    platform: str = DEFAULT_PLATFORM,
    *,
    name: str | None = None,
    with_requirements: Sequence[str] = (),
    include: Sequence[str] = (),
    force: bool = False,
    python: str | None = None,
    on_step: Callable[[str], None] | None = None,
    image: bool = False,
    base_image: str | None = None,
    dockerfile: Path | None = None,
) -> Artifact:
    """Build ``<output_dir>/<name>-<version>.tar.gz`` from the project in ``project_dir``.

    ``version`` replaces the static version of pyproject.toml in a copy of the project
    (the project itself is never touched); without it the project's own version is used.
    A tree project (requirements.txt only) needs ``name`` and ``version``; for a wheel
    project ``name``, when given, must be the project's own. ``with_requirements`` are
    installed beside the project (a server the project does not require, such as
    gunicorn), their wheels resolved with the rest. ``include`` adds to the files of a
    wheel project that its ``[tool.bluegreen] include`` packs at the release root.
    ``python_version`` (X.Y.Z) and ``platform`` (manylinux_2_N_<arch>) describe the
    hosts. An existing artifact of the same name and version raises ArtifactExists
    unless ``force`` is set, in which case it is replaced. The tarball and its .sha256
    are written to temporary files and renamed, so a reader never sees half an artifact.
    ``python`` is the interpreter whose pip builds (default: this one); ``on_step`` is
    told each step as it starts. ``image`` adds a container image built from
    ``base_image`` with the project's ``dockerfile`` (relative to the working directory),
    each by default what ``[tool.bluegreen.image]`` says (see the module's docstring).
    """
    step = on_step or (lambda _message: None)
    project_dir = Path(project_dir).expanduser().resolve()
    output_dir = Path(output_dir).expanduser().resolve()
    requested = normalized_version(version) if version is not None else None
    wanted_name = service_name(name) if name is not None else None
    hosts = target(python_version, platform)
    extras = [requirement_text(text) for text in with_requirements]
    project = checked_project(project_dir, requested, wanted_name)
    lock = project_lock(project_dir)
    wanted_image = requested_image(project_dir, image, base_image, dockerfile)
    if wanted_image is not None and requested is not None:
        # Refused before anything is built: a version no image can be tagged with.
        image_tag(wanted_name or "x", requested)

    if project.kind == TREE:
        # checked_project refuses a tree project without a name and a version.
        assert wanted_name is not None and requested is not None
        if include:
            raise ProjectError(
                f"--include {include[0]}: every file of {project_dir} is in its artifact "
                "already (it is a requirements.txt project, built as a tree of its files): "
                "drop --include"
            )
        files = project_files(project_dir, output_dir)
        _refuse_existing(artifact_path(output_dir, wanted_name, requested), force)
    else:
        files = included_files(
            project_dir, output_dir, [*_declared_includes(project.pyproject), *include]
        )
        declared = _declared_name_version(project.pyproject)
        if declared and (requested or declared[1]):
            destination = artifact_path(output_dir, declared[0], requested or declared[1])
            _refuse_existing(destination, force)
    if wanted_image is not None and any(relative == IMAGE_MEMBER for relative, _ in files):
        raise ProjectError(
            f"{project_dir} has {IMAGE_MEMBER} at the release root, where an artifact built "
            "with --image keeps its image: rename or move it"
        )
    docker = docker_cli() if wanted_image is not None else ""
    epoch = _source_epoch(project_dir, output_dir)

    python = python or sys.executable
    with tempfile.TemporaryDirectory(prefix="bluegreen-build-") as tmp:
        workdir = Path(tmp)
        project_wheel: Path | None = None
        requires_python: str | None = None
        if project.kind == WHEEL:
            step(f"Building the wheel of {project_dir}")
            project_wheel = _build_project_wheel(
                python, project_dir, output_dir, requested, workdir, epoch
            )
            built_name, built_version = _checked_wheel(
                project_wheel, project_dir, requested, wanted_name
            )
            requires_python = _wheel_headers(project_wheel).get("Requires-Python")
            problem = python_requirement_problem(requires_python, hosts.python_full_version)
            if problem:
                raise ProjectError(
                    f"{problem} (--python-version): build with --python-version set to the "
                    "python3 of hosts it accepts (`python3 -V` on a host), or widen the "
                    f"project's requires-python if it runs on {hosts.python_full_version}"
                )
        else:
            built_name, built_version = wanted_name, requested
        destination = artifact_path(output_dir, built_name, built_version)
        _refuse_existing(destination, force)

        step(f"Resolving the dependencies for Python {hosts.python_full_version} on {platform}")
        pins = _resolved_pins(
            python, project, project_wheel, built_name, extras, hosts, workdir, lock, epoch
        )
        step(f"Downloading the dependency wheels for Python {hosts.python_full_version}")
        wheelhouse = _filled_wheelhouse(python, pins, hosts, workdir, epoch)
        if project_wheel is not None:
            shutil.copy2(project_wheel, wheelhouse / project_wheel.name)

        frontend = declared_frontend(project.pyproject)
        frontend_files: list[tuple[str, Path]] = []
        if frontend is not None:
            step(f"Building the frontend in {frontend.source}: {frontend.command}")
            frontend_files = built_frontend(
                project_dir, output_dir, frontend, built_version, workdir, epoch
            )

        manifest = artifact_manifest(
            built_name,
            built_version,
            hosts,
            datetime.fromtimestamp(epoch, UTC),
            wheelhouse,
            project_wheel,
            extras,
            lock=lock.path.name if lock is not None else None,
            requires_python=requires_python,
            files=[relative for relative, _ in files],
            frontend=[relative for relative, _ in frontend_files],
        )
        # The release directory's files besides the manifest, relative to it.
        release: list[tuple[str, Path | bytes]] = [
            *(
                (f"{WHEELHOUSE}/{w['filename']}", wheelhouse / w["filename"])
                for w in manifest["wheels"]
            ),
            *files,
            *frontend_files,
        ]
        if wanted_image is not None:
            section, saved = release_image(
                docker, wanted_image, project_dir, manifest, release, workdir, step
            )
            manifest["image"] = section
            release.append((IMAGE_MEMBER, saved))

        step(f"Writing {destination.name}")
        root = destination.name.removesuffix(".tar.gz")
        members = [
            (f"{root}/{MANIFEST_NAME}", manifest_bytes(manifest)),
            *((f"{root}/{relative}", content) for relative, content in release),
        ]
        output_dir.mkdir(parents=True, exist_ok=True)
        write_tarball(destination, members, mtime=epoch)

    digest = file_sha256(destination)
    _write_atomically(checksum_path(destination), f"{digest}  {destination.name}\n".encode())
    return Artifact(
        name=manifest["normalized_name"],
        version=built_version,
        path=destination,
        sha256=digest,
        size=destination.stat().st_size,
        image=manifest.get("image"),
    )


def artifact_manifest(
    name: str,
    version: str,
    hosts: Target,
    built_at: datetime,
    wheelhouse: Path,
    project_wheel: Path | None = None,
    with_requirements: Sequence[str] = (),
    *,
    lock: str | None = None,
    requires_python: str | None = None,
    files: Sequence[str] = (),
    frontend: Sequence[str] = (),
) -> dict[str, Any]:
    """The content of bluegreen-artifact.json: what was built, for which target, checksums.

    Without ``project_wheel`` the artifact is a tree: hosts install its requirements file.
    Hosts install ``with`` beside the project in both kinds. ``lock`` is the lock file the
    versions were kept to, ``files`` the release's files besides the manifest and wheels.
    """
    normalized = canonicalize_name(name)
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "kind": WHEEL if project_wheel is not None else TREE,
        "name": name,
        "normalized_name": normalized,
        "version": version,
        "python_version": hosts.python_version,
        "python_full_version": hosts.python_full_version,
        "implementation": "cp",
        "abi": hosts.abi,
        "platform": hosts.platform,
        "platforms": target_platforms(hosts.platform),
        "built_at": built_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "builder": "bluegreen",
        "builder_version": _builder_version(),
    }
    if project_wheel is not None:
        manifest["project_wheel"] = project_wheel.name
        wanted = [f"{normalized}=={version}"]
    else:
        manifest["requirements"] = REQUIREMENTS_FILE
        wanted = ["-r", REQUIREMENTS_FILE]
    manifest["with"] = list(with_requirements)
    manifest["install"] = shlex.join(
        ["pip", "install", "--no-index", "--find-links", WHEELHOUSE, *wanted, *with_requirements]
    )
    manifest["lock"] = lock
    manifest["requires_python"] = requires_python
    manifest["files"] = sorted(files)
    if frontend:
        # The built frontend the load balancers serve from the colour's release.
        manifest["frontend"] = {"dir": FRONTEND_DIR, "files": sorted(frontend)}
    manifest["wheels"] = [
        {"filename": wheel.name, "sha256": file_sha256(wheel), "size": wheel.stat().st_size}
        for wheel in sorted(wheelhouse.glob("*.whl"))
    ]
    return manifest


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2) + "\n").encode()


@dataclass(frozen=True)
class ImageOptions:
    """How an artifact's image is built: from ``base``, with the project's Dockerfile at
    ``dockerfile`` (relative to the project), or with the generated one (None)."""

    base: str
    dockerfile: str | None = None


@dataclass(frozen=True)
class BuiltImage:
    """What ``docker image inspect`` says of a built image."""

    id: str
    tag: str
    user: str
    workdir: str
    healthcheck: bool


def requested_image(
    project_dir: Path, image: bool, base_image: str | None, dockerfile: Path | None
) -> ImageOptions | None:
    """How to build the image ``image`` asks for (None: no image), from the options given
    and ``[tool.bluegreen.image]`` of the project's pyproject.toml."""
    if not image:
        given = [
            option
            for option, value in (("--base-image", base_image), ("--dockerfile", dockerfile))
            if value is not None
        ]
        if given:
            raise ProjectError(
                f"{' and '.join(given)} only say how to build the container image of --image: "
                "add --image to build one, or drop them"
            )
        return None
    pyproject = project_dir / "pyproject.toml"
    declared = declared_image(pyproject if pyproject.is_file() else None)
    return image_options(project_dir, declared, base_image, dockerfile)


def declared_image(pyproject: Path | None) -> dict[str, str]:
    """``[tool.bluegreen.image]`` of pyproject.toml ({} when it has none)."""
    if pyproject is None:
        return {}
    table = _parse_toml(pyproject.read_text(encoding="utf-8"))
    declared = table.get("tool", {}).get("bluegreen", {}).get("image")
    if declared is None:
        return {}
    example = (
        '[tool.bluegreen.image] base = "bluegreen-runtime:bookworm", dockerfile = "Dockerfile"'
    )
    if not isinstance(declared, dict):
        raise ProjectError(f"[tool.bluegreen.image] must be a table, e.g. {example}")
    unknown = sorted(set(declared) - set(IMAGE_SETTINGS))
    if unknown:
        raise ProjectError(
            f"[tool.bluegreen.image] has unknown {', '.join(unknown)}: it takes "
            f"{' and '.join(IMAGE_SETTINGS)}, e.g. {example}"
        )
    for key, value in declared.items():
        if not isinstance(value, str) or not value.strip():
            raise ProjectError(
                f"[tool.bluegreen.image] {key} must be a non-empty string: {example}"
            )
    return dict(declared)


def image_options(
    project_dir: Path,
    declared: Mapping[str, str],
    base_image: str | None = None,
    dockerfile: Path | None = None,
) -> ImageOptions:
    """The base image and Dockerfile of a build: the options given, else what the project
    declares (``declared``: its ``[tool.bluegreen.image]``). ``dockerfile`` is relative to
    the working directory, the declared one to the project; either must be in the project."""
    base = base_image if base_image is not None else declared.get("base")
    if not base:
        raise ProjectError(
            "--image needs a base image, and none was given: pass --base-image REF (e.g. "
            "--base-image bluegreen-runtime:bookworm, which `make runtime-image` builds here), "
            'or set base = "REF" under [tool.bluegreen.image] in the project\'s pyproject.toml; '
            "bluegreen has no default, so that it never pulls an image it was not told to"
        )
    if not _DOCKER_REFERENCE.fullmatch(base):
        raise ProjectError(
            f"base image {base!r} is not an image reference: give one such as "
            "bluegreen-runtime:bookworm, python:3.11-slim-bookworm or "
            "registry.example/python@sha256:..."
        )
    if dockerfile is not None:
        given, path = str(dockerfile), Path(dockerfile).expanduser().resolve()
        where = "--dockerfile"
    elif "dockerfile" in declared:
        given, path = declared["dockerfile"], (project_dir / declared["dockerfile"]).resolve()
        where = "[tool.bluegreen.image] dockerfile"
    else:
        return ImageOptions(base)
    if not path.is_file():
        raise ProjectError(
            f"{where} {given}: {path} is not a file; name the project's Dockerfile "
            f"({where} is relative to {'the working directory' if dockerfile else 'the project'}), "
            "or leave it out for the generated one"
        )
    if not path.is_relative_to(project_dir):
        raise ProjectError(
            f"{where} {given} is not inside {project_dir}: the Dockerfile of an artifact is "
            "part of its project (the manifest names it relative to the project); copy it there"
        )
    return ImageOptions(base, path.relative_to(project_dir).as_posix())


def image_tag(name: str, version: str) -> str:
    """``<name>:<version>`` as Docker accepts it, as the hosts tag the loaded image
    (module_utils/container_runtime.py)."""
    try:
        return container_image_tag(name, version)
    except ImageTagError as exc:
        raise ProjectError(str(exc)) from exc


def generated_dockerfile(manifest: Mapping[str, Any]) -> str:
    """The Dockerfile of a project that has none, for the release ``manifest`` describes.

    An install stage copies the release tree (the build context) to /app and installs its
    virtualenv as a host does (release_install's commands, with the release at /app); the
    final stage copies /app into a fresh base and runs as an unprivileged user.
    """
    name, version = manifest["normalized_name"], manifest["version"]
    # python3 from PATH, not the hosts' /usr/bin/python3: the python images keep theirs in
    # /usr/local/bin.
    venv = venv_arguments("python3", IMAGE_WORKDIR, _IMAGE_PIP_WHEEL)
    pip = pip_arguments(IMAGE_WORKDIR, manifest, name, version, _IMAGE_PIP_WHEEL)
    wheels = " ".join(_IMAGE_PIP_WHEELS)
    no_wheel = (
        f"the base image keeps no pip wheel ({wheels}): base the image on one with "
        "python3-venv (Debian) or on an official python image"
    )
    healthcheck = json.dumps([f"{IMAGE_WORKDIR}/venv/bin/python3", "-c", HEALTHCHECK_CODE])
    refusal = json.dumps(
        [
            "python3",
            "-c",
            f"raise SystemExit('{name} {version}: run this image with the start command of "
            "the service (bluegreen_service_start_command)')",
        ]
    )
    return f"""\
# Generated by bluegreen build {_builder_version()} for {name} {version}. The build context
# is the release tree, as a host's release directory holds it.
ARG BASE_IMAGE

FROM ${{BASE_IMAGE}} AS install
COPY . {IMAGE_WORKDIR}
# The virtualenv as a host installs it (release_install): no pip of its own, pip run from
# the base's pip wheel, offline, from the release's wheelhouse only.
RUN set -eu; \\
    wheel="$(for w in {wheels}; do [ -f "$w" ] && echo "${{w##*/}} $w"; done \\
      | sort -V | tail -n 1 | cut -d ' ' -f 2)"; \\
    if [ -z "$wheel" ]; then echo {shlex.quote(no_wheel)} >&2; exit 1; fi; \\
    ln -s "$wheel" {_IMAGE_PIP_WHEEL}; \\
    {shlex.join(venv)}; \\
    {shlex.join(pip)}

FROM ${{BASE_IMAGE}}
ARG BLUEGREEN_VERSION
LABEL org.opencontainers.image.title={json.dumps(name)} \\
      org.opencontainers.image.version={json.dumps(version)}
ENV PATH={IMAGE_WORKDIR}/venv/bin:${{PATH:-{_DEFAULT_PATH}}} \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    BLUEGREEN_VERSION=${{BLUEGREEN_VERSION}}
RUN groupadd --system --gid {IMAGE_UID} {IMAGE_USER} \\
    && useradd --system --uid {IMAGE_UID} --gid {IMAGE_UID} --home-dir {IMAGE_WORKDIR} \\
       --no-create-home --shell /usr/sbin/nologin {IMAGE_USER}
# Owned by root: the service reads its release and never writes to it.
COPY --from=install {IMAGE_WORKDIR} {IMAGE_WORKDIR}
WORKDIR {IMAGE_WORKDIR}
USER {IMAGE_UID}
HEALTHCHECK {HEALTHCHECK_OPTIONS} CMD {healthcheck}
# No start command of its own: the deployment always gives the service's, and this one
# only says so (exit 1) when the image is run without one.
CMD {refusal}
"""


def docker_build_arguments(
    dockerfile: Path, context: Path, tag: str, base: str, version: str
) -> list[str]:
    """``docker build``'s arguments: never pulling (--pull=false), the release tree as the
    context, BASE_IMAGE and BLUEGREEN_VERSION as build arguments."""
    return [
        "build",
        "--pull=false",
        "-q",
        "-f",
        str(dockerfile),
        "--tag",
        tag,
        "--build-arg",
        f"BASE_IMAGE={base}",
        "--build-arg",
        f"BLUEGREEN_VERSION={version}",
        str(context),
    ]


def inspected_image(inspect_output: str, tag: str) -> BuiltImage:
    """The image ``docker image inspect`` describes (its JSON output)."""
    (found,) = json.loads(inspect_output)
    config = found.get("Config") or {}
    test = (config.get("Healthcheck") or {}).get("Test") or []
    return BuiltImage(
        id=found["Id"],
        tag=tag,
        # Docker's "" is the base's user, which no USER of any stage changed: root.
        user=config.get("User") or "root",
        workdir=config.get("WorkingDir") or "/",
        healthcheck=bool(test) and test[0] != "NONE",
    )


def image_section(options: ImageOptions, image: BuiltImage) -> dict[str, Any]:
    """The manifest's ``image``: what the artifact's image.tar holds."""
    return {
        "member": IMAGE_MEMBER,
        "id": image.id,
        "tag": image.tag,
        "base": options.base,
        "dockerfile": options.dockerfile or GENERATED_DOCKERFILE,
        "workdir": IMAGE_WORKDIR,
        "user": image.user,
        "healthcheck": image.healthcheck,
    }


def docker_cli() -> str:
    """The docker CLI, once its daemon has answered."""
    docker = shutil.which("docker")
    if docker is None:
        raise BuildError(
            "--image builds the container image with the docker CLI, which is not installed: "
            "install Docker (`make docker`, or apt-get install docker.io), or build without --image"
        )
    command = [docker, "version", "--format", "{{.Server.Version}}"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=DOCKER_CHECK_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        reason = f"no answer within {DOCKER_CHECK_TIMEOUT_S} s"
    else:
        if done.returncode == 0:
            return docker
        lines = (done.stderr or done.stdout).strip().splitlines()
        reason = lines[-1] if lines else f"exit {done.returncode}"
    raise BuildError(
        f"the Docker daemon does not answer `{shlex.join(command)}` ({reason}): start it "
        "(`make docker`, or systemctl start docker) and check that this user may use it "
        "(root, or the docker group), or build without --image"
    )


def release_image(
    docker: str,
    options: ImageOptions,
    project_dir: Path,
    manifest: Mapping[str, Any],
    release: Sequence[tuple[str, Path | bytes]],
    workdir: Path,
    step: Callable[[str], None],
) -> tuple[dict[str, Any], Path]:
    """Build the image of the release (``manifest`` and the ``release`` files, relative to
    the release directory) and save it: the manifest's ``image`` and the saved file."""
    tag = image_tag(manifest["normalized_name"], manifest["version"])
    context = release_tree(
        workdir / "image-context", [(MANIFEST_NAME, manifest_bytes(manifest)), *release]
    )
    if options.dockerfile is None:
        dockerfile = workdir / "Dockerfile.generated"
        dockerfile.write_text(generated_dockerfile(manifest), encoding="utf-8")
    else:
        dockerfile = project_dir / options.dockerfile
    step(f"Building the image {tag} from {options.base}")
    image = built_image(docker, dockerfile, context, tag, options.base, manifest["version"])
    if image.workdir != IMAGE_WORKDIR:
        raise ProjectError(
            f"the image {options.dockerfile} builds works in {image.workdir}, not in "
            f"{IMAGE_WORKDIR} where the release is expected: COPY the build context (the release "
            f"tree) to {IMAGE_WORKDIR}, install its venv at {IMAGE_WORKDIR}/venv and set "
            f"WORKDIR {IMAGE_WORKDIR}"
        )
    step(f"Saving the image {tag} into the artifact")
    saved = workdir / IMAGE_MEMBER
    _docker(docker, ["save", "-o", str(saved), tag], f"saving the image {tag}")
    return image_section(options, image), saved


def built_image(
    docker: str, dockerfile: Path, context: Path, tag: str, base: str, version: str
) -> BuiltImage:
    """Build ``tag``; a failure says when the base image is not on this machine."""
    what = f"building the image {tag} from {base} with {dockerfile.name}"
    try:
        _docker(docker, docker_build_arguments(dockerfile, context, tag, base, version), what)
    except DockerError as exc:
        present = subprocess.run(
            [docker, "image", "inspect", base], capture_output=True, check=False
        )
        if present.returncode == 0:
            raise
        raise DockerError(
            f"{what} ({base} is not an image on this machine, and bluegreen pulls nothing: "
            "`make runtime-image` builds bluegreen-runtime:bookworm; docker pull or docker "
            "load another)",
            exc.command,
            exc.returncode,
            exc.output,
        ) from None
    inspected = _docker(docker, ["image", "inspect", tag], f"inspecting the image {tag}")
    return inspected_image(inspected, tag)


def release_tree(directory: Path, files: Iterable[tuple[str, Path | bytes]]) -> Path:
    """``directory`` holding ``files`` (path relative to it, and the file or its content)
    with the modes a host's unpacked release has: 0755 for directories and executable
    files, 0644 for the rest."""
    for relative, content in files:
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
            executable = False
        else:
            shutil.copyfile(content, path)
            executable = bool(content.stat().st_mode & 0o100)
        path.chmod(0o755 if executable else 0o644)
    for path in [directory, *directory.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    return directory


def _docker(docker: str, args: list[str], what: str) -> str:
    """The output of ``docker args``; its failure raises DockerError."""
    command = [docker, *args]
    done = subprocess.run(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    if done.returncode != 0:
        raise DockerError(what, command, done.returncode, done.stdout)
    return done.stdout


def checked_project(project_dir: Path, version: str | None, name: str | None) -> Project:
    """The project in ``project_dir`` and how it is built, refused early when it cannot be.

    A package (pyproject.toml with [project] or [build-system], setup.py, setup.cfg)
    becomes a wheel artifact; a project with only requirements.txt becomes a tree one.
    """
    if not project_dir.is_dir():
        raise ProjectError(f"project directory {project_dir} does not exist")
    pyproject = project_dir / "pyproject.toml"
    table = _parse_toml(pyproject.read_text(encoding="utf-8")) if pyproject.is_file() else None
    has_setup = (project_dir / "setup.py").is_file() or (project_dir / "setup.cfg").is_file()
    has_requirements = (project_dir / REQUIREMENTS_FILE).is_file()
    is_package = table is not None and ("project" in table or "build-system" in table)

    if is_package or has_setup or (table is not None and not has_requirements):
        if version is not None and table is None:
            raise ProjectError(
                f"{project_dir} has no pyproject.toml, so bluegreen cannot set its version: "
                "set the version in setup.py / setup.cfg and build without --version"
            )
        if version is not None:
            rewrite_version(pyproject.read_text(encoding="utf-8"), version)
        found = Project(project_dir, WHEEL, pyproject if table is not None else None)
        declared = _declared_name_version(found.pyproject)
        if name is not None and declared and not _same_name(declared[0], name):
            raise ProjectError(_other_name(project_dir, declared[0], name))
        return found
    if has_requirements:
        missing = [
            option for option, given in (("--name", name), ("--version", version)) if not given
        ]
        if missing:
            raise ProjectError(
                f"{project_dir} has only {REQUIREMENTS_FILE} (no pyproject.toml or setup.py), so "
                f"it is built as a tree of its files plus the wheels it requires, which has no "
                f"name or version of its own: give {' and '.join(missing)}, e.g. "
                f"bluegreen build {shlex.quote(str(project_dir))} --name "
                f"{name or _suggested_name(project_dir)} --version {version or '1.0.0'}"
            )
        return Project(project_dir, TREE, None)
    raise ProjectError(
        f"{project_dir} has no pyproject.toml, setup.py or {REQUIREMENTS_FILE}: point bluegreen "
        "at the directory holding your project's pyproject.toml (a package) or "
        f"{REQUIREMENTS_FILE} (a site such as a Django project that pins its dependencies)"
    )


def project_files(project_dir: Path, output_dir: Path) -> list[tuple[str, Path]]:
    """The files of a tree project (path relative to it, and the file), sorted; caches,
    virtualenvs, SQLite databases and the output directory are left out."""
    files = _walked_files(project_dir, project_dir, _ignorer(project_dir, output_dir))
    taken = sorted({relative.split("/")[0] for relative, _ in files} & set(RELEASE_NAMES))
    if taken:
        raise ProjectError(
            f"{project_dir} has {', '.join(taken)} at its top level, where a release directory "
            f"keeps bluegreen's own {', '.join(RELEASE_NAMES)}: rename or move it"
        )
    return sorted(files)


def included_files(
    project_dir: Path, output_dir: Path, paths: Sequence[str]
) -> list[tuple[str, Path]]:
    """The files ``paths`` name (files or directories, relative to the project) as the
    release root carries them: path relative to the project, and the file, sorted. A
    directory's caches, virtualenvs and SQLite databases are left out, as in a tree."""
    ignore = _ignorer(project_dir, output_dir)
    files: dict[str, Path] = {}
    for text in paths:
        relative = Path(os.path.normpath(text))
        path = project_dir / relative
        if relative.is_absolute() or relative.parts[:1] in ((), (os.pardir,)):
            raise ProjectError(
                f"include {text!r} is not inside {project_dir}: name a file or directory of "
                "the project, relative to it (e.g. alembic.ini, migrations)"
            )
        if not path.exists():
            raise ProjectError(
                f"include {text!r} does not exist in {project_dir}: fix the path in "
                "[tool.bluegreen] include or --include (relative to the project)"
            )
        if not path.resolve().is_relative_to(project_dir):
            raise ProjectError(
                f"include {text!r} leads out of {project_dir} (to {path.resolve()}): an "
                "artifact carries the project's own files; copy the file into the project"
            )
        if relative.parts[0] in RELEASE_NAMES:
            raise ProjectError(
                f"include {text!r} would land on {relative.parts[0]} in the release directory, "
                f"where bluegreen keeps its own {', '.join(RELEASE_NAMES)}: rename or move it"
            )
        if path.is_dir():
            files.update(_walked_files(project_dir, path, ignore))
        else:
            files[relative.as_posix()] = path
    return sorted(files.items())


def project_lock(project_dir: Path) -> Lock | None:
    """The lock file whose versions a build of ``project_dir`` keeps to, if it has one."""
    found = [project_dir / name for name in LOCK_FILES if (project_dir / name).is_file()]
    if len(found) > 1:
        raise ProjectError(
            f"{project_dir} holds {' and '.join(lock.name for lock in found)}: a build keeps to "
            "the versions of one lock file, so remove the one the project no longer updates"
        )
    return Lock(found[0], tuple(locked_pins(found[0]))) if found else None


def locked_pins(lock: Path) -> list[LockedPin]:
    """What ``lock`` (uv.lock, poetry.lock or pylock.toml) pins of packages from an index.

    The project itself and packages from a path, a VCS or a URL are left out: the hosts'
    wheels come from the index, where those are not. A uv.lock package resolved at
    several versions says for which environments in its resolution-markers.
    """
    try:
        data = tomllib.loads(lock.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProjectError(
            f"{lock} is not valid TOML ({exc}): write it again with the tool that made it"
        ) from None
    if lock.name == "uv.lock":
        return [
            LockedPin(
                package["name"],
                package["version"],
                " or ".join(f"({m})" for m in package.get("resolution-markers", [])) or None,
            )
            for package in data.get("package", [])
            if "registry" in package.get("source", {}) and "version" in package
        ]
    if lock.name == "poetry.lock":
        return [
            LockedPin(package["name"], package["version"])
            for package in data.get("package", [])
            if package.get("source", {}).get("type", "legacy") == "legacy"
        ]
    return [
        LockedPin(package["name"], package["version"], package.get("marker"))
        for package in data.get("packages", [])
        if "version" in package and not {"vcs", "directory", "archive"} & package.keys()
    ]


def lock_constraints(pins: Iterable[LockedPin]) -> list[str]:
    """Constraint lines (``name==version``) that hold a resolution to ``pins``.

    A package locked at several versions with nothing to tell which applies where
    (poetry.lock) is held to their range; the check after resolving then holds it to one
    of the versions.
    """
    by_name: dict[str, list[LockedPin]] = {}
    for pin in pins:
        by_name.setdefault(canonicalize_name(pin.name), []).append(pin)
    lines: list[str] = []
    for name, entries in sorted(by_name.items()):
        if len(entries) == 1 or all(entry.marker for entry in entries):
            lines += [
                f"{name}=={entry.version}" + (f" ; {entry.marker}" if entry.marker else "")
                for entry in entries
            ]
        else:
            versions = sorted(Version(entry.version) for entry in entries)
            lines.append(f"{name}>={versions[0]},<={versions[-1]}")
    return lines


def target_tags(hosts: Target) -> frozenset[Tag]:
    """The wheel tags the hosts' pip installs: CPython at their version on their platform."""
    version = tuple(int(part) for part in hosts.python_version.split("."))
    platforms = target_platforms(hosts.platform)
    return frozenset(
        [
            *cpython_tags(version, [hosts.abi], platforms),
            *compatible_tags(version, hosts.abi, platforms),
        ]
    )


def wheel_name_version(wheel: Path) -> tuple[str, str]:
    """Name and normalized version from a wheel's METADATA (not its file name)."""
    headers = _wheel_headers(wheel)
    return headers["Name"], normalized_version(headers["Version"])


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_tarball(
    destination: Path, members: Iterable[tuple[str, Path | bytes]], mtime: int
) -> None:
    """Write a gzipped tar of ``members`` (archive name, file or content) atomically.

    Entries are sorted, directories are added for every parent, and owner, mtime and mode
    are fixed (0755 for directories and executable files, 0644 for the rest), so the same
    inputs give the same bytes.
    """
    files = dict(members)
    directories = {str(Path(name).parent) for name in files}
    for directory in list(directories):
        directories.update(str(parent) for parent in Path(directory).parents if str(parent) != ".")

    def info(name: str, is_dir: bool, size: int = 0, executable: bool = False) -> tarfile.TarInfo:
        entry = tarfile.TarInfo(name)
        entry.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
        entry.mode = 0o755 if is_dir or executable else 0o644
        entry.size = size
        entry.mtime = mtime
        entry.uid = entry.gid = 0
        entry.uname = entry.gname = ""
        return entry

    # filename="" keeps the temporary file's name out of the gzip header. Level 6 (gzip's
    # own default), not Python's 9: a sample image's 241 MB took 8.0 s instead of 32.0 s,
    # for 81.7 MiB instead of 81.2 (docs/benchmarks.md).
    with (
        _atomic_file(destination) as raw,
        gzip.GzipFile(
            filename="", fileobj=raw, mode="wb", mtime=mtime, compresslevel=GZIP_LEVEL
        ) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in sorted([*directories, *files]):
            if name in directories:
                tar.addfile(info(name, is_dir=True))
                continue
            content = files[name]
            if isinstance(content, bytes):
                tar.addfile(info(name, False, len(content)), io.BytesIO(content))
            else:
                stat = content.stat()
                executable = bool(stat.st_mode & 0o100)
                with content.open("rb") as handle:
                    tar.addfile(info(name, False, stat.st_size, executable), handle)


def _manylinux(platform: str) -> tuple[int, str]:
    """glibc minor version and architecture of a manylinux ``platform``."""
    match = _MANYLINUX.fullmatch(platform)
    if not match:
        raise ProjectError(
            f"platform {platform!r} is not a manylinux platform bluegreen builds for: use "
            f"manylinux_2_<glibc minor>_<x86_64|aarch64> for the hosts' glibc (`ldd --version`), "
            f"e.g. {DEFAULT_PLATFORM} for Debian 12"
        )
    return int(match.group(1) or 17), match.group(2)


def _suggested_name(project_dir: Path) -> str:
    suggestion = re.sub(r"[^a-z0-9_-]+", "-", project_dir.name.lower()).strip("-_")
    return suggestion if SERVICE_NAME.fullmatch(suggestion) else "mysite"


def _same_name(one: str, other: str) -> bool:
    return canonicalize_name(one) == canonicalize_name(other)


def _other_name(project_dir: Path, declared: str, name: str) -> str:
    return (
        f"--name {name} differs from {declared!r}, the name {project_dir} declares: the "
        "artifact of a package carries the package's name, so drop --name (or rename the "
        "project)"
    )


def _checked_wheel(
    wheel: Path, project_dir: Path, version: str | None, name: str | None
) -> tuple[str, str]:
    """Name and version of the built wheel, when they are what was asked for."""
    built_name, built_version = wheel_name_version(wheel)
    if version is not None and built_version != version:
        raise BuildError(
            f"asked for version {version} but the build backend produced "
            f"{built_version}: check how the project computes its version"
        )
    if name is not None and not _same_name(built_name, name):
        raise ProjectError(_other_name(project_dir, built_name, name))
    return built_name, built_version


def _wheel_headers(wheel: Path) -> Message:
    """The headers of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        metadata_files = [
            n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)
        ]
        if len(metadata_files) != 1:
            raise BuildError(f"{wheel.name} is not a valid wheel: no single .dist-info/METADATA")
        return HeaderParser().parsestr(archive.read(metadata_files[0]).decode("utf-8"))


def _walked_files(
    project_dir: Path, top: Path, ignore: Callable[[str, list[str]], set[str]]
) -> list[tuple[str, Path]]:
    """The files under ``top`` that ``ignore`` keeps, relative to ``project_dir``."""
    files: list[tuple[str, Path]] = []
    for directory, dirnames, filenames in os.walk(top):
        here = Path(directory)
        ignored = ignore(directory, [*dirnames, *filenames])
        dirnames[:] = sorted(d for d in dirnames if d not in ignored)
        filenames = [f for f in filenames if f not in ignored]
        for entry in [*dirnames, *filenames]:
            path = here / entry
            if path.is_symlink() and (entry in dirnames or not path.exists()):
                raise ProjectError(
                    f"{path} is a symbolic link to {os.readlink(path)}, which is a directory or "
                    "missing; an artifact carries files only: replace the link with what it "
                    "points to, or remove it"
                )
        files += [
            ((here / f).relative_to(project_dir).as_posix(), here / f)
            for f in filenames
            if (here / f).is_file()
        ]
    return files


@dataclass(frozen=True)
class FrontendBuild:
    """``[tool.bluegreen.frontend]``: the command that builds the frontend in ``source``
    (relative to the project) and the directory it writes, ``dist`` (relative to source)."""

    source: str
    command: str
    dist: str


def declared_frontend(pyproject: Path | None) -> FrontendBuild | None:
    """The frontend build pyproject.toml declares, or None; ProjectError naming the key."""
    if pyproject is None:
        return None
    table = _parse_toml(pyproject.read_text(encoding="utf-8"))
    frontend = table.get("tool", {}).get("bluegreen", {}).get("frontend")
    if frontend is None:
        return None
    example = (
        '[tool.bluegreen.frontend] source = "frontend", command = "npm ci && npm run build", '
        'dist = "dist"'
    )
    if not isinstance(frontend, dict):
        raise ProjectError(f"[tool.bluegreen.frontend] must be a table, e.g. {example}")
    values = {key: frontend.get(key) for key in ("source", "command", "dist")}
    missing = [key for key, value in values.items() if not isinstance(value, str) or not value]
    unknown = sorted(set(frontend) - set(values))
    if missing or unknown:
        problem = f"needs {', '.join(missing)}" if missing else f"has unknown {', '.join(unknown)}"
        raise ProjectError(f"[tool.bluegreen.frontend] {problem}: e.g. {example}")
    for key in ("source", "dist"):
        relative = Path(os.path.normpath(values[key]))
        if relative.is_absolute() or relative.parts[:1] in ((), (os.pardir,)):
            raise ProjectError(
                f"[tool.bluegreen.frontend] {key} {values[key]!r} must be a directory inside "
                "the project (source) or the source (dist), given relative to it"
            )
    return FrontendBuild(**values)


def built_frontend(
    project_dir: Path,
    output_dir: Path,
    frontend: FrontendBuild,
    version: str,
    workdir: Path,
    epoch: int,
) -> list[tuple[str, Path]]:
    """Build the frontend in a copy of its source (the project is never written to, and
    parallel builds of several versions do not meet) with BLUEGREEN_VERSION and
    SOURCE_DATE_EPOCH set; its built files, as ``frontend/<path>`` at the release root."""
    source = project_dir / frontend.source
    if not source.is_dir():
        raise ProjectError(
            f"[tool.bluegreen.frontend] source {frontend.source!r} is not a directory of "
            f"{project_dir}: fix the path"
        )
    copy = workdir / "frontend-source"
    project_ignore = _ignorer(project_dir, output_dir)
    frontend_ignore = shutil.ignore_patterns(*FRONTEND_COPY_IGNORE)

    def ignore(directory: str, names: list[str]) -> set[str]:
        return set(project_ignore(directory, names)) | set(frontend_ignore(directory, names))

    shutil.copytree(source, copy, ignore=ignore, symlinks=True)
    environment = {**os.environ, "BLUEGREEN_VERSION": version, "SOURCE_DATE_EPOCH": str(epoch)}
    try:
        done = subprocess.run(
            ["sh", "-c", frontend.command],
            cwd=copy,
            env=environment,
            capture_output=True,
            text=True,
            timeout=FRONTEND_BUILD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ProjectError(
            f"the frontend build `{frontend.command}` ran longer than "
            f"{FRONTEND_BUILD_TIMEOUT_S} s: run it by hand in {source} to see why"
        ) from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise ProjectError(
            f"the frontend build `{frontend.command}` failed (exit {done.returncode}) in a copy "
            f"of {source}:\n{tail}\nfix it (run it there by hand) and build again"
        )
    dist = copy / frontend.dist
    files = _walked_files(dist, dist, lambda _directory, _names: set()) if dist.is_dir() else []
    if not files:
        raise ProjectError(
            f"the frontend build `{frontend.command}` wrote no files into {frontend.dist}: "
            "set [tool.bluegreen.frontend] dist to the directory it builds into (relative to "
            f"{frontend.source})"
        )
    return [(f"{FRONTEND_DIR}/{relative}", path) for relative, path in files]


def _declared_includes(pyproject: Path | None) -> list[str]:
    """The paths of ``[tool.bluegreen] include`` in pyproject.toml."""
    if pyproject is None:
        return []
    table = _parse_toml(pyproject.read_text(encoding="utf-8"))
    paths = table.get("tool", {}).get("bluegreen", {}).get("include", [])
    if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
        raise ProjectError(
            "[tool.bluegreen] include in pyproject.toml must be a list of paths relative to "
            'the project, e.g. include = ["alembic.ini", "migrations"]'
        )
    return paths


def _source_epoch(project_dir: Path, output_dir: Path) -> int:
    """SOURCE_DATE_EPOCH when set, else the newest mtime of the files a build takes from
    ``project_dir``: the same files give the same timestamps, hence the same bytes."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        return int(epoch)
    ignore = _ignorer(project_dir, output_dir)
    newest = _ZIP_EPOCH
    for directory, dirnames, filenames in os.walk(project_dir):
        ignored = ignore(directory, [*dirnames, *filenames])
        dirnames[:] = [d for d in dirnames if d not in ignored]
        for filename in filenames:
            if filename not in ignored:
                newest = max(newest, int(os.lstat(os.path.join(directory, filename)).st_mtime))
    return newest


def _parse_toml(text: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProjectError(f"pyproject.toml is not valid TOML: {exc}") from None


def _declared_name_version(pyproject: Path | None) -> tuple[str, str | None] | None:
    """Static name and version from pyproject.toml, when it states them."""
    if pyproject is None:
        return None
    project = _parse_toml(pyproject.read_text(encoding="utf-8")).get("project")
    if not isinstance(project, dict) or not isinstance(project.get("name"), str):
        return None
    declared = project.get("version")
    if not isinstance(declared, str) or "version" in project.get("dynamic", []):
        return project["name"], None
    try:
        return project["name"], str(Version(declared))
    except InvalidVersion:
        return project["name"], None


def _build_project_wheel(
    python: str,
    project_dir: Path,
    output_dir: Path,
    version: str | None,
    workdir: Path,
    epoch: int,
) -> Path:
    """Build the wheel from a scratch copy, so neither the version rewrite nor build
    leftovers ever touch the user's tree."""
    source = workdir / "src" / project_dir.name
    shutil.copytree(project_dir, source, symlinks=True, ignore=_ignorer(project_dir, output_dir))
    if version is not None:
        copied = source / "pyproject.toml"
        copied.write_text(
            rewrite_version(copied.read_text(encoding="utf-8"), version), encoding="utf-8"
        )
    dist = workdir / "dist"
    _pip(
        python,
        [*_PIP_WHEEL, "--wheel-dir", str(dist), str(source)],
        f"building the wheel of {project_dir}",
        epoch=epoch,
    )
    wheels = sorted(dist.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(
            f"building {project_dir} produced {len(wheels)} wheels instead of one: "
            f"{', '.join(w.name for w in wheels) or 'none'}"
        )
    return wheels[0]


def _resolved_pins(
    python: str,
    project: Project,
    project_wheel: Path | None,
    name: str,
    extras: Sequence[str],
    hosts: Target,
    workdir: Path,
    lock: Lock | None,
    epoch: int,
) -> Path:
    """A requirements file pinning every dependency (not the project itself) as resolved
    for ``hosts``: environment markers are judged for the hosts' interpreter and platform,
    which pip cannot do for another machine than its own. ``lock``'s pins hold it."""
    inputs: list[str] = []
    # The project's own wheel is resolved with its dependencies, but is not a pin.
    own: list[str] = []
    if project_wheel is not None:
        wanted = workdir / "project.in"
        wanted.write_text(f"{name} @ {project_wheel.as_uri()}\n", encoding="utf-8")
        inputs.append(str(wanted))
        own = ["--no-emit-package", name]
    if extras:
        beside = workdir / "with.in"
        beside.write_text("".join(f"{extra}\n" for extra in extras), encoding="utf-8")
        inputs.append(str(beside))
    requirements = project.directory / REQUIREMENTS_FILE
    if requirements.is_file():
        inputs.append(str(requirements))
    locked: list[str] = []
    if lock is not None:
        constraints = workdir / "lock-constraints.txt"
        constraints.write_text(
            "".join(f"{line}\n" for line in lock_constraints(lock.pins)),
            encoding="utf-8",
        )
        locked = ["--constraint", str(constraints)]
    pins = workdir / "pins.txt"
    command = [
        _uv(),
        "pip",
        "compile",
        "--quiet",
        "--color",
        "never",
        "--python",
        python,
        "--python-version",
        hosts.python_full_version,
        "--python-platform",
        hosts.uv_platform,
        "--no-header",
        "--no-annotate",
        *own,
        *locked,
        *uv_index_options(_pip_config(python)),
        "--output-file",
        str(pins),
        *inputs,
    ]
    what = (
        f"resolving the dependencies of {project.directory} for Python "
        f"{hosts.python_full_version} on {hosts.platform}"
        + (f" at the versions {lock.path.name} pins" if lock is not None else "")
    )
    try:
        _run([*command, "--only-binary", ":all:"], what, tool="uv", epoch=epoch)
    except PipError:
        # Wheels only first, as pip's --prefer-binary: otherwise a release whose wheels are
        # not out yet would win over the one before it that has them, and be built here.
        _run(command, what, tool="uv", epoch=epoch)
    if lock is not None:
        _refuse_unlocked_versions(pins, lock)
    return pins


def _refuse_unlocked_versions(pins: Path, lock: Lock) -> None:
    """Refuse a resolution that left a version ``lock`` pins."""
    allowed: dict[str, set[Version]] = {}
    for pin in lock.pins:
        allowed.setdefault(canonicalize_name(pin.name), set()).add(Version(pin.version))
    for line in pins.read_text(encoding="utf-8").splitlines():
        match = _PIN_LINE.fullmatch(line.strip())
        if not match:
            continue
        name, version = canonicalize_name(match.group(1)), match.group(2)
        if name in allowed and Version(version) not in allowed[name]:
            raise ProjectError(
                f"{lock.path.name} locks {name} at {' or '.join(map(str, sorted(allowed[name])))} "
                f"but it resolved to {version} for the hosts: lock the project again (uv lock, "
                "poetry lock...) so that the lock holds a version for the hosts' Python and "
                "platform"
            )


def _filled_wheelhouse(python: str, pins: Path, hosts: Target, workdir: Path, epoch: int) -> Path:
    """A directory holding a wheel for ``hosts`` of every pin in ``pins``: the index's
    where it has one, else one built here from the pin's sdist."""
    downloads = workdir / "downloads"
    downloads.mkdir()
    # With --no-deps pip may take sdists while downloading for another platform: for each
    # pin it takes the wheel for the hosts when there is one, else the sdist.
    _pip(
        python,
        [
            "download",
            "--no-deps",
            "--python-version",
            hosts.python_full_version,
            "--implementation",
            "cp",
            "--abi",
            hosts.abi,
            *[arg for tag in target_platforms(hosts.platform) for arg in ("--platform", tag)],
            "--dest",
            str(downloads),
            "--requirement",
            str(pins),
        ],
        f"downloading the dependencies for Python {hosts.python_full_version} on {hosts.platform}",
        epoch=epoch,
    )
    wheelhouse = workdir / WHEELHOUSE
    wheelhouse.mkdir()
    for download in sorted(downloads.iterdir()):
        wheel = (
            download
            if download.suffix == ".whl"
            else _built_dependency_wheel(python, download, hosts, workdir, epoch)
        )
        shutil.move(wheel, wheelhouse / wheel.name)
    return wheelhouse


def _built_dependency_wheel(
    python: str, sdist: Path, hosts: Target, workdir: Path, epoch: int
) -> Path:
    """The wheel built here from a dependency's ``sdist``, when the hosts can install it."""
    built = workdir / "built" / sdist.name
    where = f"for Python {hosts.python_full_version} on {hosts.platform}"
    _pip(
        python,
        [*_PIP_WHEEL, "--wheel-dir", str(built), str(sdist)],
        f"building a wheel of {sdist.name} (the index has none {where})",
        epoch=epoch,
    )
    (wheel,) = built.glob("*.whl")
    name, version, _, tags = parse_wheel_filename(wheel.name)
    if not tags & target_tags(hosts):
        raise ProjectError(
            f"{name} {version} has no wheel {where} on the index, and its sdist builds here "
            f"into {wheel.name}, which such hosts cannot install: build its wheel on a host "
            "like the target and add it to an index or find-links directory pip uses, or "
            "replace it with a package that publishes wheels"
        )
    return wheel


def _refuse_existing(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise ArtifactExists(path)


def _ignorer(project_dir: Path, output_dir: Path) -> Callable[[str, list[str]], set[str]]:
    anywhere = shutil.ignore_patterns(*COPY_IGNORE_ANYWHERE)
    # An output directory inside the project (e.g. ./artifacts) must not be copied into
    # its own build.
    skip_output = output_dir.is_relative_to(project_dir)

    def ignore(directory: str, names: list[str]) -> set[str]:
        ignored = set(anywhere(directory, names))
        here = Path(directory).resolve()
        if here == project_dir:
            ignored.update(n for n in names if n in COPY_IGNORE_TOP)
        if skip_output:
            ignored.update(n for n in names if here / n == output_dir)
        # A virtualenv, whatever its name (venv, env, .env-3.11...).
        ignored.update(n for n in names if (here / n / "pyvenv.cfg").is_file())
        return ignored

    return ignore


def _pip_config(python: str) -> dict[str, str]:
    """pip's settings as ``pip config list`` shows them: ``section.key`` to value."""
    output = _pip(python, ["config", "list"], "reading pip's configuration")
    settings: dict[str, str] = {}
    for line in output.splitlines():
        key, equals, value = line.partition("=")
        if equals:
            try:
                settings[key.strip()] = str(ast.literal_eval(value.strip()))
            except (ValueError, SyntaxError):
                settings[key.strip()] = value.strip()
    return settings


def _pip_setting(pip_config: Mapping[str, str], key: str) -> str:
    return next(
        (pip_config[f"{s}.{key}"] for s in _PIP_CONFIG_SECTIONS if f"{s}.{key}" in pip_config),
        "",
    )


def _uv() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        raise BuildError(
            "uv is not installed next to bluegreen, and bluegreen resolves dependencies for "
            "the hosts with it: install bluegreen again (make venv), or pip install uv"
        ) from None


def _pip(python: str, args: list[str], what: str, epoch: int | None = None) -> str:
    return _run([python, "-m", "pip", *args], what, tool="pip", epoch=epoch)


def _run(command: list[str], what: str, tool: str, epoch: int | None = None) -> str:
    """The output of ``command``; its failure raises PipError with the tail of its output.

    stdout and stderr are read as one stream: pip writes part of its reasons (the
    explanation of a ResolutionImpossible, for one) to stdout. ``epoch`` is given to the
    build backends it runs as SOURCE_DATE_EPOCH, which stamps their wheels' zip entries.
    """
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(epoch)
    try:
        result = subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            check=False,
        )
    except OSError as exc:
        raise BuildError(f"{what} failed: cannot run {command[0]}: {exc}") from None
    if result.returncode != 0:
        raise PipError(what, command, result.returncode, result.stdout, tool=tool)
    return result.stdout


def _builder_version() -> str:
    try:
        return distribution_version("bluegreen")
    except PackageNotFoundError:
        return "unknown"


@contextmanager
def _atomic_file(destination: Path) -> Iterator[BinaryIO]:
    """A temporary file beside ``destination``, renamed over it only when all went well."""
    fd, name = tempfile.mkstemp(
        dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp"
    )
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)


def _write_atomically(destination: Path, content: bytes) -> None:
    with _atomic_file(destination) as handle:
        handle.write(content)
