"""What ``bluegreen init`` reads from a project tree as a team keeps it.

Each finding says where it was read (``Found.source``: a file and line, or a file and
key), so that the starter inventory can say why each value is what it is. Everything is
read from files: Python sources are parsed with ``ast``, never imported or run, and no
tool of the project is started.

The functions take a project directory (or what was read from it) and return one fact
each; ``scan_project`` puts them together.
"""

from __future__ import annotations

import ast
import configparser
import os
import re
import shlex
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from bluegreen.build import DEFAULT_PYTHON_VERSION, LOCK_FILES, ProjectError, locked_pins
from bluegreen_module_utils.python_requirement import python_requirement_problem
from bluegreen_module_utils.service_shape import SERVICE_NAME

T = TypeVar("T")

DJANGO = "django"
FLASK = "flask"
FASTAPI = "fastapi"
STARLETTE = "starlette"
ASGI = "asgi"
WSGI_INTERFACE = "wsgi"
ASGI_INTERFACE = "asgi"

# Application classes by the package they come from: (framework, interface).
APP_CLASSES: dict[tuple[str, str], tuple[str, str]] = {
    ("flask", "Flask"): (FLASK, WSGI_INTERFACE),
    ("fastapi", "FastAPI"): (FASTAPI, ASGI_INTERFACE),
    ("starlette.applications", "Starlette"): (STARLETTE, ASGI_INTERFACE),
    ("starlette", "Starlette"): (STARLETTE, ASGI_INTERFACE),
    ("quart", "Quart"): (ASGI, ASGI_INTERFACE),
    ("litestar", "Litestar"): (ASGI, ASGI_INTERFACE),
}
# Servers bluegreen writes a start command for, preferred first, by interface.
SERVERS: dict[str, tuple[str, ...]] = {
    WSGI_INTERFACE: ("gunicorn", "waitress", "hypercorn"),
    ASGI_INTERFACE: ("uvicorn", "hypercorn"),
}
# The server `bluegreen build --with` adds when the project depends on none.
DEFAULT_SERVERS = {WSGI_INTERFACE: "gunicorn", ASGI_INTERFACE: "uvicorn"}
# gunicorn's --no-control-socket (both colours of a host would share ~/.gunicorn's socket).
GUNICORN_CONTROL_SOCKET = Version("27")
# Health route paths, preferred first (compared without their slashes, in lower case).
HEALTH_PATHS = (
    "health",
    "healthz",
    "healthcheck",
    "livez",
    "ready",
    "readyz",
    "ping",
    "status",
    "api/health",
)
POSTGRESQL_DRIVERS = ("psycopg", "psycopg-binary", "psycopg2", "psycopg2-binary", "asyncpg")
# Environment variables whose values are secrets, by name.
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|PRIVATE_KEY")
# Environment variables bluegreen sets itself, or the tools read on their own.
ENV_SET_BY_BLUEGREEN = frozenset(
    {"DATABASE_URL", "PORT", "BLUEGREEN_COLOUR", "BLUEGREEN_VERSION", "DJANGO_SETTINGS_MODULE"}
)
# Settings modules a team runs on its laptop, and the production module often beside them.
DEV_SETTINGS = frozenset({"dev", "develop", "development", "local"})
PRODUCTION_SETTINGS = ("production", "prod")

# Never read: virtualenvs (any folder with pyvenv.cfg too), caches, VCS data, builds,
# tests (their apps and routes are fixtures) and migrations (many files, nothing to find).
_SKIPPED_DIRS = frozenset(
    {
        "node_modules",
        "__pycache__",
        "site-packages",
        "build",
        "dist",
        "venv",
        "env",
        "tests",
        "test",
        "migrations",
    }
)
_MAX_SOURCE_BYTES = 1_000_000
_ROUTE_CALLS = frozenset(
    {"route", "get", "head", "api_route", "add_url_rule", "path", "re_path", "url", "Route"}
)
_DEV_REQUIREMENTS = re.compile(r"dev|test|lint|doc|ci", re.IGNORECASE)


@dataclass(frozen=True)
class Found(Generic[T]):
    """A value and where it was read; ``source`` is empty when nothing was found."""

    value: T
    source: str = ""


@dataclass(frozen=True)
class Metadata:
    """The project's own name, version and Requires-Python."""

    name: Found[str]
    version: Found[str | None]
    requires_python: Found[str | None]
    # A package (pyproject.toml, setup.cfg, setup.py) rather than requirements files only.
    package: bool
    scripts: Mapping[str, str] = field(default_factory=dict)
    includes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dependency:
    """A requirement the project declares; ``extra`` is an optional extra or a dev file."""

    name: str
    requirement: str
    source: str
    extra: str | None = None


@dataclass(frozen=True)
class Module:
    """A Python source of the project, parsed."""

    path: str
    dotted: str
    tree: ast.Module


@dataclass(frozen=True)
class Application:
    """The application object a server serves."""

    framework: str
    interface: str
    target: Found[str | None]
    factory: bool = False


@dataclass(frozen=True)
class Server:
    """The server that starts a colour; ``missing`` when the project depends on none."""

    name: str
    source: str
    missing: bool
    control_socket: bool
    hint: str = ""


@dataclass(frozen=True)
class Migrations:
    """How the service migrates its schema, and what a package's build must carry."""

    tool: str
    command: str
    source: str
    includes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Database:
    """The database the service uses, and whether it reads DATABASE_URL."""

    kind: str
    source: str
    driver: str | None = None
    driver_extra: str | None = None
    url_scheme: str = "postgresql"
    reads_url: Found[bool] = Found(False)


