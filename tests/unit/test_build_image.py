"""bluegreen build --image: the tag, the generated Dockerfile and its health check, where
the base image and the Dockerfile come from, the errors, and a build whose docker is a
fake on PATH (no Docker needed)."""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import serving
from test_build import tiny_wheel, use_only_index, write_site
from typer.testing import CliRunner

import bluegreen.build
from bluegreen import cli
from bluegreen.build import (
    HEALTHCHECK_CODE,
    MANIFEST_NAME,
    Artifact,
    BuildError,
    DockerError,
    ImageOptions,
    ProjectError,
    build_artifact,
    declared_image,
    docker_build_arguments,
    docker_cli,
    generated_dockerfile,
    image_options,
    image_tag,
    inspected_image,
    requested_image,
)
from bluegreen.errors import ExitCode
from bluegreen_module_utils.release_install import pip_arguments, venv_arguments

WHEEL_MANIFEST = {
    "kind": "wheel",
    "normalized_name": "shop-api",
    "version": "2.0.1+crash",
    "with": ["gunicorn>=22"],
}
TREE_MANIFEST = {
    "kind": "tree",
    "normalized_name": "mysite",
    "version": "1.0.0",
    "requirements": "requirements.txt",
    "with": [],
}
IMAGE_ID = "sha256:" + "ab" * 32


# --- the tag ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "version", "tag"),
    [
        ("sampleapp", "2.0.0", "sampleapp:2.0.0"),
        ("Shop-API", "2.0.1+crash", "shop-api:2.0.1-crash"),
        ("my_site", "2.0.3+errors30.after200req", "my_site:2.0.3-errors30.after200req"),
        ("sampleapp", "1.0.0rc1.post2.dev3", "sampleapp:1.0.0rc1.post2.dev3"),
    ],
)
def test_the_tag_is_the_lowercased_name_and_the_version_with_a_dash_for_plus(
    name: str, version: str, tag: str
) -> None:
    assert image_tag(name, version) == tag


def test_a_version_docker_cannot_tag_is_refused_naming_the_character() -> None:
    with pytest.raises(
        ProjectError, match=r"'1!2\.0' cannot be a Docker image tag: it holds !"
    ) as caught:
        image_tag("sampleapp", "1!2.0")
    assert caught.value.exit_code == ExitCode.USAGE


def test_a_tag_holds_at_most_128_characters() -> None:
    assert image_tag("x", "1.0.0+" + "a" * 122) == "x:1.0.0-" + "a" * 122
    with pytest.raises(ProjectError, match="129 characters, and a Docker tag holds at most 128"):
        image_tag("x", "1.0.0+" + "a" * 123)


def test_a_name_docker_cannot_use_is_refused() -> None:
    with pytest.raises(ProjectError, match="'my site' cannot name a Docker image"):
        image_tag("my site", "1.0.0")


# --- the generated Dockerfile ----------------------------------------------------------


