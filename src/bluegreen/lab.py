"""The local lab: systemd containers that Ansible reaches over SSH like real hosts.

The shape of each lab (host names, SSH ports, published ports) is read from its static
inventory: ``inventories/<name>/hosts.yml``, or a folder with hosts.yml (or the hosts file
itself) anywhere else, named as the other commands name an inventory (``NAME|PATH``). A
lab is named after its inventory's folder: its containers are ``bluegreen-<lab>-<host>``
and its network ``bluegreen-<lab>``. This module only makes the containers match the
inventory. Everything it creates carries the ``bluegreen.lab`` label, so ``down`` removes
exactly that and nothing else.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bluegreen.errors import BluegreenError, InputError
from bluegreen.lab_tls import ensure_lab_tls
from bluegreen.runner import inventory_name, resolve_inventory

LABEL = "bluegreen.lab"
PROFILE_LABEL = "bluegreen.lab.profile"
IMAGE_REPOSITORY = "bluegreen-lab"
NETWORK_PREFIX = "bluegreen-"
SUITE = "bookworm"

# Everything any role may need is baked into the image so that a lab release never
# waits on a package download; the roles still declare their packages (a no-op here).
IMAGE_PACKAGES: tuple[str, ...] = (
    "age",
    "ca-certificates",
    "curl",
    "dbus",
    # The container runtime (bluegreen_service_runtime: container): Debian's engine and
    # Compose, as the role installs them on a real host.
    "docker-compose",
    "docker.io",
    "iproute2",
    "nginx",
    "openssh-server",
    "postgresql",
    "procps",
    "python3",
    "python3-apt",
    "python3-psycopg2",
    "python3-venv",
    "sqlite3",
    "sudo",
    "systemd",
    "systemd-sysv",
)
# Services the roles enable where they belong; off by default so each host runs only
# what its role starts, as on a fresh production VM.
IMAGE_DISABLED_SERVICES: tuple[str, ...] = (
    "containerd",
    "docker.service",
    "docker.socket",
    "nginx",
    "postgresql",
)
# Bump when the build recipe changes in a way the package list does not show.
IMAGE_RECIPE_VERSION = "1"

# systemd as PID 1 without --privileged, which these machines refuse (SYS_ADMIN); a
# Docker engine inside too, for the container runtime (NET_ADMIN for its networks,
# SYS_PTRACE for `docker exec`, which the image HEALTHCHECK runs through).
CAPABILITIES: tuple[str, ...] = ("SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE")

SSH_READY_TIMEOUT_S = 90.0
# A lab host that publishes this port serves HTTPS: it gets a certificate of the lab CA.
HTTPS_PORT = 443


class LabError(BluegreenError):
    """The lab could not be brought to the requested state."""


class LabInventoryError(LabError, InputError):
    """An inventory that cannot describe a lab: no hosts file, or another lab's name."""


@dataclass(frozen=True)
class LabInventory:
    """A lab: its name (that of its inventory's folder) and its static hosts file."""

    name: str
    hosts_file: Path


@dataclass(frozen=True)
class LabHost:
    name: str
    profile: str
    ssh_port: int
    published_ports: dict[int, int] = field(default_factory=dict)

    @property
    def container_name(self) -> str:
        return f"bluegreen-{self.profile}-{self.name}"

    @property
    def network(self) -> str:
        return network_name(self.profile)


def network_name(profile: str) -> str:
    """The Docker network of one lab.

    Each lab has its own: hosts find each other by inventory name (db1, app-blue), and
    two labs on one network would answer for each other's names.
    """
    return f"{NETWORK_PREFIX}{profile}"


def image_tag(packages: Iterable[str] = IMAGE_PACKAGES) -> str:
    """The image name for a package list: rebuilt whenever the list or recipe changes."""
    recipe = "\n".join(
        [SUITE, IMAGE_RECIPE_VERSION, *sorted(packages), "disabled:", *IMAGE_DISABLED_SERVICES]
    )
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    return f"{IMAGE_REPOSITORY}:{digest}"


def lab_inventory(project_root: Path, inventory: str) -> LabInventory:
    """The lab that ``inventory`` describes: a name under inventories/, or the path of a
    folder holding hosts.yml or of the hosts file itself."""
    resolved = Path(str(resolve_inventory(project_root, inventory)))
    hosts_file = resolved / "hosts.yml" if resolved.is_dir() else resolved
    if not hosts_file.is_file():
        raise LabInventoryError(
            f"inventory {inventory!r} ({resolved}) has no hosts.yml: a lab is described by a "
            "static hosts.yml (each host with its ansible_port); give its folder or the file"
        )
    name = inventory_name(project_root, inventory)
    named = project_root / "inventories" / name
    if named.is_dir() and named.resolve() != hosts_file.parent:
        raise LabInventoryError(
            f"inventory {resolved} has the name of {named}: a lab is named after its "
            f"inventory's folder (containers bluegreen-{name}-<host>), and the two labs would "
            "share their containers; rename the folder"
        )
    return LabInventory(name, hosts_file)