@dataclass(frozen=True)
class ProjectScan:
    """Everything ``bluegreen init`` detected in one project."""

    root: Path
    metadata: Metadata
    dependencies: tuple[Dependency, ...]
    application: Application
    server: Server
    migrations: Migrations
    health_routes: tuple[Found[str], ...]
    database: Database
    lock_files: tuple[str, ...]
    static_root: Found[str | None]
    django_settings: Found[str | None]
    production_settings: Found[str | None]
    environment: tuple[Found[str], ...]
    names_version: Found[bool]
    notes: tuple[str, ...] = ()

    @property
    def secrets(self) -> tuple[Found[str], ...]:
        return tuple(found for found in self.environment if SECRET_NAME.search(found.value))

    @property
    def plain_environment(self) -> tuple[Found[str], ...]:
        return tuple(found for found in self.environment if not SECRET_NAME.search(found.value))


# --- the project's own description ---------------------------------------------------


def service_name_for(text: str) -> str:
    """``text`` as a service name: lower case letters, digits, - and _, a letter first."""
    name = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")
    return name if SERVICE_NAME.fullmatch(name) else f"service-{name}".rstrip("-")


def pyproject_table(root: Path) -> dict[str, Any]:
    """pyproject.toml as a table; empty when the project has none (or it is not TOML)."""
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


def setup_cfg(root: Path) -> configparser.ConfigParser:
    config = configparser.ConfigParser(interpolation=None)
    path = root / "setup.cfg"
    if path.is_file():
        try:
            config.read(path, encoding="utf-8")
        except configparser.Error:
            return configparser.ConfigParser(interpolation=None)
    return config


def setup_py_name(root: Path) -> Found[str | None]:
    """The literal ``name=`` of setup.py's setup() call, if it has one."""
    tree = _parsed(root / "setup.py")
    for node in ast.walk(tree) if tree else ():
        if isinstance(node, ast.Call) and _called_name(node) == "setup":
            for keyword in node.keywords:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    return Found(str(keyword.value.value), f"setup.py:{node.lineno} (name)")
    return Found(None)


def project_metadata(root: Path) -> Metadata:
    """Name, version and Requires-Python from pyproject.toml ([project], else
    [tool.poetry]), setup.cfg or setup.py; else the directory's name."""
    table = pyproject_table(root)
    project = table.get("project") if isinstance(table.get("project"), dict) else {}
    poetry = table.get("tool", {}).get("poetry") or {}
    cfg = setup_cfg(root)
    includes = table.get("tool", {}).get("bluegreen", {}).get("include") or []
    scripts = project.get("scripts") or poetry.get("scripts") or {}
    common = {
        "package": is_package(root),
        "scripts": {str(k): str(v) for k, v in scripts.items()},
        "includes": tuple(str(path) for path in includes if isinstance(path, str)),
    }
    if isinstance(project.get("name"), str):
        dynamic = project.get("dynamic") or []
        version = project.get("version") if "version" not in dynamic else None
        return Metadata(
            Found(project["name"], "pyproject.toml [project] name"),
            _found_text(version, "pyproject.toml [project] version"),
            _found_text(project.get("requires-python"), "pyproject.toml [project] requires-python"),
            **common,
        )
    if isinstance(poetry.get("name"), str):
        python = (poetry.get("dependencies") or {}).get("python")
        return Metadata(
            Found(poetry["name"], "pyproject.toml [tool.poetry] name"),
            _found_text(poetry.get("version"), "pyproject.toml [tool.poetry] version"),
            _found_text(_poetry_python(python), "pyproject.toml [tool.poetry.dependencies] python"),
            **common,
        )
    if cfg.has_option("metadata", "name"):
        return Metadata(
            Found(cfg.get("metadata", "name"), "setup.cfg [metadata] name"),
            _found_text(
                cfg.get("metadata", "version", fallback=None), "setup.cfg [metadata] version"
            ),
            _found_text(
                cfg.get("options", "python_requires", fallback=None),
                "setup.cfg [options] python_requires",
            ),
            **common,
        )
    from_setup = setup_py_name(root)
    if from_setup.value:
        return Metadata(
            Found(from_setup.value, from_setup.source), Found(None), Found(None), **common
        )
    return Metadata(
        Found(root.resolve().name, "the directory's name"), Found(None), Found(None), **common
    )


def is_package(root: Path) -> bool:
    """Whether `bluegreen build` makes a wheel of the project (as build.checked_project
    decides) rather than a tree of its files (requirements.txt only)."""
    pyproject = root / "pyproject.toml"
    table = pyproject_table(root)
    has_setup = (root / "setup.py").is_file() or (root / "setup.cfg").is_file()
    has_requirements = (root / "requirements.txt").is_file()
    declares = "project" in table or "build-system" in table
    return declares or has_setup or (pyproject.is_file() and not has_requirements)


def hosts_python_problem(requires_python: str | None) -> str | None:
    """Why the hosts' default Python (Debian 12's) cannot run the project, if it cannot."""
    return python_requirement_problem(requires_python, DEFAULT_PYTHON_VERSION)


# --- dependencies and lock files -----------------------------------------------------


