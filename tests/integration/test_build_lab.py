"""A deploy that fails in pip says why (issue 15, finding 4), on the single-host lab.

The artifact is a real one (`make artifacts`) repacked under a new version with one
wheel its service needs taken out of the wheelhouse: what a build that judged an
environment marker for the wrong Python leaves behind.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import re
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, SINGLE, SINGLE_URL, bluegreen, live

from bluegreen.build import MANIFEST_NAME, WHEELHOUSE, checksum_path, file_sha256, write_tarball

pytestmark = [pytest.mark.lab, pytest.mark.lab_group("single2"), pytest.mark.usefixtures("lab")]

SOURCE_VERSION = "1.0.0"
BROKEN_VERSION = "1.0.99"
# Flask needs it; without its wheel pip cannot install the service offline.
MISSING = "blinker"


def rewheeled(wheel: bytes, old: str, new: str) -> bytes:
    """The sampleapp wheel ``wheel`` of version ``old`` as version ``new``."""
    with zipfile.ZipFile(io.BytesIO(wheel)) as source:
        files = {
            name.replace(f"sampleapp-{old}.dist-info/", f"sampleapp-{new}.dist-info/"): (
                source.read(name)
            )
            for name in source.namelist()
        }
    info = f"sampleapp-{new}.dist-info"
    files[f"{info}/METADATA"] = re.sub(
        rb"^Version: .*$",
        f"Version: {new}".encode(),
        files[f"{info}/METADATA"],
        count=1,
        flags=re.M,
    )
    files[f"{info}/RECORD"] = (
        "".join(
            f"{name},sha256="
            f"{base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
            f"{len(data)}\n"
            for name, data in files.items()
            if name != f"{info}/RECORD"
        ).encode()
        + f"{info}/RECORD,,\n".encode()
    )
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in files.items():
            target.writestr(name, data)
    return output.getvalue()


def repacked(
    source: Path,
    destination: Path,
    version: str,
    missing: str | None = None,
    manifest_changes: dict | None = None,
) -> None:
    """``source`` as ``version``: its wheel of ``missing`` left out, its manifest changed."""
    old_root, new_root = f"sampleapp-{SOURCE_VERSION}", f"sampleapp-{version}"
    contents: dict[str, bytes] = {}
    with tarfile.open(source) as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted is not None:
                contents[member.name.removeprefix(f"{old_root}/")] = extracted.read()
    manifest = json.loads(contents.pop(MANIFEST_NAME))
    old_wheel = f"{WHEELHOUSE}/{manifest['project_wheel']}"
    new_wheel = f"{WHEELHOUSE}/sampleapp-{version}-py3-none-any.whl"
    contents[new_wheel] = rewheeled(contents.pop(old_wheel), SOURCE_VERSION, version)
    if missing:
        dropped = [name for name in contents if name.startswith(f"{WHEELHOUSE}/{missing}-")]
        assert len(dropped) == 1, sorted(contents)
        del contents[dropped[0]]
    manifest |= (manifest_changes or {}) | {
        "version": version,
        "project_wheel": new_wheel.removeprefix(f"{WHEELHOUSE}/"),
        "wheels": [
            {"filename": name.removeprefix(f"{WHEELHOUSE}/")}
            for name in sorted(contents)
            if name.startswith(f"{WHEELHOUSE}/")
        ],
    }
    contents[MANIFEST_NAME] = json.dumps(manifest, indent=2).encode()
    write_tarball(destination, [(f"{new_root}/{name}", data) for name, data in contents.items()], 0)
    checksum_path(destination).write_text(f"{file_sha256(destination)}  {destination.name}\n")


@contextlib.contextmanager
def published(version: str, **changes: object) -> Iterator[Path]:
    """artifacts/sampleapp-<version>.tar.gz (and .sha256) repacked from SOURCE_VERSION,
    removed afterwards."""
    source = ROOT / "artifacts" / f"sampleapp-{SOURCE_VERSION}.tar.gz"
    destination = source.with_name(f"sampleapp-{version}.tar.gz")
    repacked(source, destination, version, **changes)
    try:
        yield destination
    finally:
        destination.unlink(missing_ok=True)
        checksum_path(destination).unlink(missing_ok=True)


@pytest.fixture
def broken_artifact() -> Iterator[Path]:
    """artifacts/sampleapp-BROKEN_VERSION.tar.gz without the wheel of MISSING."""
    with published(BROKEN_VERSION, missing=MISSING) as path:
        yield path


@pytest.mark.usefixtures("broken_artifact")
def test_failed_pip_install_names_pips_reason_and_leaves_traffic_alone() -> None:
    before = live(SINGLE_URL)

    result = bluegreen("release", "--version", BROKEN_VERSION, "-i", SINGLE)

    assert result.exit_code == 3, result.report
    assert result.outcome == "failed_before_switch", result.report
    message = result.message
    assert f"No matching distribution found for {MISSING}" in message, message
    assert "single1" in message and f"/releases/{BROKEN_VERSION}/venv" in message, message
    assert "--python-version 3.11.2" in message, message
    # Whatever served before (nothing, on a lab's first release) still does.
    after = live(SINGLE_URL)
    assert (after.status, after.colour, after.version) == (
        before.status,
        before.colour,
        before.version,
    )


def test_an_artifact_whose_python_the_hosts_lack_is_refused_before_anything_changes() -> None:
    before = live(SINGLE_URL)
    with published("1.0.98", manifest_changes={"requires_python": ">=3.12"}):
        result = bluegreen("release", "--version", "1.0.98", "-i", SINGLE)

    assert result.exit_code == 3, result.report
    message = result.message
    assert "requires Python >=3.12 but the hosts run 3.11" in message, message
    assert "single1" in message and "nothing was changed" in message, message
    after = live(SINGLE_URL)
    assert (after.status, after.colour, after.version) == (
        before.status,
        before.colour,
        before.version,
    )
