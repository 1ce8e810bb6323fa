"""Building the ``bluegreen.release`` collection from this tree (``make collection``).

The tree is laid out the way ansible-galaxy expects a collection, in a temporary
directory, and built there::

    galaxy.yml, README.md                 from the tree's root (version: pyproject.toml's)
    meta/runtime.yml                      requires_ansible: pyproject.toml's ansible-core range
    plugins/modules/<x>.py                library/<x>.py
    plugins/module_utils/<x>.py           module_utils/<x>.py (and any package in it)
    plugins/filter/<x>.py                 filter_plugins/<x>.py (roles and playbooks name
                                          our filters by FQCN in the built copy)
    plugins/action/<x>.py                 action_plugins/<x>.py (an action of a module's
                                          name runs that module: release_journal)
    roles/<role>/                         roles/<role>/
    playbooks/*.yml, playbooks/templates  playbooks/

In the tree, Ansible finds our module_utils through ansible.cfg's ``module_utils`` path,
so the modules import them as ``ansible.module_utils.<x>``. A collection has no such
path: in the built copy those imports (and only those: ``ansible.module_utils.basic``
stays) become ``ansible_collections.bluegreen.release.plugins.module_utils.<x>``.

Roles and playbooks keep calling our modules and roles by their short names: a role in
a collection, and a playbook run from one (``ansible-playbook bluegreen.release.release``,
or imported with ``import_playbook``), search their own collection first. A playbook of
a user's own names them by FQCN (``bluegreen.release.nginx_color``).

    python -m bluegreen.collection [--output-dir build]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable
from pathlib import Path

import yaml
from packaging.requirements import Requirement

from bluegreen.errors import BluegreenError

NAMESPACE = "bluegreen"
NAME = "release"
COLLECTION = f"{NAMESPACE}.{NAME}"
MODULE_UTILS_PACKAGE = f"ansible_collections.{NAMESPACE}.{NAME}.plugins.module_utils"
ROOT = Path(__file__).resolve().parents[2]

# Whatever Python leaves behind, and files no collection should carry.
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.retry", ".*")


def project_version(root: Path = ROOT) -> str:
    """The version in pyproject.toml, which the collection shares."""
    with (root / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def requires_ansible(root: Path = ROOT) -> str:
    """The ansible-core versions the tree is tested with, from pyproject.toml's dependency."""
    with (root / "pyproject.toml").open("rb") as handle:
        dependencies = tomllib.load(handle)["project"]["dependencies"]
    for dependency in dependencies:
        requirement = Requirement(dependency)
        if requirement.name == "ansible-core" and str(requirement.specifier):
            # Lower bounds first, as people write them (a SpecifierSet sorts its text).
            bounds = sorted(map(str, requirement.specifier), key=lambda s: not s.startswith(">"))
            return ",".join(bounds)
    raise BluegreenError("pyproject.toml names no ansible-core version range to require")


def our_module_utils(root: Path = ROOT) -> set[str]:
    """The names under module_utils/ that the modules import as ``ansible.module_utils.<x>``:
    each ``<x>.py`` and each package ``<x>/``, as they are now."""
    names: set[str] = set()
    for path in (root / "module_utils").iterdir():
        if path.is_file() and path.suffix == ".py" and path.stem != "__init__":
            names.add(path.stem)
        elif path.is_dir() and any(path.glob("*.py")):
            names.add(path.name)
    return names


def rewrite_imports(source: str, ours: Iterable[str]) -> str:
    """``source`` with each import of one of ``ours`` from ``ansible.module_utils`` made an
    import from the collection's ``plugins.module_utils``; ansible-core's own stay."""
    names = set(ours)

    def qualified(match: re.Match[str]) -> str:
        if match["name"] not in names:
            return match[0]
        return f"{match['head']}{MODULE_UTILS_PACKAGE}.{match['name']}{match['rest']}"

    source = re.sub(
        r"^(?P<head>[ \t]*(?:from|import)[ \t]+)ansible\.module_utils\.(?P<name>\w+)"
        r"(?P<rest>(?:\.\w+)*(?=[ \t]|$))",
        qualified,
        source,
        flags=re.MULTILINE,
    )

    def from_package(match: re.Match[str]) -> str:
        imported = [part.strip() for part in match["names"].split(",")]
        if not imported or any(name.split(" as ")[0].strip() not in names for name in imported):
            return match[0]
        return f"{match['head']}from {MODULE_UTILS_PACKAGE} import {match['names']}"

    return re.sub(
        r"^(?P<head>[ \t]*)from[ \t]+ansible\.module_utils[ \t]+import[ \t]+(?P<names>[\w ,]+)$",
        from_package,
        source,
        flags=re.MULTILINE,
    )


def _copy_python(source_dir: Path, dest_dir: Path, ours: set[str]) -> None:
    for path in sorted(source_dir.rglob("*.py")):
        relative = path.relative_to(source_dir)
        if "__pycache__" in relative.parts:
            continue
        target = dest_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(rewrite_imports(path.read_text(encoding="utf-8"), ours), "utf-8")