def declared_dependencies(root: Path) -> list[Dependency]:
    """Every requirement the project declares: pyproject.toml ([project] and its extras,
    [tool.poetry]), setup.cfg, and requirements*.txt (a dev or test file as an extra)."""
    table = pyproject_table(root)
    found: list[Dependency] = []
    project = table.get("project") if isinstance(table.get("project"), dict) else {}
    found += _requirements(
        project.get("dependencies") or [], "pyproject.toml [project] dependencies"
    )
    for extra, items in (project.get("optional-dependencies") or {}).items():
        where = f"pyproject.toml [project.optional-dependencies] {extra}"
        found += _requirements(items, where, extra)
    poetry = (table.get("tool", {}).get("poetry") or {}).get("dependencies") or {}
    found += [
        Dependency(canonicalize_name(name), name, "pyproject.toml [tool.poetry.dependencies]")
        for name in poetry
        if name.lower() != "python"
    ]
    cfg = setup_cfg(root)
    found += _requirements(
        cfg.get("options", "install_requires", fallback="").splitlines(),
        "setup.cfg [options] install_requires",
    )
    for path in requirements_files(root):
        extra = (
            path.stem if _DEV_REQUIREMENTS.search(path.stem.replace("requirements", "")) else None
        )
        found += _requirement_lines(root, path, extra)
    return found


def requirements_files(root: Path) -> list[Path]:
    """requirements*.txt at the top, and the .txt files of a requirements/ folder."""
    files = sorted(root.glob("requirements*.txt")) + sorted(root.glob("requirements/*.txt"))
    return [path for path in files if path.is_file()]


def lock_files(root: Path) -> list[str]:
    """The lock and requirements files that decide the versions a build ships."""
    locks = [name for name in LOCK_FILES if (root / name).is_file()]
    locks += sorted(p.name for p in root.glob("pylock.*.toml") if p.is_file())
    return locks + [path.relative_to(root).as_posix() for path in requirements_files(root)]


def runtime_dependency(dependencies: Iterable[Dependency], name: str) -> Dependency | None:
    """The requirement on ``name`` that a build installs (not an extra or a dev file)."""
    return next((d for d in dependencies if d.name == name and d.extra is None), None)


def any_dependency(dependencies: Iterable[Dependency], name: str) -> Dependency | None:
    return runtime_dependency(dependencies, name) or next(
        (d for d in dependencies if d.name == name), None
    )


# --- sources --------------------------------------------------------------------------


def python_modules(root: Path) -> list[Module]:
    """The project's Python sources that parse, in a stable order; virtualenvs, caches,
    tests and migrations left out."""
    modules: list[Module] = []
    for path in _python_files(root):
        tree = _parsed(path)
        if tree is not None:
            relative = path.relative_to(root).as_posix()
            modules.append(Module(relative, dotted_name(root, path), tree))
    return modules


def dotted_name(root: Path, path: Path) -> str:
    """The module name a file imports as from the project root (a src/ layout followed)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[0] == "src" and not (root / "src" / "__init__.py").is_file():
        parts = parts[1:]
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def application(root: Path, modules: Sequence[Module]) -> Application:
    """The application object to serve: Django's WSGI application, a module-level app
    built by a factory, an app object, a factory, or a bare ASGI callable."""
    manage = django_manage(modules)
    if manage is not None:
        return django_application(root, modules, manage)
    candidates = sorted(app_candidates(modules), key=lambda found: found[0])
    if candidates:
        return candidates[0][1]
    return Application("", WSGI_INTERFACE, Found(None))


def django_manage(modules: Sequence[Module]) -> Module | None:
    """Django's manage.py: at the project's top, else a package's ``manage`` module that
    sets DJANGO_SETTINGS_MODULE (installed as a console script in its place)."""
    top = [m for m in modules if m.dotted == "manage" and "/" not in m.path]
    nested = [
        m
        for m in modules
        if m.dotted.endswith(".manage") and django_settings_module(m).value is not None
    ]
    return (top or nested or [None])[0]


def django_settings_module(manage: Module | None) -> Found[str | None]:
    """The settings module manage.py defaults DJANGO_SETTINGS_MODULE to."""
    for node in ast.walk(manage.tree) if manage else ():
        if (
            isinstance(node, ast.Call)
            and _called_name(node) == "setdefault"
            and len(node.args) == 2
            and _constant(node.args[0]) == "DJANGO_SETTINGS_MODULE"
            and isinstance(_constant(node.args[1]), str)
        ):
            return Found(str(_constant(node.args[1])), f"{manage.path}:{node.lineno}")
    return Found(None)


def module_path(root: Path, dotted: str) -> Path | None:
    """The file or package folder of module ``dotted`` (at the top or under src/)."""
    for base in (root, root / "src"):
        path = base.joinpath(*dotted.split("."))
        if path.with_suffix(".py").is_file():
            return path.with_suffix(".py")
        if (path / "__init__.py").is_file():
            return path
    return None


def settings_files(root: Path, settings: str | None) -> list[Path]:
    """The files of a Django settings module: the module, or every module of its package
    when it is one of a settings/ package (base.py, production.py, ...)."""
    path = module_path(root, settings) if settings else None
    if path is None:
        return []
    if path.is_dir():
        return sorted(p for p in path.glob("*.py") if p.is_file())
    if path.parent.name == "settings" and (path.parent / "__init__.py").is_file():
        return sorted(p for p in path.parent.glob("*.py") if p.is_file())
    return [path]


def production_settings(root: Path, settings: Found[str | None]) -> Found[str | None]:
    """A production settings module beside a development one that manage.py defaults to."""
    if not settings.value or "." not in settings.value:
        return Found(None)
    package, leaf = settings.value.rsplit(".", 1)
    if leaf not in DEV_SETTINGS:
        return Found(None)
    for name in PRODUCTION_SETTINGS:
        path = module_path(root, f"{package}.{name}")
        if path is not None:
            return Found(f"{package}.{name}", path.relative_to(root).as_posix())
    return Found(None)


def django_application(root: Path, modules: Sequence[Module], manage: Module) -> Application:
    """Django's WSGI application: WSGI_APPLICATION of the settings, else <package>.wsgi."""
    settings = django_settings_module(manage)
    for path in settings_files(root, settings.value):
        for name, value, line in _assigned_constants(_parsed(path)):
            if name == "WSGI_APPLICATION" and isinstance(value, str) and "." in value:
                module, attribute = value.rsplit(".", 1)
                where = f"{path.relative_to(root).as_posix()}:{line} (WSGI_APPLICATION)"
                return Application(DJANGO, WSGI_INTERFACE, Found(f"{module}:{attribute}", where))
    package = settings.value.split(".")[0] if settings.value else None
    wsgi = [m for m in modules if m.dotted.endswith(".wsgi") and _defines(m, "application")]
    preferred = [m for m in wsgi if package and m.dotted == f"{package}.wsgi"] or wsgi
    if preferred:
        module = preferred[0]
        return Application(
            DJANGO, WSGI_INTERFACE, Found(f"{module.dotted}:application", module.path)
        )
    return Application(DJANGO, WSGI_INTERFACE, Found(None))


