#!/usr/bin/python
# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_install
short_description: Install a release from its artifact into a directory of its own, in one call
description:
  - Checks the SHA-256 of the artifact already copied to the host, then installs it into
    O(release_dir) unless that directory holds this exact artifact already, as its marker
    file C(.bluegreen-installed) says.
  - Installing unpacks the artifact (its top directory stripped), creates a virtualenv in
    C(venv) with O(python), and installs the service offline from the artifact's
    C(wheelhouse) with pip. pip runs from O(pip_wheel) under the virtualenv's Python, so
    the virtualenv needs no pip of its own (ensurepip installing one was half the
    install's time); without a pip wheel the virtualenv gets its own pip, which installs.
  - The marker is written last, atomically, so an interrupted install leaves a directory
    without it, which the next run removes and installs again.
  - Refuses a release directory whose marker names another artifact (a version names one
    artifact) and an artifact kind it cannot install, and changes nothing then.
  - When pip fails, the message quotes pip's last lines, the Python the host runs and the
    one the artifact was built for, and the build command that fixes it.
  - "With O(runtime=container) the release is an image instead of a virtualenv: the
    artifact's C(image.tar) (C(docker save) output that C(bluegreen build --image) put
    there) is streamed from the artifact into C(docker load), never unpacked to disk, its
    ID checked against the one the manifest records, and tagged O(image); the rest of the
    artifact is unpacked as for a virtualenv (the migrations' files, the frontend). An
    installed release whose image the engine no longer has (pruned) gets it loaded again."
  - The decisions are in module_utils/release_install.py and module_utils/container_runtime.py.
version_added: "0.1.0"
options:
  name:
    description:
      - Name of the service, for messages.
    type: str
    required: true
  package:
    description:
      - Python distribution a wheel artifact installs (at O(version)).
    type: str
    required: true
  version:
    description:
      - Version of the release.
    type: str
    required: true
  artifact:
    description:
      - Path of the artifact (a C(.tar.gz) from C(bluegreen build)) on the host.
    type: path
    required: true
  sha256:
    description:
      - SHA-256 the artifact must have.
    type: str
    required: true
  release_dir:
    description:
      - Directory the release is installed into.
    type: path
    required: true
  runtime:
    description:
      - What the colour runs the release in; see the description.
    type: str
    choices: [virtualenv, container]
    default: virtualenv
  engine:
    description:
      - The container engine's command line program, with O(runtime=container).
    type: path
    default: /usr/bin/docker
  image:
    description:
      - The reference the loaded image is tagged with on the host (C(<name>:<version>),
        as the colour's Compose file names it). Required with O(runtime=container).
    type: str
  python:
    description:
      - Interpreter that creates the release's virtualenv.
    type: path
    default: /usr/bin/python3
  pip_wheel:
    description:
      - The pip wheel (C(pip-*.whl)) the install runs pip from.
      - By default the newest in C(/usr/share/python-wheels) (where Debian, Ubuntu and
        Fedora keep the wheel ensurepip installs) or in the standard library's
        C(ensurepip/_bundled); when there is none, the virtualenv gets its own pip.
    type: path
  host:
    description:
      - Name of the host in messages (the inventory name); the host's own name by default.
    type: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Install the release unless this exact artifact is installed already
  release_install:
    name: sampleapp
    package: sampleapp
    version: 2.0.0
    artifact: /opt/sampleapp/artifacts/sampleapp-2.0.0.tar.gz
    sha256: "{{ lookup('ansible.builtin.file', 'artifacts/sampleapp-2.0.0.tar.gz.sha256') }}"
    release_dir: /opt/sampleapp/releases/2.0.0
    host: "{{ inventory_hostname }}"
"""

RETURN = r"""
state:
  description:
    - What the release directory held before this run; C(installed) (this artifact, nothing
      done) or C(absent) (nothing, or an interrupted install, installed now).
  type: str
  returned: success
  sample: absent
release_dir:
  description: The release directory.
  type: str
  returned: always
  sample: /opt/sampleapp/releases/2.0.0
pip_output:
  description: pip's last lines when this run installed the release.
  type: list
  elements: str
  returned: when changed and not in check mode
check:
  description:
    - The check that failed, when it is the artifact's identity (C(artifact)) - the
      release directory holds the same version built from another artifact. The release
      history does not count such a failure against the version.
  type: str
  returned: when the release directory holds another artifact of the same version
  sample: artifact
"""

import glob
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.container_runtime import (
    CONTAINER,
    IMAGE_MEMBER,
    RUNTIMES,
    VIRTUALENV,
    image_load_problem,
    loaded_image_id,
)
from ansible.module_utils.file_system import file_sha256, read_text, write_text_atomic
from ansible.module_utils.release_install import (
    ABSENT,
    INSTALLED,
    MANIFEST,
    MARKER,
    PIP_TAIL_LINES,
    PIP_WHEEL_GLOBS,
    checksum_problem,
    manifest_problem,
    marker_state,
    newest_wheel,
    other_artifact_message,
    pip_arguments,
    pip_failure_message,
    venv_arguments,
)

FILE_MODE = 0o644
DIRECTORY_MODE = 0o755


def run(module: AnsibleModule, argv: list[str], what: str) -> tuple[str, str]:
    rc, out, err = module.run_command(argv)
    if rc != 0:
        module.fail_json(
            msg=f"{what} failed (exit {rc}): {(err or out).strip()[-2000:]}",
            release_dir=module.params["release_dir"],
        )
    return out, err


def pip_wheel(module: AnsibleModule) -> str | None:
    """The pip wheel to install with: the one named, else the newest the host keeps."""
    named = module.params["pip_wheel"]
    if named:
        if not os.path.isfile(named):
            module.fail_json(
                msg=f"pip_wheel {named} is not a file on the host: name a pip-*.whl that "
                "exists there, or leave pip_wheel out to use the one the host's Python keeps",
                release_dir=module.params["release_dir"],
            )
        return named
    patterns = list(PIP_WHEEL_GLOBS)
    ensurepip = importlib.util.find_spec("ensurepip")
    if ensurepip is not None and ensurepip.origin:
        patterns.append(os.path.join(os.path.dirname(ensurepip.origin), "_bundled", "pip-*.whl"))
    return newest_wheel([path for pattern in patterns for path in glob.glob(pattern)])


def install(module: AnsibleModule, host: str, wheel: str | None) -> list[str]:
    """Unpack, virtualenv, offline pip install, marker; pip's last lines."""
    params = module.params
    release_dir = params["release_dir"]
    if os.path.lexists(release_dir):
        shutil.rmtree(release_dir)
    os.makedirs(os.path.dirname(release_dir), mode=DIRECTORY_MODE, exist_ok=True)
    os.mkdir(release_dir)
    os.chmod(release_dir, DIRECTORY_MODE)
    root = os.path.basename(params["artifact"]).removesuffix(".tar.gz")
    run(
        module,
        [
            "tar",
            "-xzf",
            params["artifact"],
            "-C",
            release_dir,
            "--strip-components=1",
            # The image goes to the engine, streamed (load_image), never to this disk.
            "--anchored",
            f"--exclude={root}/{IMAGE_MEMBER}",
        ],
        f"unpacking {params['artifact']} into {release_dir}",
    )
    manifest = read_manifest(release_dir)
    problem = (
        image_load_problem(manifest.get("image"), os.path.basename(params["artifact"]))
        if params["runtime"] == CONTAINER
        else manifest_problem(manifest, os.path.basename(params["artifact"]))
    )
    if problem:
        shutil.rmtree(release_dir)
        module.fail_json(msg=problem, release_dir=release_dir)
    if params["runtime"] == CONTAINER:
        load_image(module, manifest["image"], root)
        write_text_atomic(
            os.path.join(release_dir, MARKER), params["sha256"].strip().lower() + "\n"
        )
        return []
    run(
        module,
        venv_arguments(params["python"], release_dir, wheel),
        f"creating the virtualenv {release_dir}/venv with {params['python']}",
    )
    argv = pip_arguments(release_dir, manifest, params["package"], params["version"], wheel)
    rc, out, err = module.run_command(argv)
    output = (out + err).splitlines()
    if rc != 0:
        _, host_python, _ = module.run_command(
            [
                f"{release_dir}/venv/bin/python",
                "-c",
                "import platform; print(platform.python_version(), platform.machine())",
            ]
        )
        module.fail_json(
            msg=pip_failure_message(
                name=params["name"],
                version=params["version"],
                release_dir=release_dir,
                host=host,
                rc=rc,
                output=output,
                host_python=host_python.strip(),
                manifest=manifest,
            ),
            release_dir=release_dir,
        )
    write_text_atomic(os.path.join(release_dir, MARKER), params["sha256"].strip().lower() + "\n")
    return output[-PIP_TAIL_LINES:]


def read_manifest(release_dir: str) -> dict:
    text = read_text(os.path.join(release_dir, MANIFEST))
    return json.loads(text) if text else {}


def engine_image_id(module: AnsibleModule, reference: str) -> str | None:
    """The ID of the image the engine has under ``reference``, None when it has none."""
    rc, out, _err = module.run_command(
        [module.params["engine"], "image", "inspect", "--format", "{{.Id}}", reference]
    )
    return out.strip() if rc == 0 else None


def load_image(module: AnsibleModule, image: dict, root: str) -> str:
    """Stream the artifact's image into ``docker load``, check its ID, tag it; the tag."""
    params = module.params
    tag = params["image"]
    member = f"{root}/{image.get('member', IMAGE_MEMBER)}"
    with tarfile.open(params["artifact"], mode="r|gz") as artifact:
        for entry in artifact:
            if entry.name != member:
                continue
            source = artifact.extractfile(entry)
            # docker load says little until the end: its output waits in a file, not a
            # pipe that could fill while the image is still being written to it.
            with tempfile.TemporaryFile() as output:
                loader = subprocess.Popen(
                    [params["engine"], "load"],
                    stdin=subprocess.PIPE,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
                try:
                    shutil.copyfileobj(source, loader.stdin, 1024 * 1024)
                except BrokenPipeError:
                    pass
                finally:
                    loader.stdin.close()
                loader.wait()
                output.seek(0)
                said = output.read().decode(errors="replace")
            if loader.returncode != 0:
                module.fail_json(
                    msg=f"docker load of {member} failed (exit {loader.returncode}): "
                    f"{said.strip()[-2000:]}",
                    release_dir=params["release_dir"],
                )
            break
        else:
            module.fail_json(
                msg=f"{os.path.basename(params['artifact'])} has no {member}, though its "
                "manifest names an image: build it again with `bluegreen build --image`",
                release_dir=params["release_dir"],
            )
    reported = loaded_image_id(said)
    loaded = reported or engine_image_id(module, image["tag"])
    if loaded != image["id"]:
        module.fail_json(
            msg=f"the image loaded from {os.path.basename(params['artifact'])} has ID "
            f"{loaded}, its manifest says {image['id']}: the artifact is not what was built. "
            "Build it again and release under a new version.",
            release_dir=params["release_dir"],
        )
    run(module, [params["engine"], "tag", image["id"], tag], f"tagging {image['id']} {tag}")
    return tag


def image_missing(module: AnsibleModule, release_dir: str) -> bool:
    """Whether an installed container release's image is gone from the engine."""
    image = read_manifest(release_dir).get("image") or {}
    return engine_image_id(module, module.params["image"]) != image.get("id")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "package": {"type": "str", "required": True},
            "version": {"type": "str", "required": True},
            "artifact": {"type": "path", "required": True},
            "sha256": {"type": "str", "required": True},
            "release_dir": {"type": "path", "required": True},
            "python": {"type": "path", "default": "/usr/bin/python3"},
            "pip_wheel": {"type": "path"},
            "runtime": {"type": "str", "choices": list(RUNTIMES), "default": VIRTUALENV},
            "engine": {"type": "path", "default": "/usr/bin/docker"},
            "image": {"type": "str"},
            "host": {"type": "str"},
        },
        required_if=[("runtime", CONTAINER, ["image"])],
        supports_check_mode=True,
    )
    params = module.params
    host = params["host"] or socket.gethostname()
    release_dir = params["release_dir"]
    expected = params["sha256"].strip().lower()
    problem = checksum_problem(
        os.path.basename(params["artifact"]), host, file_sha256(params["artifact"]), expected
    )
    if problem:
        module.fail_json(msg=problem, release_dir=release_dir)
    marker = read_text(os.path.join(release_dir, MARKER))
    state = marker_state(marker, expected)
    if state == INSTALLED and params["runtime"] == CONTAINER and image_missing(module, release_dir):
        if module.check_mode:
            module.exit_json(changed=True, state=INSTALLED, release_dir=release_dir)
        root = os.path.basename(params["artifact"]).removesuffix(".tar.gz")
        load_image(module, read_manifest(release_dir)["image"], root)
        module.exit_json(changed=True, state=INSTALLED, release_dir=release_dir, reloaded=True)
    if state == INSTALLED:
        module.exit_json(changed=False, state=INSTALLED, release_dir=release_dir)
    if state != ABSENT:
        module.fail_json(
            msg=other_artifact_message(release_dir, params["version"], marker or ""),
            release_dir=release_dir,
            # The artifact's identity failed, not the version's behaviour (release history).
            check="artifact",
        )
    diff = {
        "before": {"path": release_dir, "installed": None},
        "after": {"path": release_dir, "installed": expected},
    }
    wheel = pip_wheel(module) if params["runtime"] == VIRTUALENV else None
    if module.check_mode:
        module.exit_json(changed=True, state=ABSENT, release_dir=release_dir, diff=diff)
    pip_output = install(module, host, wheel)
    module.exit_json(
        changed=True, state=ABSENT, release_dir=release_dir, pip_output=pip_output, diff=diff
    )


if __name__ == "__main__":
    main()
