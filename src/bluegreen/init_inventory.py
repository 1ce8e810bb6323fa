"""The starter inventory ``bluegreen init`` writes from a project scan.

Three files, the one-VM shape (one host runs nginx, both colours and, when the service
uses PostgreSQL, the database)::

    <inventory>/hosts.yml                          the VM (a placeholder address)
    <inventory>/group_vars/all/service.yml         the detected bluegreen_service_* values
    <inventory>/group_vars/all/vault.yml.example   the secrets to fill in and encrypt

Every value carries a comment saying where it was read (``project_scan.Found.source``) or
that it is a placeholder. Everything is rendered before anything is written, and a new
inventory appears at once (a temporary folder renamed into place), so an error leaves
nothing behind.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bluegreen.errors import InputError
from bluegreen.project_scan import (
    DJANGO,
    HEALTH_PATHS,
    Found,
    ProjectScan,
    build_command,
    release_version,
    service_name,
    start_command,
)

HOSTS = "hosts.yml"
SERVICE = "group_vars/all/service.yml"
VAULT_EXAMPLE = "group_vars/all/vault.yml.example"
FILES = (HOSTS, SERVICE, VAULT_EXAMPLE)
PLACEHOLDER_ADDRESS = "192.0.2.10"
PORTS = {"blue": 8001, "green": 8002}
DATABASE_PASSWORD = "vault_database_password"
_WIDTH = 88


@dataclass(frozen=True)
class Entry:
    """One variable of service.yml and the comment above it."""

    key: str
    value: Any
    comment: Sequence[str]


class _Dumper(yaml.SafeDumper):
    """List items indented under their key, as the example inventories write them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


# --- what goes in the files -------------------------------------------------------------


def inventory_texts(scan: ProjectScan, shown_path: str) -> dict[str, str]:
    """The inventory's files (path inside the inventory -> text)."""
    return {
        HOSTS: hosts_text(scan),
        SERVICE: service_text(scan, shown_path),
        VAULT_EXAMPLE: vault_text(scan),
    }


def uses_db_host(scan: ProjectScan) -> bool:
    """PostgreSQL runs on the VM (group db); SQLite is a file of the app host."""
    return scan.database.kind == "postgresql"


def hosts_text(scan: ProjectScan) -> str:
    name = service_name(scan)
    database = " and PostgreSQL" if uses_db_host(scan) else ""
    lab = "lab-django" if uses_db_host(scan) else "lab-django-single"
    db_hosts = (
        "      hosts:\n        vm1:\n"
        if uses_db_host(scan)
        else "      # No PostgreSQL detected: no database host.\n      hosts: {}\n"
    )
    return (
        f"# One VM running nginx, both colours of {name} (ports {PORTS['blue']} and "
        f"{PORTS['green']}){database}:\n"
        f"# the smallest real deployment (the lab's {lab} has the same shape). Written by\n"
        "# `bluegreen init`; inventories/example-production/hosts.yml shows a host per colour.\n"
        "all:\n"
        "  vars:\n"
        "    # Placeholder: a user with sudo on the VM that Ansible logs in as over SSH.\n"
        "    ansible_user: deploy\n"
        "    ansible_become: true\n"
        "  children:\n"
        "    lb:\n"
        "      hosts:\n"
        "        vm1:\n"
        "          # Placeholder: the VM's address (or name the host by its DNS name and drop\n"
        "          # this line).\n"
        f"          ansible_host: {PLACEHOLDER_ADDRESS}\n"
        "    app:\n"
        "      hosts:\n"
        "        vm1:\n"
        "          bluegreen_service_colours: [blue, green]\n"
        "          # nginx reaches both colours on the same VM.\n"
        "          bluegreen_service_address: 127.0.0.1\n"
        "    db:\n"
        f"{db_hosts}"
    )


def service_text(scan: ProjectScan, shown_path: str) -> str:
    name = service_name(scan)
    header = [
        f"The service {name} for bluegreen, as `bluegreen init {shown_path}` read it from the",
        "project's files (nothing of it was imported or run). Each value says where it was",
        'detected; "Placeholder" marks what to fill in. inventories/example-production/',
        'documents every variable, README.md "Bring your own service" the path to a release.',
        "",
        *build_comment(scan, shown_path),
        *static_comment(scan),
        *(f"Note: {line}" for line in scan.notes),
    ]
    blocks = [_comment_block(header)]
    blocks += [render_entry(entry) for entry in service_entries(scan)]
    return "\n".join(blocks)