def app_candidates(modules: Sequence[Module]) -> list[tuple[int, Application]]:
    """Application objects with a rank (lower is better): a module-level app built by a
    factory (a wsgi.py / asgi.py of the project), an app object, a factory, a bare ASGI
    callable."""
    found: list[tuple[int, Application]] = []
    factories: dict[str, tuple[str, str]] = {}
    for module in modules:
        classes = _imported_app_classes(module.tree)
        for node in module.tree.body:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                kind = _constructed(node.value, classes)
                name = _assigned_name(node)
                if kind and name:
                    where = f"{module.path}:{node.lineno}"
                    found.append((2, Application(*kind, Found(f"{module.dotted}:{name}", where))))
            elif isinstance(node, ast.FunctionDef):
                kind = next((k for n in ast.walk(node) if (k := _constructed(n, classes))), None)
                if kind:
                    factories[node.name] = kind
                    where = f"{module.path}:{node.lineno}"
                    target = Found(f"{module.dotted}:{node.name}", where)
                    found.append((3, Application(*kind, target, factory=True)))
            elif isinstance(node, ast.AsyncFunctionDef) and _is_asgi_callable(node):
                where = f"{module.path}:{node.lineno}"
                target = Found(f"{module.dotted}:{node.name}", where)
                found.append((4, Application(ASGI, ASGI_INTERFACE, target)))
    for module in modules:
        for node in module.tree.body:
            if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Call):
                kind = factories.get(_called_name(node.value) or "")
                name = _assigned_name(node)
                if kind and name:
                    rank = 0 if module.dotted.rsplit(".", 1)[-1] in ("wsgi", "asgi") else 1
                    where = f"{module.path}:{node.lineno}"
                    found.append(
                        (rank, Application(*kind, Found(f"{module.dotted}:{name}", where)))
                    )
    return found


# --- server ---------------------------------------------------------------------------


def server(root: Path, dependencies: Sequence[Dependency], interface: str) -> Server:
    """The first server the project installs that serves its interface; else the one
    `bluegreen build --with` should add."""
    for name in SERVERS[interface]:
        dependency = runtime_dependency(dependencies, name)
        if dependency is not None:
            socket = _admits_control_socket(root, dependency)
            return Server(name, dependency.source, missing=False, control_socket=socket)
    name = DEFAULT_SERVERS[interface]
    return Server(name, "", missing=True, control_socket=True, hint=server_hint(root, name))


def server_hint(root: Path, name: str) -> str:
    """Where the project installs ``name`` outside its requirements (a Dockerfile's pip
    install, an extra), said so that `--with` is no surprise."""
    dockerfile = root / "Dockerfile"
    if dockerfile.is_file():
        for number, line in enumerate(dockerfile.read_text(errors="replace").splitlines(), 1):
            if "pip install" in line and re.search(rf"\b{re.escape(name)}\b", line):
                return f"the Dockerfile installs it beside the requirements (Dockerfile:{number})"
    return ""


def start_command(application: Application, server: Server, fallback_target: str) -> str:
    """The command that starts one colour: the server on the colour's port (${PORT}) at
    bluegreen_service_bind_address, serving the application."""
    target = application.target.value or fallback_target
    bind = "{{ bluegreen_service_bind_address }}"
    if server.name == "gunicorn":
        entry = shlex.quote(f"{target}()") if application.factory else target
        socket = " --no-control-socket" if server.control_socket else ""
        return f"gunicorn --bind {bind}:${{PORT}} --workers 2{socket} --access-logfile - {entry}"
    if server.name == "uvicorn":
        factory = " --factory" if application.factory else ""
        return f"uvicorn --host {bind} --port ${{PORT}} --workers 2{factory} {target}"
    if server.name == "hypercorn":
        entry = shlex.quote(f"{target}()") if application.factory else target
        return f"hypercorn --bind {bind}:${{PORT}} --workers 2 --access-logfile - {entry}"
    factory = " --call" if application.factory else ""
    return f"waitress-serve --listen={bind}:${{PORT}}{factory} {target}"


