#!/usr/bin/python
# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_prune
short_description: Remove the installed releases an app host no longer keeps
description:
  - Lists the releases installed under O(releases_dir) (directories with the installer's
    marker C(.bluegreen-installed), ordered by when it was written) and keeps every one a
    colour's link under O(colours_dir) names, and the O(keep) newest others.
  - Each release it does not keep is removed with the artifact it was installed from
    (C(<artifacts_dir>/<artifact_name>-<version>.tar.gz)) and, with
    O(runtime=container), its image (C(<artifact_name>:<version>)); an image a container
    still uses stays, and says so in RV(not_removed).
  - A directory without the marker (an install in progress or interrupted) is left alone.
  - Nothing it cannot remove fails the task; each such thing is a warning.
  - The decisions are in module_utils/release_prune.py.
version_added: "0.1.0"
options:
  releases_dir:
    description: Where the releases are installed, one directory per version.
    type: path
    required: true
  colours_dir:
    description: Where each colour's link to its release is.
    type: path
    required: true
  colours:
    description: The colours whose links are read.
    type: list
    elements: str
    default: [blue, green]
  protect:
    description:
      - Versions kept besides, whatever their age (the release the idle colour ran before
        this deploy, which a failed release puts it back on).
    type: list
    elements: str
    default: []
  keep:
    description: How many releases to keep besides those the colours link (0 or more).
    type: int
    default: 3
  artifacts_dir:
    description: Where the artifacts are copied to before they are installed.
    type: path
    required: true
  artifact_name:
    description:
      - The artifacts' name (C(<artifact_name>-<version>.tar.gz)), which the images are
        tagged with too.
    type: str
    required: true
  runtime:
    description: The service's runtime; with C(container) the releases' images are removed too.
    type: str
    choices: [virtualenv, container]
    default: virtualenv
  engine:
    description: The container engine's command line program.
    type: path
    default: /usr/bin/docker
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Keep what the colours run and the newest other release
  release_prune:
    releases_dir: /opt/sampleapp/releases
    colours_dir: /opt/sampleapp/colours
    keep: 1
    artifacts_dir: /opt/sampleapp/artifacts
    artifact_name: sampleapp
"""

RETURN = r"""
kept:
  description: The versions kept, newest first.
  type: list
  elements: str
  returned: always
  sample: ["2.0.0", "1.0.0", "0.9.0"]
pruned:
  description: The versions removed (in check mode, that would be), oldest first.
  type: list
  elements: str
  returned: always
  sample: ["0.8.0"]
not_removed:
  description: What could not be removed, and why (each also a warning of the task).
  type: list
  elements: str
  returned: always
"""

import os
import shutil

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.container_runtime import CONTAINER, RUNTIMES, VIRTUALENV, image_tag
from ansible.module_utils.release_install import MARKER
from ansible.module_utils.release_prune import keep_problem, releases_to_prune


def installed_releases(releases_dir: str) -> dict[str, float]:
    """Each installed version, with when its install finished."""
    found = {}
    try:
        names = os.listdir(releases_dir)
    except FileNotFoundError:
        return {}
    for name in names:
        try:
            found[name] = os.stat(os.path.join(releases_dir, name, MARKER)).st_mtime
        except OSError:
            continue
    return found


def linked_releases(releases_dir: str, colours_dir: str, colours: list[str]) -> set[str]:
    linked = set()
    for colour in colours:
        try:
            target = os.readlink(os.path.join(colours_dir, colour))
        except OSError:
            continue
        if os.path.dirname(os.path.normpath(target)) == os.path.normpath(releases_dir):
            linked.add(os.path.basename(os.path.normpath(target)))
    return linked


def remove(module: AnsibleModule, version: str) -> list[str]:
    """Remove one release, its artifact and its image; what could not be removed."""
    params = module.params
    warnings = []
    try:
        shutil.rmtree(os.path.join(params["releases_dir"], version))
    except OSError as exc:
        warnings.append(f"release {version}: {exc.strerror or exc}")
    artifact = os.path.join(params["artifacts_dir"], f"{params['artifact_name']}-{version}.tar.gz")
    try:
        os.unlink(artifact)
    except FileNotFoundError:
        pass
    except OSError as exc:
        warnings.append(f"{artifact}: {exc.strerror or exc}")
    if params["runtime"] == CONTAINER:
        tag = image_tag(params["artifact_name"], version)
        rc, out, err = module.run_command([params["engine"], "image", "rm", tag])
        if rc != 0 and "No such image" not in (err + out):
            warnings.append(f"image {tag}: {(err or out).strip()[:300]}")
    return warnings


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "releases_dir": {"type": "path", "required": True},
            "colours_dir": {"type": "path", "required": True},
            "colours": {"type": "list", "elements": "str", "default": ["blue", "green"]},
            "keep": {"type": "int", "default": 3},
            "protect": {"type": "list", "elements": "str", "default": []},
            "artifacts_dir": {"type": "path", "required": True},
            "artifact_name": {"type": "str", "required": True},
            "runtime": {"type": "str", "choices": list(RUNTIMES), "default": VIRTUALENV},
            "engine": {"type": "path", "default": "/usr/bin/docker"},
        },
        supports_check_mode=True,
    )
    params = module.params
    problem = keep_problem(params["keep"])
    if problem:
        module.fail_json(msg=f"{problem}. Nothing was removed.")
    installed = installed_releases(params["releases_dir"])
    linked = linked_releases(params["releases_dir"], params["colours_dir"], params["colours"])
    linked |= set(params["protect"])
    pruned = releases_to_prune(installed, linked, params["keep"])
    kept = sorted(
        (version for version in installed if version not in pruned),
        key=lambda version: installed[version],
        reverse=True,
    )
    result = {
        "changed": bool(pruned),
        "kept": kept,
        "pruned": pruned,
        "not_removed": [],
        "diff": {"before": {"releases": sorted(installed)}, "after": {"releases": sorted(kept)}},
    }
    if module.check_mode or not pruned:
        module.exit_json(**result)
    for version in pruned:
        result["not_removed"].extend(remove(module, version))
    for problem in result["not_removed"]:
        module.warn(problem)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
