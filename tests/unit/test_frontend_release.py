"""frontend_release: the decisions (module_utils/frontend_release.py) and the module on a
real artifact in a temporary directory: extraction under the public path, the colour's
link replaced atomically, the other colour's release kept, unlinked ones pruned."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import frontend_release
import pytest
from ansible.module_utils.frontend_release import (
    placements,
    public_path_problem,
    releases_to_prune,
)
from conftest import RunModule


def artifact(tmp_path: Path, version: str, files: dict[str, str]) -> tuple[Path, str]:
    """A bluegreen-like artifact with ``files`` under <top>/frontend/ and a wheelhouse."""
    path = tmp_path / f"sampleapp-{version}.tar.gz"
    top = f"sampleapp-{version}"
    with tarfile.open(path, "w:gz") as tar:
        entries = {f"{top}/bluegreen-artifact.json": "{}", f"{top}/wheelhouse/x.whl": "w"}
        entries |= {f"{top}/frontend/{name}": text for name, text in files.items()}
        for name, text in entries.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def release(run_module: RunModule, tmp_path: Path, version: str, colour: str, **extra) -> dict:
    files = {"index.html": f"<html>{version}</html>", f"assets/app.{version}.js": version}
    path, sha = artifact(tmp_path, version, files)
    args = {
        "version": version,
        "artifact": str(path),
        "sha256": sha,
        "root": str(tmp_path / "frontend"),
        "public_path": "/ui/",
        "colour": colour,
        **extra,
    }
    return run_module(frontend_release.main, args)


def test_placements_put_the_frontend_under_the_public_path() -> None:
    members = ["a-1/frontend/index.html", "a-1/frontend/assets/x.js", "a-1/wheelhouse/w.whl"]
    assert [(p.member, p.target) for p in placements(members, "/ui/")] == [
        ("a-1/frontend/assets/x.js", "ui/assets/x.js"),
        ("a-1/frontend/index.html", "ui/index.html"),
    ]
    assert [p.target for p in placements(members[:1], "/")] == ["index.html"]
    with pytest.raises(ValueError, match="leads out of the release"):
        placements(["a-1/frontend/../../etc/passwd"], "/")


@pytest.mark.parametrize("path", ["ui/", "/ui", "/../x/", "", None])
def test_a_public_path_must_be_a_slashed_plain_path(path: object) -> None:
    assert "must start and end with /" in (public_path_problem(path) or "")


def test_only_releases_no_colour_names_are_pruned() -> None:
    links = {"blue": "releases/1.0.0", "green": "releases/2.0.0"}
    assert releases_to_prune(["0.9.0", "1.0.0", "2.0.0", "2.1.0"], links, "2.1.0") == ["0.9.0"]


def test_a_release_serves_from_its_colour_and_keeps_the_other(
    run_module: RunModule, tmp_path: Path
) -> None:
    root = tmp_path / "frontend"
    first = release(run_module, tmp_path, "1.0.0", "blue")
    first_page = (root / "blue" / "ui" / "index.html").read_text()
    second = release(run_module, tmp_path, "2.0.0", "green")
    again = release(run_module, tmp_path, "2.0.0", "green")
    third = release(run_module, tmp_path, "3.0.0", "blue")

    assert first["changed"] and first["extracted"] and first["files"] == 2
    assert first_page == "<html>1.0.0</html>"
    assert (root / "blue" / "ui" / "index.html").read_text() == "<html>3.0.0</html>"
    assert os.readlink(root / "green") == "releases/2.0.0"
    assert second["pruned"] == []
    assert (again["changed"], again["extracted"], again["files"]) == (False, False, 2)
    # 1.0.0 is named by no colour once blue serves 3.0.0; green's 2.0.0 stays.
    assert third["pruned"] == ["1.0.0"]
    assert sorted(os.listdir(root / "releases")) == ["2.0.0", "3.0.0"]
    assert (root / "green" / "ui" / "assets" / "app.2.0.0.js").read_text() == "2.0.0"
    assert oct((root / "releases/3.0.0/ui/index.html").stat().st_mode & 0o777) == "0o644"


def test_check_mode_changes_nothing(run_module: RunModule, tmp_path: Path) -> None:
    files = {"index.html": "x"}
    path, sha = artifact(tmp_path, "1.0.0", files)
    args = {
        "version": "1.0.0",
        "artifact": str(path),
        "sha256": sha,
        "root": str(tmp_path / "frontend"),
        "colour": "blue",
    }
    result = run_module(frontend_release.main, args, check_mode=True)

    assert result["changed"] is True and result["link"]["after"] == "releases/1.0.0"
    assert not (tmp_path / "frontend").exists()


def test_bad_input_is_refused_and_changes_nothing(run_module: RunModule, tmp_path: Path) -> None:
    path, sha = artifact(tmp_path, "1.0.0", {"index.html": "x"})
    bare, bare_sha = artifact(tmp_path / "..", "0.1.0", {})
    base = {"version": "1.0.0", "root": str(tmp_path / "frontend"), "colour": "blue"}

    damaged = run_module(frontend_release.main, {**base, "artifact": str(path), "sha256": "0" * 64})
    no_frontend = run_module(
        frontend_release.main, {**base, "artifact": str(bare), "sha256": bare_sha}
    )
    bad_path = run_module(
        frontend_release.main,
        {**base, "artifact": str(path), "sha256": sha, "public_path": "ui"},
    )

    assert damaged["failed"] and "the copy is damaged or another build" in damaged["msg"]
    assert no_frontend["failed"] and "carries no built frontend" in no_frontend["msg"]
    assert bad_path["failed"] and "must start and end with /" in bad_path["msg"]
    assert not (tmp_path / "frontend").exists()