# --- migrations -----------------------------------------------------------------------


def migrations(
    root: Path,
    metadata: Metadata,
    dependencies: Sequence[Dependency],
    application: Application,
    modules: Sequence[Module],
) -> Migrations:
    """Django's manage.py, a migration console script of an Alembic project, Flask-Migrate's
    migrations/ with flask, Alembic's alembic.ini, or none; a package's build carries the
    files the command needs (--include)."""
    manage = django_manage(modules)
    if manage is not None:
        return django_migrations(metadata, manage)
    script = migration_script(metadata, dependencies)
    if script is not None:
        return script
    flask_migrate = runtime_dependency(dependencies, "flask-migrate")
    env_py = _migrations_env(root)
    if flask_migrate is not None and env_py is not None:
        return flask_migrations(root, metadata, application, modules, env_py)
    if (root / "alembic.ini").is_file():
        return alembic_migrations(root, metadata)
    nested = _files_named(root, "alembic.ini")
    if nested:
        where = nested[0].relative_to(root).as_posix()
        note = (
            f"{where} is not at the project's top: check that `alembic -c {where}` runs from "
            "the release's root."
        )
        return Migrations("alembic", f"alembic -c {where}", where, notes=(note,))
    return Migrations("", "", "")


def django_migrations(metadata: Metadata, manage: Module) -> Migrations:
    """The console script a package installs in manage.py's place, manage.py at the
    release's root, or the manage module run with python -m."""
    script = next(
        (
            name
            for name, target in metadata.scripts.items()
            if target.split(":", 1)[0].strip() == manage.dotted
        ),
        None,
    )
    if script:
        return Migrations(DJANGO, script, f"pyproject.toml [project.scripts] {script}")
    if manage.dotted == "manage":
        carried = metadata.package and "manage.py" not in metadata.includes
        return Migrations(
            DJANGO, "python manage.py", "manage.py", ("manage.py",) if carried else ()
        )
    return Migrations(DJANGO, f"python -m {manage.dotted}", manage.path)


def migration_script(metadata: Metadata, dependencies: Sequence[Dependency]) -> Migrations | None:
    """A console script of an Alembic project that migrates (sampleapp-migrate): a wrapper
    the team wrote, which knows its alembic.ini inside the installed package."""
    if runtime_dependency(dependencies, "alembic") is None:
        return None
    for name in metadata.scripts:
        if "migrat" in name.lower():
            return Migrations("alembic", name, f"pyproject.toml [project.scripts] {name}")
    return None


def flask_migrations(
    root: Path,
    metadata: Metadata,
    application: Application,
    modules: Sequence[Module],
    env_py: Path,
) -> Migrations:
    """Flask-Migrate's `flask --app MODULE db`, the alembic wrapper migration_runner drives."""
    folder = env_py.parent.relative_to(root).as_posix()
    target = application.target.value or ""
    module, _, attribute = target.partition(":")
    app = module if attribute in ("app", "application", "create_app", "make_app") else target
    command = f"flask --app {app or 'CHANGE-ME'} db"
    notes: list[str] = []
    includes: tuple[str, ...] = ()
    if folder == "migrations":
        if metadata.package and folder not in metadata.includes:
            includes = (folder,)
    else:
        notes.append(
            f"the migrations are in {folder}: Flask-Migrate looks for the directory given to "
            "Migrate(app, db, directory=...), by default migrations/ in the working directory "
            "(the release's root)."
        )
    notes += self_upgrades(modules)
    where = f"{folder}/env.py (Flask-Migrate)"
    return Migrations("alembic", command, where, includes, tuple(notes))


def alembic_migrations(root: Path, metadata: Metadata) -> Migrations:
    """`alembic -c alembic.ini`; a package's build carries alembic.ini and its scripts."""
    location = alembic_script_location(root / "alembic.ini")
    includes = [name for name in ("alembic.ini", location.value) if name]
    top_level = [name for name in includes if "/" not in name.rstrip("/")]
    carried = tuple(name for name in top_level if name not in metadata.includes)
    where = location.source or "alembic.ini"
    return Migrations(
        "alembic", "alembic -c alembic.ini", where, carried if metadata.package else ()
    )


def alembic_script_location(ini: Path) -> Found[str | None]:
    """[alembic] script_location, relative to the project (``%(here)s`` resolved)."""
    text = ini.read_text(encoding="utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), 1):
        match = re.match(r"\s*script_location\s*[=:]\s*(\S.*?)\s*$", line)
        if match:
            location = match.group(1).replace("%(here)s/", "").replace("%(here)s", ".")
            return Found(location.removeprefix("./"), f"alembic.ini:{number} (script_location)")
    return Found(None)


def self_upgrades(modules: Sequence[Module]) -> list[str]:
    """Where the application runs Flask-Migrate's upgrade() itself (at every start)."""
    notes = []
    for module in modules:
        if "upgrade" not in _names_imported_from(module.tree, "flask_migrate"):
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Call) and _called_name(node) == "upgrade":
                notes.append(
                    f"{module.path}:{node.lineno} runs Flask-Migrate's upgrade() when the "
                    "application starts: every worker migrates, unlocked and unchecked, before "
                    "bluegreen's migration step can plan anything; start an application that "
                    "leaves it out (see examples/third-party/ihatemoney/README.md)."
                )
                break
    return notes


