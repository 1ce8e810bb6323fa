"""release_prune: which releases a host keeps (module_utils/release_prune.py), and the
module on real directories: linked releases kept whatever their age, the newest others
kept, the rest removed with their artifacts, directories without a marker left alone."""

from __future__ import annotations

import os
from pathlib import Path

import release_prune
from ansible.module_utils.release_prune import keep_problem, releases_to_prune
from conftest import RunModule


def test_linked_releases_stay_whatever_their_age_and_the_newest_others_too() -> None:
    installed = {"0.9": 1.0, "1.0": 2.0, "1.1": 3.0, "2.0": 4.0, "2.1": 5.0}
    # 0.9 is the warm colour's (old, kept), 2.1 the live one's; of the others the newest
    # (2.0) is kept, 1.0 and 1.1 go, oldest first.
    assert releases_to_prune(installed, {"0.9", "2.1"}, keep=1) == ["1.0", "1.1"]
    assert releases_to_prune(installed, {"0.9", "2.1"}, keep=0) == ["1.0", "1.1", "2.0"]
    assert releases_to_prune(installed, {"0.9", "2.1"}, keep=5) == []


def test_a_negative_keep_is_refused() -> None:
    assert "give 0 or more" in keep_problem(-1)
    assert keep_problem(0) == ""


def install(root: Path, version: str, at: float, marker: bool = True) -> None:
    release = root / "releases" / version
    release.mkdir(parents=True)
    if marker:
        (release / ".bluegreen-installed").write_text("sha\n")
        os.utime(release / ".bluegreen-installed", (at, at))
    (root / "artifacts").mkdir(exist_ok=True)
    (root / "artifacts" / f"sampleapp-{version}.tar.gz").write_text("x")


def test_the_module_removes_releases_and_their_artifacts(
    tmp_path: Path, run_module: RunModule
) -> None:
    for number, version in enumerate(["1.0", "1.1", "2.0", "2.1"]):
        install(tmp_path, version, 1000.0 + number)
    install(tmp_path, "3.0", 2000.0, marker=False)
    (tmp_path / "colours").mkdir()
    os.symlink(tmp_path / "releases" / "1.0", tmp_path / "colours" / "blue")
    os.symlink(tmp_path / "releases" / "2.1", tmp_path / "colours" / "green")
    args = {
        "releases_dir": str(tmp_path / "releases"),
        "colours_dir": str(tmp_path / "colours"),
        "keep": 1,
        "artifacts_dir": str(tmp_path / "artifacts"),
        "artifact_name": "sampleapp",
    }
    checked = run_module(release_prune.main, args, check_mode=True)
    assert checked["changed"] and checked["pruned"] == ["1.1"]
    assert (tmp_path / "releases" / "1.1").is_dir()
    done = run_module(release_prune.main, args)
    assert done["pruned"] == ["1.1"] and done["kept"] == ["2.1", "2.0", "1.0"]
    assert not (tmp_path / "releases" / "1.1").exists()
    assert not (tmp_path / "artifacts" / "sampleapp-1.1.tar.gz").exists()
    # An install without its marker (in progress, or interrupted) is not the module's.
    assert (tmp_path / "releases" / "3.0").is_dir()
    assert not run_module(release_prune.main, args)["changed"]
    # What the idle colour ran before a deploy is protected, however old.
    assert run_module(release_prune.main, args | {"keep": 0}, check_mode=True)["pruned"] == ["2.0"]
    protected = run_module(release_prune.main, args | {"keep": 0, "protect": ["2.0"]})
    assert protected["pruned"] == [] and (tmp_path / "releases" / "2.0").is_dir()


def test_a_negative_keep_fails_before_anything_is_removed(
    tmp_path: Path, run_module: RunModule
) -> None:
    install(tmp_path, "1.0", 1.0)
    args = {
        "releases_dir": str(tmp_path / "releases"),
        "colours_dir": str(tmp_path / "colours"),
        "keep": -1,
        "artifacts_dir": str(tmp_path / "artifacts"),
        "artifact_name": "sampleapp",
    }
    failed = run_module(release_prune.main, args)
    assert failed["failed"] and "give 0 or more" in failed["msg"]
    assert (tmp_path / "releases" / "1.0").is_dir()