def build_comment(scan: ProjectScan, shown_path: str) -> list[str]:
    """Which files decide the versions, and the exact build command."""
    locks = list(scan.lock_files)
    if locks:
        decided = f"Versions come from {', '.join(locks)}."
    else:
        decided = "No lock or requirements file: the build resolves the newest versions allowed."
    reasons = []
    if scan.server.missing:
        reasons.append(f"--with {scan.server.name}: the project depends on no server")
    if scan.database.driver_extra is not None:
        reasons.append(
            f"--with {scan.database.driver}: the PostgreSQL driver is only in the extra "
            f"{scan.database.driver_extra!r}"
        )
    if not scan.metadata.package:
        reasons.append("--name: a requirements-only project has no name of its own")
    reasons += [
        f"--include {path}: the migration command reads it at the release's root"
        for path in scan.migrations.includes
    ]
    return [
        f"{decided} Build the artifact with:",
        f"  {build_command(scan, shown_path)}",
        *(f"  ({reason})" for reason in reasons),
    ]


def static_comment(scan: ProjectScan) -> list[str]:
    if scan.static_root.value is None:
        return []
    return [
        f"Static files: STATIC_ROOT = {scan.static_root.value} ({scan.static_root.source}).",
        "bluegreen runs no collectstatic: run `python manage.py collectstatic --noinput`",
        "before the build (a requirements-only project carries the collected files), or let",
        "the service serve them (whitenoise); see examples/third-party/wagtailsite.",
    ]


def service_entries(scan: ProjectScan) -> list[Entry]:
    """The variables of service.yml, in the order example-production documents them."""
    return [
        name_entry(scan),
        Entry(
            "bluegreen_service_bind_address",
            "127.0.0.1",
            [
                "Chosen for hosts.yml's one VM: nginx runs beside the colours, so they listen",
                "on the loopback only (0.0.0.0 when nginx runs on another host).",
            ],
        ),
        Entry(
            "bluegreen_service_ports",
            dict(PORTS),
            ["Chosen: the two colours' ports on the VM (any two free ports)."],
        ),
        start_entry(scan),
        *environment_entries(scan),
        *database_entries(scan),
        *migration_entries(scan),
        health_entry(scan),
        Entry(
            "bluegreen_service_smoke_routes",
            [{"path": health_path(scan), "status": 200}],
            [
                "Asked on the idle colour before it gets traffic. Add routes that prove the",
                'service works, e.g. one that reads the database (README.md "Smoke routes").',
            ],
        ),
        version_header_entry(scan),
    ]


def name_entry(scan: ProjectScan) -> Entry:
    found = scan.metadata.name
    name = service_name(scan)
    comment = [
        f"Detected from {found.source}" + (f" ({found.value!r})." if found.value != name else ".")
    ]
    if not scan.metadata.package:
        comment.append("A requirements-only project names nothing itself: the build's --name.")
    return Entry("bluegreen_service_name", name, comment)


def start_entry(scan: ProjectScan) -> Entry:
    app, server = scan.application, scan.server
    comment = []
    if app.target.value:
        kind = "factory" if app.factory else "application"
        comment.append(
            f"Detected: the {app.framework or 'ASGI'} {kind} {app.target.value}, from "
            f"{app.target.source}."
        )
    else:
        comment.append(
            f"Placeholder: no application object was found; replace {fallback_target(scan)} "
            "with your module:object."
        )
    if server.missing:
        hint = f"; {server.hint}" if server.hint else ""
        comment.append(
            f"{server.name} is not a dependency of the project{hint}: `bluegreen build --with "
            f"{server.name}` adds it."
        )
    else:
        comment.append(f"Server detected from {server.source}.")
    if server.name == "gunicorn" and server.control_socket:
        comment.append(
            "--no-control-socket: gunicorn 27's socket in ~ would be shared by both colours."
        )
    elif server.name == "gunicorn":
        comment.append("The gunicorn it installs predates 27, which has --no-control-socket.")
    comment.append("${PORT} is the colour's port.")
    return Entry("bluegreen_service_start_command", start_command_text(scan), comment)


def start_command_text(scan: ProjectScan) -> str:
    return start_command(scan.application, scan.server, fallback_target(scan))