# --- routes, database, settings ---------------------------------------------------------


def health_routes(modules: Sequence[Module]) -> list[Found[str]]:
    """Routes that look like health checks (route decorators, urlpatterns, add_url_rule),
    preferred first, each path as written (a Django path gets its leading /)."""
    found: list[tuple[int, Found[str]]] = []
    seen: set[str] = set()
    for module in modules:
        for node in ast.walk(module.tree):
            path = _route_path(node)
            if path is None:
                continue
            key = path.strip("/").lower()
            if key in HEALTH_PATHS and path not in seen:
                seen.add(path)
                found.append((HEALTH_PATHS.index(key), Found(path, f"{module.path}:{node.lineno}")))
    return [route for _, route in sorted(found, key=lambda item: item[0])]


def database(
    root: Path, dependencies: Sequence[Dependency], modules: Sequence[Module], framework: str
) -> Database:
    """PostgreSQL from a driver the project installs (or offers in an extra), else SQLite
    from its settings or sources; and whether it reads DATABASE_URL."""
    reads = database_url_reader(dependencies, modules)
    for name in POSTGRESQL_DRIVERS:
        dependency = runtime_dependency(dependencies, name)
        if dependency is not None:
            scheme = _url_scheme(name, dependencies, framework)
            return Database("postgresql", dependency.source, name, None, scheme, reads)
    for name in POSTGRESQL_DRIVERS:
        dependency = any_dependency(dependencies, name)
        if dependency is not None:
            scheme = _url_scheme(name, dependencies, framework)
            return Database("postgresql", dependency.source, name, dependency.extra, scheme, reads)
    sqlite = sqlite_use(modules)
    if sqlite is not None:
        return Database("sqlite", sqlite, reads_url=reads)
    return Database("", "", reads_url=reads)


def database_url_reader(
    dependencies: Sequence[Dependency], modules: Sequence[Module]
) -> Found[bool]:
    """Where the service reads its database URL from DATABASE_URL, if it does."""
    for module in modules:
        for node in ast.walk(module.tree):
            if _constant(node) == "DATABASE_URL":
                return Found(True, f"{module.path}:{node.lineno}")
    for name in ("dj-database-url", "django-environ", "environs"):
        dependency = runtime_dependency(dependencies, name)
        if dependency is not None:
            return Found(True, f"{dependency.source} ({name})")
    return Found(False)


def sqlite_use(modules: Sequence[Module]) -> str | None:
    """Where a source names SQLite (Django's sqlite3 backend, a sqlite:// URL)."""
    for module in modules:
        for node in ast.walk(module.tree):
            value = _constant(node)
            if isinstance(value, str) and (
                value == "django.db.backends.sqlite3" or value.startswith("sqlite:")
            ):
                return f"{module.path}:{node.lineno}"
    return None


def static_root(root: Path, settings: str | None) -> Found[str | None]:
    """Django's STATIC_ROOT, where collectstatic gathers the static files."""
    for path in settings_files(root, settings):
        tree = _parsed(path)
        for node in tree.body if tree else ():
            if isinstance(node, ast.Assign) and _assigned_name(node) == "STATIC_ROOT":
                where = f"{path.relative_to(root).as_posix()}:{node.lineno}"
                return Found(ast.unparse(node.value), where)
    return Found(None)


def environment_variables(modules: Sequence[Module]) -> list[Found[str]]:
    """Environment variables the sources read (os.environ[...], .get, os.getenv), each
    once, where first read; those bluegreen sets itself left out."""
    found: dict[str, Found[str]] = {}
    for module in modules:
        from_os = _names_imported_from(module.tree, "os")
        for node in ast.walk(module.tree):
            name = _environment_read(node, from_os)
            if name and name not in ENV_SET_BY_BLUEGREEN and name not in found:
                found[name] = Found(name, f"{module.path}:{node.lineno}")
    return list(found.values())


def version_header_named(modules: Sequence[Module]) -> Found[bool]:
    """Where the service names its version to bluegreen (X-Bluegreen-Version, or the
    BLUEGREEN_VERSION that systemd hands it)."""
    for module in modules:
        for node in ast.walk(module.tree):
            value = _constant(node)
            if isinstance(value, str) and value.lower() in (
                "x-bluegreen-version",
                "bluegreen_version",
            ):
                return Found(True, f"{module.path}:{node.lineno}")
    return Found(False)


# --- the whole scan and the build command ------------------------------------------------


