#!/usr/bin/python
# Copyright: (c) 2026, bluegreen contributors
# Apache License 2.0 (see the project's pyproject.toml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: frontend_release
short_description: Put a release's built frontend on a load balancer and point a colour at it
description:
  - Checks the SHA-256 of the artifact already copied to the host, extracts its built frontend
    (the C(frontend/) directory C(bluegreen build) packs at the release root) into
    C(<root>/releases/<version>/<public_path>) unless that release holds this exact artifact's
    frontend already (its marker says so), then points the colour's link C(<root>/<colour>) at
    it, atomically (a new link renamed over the old one).
  - nginx serves C(root <root>/$colour) for the public path, the colour read per request from the
    live flag, so the switch that moves the API moves the HTML, scripts and styles with it, and
    the link of a colour that serves users is never touched by a release of the other.
  - Releases no colour's link names are removed afterwards; the other colour's stays, so the
    hashed assets its pages ask for are still there while it is warm.
  - An extraction is written into a partial directory and renamed into place; an interrupted one
    leaves nothing a link names.
  - The decisions are in module_utils/frontend_release.py.
version_added: "0.2.0"
options:
  version:
    description: Version of the release.
    type: str
    required: true
  artifact:
    description: Path of the artifact (a C(.tar.gz) from C(bluegreen build)) on the host.
    type: path
    required: true
  sha256:
    description: SHA-256 the artifact must have.
    type: str
    required: true
  root:
    description: The service's frontend root on the host (releases and colour links).
    type: path
    required: true
  public_path:
    description:
      - The URL path the frontend is served under (the build's base path), e.g. C(/ui/) or C(/).
      - Its files land under the same path inside the release, which nginx's C(root) needs.
    type: str
    default: /
  colour:
    description: The colour whose link points at this release (the idle one, in a release).
    type: str
    choices: [blue, green]
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
notes:
  - Files are written 0644 and directories 0755, owned by the user the module runs as, so
    nginx's workers can read them.
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Serve 2.1.0's frontend from green on this load balancer
  frontend_release:
    version: 2.1.0
    artifact: /var/lib/bluegreen/artifacts/sampleapp-2.1.0.tar.gz
    sha256: "{{ artifact_sha256 }}"
    root: /var/lib/bluegreen/sampleapp/frontend
    public_path: /ui/
    colour: green
  become: true
"""

RETURN = r"""
release_dir:
  description: The release's directory under the root.
  returned: always
  type: str
  sample: /var/lib/bluegreen/sampleapp/frontend/releases/2.1.0
files:
  description: How many files the release's frontend holds.
  returned: always
  type: int
  sample: 3
extracted:
  description: Whether this run extracted the frontend (false when it was there already).
  returned: always
  type: bool
link:
  description: The colour's link before and after.
  returned: always
  type: dict
  sample:
    path: /var/lib/bluegreen/sampleapp/frontend/green
    before: releases/2.0.0
    after: releases/2.1.0
colours:
  description: What each colour's link names after this run (null for a colour without one).
  returned: always
  type: dict
  sample: {blue: releases/2.0.0, green: releases/2.1.0}
pruned:
  description: Releases removed because no colour's link names them.
  returned: always
  type: list
  elements: str
"""

import os
import shutil
import tarfile
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.file_system import (
    file_sha256,
    make_directories,
    read_text,
    replace_symlink,
)
from ansible.module_utils.frontend_release import (
    COLOURS,
    MARKER,
    link_target,
    missing_frontend_message,
    placements,
    public_path_problem,
    releases_to_prune,
    version_problem,
)

ARGUMENT_SPEC: dict[str, dict[str, Any]] = dict(
    version=dict(type="str", required=True),
    artifact=dict(type="path", required=True),
    sha256=dict(type="str", required=True),
    root=dict(type="path", required=True),
    public_path=dict(type="str", default="/"),
    colour=dict(type="str", required=True, choices=list(COLOURS)),
)
DIRECTORY_MODE = 0o755
FILE_MODE = 0o644


def current_link(path: str) -> str | None:
    return os.readlink(path) if os.path.islink(path) else None


def extract(archive: tarfile.TarFile, wanted: list, partial: str) -> None:
    """Write each wanted member's content to its place under ``partial`` (regular files
    only: a link or device in the frontend is not carried)."""
    for placement in wanted:
        member = archive.getmember(placement.member)
        if member.isdir():
            make_directories(os.path.join(partial, placement.target), DIRECTORY_MODE)
            continue
        if not member.isfile():
            continue
        target = os.path.join(partial, placement.target)
        make_directories(os.path.dirname(target), DIRECTORY_MODE)
        source = archive.extractfile(member)
        assert source is not None
        with source, open(target, "wb") as handle:
            shutil.copyfileobj(source, handle)
        os.chmod(target, FILE_MODE)


def install_release(module: AnsibleModule, release_dir: str, releases: str) -> int:
    """Extract the artifact's frontend into ``release_dir`` (through a partial directory);
    the number of files."""
    params = module.params
    with tarfile.open(params["artifact"], "r:gz") as archive:
        try:
            wanted = placements(archive.getnames(), params["public_path"])
        except ValueError as exc:
            module.fail_json(msg=f"{params['artifact']}: {exc}; nothing was changed")
        files = sum(1 for placement in wanted if archive.getmember(placement.member).isfile())
        if not files:
            module.fail_json(msg=missing_frontend_message(params["artifact"]))
        if module.check_mode:
            return files
        make_directories(releases, DIRECTORY_MODE)
        partial = tempfile.mkdtemp(prefix=f".{params['version']}.", dir=releases)
        try:
            os.chmod(partial, DIRECTORY_MODE)
            extract(archive, wanted, partial)
            with open(os.path.join(partial, MARKER), "w", encoding="utf-8") as handle:
                handle.write(params["sha256"] + "\n")
            if os.path.lexists(release_dir):
                shutil.rmtree(release_dir)
            os.rename(partial, release_dir)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return files


def count_files(directory: str) -> int:
    return sum(len([f for f in names if f != MARKER]) for _, _, names in os.walk(directory))


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    for problem in (public_path_problem(params["public_path"]), version_problem(params["version"])):
        if problem:
            module.fail_json(msg=f"{problem}; nothing was changed")
    actual = file_sha256(params["artifact"])
    if actual is None:
        module.fail_json(msg=f"{params['artifact']} does not exist on this host: copy it first")
    if actual != params["sha256"]:
        module.fail_json(
            msg=f"{params['artifact']} has sha256 {actual}, not {params['sha256']}: the copy is "
            "damaged or another build; nothing was changed"
        )
    root = params["root"]
    releases = os.path.join(root, "releases")
    release_dir = os.path.join(releases, params["version"])
    installed = (read_text(os.path.join(release_dir, MARKER)) or "").strip() == params["sha256"]
    files = (
        count_files(release_dir) if installed else install_release(module, release_dir, releases)
    )

    link_path = os.path.join(root, params["colour"])
    before = current_link(link_path)
    after = link_target(params["version"])
    if before != after and not module.check_mode:
        replace_symlink(link_path, after)
    links = {colour: current_link(os.path.join(root, colour)) for colour in COLOURS}
    if module.check_mode:
        links[params["colour"]] = after
    present = sorted(
        name
        for name in (os.listdir(releases) if os.path.isdir(releases) else [])
        if not name.startswith(".")
    )
    pruned = releases_to_prune(present, links, params["version"])
    if not module.check_mode:
        for name in pruned:
            shutil.rmtree(os.path.join(releases, name), ignore_errors=True)
    changed = not installed or before != after or bool(pruned)
    module.exit_json(
        changed=changed,
        release_dir=release_dir,
        files=files,
        extracted=not installed,
        link={"path": link_path, "before": before, "after": after},
        colours=links,
        pruned=pruned,
        diff={"before": f"{link_path} -> {before}\n", "after": f"{link_path} -> {after}\n"},
    )


if __name__ == "__main__":
    main()