def fallback_target(scan: ProjectScan) -> str:
    name = service_name(scan).replace("-", "_")
    return (
        f"{name}.asgi:app" if scan.application.interface == "asgi" else f"{name}.wsgi:application"
    )


def environment_entries(scan: ProjectScan) -> list[Entry]:
    """DJANGO_SETTINGS_MODULE when manage.py defaults to development settings; the
    variables the sources read (listed); the secrets they read (from vault)."""
    entries = []
    env: dict[str, str] = {}
    comment: list[str] = []
    production = scan.production_settings
    if production.value:
        env["DJANGO_SETTINGS_MODULE"] = production.value
        comment += [
            f"Detected: manage.py defaults to {scan.django_settings.value} "
            f"({scan.django_settings.source}); {production.source} is beside it. Check that it",
            "reads the secret key, the hosts and the database from the environment, or add a",
            "settings module in bluegreen_service_files (examples/third-party/wagtailsite).",
        ]
    plain = scan.plain_environment
    if plain:
        comment.append("The sources read these environment variables; set the ones it needs:")
        comment += [f"  {found.value} ({found.source})" for found in plain]
    if env or plain:
        entries.append(Entry("bluegreen_service_env", env, comment))
    if scan.secrets:
        entries.append(
            Entry(
                "bluegreen_service_secrets",
                {found.value: f"{{{{ {vault_name(found.value)} }}}}" for found in scan.secrets},
                [
                    "Detected: the sources read "
                    + ", ".join(f"{f.value} ({f.source})" for f in scan.secrets)
                    + ".",
                    "Placeholder: the values are in vault.yml (see vault.yml.example).",
                ],
            )
        )
    elif scan.application.framework == DJANGO:
        entries.append(
            Entry(
                "bluegreen_service_secrets",
                {},
                [
                    "The settings read no secret from the environment, so Django's SECRET_KEY",
                    "is in a settings file. Hand it in as a secret here (from vault) and read it",
                    "in a settings module of bluegreen_service_files.",
                ],
            )
        )
    return entries


def database_entries(scan: ProjectScan) -> list[Entry]:
    db = scan.database
    name = service_name(scan)
    if db.reads_url.value:
        reads = [f"The service reads DATABASE_URL ({db.reads_url.source})."]
    else:
        reads = [
            "The sources never read DATABASE_URL: bluegreen hands this URL to the service in",
            "that variable (bluegreen_service_database_url_env); make its settings read it.",
        ]
    if db.kind == "postgresql":
        database = name.replace("-", "_")
        where = f"{db.driver} in {db.source}"
        extra = (
            f" (an extra: the build adds it with --with {db.driver})"
            if db.driver_extra is not None
            else ""
        )
        url = (
            f"{db.url_scheme}://{database}:{{{{ {DATABASE_PASSWORD} }}}}@127.0.0.1:5432/{database}"
        )
        return [
            Entry(
                "bluegreen_service_database_url",
                url,
                [
                    f"Detected: PostgreSQL, from {where}{extra}.",
                    "It runs on the VM (hosts.yml, group db): bluegreen_database creates the",
                    f"role and database {database}. Placeholder: the password is",
                    f"{DATABASE_PASSWORD} in vault.yml.",
                    *reads,
                ],
            ),
            Entry(
                "bluegreen_database_password",
                f"{{{{ {DATABASE_PASSWORD} }}}}",
                ["Placeholder: in vault.yml; the database role and the URL share it."],
            ),
        ]
    if db.kind == "sqlite":
        return [
            Entry(
                "bluegreen_service_database_url",
                f"sqlite:////var/lib/{name}/{name}.sqlite3",
                [
                    f"Detected: SQLite, named in {db.source}. The file lives in",
                    f"bluegreen_service_data_dir (/var/lib/{name}), shared by both colours.",
                    *reads,
                ],
            )
        ]
    if db.reads_url.value:
        comment = [
            f"Placeholder: the service reads DATABASE_URL ({db.reads_url.source}), but no",
            "PostgreSQL driver or SQLite was found: give its URL here.",
        ]
    else:
        comment = ["Nothing detected (no PostgreSQL driver, no SQLite in the sources): none."]
    return [Entry("bluegreen_service_database_url", "", comment)]