def scan_project(root: Path, name: str | None = None) -> ProjectScan:
    """Everything ``bluegreen init`` writes an inventory from; ``name`` overrides the
    service name the project gives itself."""
    metadata = project_metadata(root)
    if name is not None:
        metadata = Metadata(
            Found(name, "--name"),
            metadata.version,
            metadata.requires_python,
            metadata.package,
            metadata.scripts,
            metadata.includes,
        )
    dependencies = declared_dependencies(root)
    modules = python_modules(root)
    app = application(root, modules)
    settings = django_settings_module(django_manage(modules))
    notes: list[str] = []
    problem = hosts_python_problem(metadata.requires_python.value)
    if problem:
        notes.append(
            f"{problem} (Debian 12's python3): build and release for hosts that have it "
            "(bluegreen build --python-version X.Y.Z)."
        )
    if not metadata.package and not requirements_files(root):
        notes.append(
            "no pyproject.toml, setup.py or requirements.txt: bluegreen build needs one of "
            "them to know what to install."
        )
    locks = [lock for lock in LOCK_FILES if (root / lock).is_file()]
    if len(locks) > 1:
        notes.append(
            f"{' and '.join(locks)}: bluegreen build keeps to one lock file; remove the one "
            "the project no longer updates."
        )
    return ProjectScan(
        root=root,
        metadata=metadata,
        dependencies=tuple(dependencies),
        application=app,
        server=server(root, dependencies, app.interface),
        migrations=migrations(root, metadata, dependencies, app, modules),
        health_routes=tuple(health_routes(modules)),
        database=database(root, dependencies, modules, app.framework),
        lock_files=tuple(lock_files(root)),
        static_root=static_root(root, settings.value),
        django_settings=settings,
        production_settings=production_settings(root, settings),
        environment=tuple(environment_variables(modules)),
        names_version=version_header_named(modules),
        notes=tuple(notes),
    )


def service_name(scan: ProjectScan) -> str:
    return service_name_for(scan.metadata.name.value)


def build_command(scan: ProjectScan, shown_path: str) -> str:
    """The exact `bluegreen build` that makes this service's artifact."""
    words = ["bluegreen", "build", shlex.quote(shown_path)]
    if not scan.metadata.package:
        words += ["--name", service_name(scan), "--version", release_version(scan)]
    if scan.server.missing:
        words += ["--with", scan.server.name]
    if scan.database.driver_extra is not None and scan.database.driver:
        words += ["--with", scan.database.driver]
    for path in scan.migrations.includes:
        words += ["--include", path]
    return " ".join(words)


def release_version(scan: ProjectScan) -> str:
    """The version of the first artifact: the project's own, 1.0.0 for a requirements-only
    project (the build's --version), else a placeholder (a package computes its own)."""
    if scan.metadata.version.value:
        return scan.metadata.version.value
    return "X.Y.Z" if scan.metadata.package else "1.0.0"


# --- helpers ------------------------------------------------------------------------------


def _found_text(value: Any, source: str) -> Found[str | None]:
    return Found(value, source) if isinstance(value, str) and value else Found(None)


def _poetry_python(value: Any) -> str | None:
    """Poetry's python constraint as a specifier (^3.11 -> >=3.11,<4)."""
    if isinstance(value, dict):
        value = value.get("version")
    if not isinstance(value, str):
        return None
    caret = re.fullmatch(r"\^(\d+)\.(\d+)(?:\.\d+)?", value.strip())
    if caret:
        return f">={caret.group(1)}.{caret.group(2)},<{int(caret.group(1)) + 1}"
    return value


def _requirements(items: Iterable[Any], source: str, extra: str | None = None) -> list[Dependency]:
    found = []
    for item in items:
        text = str(item).split("#", 1)[0].strip()
        if not text:
            continue
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        found.append(Dependency(canonicalize_name(requirement.name), text, source, extra))
    return found


def _requirement_lines(root: Path, path: Path, extra: str | None) -> list[Dependency]:
    """The requirements of a requirements file, each with its line (options such as -r,
    -e and --hash lines left out)."""
    found = []
    relative = path.relative_to(root).as_posix()
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.lstrip().startswith("-"):
            found += _requirements([line], f"{relative}:{number}", extra)
    return found


def _admits_control_socket(root: Path, dependency: Dependency) -> bool:
    """Whether the gunicorn a build installs has --no-control-socket (27 and later): the
    locked version when a lock file pins it, else the newest the requirement allows."""
    if dependency.name != "gunicorn":
        return False
    for lock in LOCK_FILES:
        if (root / lock).is_file():
            try:
                pins = locked_pins(root / lock)
            except ProjectError:
                continue
            for pin in pins:
                if canonicalize_name(pin.name) == "gunicorn":
                    try:
                        return Version(pin.version) >= GUNICORN_CONTROL_SOCKET
                    except InvalidVersion:
                        return False
    try:
        specifier = Requirement(dependency.requirement).specifier
    except InvalidRequirement:
        return False
    return _allows_at_least(specifier, GUNICORN_CONTROL_SOCKET)


def _allows_at_least(specifier: SpecifierSet, version: Version) -> bool:
    """Whether ``specifier`` admits ``version`` or a later release: the versions it names,
    and a few later ones, are tried."""
    named = []
    for spec in specifier:
        try:
            named.append(Version(spec.version.removesuffix(".*")))
        except InvalidVersion:
            continue
    later = [Version(f"{version.major + n}.{minor}") for n in range(5) for minor in range(5)]
    return any(probe >= version and specifier.contains(probe) for probe in [*named, *later])


def _url_scheme(driver: str, dependencies: Sequence[Dependency], framework: str) -> str:
    """SQLAlchemy picks its driver from the URL's scheme; Django and psycopg2 take postgresql."""
    uses_sqlalchemy = any(
        d.name in ("sqlalchemy", "flask-sqlalchemy", "sqlmodel") for d in dependencies
    )
    if framework == DJANGO or not uses_sqlalchemy:
        return "postgresql"
    if driver.startswith("psycopg2"):
        return "postgresql"
    return "postgresql+asyncpg" if driver == "asyncpg" else "postgresql+psycopg"


