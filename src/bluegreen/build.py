"""Building a release artifact from any Python project (``bluegreen build``).

An artifact is one tarball that a host installs without reaching any index::

    <output_dir>/<name>-<version>.tar.gz          (and .tar.gz.sha256, sha256sum format)
      <name>-<version>/
        bluegreen-artifact.json                    what was built, for which target, checksums
        wheelhouse/*.whl                           the project's wheel and every dependency's

    pip install --no-index --find-links <name>-<version>/wheelhouse <name>==<version>

The project is anything pip can build a wheel from: a pyproject.toml with any build
backend, or a setup.py / setup.cfg. A requirements.txt beside it is downloaded too, so a
project that pins its dependencies there gets exactly those versions. Dependencies are
wheels for the *target* (Python version and platform), not for the build machine, so
this works from a laptop for Linux servers as long as every dependency publishes wheels.
Environment markers other than the Python version are still evaluated by pip on the
build machine: build on the target's OS and architecture when markers differ.

``<name>`` is the normalized distribution name (PEP 503) and ``<version>`` the normalized
version (PEP 440, local label included: ``sampleapp-2.0.1+crash.tar.gz``).
"""

from __future__ import annotations

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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import HeaderParser
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as distribution_version
from pathlib import Path
from typing import Any, BinaryIO

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from bluegreen.errors import BluegreenError, InputError

MANIFEST_NAME = "bluegreen-artifact.json"
MANIFEST_FORMAT = 1
WHEELHOUSE = "wheelhouse"
REQUIREMENTS_FILE = "requirements.txt"
DEFAULT_PYTHON_VERSION = "3.11"
DEFAULT_PLATFORM = "manylinux2014_x86_64"

# Never part of a build, wherever they are in the tree.
COPY_IGNORE_ANYWHERE = (
    ".git",
    ".hg",
    "__pycache__",
    ".venv",
    "*.egg-info",
    ".tox",
    ".nox",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
)
# Build leftovers at the project's top level only: a package may well have a
# subpackage called "build".
COPY_IGNORE_TOP = ("build", "dist")
# How many lines of pip's output an error message carries.
PIP_TAIL_LINES = 20

