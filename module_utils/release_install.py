# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""What installing a release into its own directory decides: pure functions that the
release_install module runs on the app host, unit-tested without one.

A release directory is complete when its marker file holds the SHA-256 of the artifact it
was installed from. A directory without the marker is what an interrupted install leaves
behind (installed again); one with another artifact's checksum is refused, since a version
names one artifact.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

MARKER = ".bluegreen-installed"
MANIFEST = "bluegreen-artifact.json"
# Lines of pip's output a failure message quotes: the reason is in the last ones.
PIP_TAIL_LINES = 15
# The Python of the lab's Debian 12 hosts: the advice's default when the host's is unknown.
FALLBACK_PYTHON = "3.11.2"
# Where distributions keep the pip wheel that ensurepip installs (Debian, Ubuntu, Fedora).
PIP_WHEEL_GLOBS = ("/usr/share/python-wheels/pip-*.whl",)

INSTALLED = "installed"
ABSENT = "absent"
OTHER = "other"


def marker_state(marker: str | None, sha256: str) -> str:
    """``installed`` when the marker names this artifact, ``absent`` when there is no
    marker (nothing installed, or an interrupted install), ``other`` for another one."""
    if marker is None:
        return ABSENT
    return INSTALLED if marker.strip() == sha256 else OTHER


def checksum_problem(artifact: str, host: str, actual: str | None, expected: str) -> str:
    """Why the artifact on the host cannot be installed ('' when its checksum is right)."""
    if actual is None:
        return (
            f"{artifact} is not on {host}: the copy did not arrive. Check the disk of {host} "
            "and release again."
        )
    if actual == expected:
        return ""
    return (
        f"{artifact} on {host} has SHA-256 {actual}, expected {expected}; the copy is "
        f"corrupt. Check the disk of {host} and release again."
    )


def other_artifact_message(release_dir: str, version: str, marker: str) -> str:
    return (
        f"{release_dir} holds version {version} built from another artifact (SHA-256 "
        f"{marker.strip()}). A version names one artifact: build the change under a new version."
    )


def manifest_problem(manifest: Mapping[str, Any], artifact: str) -> str:
    """Why this installer cannot install the artifact its manifest describes ('' when it
    can): wheel artifacts, and tree artifacts whose manifest names a requirements file. A
    manifest without a kind comes from a builder that made only wheel artifacts."""
    kind = manifest.get("kind", "wheel")
    if kind == "wheel" or (kind == "tree" and manifest.get("requirements")):
        return ""
    return (
        f"{artifact} is a {kind} artifact that bluegreen_deploy cannot install (it installs "
        "wheel artifacts, and tree artifacts whose manifest names their requirements file): "
        "build it again with the `bluegreen build` of this bluegreen."
    )


def wheel_version(path: str) -> tuple[int, ...]:
    """The version in a wheel's file name (``pip-23.0.1-py3-none-any.whl`` -> (23, 0, 1)),
    () when it has none that reads as numbers."""
    parts = os.path.basename(path).split("-")
    if len(parts) < 2:
        return ()
    numbers = []
    for part in parts[1].split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def newest_wheel(paths: Sequence[str]) -> str | None:
    """The wheel of the highest version among ``paths`` (None when there is none)."""
    return max(paths, key=wheel_version, default=None)


def venv_arguments(python: str, release_dir: str, pip_wheel: str | None) -> list[str]:
    """The command that creates the release's virtualenv. With a pip wheel to install
    from, the virtualenv gets no pip of its own: ensurepip installing one took 2.7 of the
    5.7 s a venv and an install took on a lab host (docs/benchmarks.md), and the service
    never runs pip."""
    argv = [python, "-m", "venv"]
    if pip_wheel:
        argv.append("--without-pip")
    return [*argv, f"{release_dir}/venv"]


def pip_arguments(
    release_dir: str,
    manifest: Mapping[str, Any],
    package: str,
    version: str,
    pip_wheel: str | None = None,
) -> list[str]:
    """pip's command line: offline, from the artifact's wheelhouse only. A wheel artifact
    installs the service's package at the version; a tree artifact (the project's files,
    now the release directory) what its requirements file names; both what was built
    ``with`` them. With ``pip_wheel`` the virtualenv's Python runs pip from that wheel
    (pip runs from a zip), so it installs into the virtualenv."""
    if manifest.get("kind", "wheel") == "tree":
        wanted = ["-r", f"{release_dir}/{manifest['requirements']}"]
    else:
        wanted = [f"{package}=={version}"]
    pip = (
        [f"{release_dir}/venv/bin/python", f"{pip_wheel}/pip"]
        if pip_wheel
        else [f"{release_dir}/venv/bin/pip"]
    )
    return [
        *pip,
        "install",
        "--no-index",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--find-links",
        f"{release_dir}/wheelhouse",
        *wanted,
        *manifest.get("with", []),
    ]


def pip_failure_message(
    *,
    name: str,
    version: str,
    release_dir: str,
    host: str,
    rc: int,
    output: Sequence[str],
    host_python: str,
    manifest: Mapping[str, Any],
) -> str:
    """What a failed offline install says: pip's last lines (its reason), the Python the
    host runs against the one the artifact was built for, and the build that fixes it.
    ``host_python`` is the virtualenv's ``platform.python_version() platform.machine()``
    ('' when it could not be read)."""
    tail = "\n".join(list(output)[-PIP_TAIL_LINES:])
    host_version = (host_python.split() or [FALLBACK_PYTHON])[0]
    built_for = manifest.get("python_full_version") or manifest.get("python_version") or "?"
    return (
        f"pip could not install {name} {version} into {release_dir}/venv on {host} (pip "
        f"exited {rc}); its last lines:\n{tail}\n"
        f"{host} runs Python {host_python or '?'}; the artifact was built for Python "
        f"{built_for} on {manifest.get('platform', '?')}. When pip names a distribution it "
        "cannot find, the artifact lacks a wheel this host needs: build the service again "
        "for the hosts' Python under a new version (`bluegreen build <project> --version "
        f"<new version> --python-version {host_version}`) and release that version."
    )