def _project_files(root: Path, skipped: frozenset[str] = _SKIPPED_DIRS) -> Iterator[Path]:
    """The project's files in a stable order, without hidden folders, virtualenvs (any
    folder with pyvenv.cfg) and the ``skipped`` folders."""
    for directory, dirnames, filenames in os.walk(root):
        here = Path(directory)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in skipped and not d.startswith(".") and not (here / d / "pyvenv.cfg").exists()
        )
        for filename in sorted(filenames):
            if (here / filename).is_file():
                yield here / filename


def _python_files(root: Path) -> Iterator[Path]:
    for path in _project_files(root):
        name = path.name
        if (
            name.endswith(".py")
            and not name.startswith("test_")
            and not name.endswith("_test.py")
            and name != "conftest.py"
            and path.stat().st_size <= _MAX_SOURCE_BYTES
        ):
            yield path


def _files_named(root: Path, name: str) -> list[Path]:
    """Files called ``name`` below the project's top, migrations/ folders included."""
    skipped = _SKIPPED_DIRS - {"migrations"}
    return [p for p in _project_files(root, skipped) if p.name == name and p.parent != root]


def _migrations_env(root: Path) -> Path | None:
    """The env.py of a Flask-Migrate (Alembic) migrations/ folder: at the top, else in a
    package (src/ layouts included)."""
    top = root / "migrations" / "env.py"
    if top.is_file():
        return top
    nested = [p for p in _files_named(root, "env.py") if p.parent.name == "migrations"]
    return nested[0] if nested else None


def _parsed(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None


def _constant(node: ast.AST) -> Any:
    return node.value if isinstance(node, ast.Constant) else None


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _assigned_name(node: ast.Assign | ast.AnnAssign) -> str | None:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    if len(targets) == 1 and isinstance(targets[0], ast.Name):
        return targets[0].id
    return None


def _assigned_constants(tree: ast.Module | None) -> Iterator[tuple[str, Any, int]]:
    for node in tree.body if tree else ():
        if isinstance(node, ast.Assign) and (name := _assigned_name(node)):
            yield name, _constant(node.value), node.lineno


def _defines(module: Module, name: str) -> bool:
    return any(
        isinstance(node, ast.Assign) and _assigned_name(node) == name for node in module.tree.body
    )


def _names_imported_from(tree: ast.Module, package: str) -> set[str]:
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == package
        for alias in node.names
    }


def _imported_app_classes(tree: ast.Module) -> dict[str, tuple[str, str]]:
    """Names under which ``tree`` can call an application class: ``Flask`` after
    ``from flask import Flask``, ``flask.Flask`` after ``import flask``."""
    names: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                kind = APP_CLASSES.get((node.module, alias.name))
                if kind:
                    names[alias.asname or alias.name] = kind
        elif isinstance(node, ast.Import):
            for alias in node.names:
                for (package, cls), kind in APP_CLASSES.items():
                    if alias.name == package:
                        names[f"{alias.asname or package}.{cls}"] = kind
    return names


def _constructed(
    node: ast.AST | None, classes: Mapping[str, tuple[str, str]]
) -> tuple[str, str] | None:
    """(framework, interface) when ``node`` calls an application class."""
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    if isinstance(func, ast.Name):
        return classes.get(func.id)
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return classes.get(f"{func.value.id}.{func.attr}")
    return None


def _is_asgi_callable(node: ast.AsyncFunctionDef) -> bool:
    names = [argument.arg for argument in node.args.args]
    return names == ["scope", "receive", "send"] and node.name in ("app", "application")


def _route_path(node: ast.AST) -> str | None:
    """The path of a route declaration: @app.get("/health"), path("health/", ...),
    app.add_url_rule("/ping", ...), Route("/status", ...)."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    if _called_name(node) not in _ROUTE_CALLS:
        return None
    value = _constant(node.args[0])
    if not isinstance(value, str) or len(value) > 200:
        return None
    if _called_name(node) not in ("path", "re_path", "url"):
        # A method call such as request.args.get("status") is no route.
        return value if value.startswith("/") else None
    value = value.removeprefix("^").removesuffix("$").removesuffix("/?")
    return value if value.startswith("/") else f"/{value}"


def _environment_read(node: ast.AST, from_os: set[str]) -> str | None:
    """The variable ``node`` reads: os.environ["X"], os.environ.get("X"), os.getenv("X")
    (``environ`` and ``getenv`` also when imported from os; a WSGI ``environ`` is not)."""
    if isinstance(node, ast.Subscript) and _is_os_environ(node.value, from_os):
        value = _constant(node.slice)
        return value if isinstance(value, str) else None
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    reads = (
        isinstance(func, ast.Attribute)
        and func.attr in ("get", "setdefault")
        and _is_os_environ(func.value, from_os)
    ) or _is_os_name(func, "getenv", from_os)
    value = _constant(node.args[0])
    return value if reads and isinstance(value, str) else None


def _is_os_environ(node: ast.AST, from_os: set[str]) -> bool:
    return _is_os_name(node, "environ", from_os)


def _is_os_name(node: ast.AST, name: str, from_os: set[str]) -> bool:
    """``os.<name>``, or ``<name>`` imported from os."""
    if isinstance(node, ast.Attribute):
        return node.attr == name and isinstance(node.value, ast.Name) and node.value.id == "os"
    return isinstance(node, ast.Name) and node.id == name and name in from_os