def instructions(dockerfile: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    joined = re.sub(r"\s*\\\n\s*", " ", dockerfile)
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


@pytest.mark.parametrize("manifest", [WHEEL_MANIFEST, TREE_MANIFEST], ids=["wheel", "tree"])
def test_the_generated_dockerfile_installs_the_venv_with_the_hosts_commands(
    manifest: dict,
) -> None:
    dockerfile = generated_dockerfile(manifest)
    venv = shlex.join(venv_arguments("python3", "/app", "/tmp/pip.whl"))
    pip = shlex.join(
        pip_arguments(
            "/app", manifest, manifest["normalized_name"], manifest["version"], "/tmp/pip.whl"
        )
    )

    install = next(line for line in instructions(dockerfile) if line.startswith("RUN set -eu"))
    assert install.endswith(f"{venv}; {pip}")
    assert "--no-index" in pip and "--find-links /app/wheelhouse" in pip
    if manifest["kind"] == "tree":
        assert "-r /app/requirements.txt" in pip
    else:
        assert "shop-api==2.0.1+crash 'gunicorn>=22'" in pip


def test_the_generated_dockerfile_has_two_stages_on_the_base_and_runs_unprivileged() -> None:
    lines = instructions(generated_dockerfile(WHEEL_MANIFEST))

    assert lines[0] == "ARG BASE_IMAGE"
    assert [line for line in lines if line.startswith("FROM")] == [
        "FROM ${BASE_IMAGE} AS install",
        "FROM ${BASE_IMAGE}",
    ]
    final = lines[lines.index("FROM ${BASE_IMAGE}") :]
    assert "COPY . /app" in lines and "COPY --from=install /app /app" in final
    assert "WORKDIR /app" in final and "USER 10001" in final
    env = next(line for line in final if line.startswith("ENV "))
    assert "PATH=/app/venv/bin:${PATH:-" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    user = next(line for line in final if "useradd" in line)
    assert "groupadd --system --gid 10001 app" in user and "--uid 10001" in user
    assert final.index("USER 10001") > final.index(user)


def test_the_generated_healthcheck_runs_the_venvs_python() -> None:
    lines = instructions(generated_dockerfile(WHEEL_MANIFEST))
    healthcheck = next(line for line in lines if line.startswith("HEALTHCHECK"))
    options, _, command = healthcheck.partition(" CMD ")

    assert options.split()[1:] == [
        "--interval=5s",
        "--timeout=3s",
        "--start-period=30s",
        "--retries=3",
    ]
    assert json.loads(command) == ["/app/venv/bin/python3", "-c", HEALTHCHECK_CODE]
    # The image's own command only refuses to start without the service's.
    cmd = json.loads(next(line for line in lines if line.startswith("CMD "))[4:])
    refused = subprocess.run([sys.executable, *cmd[1:]], capture_output=True, text=True)
    assert refused.returncode == 1 and "start command" in refused.stderr


class Answers(http.server.BaseHTTPRequestHandler):
    """Answers GET /<status> with that status; a redirect points at a closed port."""

    def do_GET(self) -> None:
        status = int(self.path.strip("/") or 200)
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", "http://127.0.0.1:9/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def health_check(**environment: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PORT", "BLUEGREEN_HEALTH_URL")}
    return subprocess.run(
        [sys.executable, "-c", HEALTHCHECK_CODE],
        env={**clean, **environment, "http_proxy": "http://127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("path", "healthy"), [("200", True), ("302", True), ("404", False), ("503", False)]
)
def test_the_health_check_passes_on_2xx_and_3xx_and_fails_on_the_rest(
    path: str, healthy: bool
) -> None:
    with serving(Answers) as port:
        checked = health_check(BLUEGREEN_HEALTH_URL=f"http://127.0.0.1:{port}/{path}", PORT="9")
    assert (checked.returncode == 0) is healthy, checked
    assert checked.stdout.split() == [f"http://127.0.0.1:{port}/{path}", path]


def test_the_health_check_asks_the_root_on_port_when_no_url_is_set() -> None:
    with serving(Answers) as port:
        checked = health_check(PORT=str(port))
    assert checked.returncode == 0, checked
    assert checked.stdout.split()[0] == f"http://127.0.0.1:{port}/"


def test_the_health_check_fails_in_one_line_when_nothing_answers() -> None:
    with serving(Answers) as port:
        pass
    checked = health_check(PORT=str(port))
    assert checked.returncode == 1
    assert checked.stdout.startswith("health check failed:") and "refused" in checked.stdout
    assert checked.stdout.count("\n") == 1 and not checked.stderr


# --- where the base image and the Dockerfile come from ---------------------------------


def test_the_options_win_over_what_the_project_declares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "shop"
    (project / "docker").mkdir(parents=True)
    (project / "Dockerfile").write_text("FROM x\n")
    (project / "docker" / "Dockerfile.prod").write_text("FROM x\n")
    declared = {"base": "python:3.11-slim", "dockerfile": "Dockerfile"}
    monkeypatch.chdir(project / "docker")

    assert image_options(project, declared) == ImageOptions("python:3.11-slim", "Dockerfile")
    assert image_options(
        project, declared, "bluegreen-runtime:bookworm", Path("Dockerfile.prod")
    ) == (ImageOptions("bluegreen-runtime:bookworm", "docker/Dockerfile.prod"))
    assert image_options(project, {"base": "b:1"}) == ImageOptions("b:1", None)


def test_the_project_declares_its_image_in_pyproject(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.bluegreen.image]\nbase = "b:1"\ndockerfile = "Dockerfile"\n')
    assert declared_image(pyproject) == {"base": "b:1", "dockerfile": "Dockerfile"}
    pyproject.write_text('[tool.bluegreen]\ninclude = ["alembic.ini"]\n')
    assert declared_image(pyproject) == {}


@pytest.mark.parametrize(
    ("table", "complaint"),
    [
        ('image = "b:1"', "must be a table"),
        ('image = {base = "b:1", from = "x"}', "unknown from: it takes base and dockerfile"),
        ("image = {base = 3}", "base must be a non-empty string"),
    ],
)
def test_a_wrong_image_table_is_refused_naming_the_key(
    tmp_path: Path, table: str, complaint: str
) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(f"[tool.bluegreen]\n{table}\n")
    with pytest.raises(ProjectError, match=complaint):
        declared_image(pyproject)


def test_without_a_base_image_the_error_names_both_ways_to_give_one(tmp_path: Path) -> None:
    with pytest.raises(ProjectError) as caught:
        image_options(tmp_path, {})
    message = str(caught.value)
    assert "--base-image REF" in message and "[tool.bluegreen.image]" in message
    assert "pulls an image it was not told to" in message


@pytest.mark.parametrize(
    ("dockerfile", "complaint"),
    [
        ("missing/Dockerfile", "is not a file"),
        ("../Dockerfile.elsewhere", "is not inside"),
    ],
)
def test_a_dockerfile_that_is_not_a_file_of_the_project_is_refused(
    tmp_path: Path, dockerfile: str, complaint: str
) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    (tmp_path / "Dockerfile.elsewhere").write_text("FROM x\n")
    with pytest.raises(ProjectError, match=complaint):
        image_options(project, {"base": "b:1", "dockerfile": dockerfile})


def test_a_base_that_is_no_image_reference_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="'--pull' is not an image reference"):
        image_options(tmp_path, {}, "--pull")


def test_image_options_without_image_are_refused(tmp_path: Path) -> None:
    assert requested_image(tmp_path, False, None, None) is None
    with pytest.raises(ProjectError, match="--base-image and --dockerfile only say how"):
        requested_image(tmp_path, False, "b:1", Path("Dockerfile"))


def test_docker_never_pulls_and_gets_the_base_and_version_as_build_arguments() -> None:
    arguments = docker_build_arguments(Path("/w/Dockerfile"), Path("/w/ctx"), "a:1.0", "b:1", "1.0")
    assert arguments[:2] == ["build", "--pull=false"]
    assert "BASE_IMAGE=b:1" in arguments and "BLUEGREEN_VERSION=1.0" in arguments
    assert arguments[arguments.index("-f") + 1] == "/w/Dockerfile" and arguments[-1] == "/w/ctx"


@pytest.mark.parametrize(
    ("config", "user", "healthcheck"),
    [
        (
            {"User": "10001", "WorkingDir": "/app", "Healthcheck": {"Test": ["CMD", "x"]}},
            "10001",
            True,
        ),
        ({"User": "", "WorkingDir": "", "Healthcheck": {"Test": ["NONE"]}}, "root", False),
        ({"User": "app"}, "app", False),
    ],
)
def test_the_user_and_healthcheck_are_read_from_docker_inspect(
    config: dict, user: str, healthcheck: bool
) -> None:
    image = inspected_image(json.dumps([{"Id": IMAGE_ID, "Config": config}]), "a:1")
    assert (image.id, image.user, image.healthcheck) == (IMAGE_ID, user, healthcheck)


# --- docker, faked ---------------------------------------------------------------------

FAKE_DOCKER = """\
#!{python}
import json, os, shutil, sys
from pathlib import Path

args = sys.argv[1:]
state = Path(os.environ["FAKE_DOCKER_STATE"])
with (state / "calls").open("a") as calls:
    calls.write(json.dumps(args) + "\\n")
if args[0] == "version":
    if os.environ.get("FAKE_DOCKER_DAEMON") == "down":
        sys.exit("Cannot connect to the Docker daemon at unix:///var/run/docker.sock.")
    print("20.10.24")
elif args[0] == "build":
    context = Path(args[-1])
    shutil.copy(context / "bluegreen-artifact.json", state / "context-manifest.json")
    shutil.copy(args[args.index("-f") + 1], state / "Dockerfile")
    (state / "context-files").write_text("\\n".join(
        sorted(str(p.relative_to(context)) for p in context.rglob("*") if p.is_file())))
    if os.environ.get("FAKE_DOCKER_BUILD") == "fail":
        sys.exit("pull access denied for nowhere/base, repository does not exist")
    print("{image_id}")
elif args[:2] == ["image", "inspect"]:
    if args[2] != os.environ.get("FAKE_DOCKER_TAG"):
        sys.exit("Error: No such image: " + args[2])
    print(json.dumps([{{"Id": "{image_id}", "Config": {{"User": "10001", "WorkingDir":
        os.environ.get("FAKE_DOCKER_WORKDIR", "/app"), "Healthcheck": {{"Test": ["CMD"]}}}}}}]))
elif args[0] == "save":
    Path(args[args.index("-o") + 1]).write_bytes(b"the output of docker save " + args[-1].encode())
"""


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A docker on PATH that records its calls and what it was asked to build."""
    state = tmp_path / "docker-state"
    bin_dir = state / "bin"
    bin_dir.mkdir(parents=True)
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER.format(python=sys.executable, image_id=IMAGE_ID))
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_STATE", str(state))
    monkeypatch.setenv("FAKE_DOCKER_TAG", "mysite:1.0.0-rc")
    return state


@pytest.fixture
def offline_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip and uv resolve from a directory holding one tiny wheel, site-core."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    tiny_wheel(wheels, "site_core", "1.0")
    use_only_index(monkeypatch, wheels, tmp_path)


def docker_calls(state: Path) -> list[list[str]]:
    return [json.loads(line) for line in (state / "calls").read_text().splitlines()]


@pytest.mark.usefixtures("offline_index")
def test_the_image_is_saved_into_the_artifact_and_described_by_its_manifest(
    tmp_path: Path, fake_docker: Path
) -> None:
    site = write_site(tmp_path / "site")

    artifact = build_artifact(
        site, tmp_path / "out", version="1.0.0+rc", name="mysite", image=True, base_image="b:1"
    )

    section = {
        "member": "image.tar",
        "id": IMAGE_ID,
        "tag": "mysite:1.0.0-rc",
        "base": "b:1",
        "dockerfile": "generated",
        "workdir": "/app",
        "user": "10001",
        "healthcheck": True,
    }
    assert artifact.image == section
    root = "mysite-1.0.0+rc"
    with tarfile.open(artifact.path) as tar:
        manifest = json.loads(tar.extractfile(f"{root}/{MANIFEST_NAME}").read())
        saved = tar.extractfile(f"{root}/image.tar").read()
        files = {
            member.name.removeprefix(f"{root}/") for member in tar.getmembers() if member.isfile()
        }
    assert manifest["image"] == section
    assert saved == b"the output of docker save mysite:1.0.0-rc"
    # The image holds the release tree, its manifest without the image it is part of.
    in_image = json.loads((fake_docker / "context-manifest.json").read_text())
    assert "image" not in in_image and in_image == {
        k: v for k, v in manifest.items() if k != "image"
    }
    context = set((fake_docker / "context-files").read_text().splitlines())
    assert context == files - {"image.tar"}
    assert "-r /app/requirements.txt" in (fake_docker / "Dockerfile").read_text()
    build = next(call for call in docker_calls(fake_docker) if call[0] == "build")
    assert (
        "BLUEGREEN_VERSION=1.0.0+rc" in build
        and build[build.index("--tag") + 1] == "mysite:1.0.0-rc"
    )


@pytest.mark.usefixtures("offline_index")
def test_a_project_dockerfile_is_built_with_the_release_tree_as_context(
    tmp_path: Path, fake_docker: Path
) -> None:
    site = write_site(tmp_path / "site")
    (site / "deploy").mkdir()
    (site / "deploy" / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY . /app\n")
    (site / "pyproject.toml").write_text(
        '[tool.bluegreen.image]\nbase = "b:2"\ndockerfile = "deploy/Dockerfile"\n'
    )

    artifact = build_artifact(site, tmp_path / "out", version="1.0.0+rc", name="mysite", image=True)

    assert artifact.image is not None
    assert (artifact.image["base"], artifact.image["dockerfile"]) == ("b:2", "deploy/Dockerfile")
    assert (fake_docker / "Dockerfile").read_text().endswith("COPY . /app\n")


@pytest.mark.usefixtures("offline_index")
def test_an_image_not_working_in_app_is_refused(
    tmp_path: Path, fake_docker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = write_site(tmp_path / "site")
    (site / "Dockerfile").write_text("FROM x\n")
    monkeypatch.setenv("FAKE_DOCKER_WORKDIR", "/srv")
    with pytest.raises(ProjectError, match="works in /srv, not in /app"):
        build_artifact(
            site,
            tmp_path / "out",
            version="1.0.0+rc",
            name="mysite",
            image=True,
            base_image="b:1",
            dockerfile=site / "Dockerfile",
        )
    assert not (tmp_path / "out" / "mysite-1.0.0+rc.tar.gz").exists()


@pytest.mark.usefixtures("offline_index")
def test_a_failed_build_says_when_the_base_is_not_on_this_machine(
    tmp_path: Path, fake_docker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_BUILD", "fail")
    site = write_site(tmp_path / "site")
    with pytest.raises(DockerError) as caught:
        build_artifact(
            site,
            tmp_path / "out",
            version="1.0.0",
            name="mysite",
            image=True,
            base_image="nowhere/base",
        )
    message = str(caught.value)
    assert "nowhere/base is not an image on this machine, and bluegreen pulls nothing" in message
    assert "pull access denied" in message and "command: " in message
    assert not (tmp_path / "out" / "mysite-1.0.0.tar.gz").exists()


def test_without_docker_the_error_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BuildError, match="docker CLI, which is not installed: install Docker"):
        docker_cli()


def test_a_daemon_that_does_not_answer_is_named_before_anything_is_built(
    tmp_path: Path, fake_docker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_DAEMON", "down")
    site = write_site(tmp_path / "site")
    with pytest.raises(BuildError) as caught:
        build_artifact(
            site, tmp_path / "out", version="1.0.0", name="mysite", image=True, base_image="b:1"
        )
    message = str(caught.value)
    assert "the Docker daemon does not answer" in message
    assert "(Cannot connect to the Docker daemon at unix:///var/run/docker.sock.)" in message
    assert [call[0] for call in docker_calls(fake_docker)] == ["version"]


def test_a_release_file_named_image_tar_is_refused_with_image(
    tmp_path: Path, fake_docker: Path
) -> None:
    site = write_site(tmp_path / "site")
    (site / "image.tar").write_text("not an image")
    with pytest.raises(ProjectError, match=r"has image\.tar at the release root"):
        build_artifact(
            site, tmp_path / "out", version="1.0.0", name="mysite", image=True, base_image="b:1"
        )


# --- the command -----------------------------------------------------------------------


def test_the_command_passes_the_image_options_and_shows_the_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict = {}

    def fake_build(project_dir: Path, output_dir: Path, **options: object) -> Artifact:
        seen.update(options)
        section = {"tag": "shop:1.0.0", "id": IMAGE_ID}
        return Artifact("shop", "1.0.0", output_dir / "shop-1.0.0.tar.gz", "cd" * 32, 10, section)

    monkeypatch.setattr(bluegreen.build, "build_artifact", fake_build)
    out = CliRunner().invoke(
        cli.app,
        [
            "build",
            str(tmp_path),
            "--output",
            str(tmp_path / "out"),
            "--image",
            "--base-image",
            "b:1",
            "--dockerfile",
            "deploy/Dockerfile",
        ],
        terminal_width=200,
    )

    assert out.exit_code == 0, out.output
    assert seen == {
        "version": None,
        "force": False,
        "image": True,
        "base_image": "b:1",
        "dockerfile": Path("deploy/Dockerfile"),
    }
    assert f"shop:1.0.0 ({IMAGE_ID[7:19]})" in out.output


def test_the_command_without_a_base_image_fails_as_bad_usage_in_one_line(tmp_path: Path) -> None:
    site = write_site(tmp_path / "site")
    out = CliRunner().invoke(
        cli.app,
        ["build", str(site), "--name", "mysite", "--version", "1.0.0", "--image", "-o", "x"],
    )

    assert out.exit_code == ExitCode.USAGE
    assert "--image needs a base image" in out.output and "Traceback" not in out.output