def migration_entries(scan: ProjectScan) -> list[Entry]:
    migrations = scan.migrations
    if not migrations.tool:
        return [
            Entry(
                "bluegreen_service_migrate_tool",
                "",
                [
                    "Nothing detected (no manage.py, alembic.ini or Flask-Migrate migrations/):",
                    "no migrations. alembic, django or command when the service has some.",
                ],
            )
        ]
    comment = [f"Detected from {migrations.source}."]
    comment += [f"Note: {note}" for note in migrations.notes]
    if migrations.includes:
        comment.append(f"The build carries {', '.join(migrations.includes)} (--include).")
    return [
        Entry("bluegreen_service_migrate_tool", migrations.tool, comment),
        Entry(
            "bluegreen_service_migrate_command",
            migrations.command,
            ["Run from the release's virtualenv, at the release's root."],
        ),
    ]


def health_path(scan: ProjectScan) -> str:
    return scan.health_routes[0].value if scan.health_routes else "/"


def health_entry(scan: ProjectScan) -> Entry:
    routes = scan.health_routes
    if routes:
        comment = [f"Detected: the route at {routes[0].source}."]
        if len(routes) > 1:
            comment.append("Other candidates: " + ", ".join(_found(r) for r in routes[1:]) + ".")
    else:
        looked = ", ".join(f"/{path}" for path in HEALTH_PATHS)
        comment = [
            f"Placeholder: no health route found ({looked}); / answers when the",
            "service is up. A path that answers 200 only when the service and its database",
            "work is better.",
        ]
    return Entry("bluegreen_service_health_path", health_path(scan), comment)


def version_header_entry(scan: ProjectScan) -> Entry:
    if scan.names_version.value:
        return Entry(
            "bluegreen_service_version_header",
            "X-Bluegreen-Version",
            [f"Detected: the service names its version ({scan.names_version.source})."],
        )
    return Entry(
        "bluegreen_service_version_header",
        "",
        [
            "Detected: the sources never name X-Bluegreen-Version or BLUEGREEN_VERSION, so the",
            "version is not checked on the idle colour (nginx names the colour itself).",
        ],
    )


def vault_text(scan: ProjectScan) -> str:
    lines = [
        "# Copy to vault.yml, fill in, then: ansible-vault encrypt group_vars/all/vault.yml",
        "# (service.yml refers to these names).",
    ]
    if uses_db_host(scan):
        lines += [
            "# Placeholder: the password of the service's PostgreSQL role.",
            f"{DATABASE_PASSWORD}: change-me",
        ]
    for found in scan.secrets:
        lines += [
            f"# Placeholder: read by the service as {found.value} ({found.source}).",
            f"{vault_name(found.value)}: change-me",
        ]
    if len(lines) == 2:
        lines.append("# Nothing detected needs a secret yet.")
    return "\n".join(lines) + "\n"


def vault_name(variable: str) -> str:
    return "vault_" + re.sub(r"[^a-z0-9_]+", "_", variable.lower()).strip("_")


def render_entry(entry: Entry) -> str:
    if isinstance(entry.value, str) and " " in entry.value and len(entry.value) > _WIDTH - 30:
        return _comment_block(entry.comment) + _folded(entry.key, entry.value)
    dumped = yaml.dump(
        {entry.key: entry.value},
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        width=_WIDTH,
        allow_unicode=True,
    )
    return _comment_block(entry.comment) + dumped


def _folded(key: str, command: str) -> str:
    """A long command as a folded block (``>-``) as the example inventories write it,
    broken only before an option (``--workers 2`` stays on one line)."""
    lines: list[str] = []
    for word in command.split(" "):
        if lines and (not word.startswith("--") or len(lines[-1]) + len(word) < _WIDTH - 3):
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return f"{key}: >-\n" + "".join(f"  {line}\n" for line in lines)


def _comment_block(lines: Sequence[str]) -> str:
    """Comment lines wrapped to the file's width; an indented line (a command) is kept whole."""
    wrapped: list[str] = []
    for paragraph in _paragraphs(lines):
        if paragraph.startswith(" ") or len(paragraph) <= _WIDTH - 2:
            wrapped.append(paragraph)
        else:
            wrapped += textwrap.wrap(paragraph, _WIDTH - 2, break_on_hyphens=False)
    return "".join(f"# {line}".rstrip() + "\n" for line in wrapped)