_TABLE_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]*?)\s*\]\]?\s*(?:#.*)?$")
_VERSION_LINE = re.compile(r"""^(\s*version\s*=\s*)("[^"\n]*"|'[^'\n]*')(\s*(?:#.*)?)$""")


class BuildError(BluegreenError):
    """An artifact could not be built."""


class ProjectError(BuildError, InputError):
    """The project directory cannot be built as asked (no project file, bad version...)."""


class PipError(BuildError):
    """pip failed; the message carries the tail of its output and the command."""

    def __init__(self, what: str, command: list[str], returncode: int, output: str) -> None:
        tail = "\n".join(output.strip().splitlines()[-PIP_TAIL_LINES:]) or "(pip printed nothing)"
        super().__init__(
            f"{what} failed (pip exited {returncode}):\n{tail}\ncommand: {shlex.join(command)}"
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

    @property
    def checksum_path(self) -> Path:
        return checksum_path(self.path)


def normalized_version(version: str) -> str:
    """The PEP 440 normal form of ``version`` (``2.0.1-CRASH`` is refused, ``v2.0`` is 2.0)."""
    try:
        return str(Version(version))
    except InvalidVersion:
        raise ProjectError(
            f"{version!r} is not a valid PEP 440 version; use e.g. 1.2.3, 2.0.0rc1 or "
            "2.0.1+crash (a local label after +)"
        ) from None


def artifact_path(output_dir: Path, name: str, version: str) -> Path:
    """Where the tarball of ``name`` ``version`` goes."""
    return output_dir / f"{canonicalize_name(name)}-{normalized_version(version)}.tar.gz"


def checksum_path(tarball: Path) -> Path:
    return tarball.with_name(tarball.name + ".sha256")


def target_platforms(platform: str) -> list[str]:
    """The ``--platform`` values pip may download wheels for.

    pip matches platform tags literally, so a manylinux2014 target also names its PEP 600
    spelling and manylinux_2_28 (wheels that dropped the old tags), and ``any``.
    """
    match = re.fullmatch(r"(?:manylinux2014|manylinux_2_17)_(\w+)", platform)
    if match:
        arch = match.group(1)
        return [
            f"manylinux2014_{arch}",
            f"manylinux_2_17_{arch}",
            f"manylinux_2_28_{arch}",
            "any",
        ]
    return [platform] if platform == "any" else [platform, "any"]


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
    force: bool = False,
    python: str | None = None,
    on_step: Callable[[str], None] | None = None,
) -> Artifact:
    """Build ``<output_dir>/<name>-<version>.tar.gz`` from the project in ``project_dir``.

    ``version`` replaces the static version of pyproject.toml in a copy of the project
    (the project itself is never touched); without it the project's own version is used.
    An existing artifact of the same name and version raises ArtifactExists unless
    ``force`` is set, in which case it is replaced. The tarball and its .sha256 are
    written to temporary files and renamed, so a reader never sees half an artifact.
    ``python`` is the interpreter whose pip builds (default: this one); ``on_step`` is
    told each step as it starts, for progress display.
    """
    step = on_step or (lambda _message: None)
    project_dir = Path(project_dir).expanduser().resolve()
    output_dir = Path(output_dir).expanduser().resolve()
    requested = normalized_version(version) if version is not None else None
    pyproject = _checked_project(project_dir, requested)

    declared = _declared_name_version(pyproject)
    if declared and (requested or declared[1]):
        _refuse_existing(artifact_path(output_dir, declared[0], requested or declared[1]), force)

    python = python or sys.executable
    with tempfile.TemporaryDirectory(prefix="bluegreen-build-") as tmp:
        workdir = Path(tmp)
        step(f"Building the wheel of {project_dir}")
        project_wheel = _build_project_wheel(python, project_dir, output_dir, requested, workdir)
        name, built_version = wheel_name_version(project_wheel)
        if requested is not None and built_version != requested:
            raise BuildError(
                f"asked for version {requested} but the build backend produced "
                f"{built_version}: check how {project_dir} computes its version"
            )
        destination = artifact_path(output_dir, name, built_version)
        _refuse_existing(destination, force)

        step(f"Downloading dependency wheels for Python {python_version} on {platform}")
        wheelhouse = workdir / WHEELHOUSE
        _download_wheelhouse(
            python, project_wheel, project_dir, wheelhouse, python_version, platform
        )

        step(f"Writing {destination.name}")
        built_at = _build_time()
        manifest = artifact_manifest(
            name, built_version, python_version, platform, built_at, project_wheel, wheelhouse
        )
        root = f"{canonicalize_name(name)}-{built_version}"
        members: list[tuple[str, Path | bytes]] = [
            (f"{root}/{MANIFEST_NAME}", (json.dumps(manifest, indent=2) + "\n").encode()),
            *(
                (f"{root}/{WHEELHOUSE}/{w['filename']}", wheelhouse / w["filename"])
                for w in manifest["wheels"]
            ),
        ]
        output_dir.mkdir(parents=True, exist_ok=True)
        write_tarball(destination, members, mtime=int(built_at.timestamp()))

    digest = file_sha256(destination)
    _write_atomically(checksum_path(destination), f"{digest}  {destination.name}\n".encode())
    return Artifact(
        name=canonicalize_name(name),
        version=built_version,
        path=destination,
        sha256=digest,
        size=destination.stat().st_size,
    )


def artifact_manifest(
    name: str,
    version: str,
    python_version: str,
    platform: str,
    built_at: datetime,
    project_wheel: Path,
    wheelhouse: Path,
) -> dict[str, Any]:
    """The content of bluegreen-artifact.json: what was built, for which target, checksums."""
    return {
        "format": MANIFEST_FORMAT,
        "name": name,
        "normalized_name": canonicalize_name(name),
        "version": version,
        "python_version": python_version,
        "platform": platform,
        "platforms": target_platforms(platform),
        "built_at": built_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "builder": "bluegreen",
        "builder_version": _builder_version(),
        "project_wheel": project_wheel.name,
        "install": (
            f"pip install --no-index --find-links {WHEELHOUSE} {canonicalize_name(name)}=={version}"
        ),
        "wheels": [
            {"filename": wheel.name, "sha256": file_sha256(wheel), "size": wheel.stat().st_size}
            for wheel in sorted(wheelhouse.glob("*.whl"))
        ],
    }


def wheel_name_version(wheel: Path) -> tuple[str, str]:
    """Name and normalized version from a wheel's METADATA (not its file name)."""
    with zipfile.ZipFile(wheel) as archive:
        metadata_files = [
            n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)
        ]
        if len(metadata_files) != 1:
            raise BuildError(f"{wheel.name} is not a valid wheel: no single .dist-info/METADATA")
        headers = HeaderParser().parsestr(archive.read(metadata_files[0]).decode("utf-8"))
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

    Entries are sorted, directories are added for every parent, and owner, mode and mtime
    are fixed, so the same inputs give the same bytes.
    """
    files = dict(members)
    directories = {str(Path(name).parent) for name in files}
    for directory in list(directories):
        directories.update(str(parent) for parent in Path(directory).parents if str(parent) != ".")

    def info(name: str, is_dir: bool, size: int = 0) -> tarfile.TarInfo:
        entry = tarfile.TarInfo(name)
        entry.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
        entry.mode = 0o755 if is_dir else 0o644
        entry.size = size
        entry.mtime = mtime
        entry.uid = entry.gid = 0
        entry.uname = entry.gname = ""
        return entry

    # filename="" keeps the temporary file's name out of the gzip header.
    with (
        _atomic_file(destination) as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=mtime) as compressed,
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
                with content.open("rb") as handle:
                    tar.addfile(info(name, False, content.stat().st_size), handle)


def _checked_project(project_dir: Path, requested: str | None) -> Path | None:
    """pyproject.toml of the project (None for a setup.py-only project), validated."""
    if not project_dir.is_dir():
        raise ProjectError(f"project directory {project_dir} does not exist")
    pyproject = project_dir / "pyproject.toml"
    if pyproject.is_file():
        text = pyproject.read_text(encoding="utf-8")
        if requested is not None:
            rewrite_version(text, requested)
        else:
            _parse_toml(text)
        return pyproject
    if (project_dir / "setup.py").is_file() or (project_dir / "setup.cfg").is_file():
        if requested is not None:
            raise ProjectError(
                f"{project_dir} has no pyproject.toml, so bluegreen cannot set its version: "
                "set the version in setup.py / setup.cfg and build without --version"
            )
        return None
    raise ProjectError(
        f"{project_dir} has no pyproject.toml (nor setup.py / setup.cfg): bluegreen builds "
        "a wheel of the project, so point it at the directory holding pyproject.toml"
    )


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
    python: str, project_dir: Path, output_dir: Path, version: str | None, workdir: Path
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
        ["wheel", "--no-deps", "--wheel-dir", str(dist), str(source)],
        f"building the wheel of {project_dir}",
    )
    wheels = sorted(dist.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(
            f"building {project_dir} produced {len(wheels)} wheels instead of one: "
            f"{', '.join(w.name for w in wheels) or 'none'}"
        )
    return wheels[0]


def _download_wheelhouse(
    python: str,
    project_wheel: Path,
    project_dir: Path,
    wheelhouse: Path,
    python_version: str,
    platform: str,
) -> None:
    """Fill ``wheelhouse`` with the project's wheel and every dependency's, for the target."""
    platforms = target_platforms(platform)
    wheelhouse.mkdir()
    local_wheel = wheelhouse / project_wheel.name
    shutil.copy2(project_wheel, local_wheel)
    requirements = project_dir / REQUIREMENTS_FILE
    _pip(
        python,
        [
            "download",
            "--only-binary=:all:",
            "--python-version",
            python_version,
            "--implementation",
            "cp",
            *[arg for platform in platforms for arg in ("--platform", platform)],
            "--dest",
            str(wheelhouse),
            str(local_wheel),
            *(["--requirement", str(requirements)] if requirements.is_file() else []),
        ],
        f"downloading the dependencies of {project_wheel.name} as wheels for Python "
        f"{python_version} on {platform} (a dependency without a wheel for that target "
        "has to be built on a matching host, or replaced)",
    )


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
        return ignored

    return ignore


def _pip(python: str, args: list[str], what: str) -> None:
    command = [python, "-m", "pip", *args]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    except OSError as exc:
        raise BuildError(f"{what} failed: cannot run {python}: {exc}") from None
    if result.returncode != 0:
        raise PipError(what, command, result.returncode, result.stderr or result.stdout)


def _build_time() -> datetime:
    # SOURCE_DATE_EPOCH makes the manifest and every mtime reproducible.
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), UTC)
    return datetime.now(UTC).replace(microsecond=0)


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