def our_filters(root: Path = ROOT) -> set[str]:
    """The names of the filters our filter_plugins/ define (``"name": function`` entries)."""
    names: set[str] = set()
    for path in (root / "filter_plugins").glob("*.py"):
        names |= set(re.findall(r'"(bluegreen_\w+)":', path.read_text(encoding="utf-8")))
    return names


def qualify_filters(text: str, filters: Iterable[str]) -> str:
    """``| name(`` of our filters as ``| bluegreen.release.name(``: roles and playbooks of
    a collection find its modules and roles by short name, but not its filters."""
    for name in sorted(filters):
        text = re.sub(rf"\|(\s*){name}\b", rf"|\g<1>{NAMESPACE}.{NAME}.{name}", text)
    return text


def galaxy_metadata(root: Path = ROOT) -> dict[str, object]:
    """galaxy.yml of the tree, checked against pyproject.toml's version."""
    metadata = yaml.safe_load((root / "galaxy.yml").read_text(encoding="utf-8"))
    version = project_version(root)
    if str(metadata.get("version")) != version:
        raise BluegreenError(
            f"galaxy.yml says version {metadata.get('version')} but pyproject.toml says "
            f"{version}; make them agree before building the collection"
        )
    if f"{metadata.get('namespace')}.{metadata.get('name')}" != COLLECTION:
        raise BluegreenError(f"galaxy.yml does not describe {COLLECTION}")
    return metadata


def lay_out(dest: Path, root: Path = ROOT) -> Path:
    """Write the collection's files from the tree ``root`` into ``dest``; returns ``dest``."""
    metadata = galaxy_metadata(root)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "galaxy.yml", dest / "galaxy.yml")
    shutil.copy2(root / str(metadata["readme"]), dest / str(metadata["readme"]))

    ours = our_module_utils(root)
    _copy_python(root / "library", dest / "plugins" / "modules", ours)
    _copy_python(root / "module_utils", dest / "plugins" / "module_utils", ours)
    _copy_python(root / "filter_plugins", dest / "plugins" / "filter", ours)
    _copy_python(root / "action_plugins", dest / "plugins" / "action", ours)
    shutil.copytree(root / "roles", dest / "roles", ignore=_IGNORED)

    playbooks = dest / "playbooks"
    playbooks.mkdir()
    for book in sorted((root / "playbooks").glob("*.yml")):
        shutil.copy2(book, playbooks / book.name)
    if (root / "playbooks" / "templates").is_dir():
        shutil.copytree(root / "playbooks" / "templates", playbooks / "templates", ignore=_IGNORED)
    filters = our_filters(root)
    for path in [*(dest / "roles").rglob("*.yml"), *playbooks.rglob("*.yml")]:
        text = path.read_text(encoding="utf-8")
        rewritten = qualify_filters(text, filters)
        if rewritten != text:
            path.write_text(rewritten, encoding="utf-8")

    meta = dest / "meta"
    meta.mkdir()
    (meta / "runtime.yml").write_text(
        yaml.safe_dump({"requires_ansible": requires_ansible(root)}, explicit_start=True),
        encoding="utf-8",
    )
    return dest


def _ansible_galaxy() -> str:
    """The ansible-galaxy next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "ansible-galaxy"
    if beside.exists():
        return str(beside)
    found = shutil.which("ansible-galaxy")
    if found is None:
        raise BluegreenError("ansible-galaxy is not installed; install ansible-core")
    return found


def tarball_name(root: Path = ROOT) -> str:
    return f"{NAMESPACE}-{NAME}-{project_version(root)}.tar.gz"


def build(output_dir: Path, root: Path = ROOT) -> Path:
    """Build ``<output_dir>/bluegreen-release-<version>.tar.gz`` from the tree; its path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bluegreen-collection-") as tmp:
        source = lay_out(Path(tmp) / COLLECTION, root)
        # The tree's ansible.cfg (and a user's) must play no part in the build.
        empty_config = Path(tmp) / "ansible.cfg"
        empty_config.touch()
        completed = subprocess.run(
            [
                _ansible_galaxy(),
                "collection",
                "build",
                str(source),
                "--output-path",
                str(output_dir),
                "--force",
            ],
            capture_output=True,
            text=True,
            env=os.environ | {"ANSIBLE_CONFIG": str(empty_config)},
            check=False,
        )
    tarball = output_dir / tarball_name(root)
    if completed.returncode != 0 or not tarball.is_file():
        output = completed.stderr.strip() or completed.stdout.strip()
        raise BluegreenError(f"ansible-galaxy collection build failed: {output}")
    return tarball


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bluegreen.collection",
        description=f"Build the {COLLECTION} collection from this tree.",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("build"),
        help="where the tarball goes (default: build)",
    )
    args = parser.parse_args(argv)
    try:
        tarball = build(args.output_dir)
    except BluegreenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    print(tarball)
    return 0


if __name__ == "__main__":
    sys.exit(main())