def _paragraphs(lines: Sequence[str]) -> list[str]:
    """``lines`` joined where a line does not end its sentence (no final . or :)."""
    paragraphs: list[str] = []
    for line in lines:
        previous = paragraphs[-1] if paragraphs else ""
        continues = previous and not previous.startswith(" ") and not previous.endswith((".", ":"))
        if continues and line and not line.startswith(" "):
            paragraphs[-1] = f"{previous} {line}"
        else:
            paragraphs.append(line)
    return paragraphs


def _found(found: Found[Any]) -> str:
    return f"{found.value} ({found.source})"


# --- the summary and the next steps ---------------------------------------------------------


def detected_rows(scan: ProjectScan) -> list[tuple[str, str, str]]:
    """(what, value, where it was read) for the table `bluegreen init` prints."""
    meta, app, server, migrations, db = (
        scan.metadata,
        scan.application,
        scan.server,
        scan.migrations,
        scan.database,
    )
    placeholder = "placeholder"
    rows = [
        ("name", service_name(scan), meta.name.source),
        ("version", meta.version.value or "-", meta.version.source or "-"),
        ("requires-python", meta.requires_python.value or "-", meta.requires_python.source or "-"),
        ("framework", app.framework or "not recognised", _framework_source(scan)),
        (
            "application",
            app.target.value or fallback_target(scan),
            app.target.source or placeholder,
        ),
        (
            "server",
            f"{server.name} (add: --with {server.name})" if server.missing else server.name,
            server.source or "not a dependency",
        ),
        (
            "migrations",
            f"{migrations.tool}: {migrations.command}" if migrations.tool else "none",
            migrations.source or "-",
        ),
        (
            "health path",
            health_path(scan),
            ", ".join(_found(r) for r in scan.health_routes) or f"{placeholder} (no health route)",
        ),
        ("database", _database_summary(scan), db.source or "-"),
        ("lock files", ", ".join(scan.lock_files) or "none", "-"),
    ]
    if scan.static_root.value is not None:
        rows.append(
            ("static files", f"STATIC_ROOT = {scan.static_root.value}", scan.static_root.source)
        )
    return rows


def _framework_source(scan: ProjectScan) -> str:
    if scan.application.framework == DJANGO:
        return scan.django_settings.source or "manage.py"
    return scan.application.target.source or "placeholder"


def _database_summary(scan: ProjectScan) -> str:
    db = scan.database
    if db.kind == "postgresql":
        extra = f", extra {db.driver_extra}: --with {db.driver}" if db.driver_extra else ""
        return f"postgresql ({db.driver}{extra})"
    return db.kind or "none"


def notes(scan: ProjectScan) -> list[str]:
    """What to look at before a release, beyond the placeholders."""
    return [*scan.notes, *scan.migrations.notes]


def next_commands(scan: ProjectScan, shown_path: str, shown_inventory: str) -> list[str]:
    """The commands after init: fill in, build, try it on a lab, release."""
    lab = "lab-django" if uses_db_host(scan) else "lab-django-single"
    return [
        f"fill in the placeholders: {shown_inventory}/hosts.yml (the VM), "
        f"{shown_inventory}/{VAULT_EXAMPLE} -> vault.yml (ansible-vault encrypt)",
        build_command(scan, shown_path),
        f"bluegreen lab up {lab}    # a one-VM lab of this shape, to try a release on first",
        f"bluegreen release -i {shown_inventory} --version {release_version(scan)}",
    ]


# --- writing --------------------------------------------------------------------------------


def default_inventory_dir(project_root: Path, name: str) -> Path:
    return project_root / "inventories" / name


def write_inventory(directory: Path, texts: dict[str, str], force: bool) -> list[Path]:
    """Write the files; a new inventory appears whole (a temporary folder renamed), and
    --force replaces only these files of an existing one (the others, vault.yml too, stay)."""
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory} is a file, not an inventory folder: give another -o")
    existing = directory.is_dir() and any(directory.iterdir())
    if existing and not force:
        raise InputError(
            f"inventory {directory} exists already: pass --force to replace its "
            f"{', '.join(texts)} (its other files stay), or -o another folder"
        )
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.init-", dir=directory.parent))
    try:
        for relative, text in texts.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if not directory.exists():
            staging.rename(directory)
        else:
            for relative in texts:
                (directory / relative).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / relative, directory / relative)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [directory / relative for relative in texts]