def hosts_from_inventory(inventory_file: Path, profile: str) -> list[LabHost]:
    """Lab hosts as declared by a static YAML inventory (each host once, in file order)."""
    try:
        document = yaml.safe_load(inventory_file.read_text())
    except FileNotFoundError as exc:
        raise LabError(
            f"lab '{profile}' has no inventory at {inventory_file}; "
            "known labs are the folders of inventories/ that contain hosts.yml"
        ) from exc
    merged: dict[str, dict] = {}
    for host, variables in _walk_hosts(document.get("all", {})):
        merged.setdefault(host, {}).update(variables or {})
    hosts = []
    for host, variables in merged.items():
        if "ansible_port" not in variables:
            raise LabError(f"{inventory_file}: host {host} has no ansible_port; add one")
        published = {
            int(inside): int(outside)
            for inside, outside in (variables.get("bluegreen_lab_published_ports") or {}).items()
        }
        hosts.append(LabHost(host, profile, int(variables["ansible_port"]), published))
    return hosts


def _walk_hosts(group: dict) -> Iterable[tuple[str, dict]]:
    yield from (group.get("hosts") or {}).items()
    for child in (group.get("children") or {}).values():
        yield from _walk_hosts(child or {})


class Lab:
    """Brings the lab containers up and down; safe to call repeatedly."""

    def __init__(self, project_root: Path, log=print) -> None:
        self.project_root = project_root
        self.state_dir = project_root / "state" / "lab"
        self.log = log
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = _docker_client()
        return self._client

    @property
    def ssh_key(self) -> Path:
        return self.state_dir / "ssh" / "id_ed25519"

    def hosts(self, inventories: Iterable[str]) -> list[LabHost]:
        """The hosts of the labs ``inventories`` (NAME|PATH each) describe."""
        hosts: list[LabHost] = []
        for inventory in inventories:
            lab = lab_inventory(self.project_root, inventory)
            hosts += hosts_from_inventory(lab.hosts_file, lab.name)
        return hosts

    def up(self, inventories: list[str]) -> list[dict]:
        hosts = self.hosts(inventories)
        tag = self.ensure_image()
        public_key = self.ensure_ssh_key()
        ensure_lab_tls(
            self.state_dir / "tls",
            sorted({host.name for host in hosts if HTTPS_PORT in host.published_ports}),
            self.log,
        )
        for network in sorted({host.network for host in hosts}):
            self.ensure_network(network)
        for host in hosts:
            self.ensure_container(host, tag)
        for host in hosts:
            self.authorize_key(host, public_key)
        if hosts:
            self.ensure_age_key(hosts[0])
        for host in hosts:
            wait_for_ssh(host.ssh_port, SSH_READY_TIMEOUT_S)
            self.log(f"{host.name}: ssh on 127.0.0.1:{host.ssh_port} is ready")
        return self.status(inventories)

    def down(self, inventories: list[str], purge: bool = False) -> None:
        # By name only: the containers of a lab whose inventory is gone can still go.
        names = [inventory_name(self.project_root, inventory) for inventory in inventories]
        for container in self._containers(names):
            self.log(f"removing container {container.name}")
            container.remove(force=True, v=True)
        remaining = {c.labels.get(PROFILE_LABEL) for c in self._containers(None)}
        for name in sorted(set(names) - remaining):
            self.remove_network(network_name(name))
        if not remaining and purge:
            for image in self.client.images.list(name=IMAGE_REPOSITORY):
                self.log(f"removing image {', '.join(image.tags)}")
                self.client.images.remove(image.id, force=True)
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def status(self, inventories: list[str] | None = None) -> list[dict]:
        """One row per lab host: of the labs ``inventories`` (NAME|PATH each) describe, or
        of every lab of inventories/ that has containers."""
        hosts = self.hosts(inventories) if inventories else []
        containers = self._containers(sorted({host.profile for host in hosts}) or None)
        if not inventories:
            # Labs of other checkouts share the Docker engine; list the ones known here.
            profiles = {c.labels.get(PROFILE_LABEL, "") for c in containers} - {""}
            known = self.project_root / "inventories"
            hosts = self.hosts(sorted(p for p in profiles if (known / p / "hosts.yml").is_file()))
        by_name = {c.name: c for c in containers}
        rows = []
        for host in hosts:
            container = by_name.get(host.container_name)
            state = container.status if container else "absent"
            ssh = "up" if state == "running" and ssh_answers(host.ssh_port) else "down"
            rows.append(
                {
                    "name": host.name,
                    "lab": host.profile,
                    "container": host.container_name,
                    "state": state,
                    "ssh": ssh,
                    "ssh_port": host.ssh_port,
                    "published_ports": dict(host.published_ports),
                }
            )
        return rows

    def ensure_image(self) -> str:
        tag = image_tag()
        if self.client.images.list(name=tag):
            return tag
        for tool in ("mmdebstrap", "docker"):
            if shutil.which(tool) is None:
                raise LabError(
                    f"building the lab image needs {tool}, which is not installed; "
                    "run `make deps` (as root) or `apt-get install mmdebstrap docker.io`"
                )
        self.log(f"building lab image {tag} with mmdebstrap (about a minute, once)")
        build_image(tag)
        return tag

    def ensure_ssh_key(self) -> str:
        if not self.ssh_key.exists():
            self.ssh_key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "bluegreen-lab",
                    "-f",
                    str(self.ssh_key),
                ],
                check=True,
            )
            self.log(f"generated lab SSH key {self.ssh_key}")
        return self.ssh_key.with_suffix(".pub").read_text().strip()

    def ensure_network(self, name: str) -> None:
        if not [n for n in self.client.networks.list(names=[name]) if n.name == name]:
            self.client.networks.create(name, driver="bridge", labels={LABEL: "1"})

    def remove_network(self, name: str) -> None:
        """Remove a lab network that no container uses any more (never another's)."""
        for network in self.client.networks.list(names=[name]):
            network.reload()
            if network.name != name or LABEL not in (network.attrs.get("Labels") or {}):
                continue
            if network.attrs.get("Containers"):
                self.log(f"keeping network {name}: containers of other labs still use it")
                continue
            self.log(f"removing network {name}")
            network.remove()

    def ensure_container(self, host: LabHost, tag: str) -> None:
        import docker.errors

        try:
            container = self.client.containers.get(host.container_name)
        except docker.errors.NotFound:
            container = None
        if container is not None and container.image.tags and tag not in container.image.tags:
            self.log(f"{host.name}: lab image changed, recreating {host.container_name}")
            container.remove(force=True, v=True)
            container = None
        if container is not None and set(container.attrs["HostConfig"].get("CapAdd") or []) != set(
            CAPABILITIES
        ):
            self.log(f"{host.name}: capabilities changed, recreating {host.container_name}")
            container.remove(force=True, v=True)
            container = None
        networks = container.attrs["NetworkSettings"]["Networks"] if container else {}
        if container is not None and host.network not in networks:
            self.log(
                f"{host.name}: not on network {host.network}, recreating {host.container_name}"
            )
            container.remove(force=True, v=True)
            container = None
        if container is not None and published_ports(container.attrs) != host.published_ports:
            self.log(f"{host.name}: published ports changed, recreating {host.container_name}")
            container.remove(force=True, v=True)
            container = None
        if container is None:
            self.log(f"{host.name}: starting container {host.container_name}")
            self._run_container(host, tag)
        elif container.status != "running":
            self.log(f"{host.name}: restarting stopped container {host.container_name}")
            container.start()
        else:
            self.log(f"{host.name}: container {host.container_name} already running")

    def _run_container(self, host: LabHost, tag: str) -> None:
        from docker.types import Mount

        ports = {"22/tcp": ("127.0.0.1", host.ssh_port)}
        ports |= {
            f"{inside}/tcp": ("127.0.0.1", outside)
            for inside, outside in host.published_ports.items()
        }
        self.client.containers.run(
            tag,
            command="/sbin/init",
            name=host.container_name,
            hostname=host.name,
            detach=True,
            # Without seccomp/AppArmor profiles, as a Docker engine inside needs; its
            # images on a volume of their own (overlay2 needs a file system that is not
            # itself an overlay).
            cap_add=list(CAPABILITIES),
            security_opt=["seccomp=unconfined", "apparmor=unconfined"],
            cgroupns="host",
            volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
            mounts=[Mount(target="/var/lib/docker", source=None, type="volume")],
            tmpfs={"/run": "", "/run/lock": ""},
            ports=ports,
            network=host.network,
            networking_config={
                host.network: self.client.api.create_endpoint_config(aliases=[host.name])
            },
            labels={
                LABEL: "1",
                PROFILE_LABEL: host.profile,
                "bluegreen.lab.ssh_port": str(host.ssh_port),
            },
            stop_signal="SIGRTMIN+3",
        )

    @property
    def age_dir(self) -> Path:
        return self.state_dir / "age"

    def ensure_age_key(self, host: LabHost) -> None:
        """The lab's age key pair, which the lab inventories encrypt snapshots to:
        ``recipient.txt`` and ``identity.txt`` (0600) under state/lab/age/, made once by
        age-keygen in a lab container (it prints the identity; nothing is left there)."""
        self.age_dir.mkdir(parents=True, exist_ok=True)
        with open(self.age_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            identity_file, recipient_file = (
                self.age_dir / "identity.txt",
                self.age_dir / "recipient.txt",
            )
            if identity_file.is_file() and recipient_file.is_file():
                return
            container = self.client.containers.get(host.container_name)
            made = container.exec_run(["age-keygen"], stdout=True, stderr=False)
            text = made.output.decode()
            recipient = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in text.splitlines()
                    if line.startswith("# public key:")
                ),
                None,
            )
            if made.exit_code != 0 or recipient is None:
                raise LabError(f"{host.name}: age-keygen failed (exit {made.exit_code})")
            descriptor = os.open(identity_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(text)
            recipient_file.write_text(recipient + "\n")
            self.log(
                f"made the lab's age key pair (snapshots are encrypted to {recipient[:16]}...)"
            )

    def authorize_key(self, host: LabHost, public_key: str) -> None:
        container = self.client.containers.get(host.container_name)
        script = (
            "install -d -m 700 /root/.ssh && "
            f"grep -qxF '{public_key}' /root/.ssh/authorized_keys 2>/dev/null || "
            f"echo '{public_key}' >> /root/.ssh/authorized_keys; "
            "chmod 600 /root/.ssh/authorized_keys"
        )
        result = container.exec_run(["sh", "-c", script])
        if result.exit_code != 0:
            raise LabError(
                f"{host.name}: could not install the lab SSH key: {result.output.decode()}"
            )

    def _containers(self, names: list[str] | None) -> list:
        containers = self.client.containers.list(all=True, filters={"label": LABEL})
        if names:
            containers = [c for c in containers if c.labels.get(PROFILE_LABEL) in names]
        return containers


def build_image(tag: str) -> None:
    """Build the base image with mmdebstrap piped into `docker import`."""
    disable = " ".join(IMAGE_DISABLED_SERVICES)
    mmdebstrap = [
        "mmdebstrap",
        "--variant=apt",
        f"--include={','.join(IMAGE_PACKAGES)}",
        f'--customize-hook=chroot "$1" systemctl disable {disable}',
        # A fresh machine-id per container, as systemd expects on first boot.
        '--customize-hook=truncate -s 0 "$1/etc/machine-id"',
        SUITE,
        "-",
    ]
    importer = ["docker", "import", "--change", 'CMD ["/sbin/init"]', "-", tag]
    with subprocess.Popen(mmdebstrap, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as build:
        imported = subprocess.run(importer, stdin=build.stdout, capture_output=True, text=True)
        build.stdout.close()
        build_stderr = build.stderr.read().decode(errors="replace")
        build.wait()
    if build.returncode != 0:
        raise LabError(f"mmdebstrap failed (exit {build.returncode}): {build_stderr[-2000:]}")
    if imported.returncode != 0:
        raise LabError(f"docker import failed: {imported.stderr.strip()}")


def published_ports(attrs: dict) -> dict[int, int]:
    """The ports a lab container publishes besides SSH (container port: host port), from
    its Docker attributes."""
    bindings = (attrs.get("HostConfig") or {}).get("PortBindings") or {}
    return {
        int(inside.split("/")[0]): int(outside[0]["HostPort"])
        for inside, outside in bindings.items()
        if outside and inside != "22/tcp"
    }


def ssh_answers(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> bool:
    """True when an SSH server sends its banner on the port."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return conn.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def wait_for_ssh(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ssh_answers(port):
            return
        time.sleep(0.5)
    raise LabError(
        f"sshd on 127.0.0.1:{port} did not answer within {timeout:.0f} s; "
        "see `docker logs` of the container and `bluegreen lab status`"
    )


def _docker_client():
    import docker
    import docker.errors

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        socket_hint = os.environ.get("DOCKER_HOST", "/var/run/docker.sock")
        raise LabError(
            f"cannot reach the Docker engine at {socket_hint} ({exc}); "
            "start it with `make deps` (as root) or `dockerd &`"
        ) from exc
    return client
