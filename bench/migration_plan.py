"""Migration planning time: a Wagtail site's first release and a one-migration release.

Plans the migrations of the Wagtail site that `make wagtail-artifacts` generates
(build/wagtailsite, `wagtail start` from PyPI's wagtail, about 180 migrations) with
migration_runner (state=planned), on SQLite and on PostgreSQL (a throwaway cluster this
script starts with initdb on a Unix socket), side by side with what the planner did
before: one `manage.py sqlmigrate` process per planned migration. Two plans per engine:

- first release: an empty database, every migration pending;
- one migration: every migration applied but django-taggit's last one.

With --window, also measures the SQLite maintenance window of a one-migration release
as users see it: the Django example on lab-django-single goes 1.0.0 -> 2.0.0 (one
migration) while a prober asks nginx every 20 ms; the window is the span of 503s.

Last line: one JSON object.

    .venv/bin/python bench/migration_plan.py [--skip-old] [--window]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ansible.module_utils
from ansible.module_utils.testing import patch_module_args

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "build" / "wagtailsite"
VENV = ROOT / "build" / "wagtail-venv"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
ONE_MIGRATION_APP = "taggit"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_migration_runner() -> Any:
    """library/migration_runner.py with its module_utils registered as Ansible ships them."""
    ansible.module_utils.__path__.append(str(ROOT / "module_utils"))
    sys.path.insert(0, str(ROOT / "library"))
    import migration_runner

    return migration_runner


def settings_module(directory: Path, url: str) -> None:
    """The deployment's settings module, as examples/third-party/wagtailsite/inventory-vars.yml
    writes it."""
    if url.startswith("sqlite"):
        database = (
            f'{{"ENGINE": "django.db.backends.sqlite3", "NAME": "{url[len("sqlite:///") :]}"}}'
        )
    else:
        database = (
            '{"ENGINE": "django.db.backends.postgresql", "NAME": "wagtail", '
            f'"HOST": "{url}", "USER": "postgres"}}'
        )
    (directory / "bench_settings.py").write_text(
        "from wagtailsite.settings.production import *  # noqa\n"
        "SECRET_KEY = 'bench'\nALLOWED_HOSTS = ['*']\n"
        f"DATABASES = {{'default': {database}}}\n"
    )


def environment(directory: Path, url: str) -> dict[str, str]:
    return {
        "PATH": f"{VENV}/bin:/usr/bin:/bin",
        "PYTHONPATH": str(directory),
        "DJANGO_SETTINGS_MODULE": "bench_settings",
        "DATABASE_URL": url if url.startswith("sqlite") else "postgresql:///wagtail",
    }


def manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV / "bin" / "python"), "manage.py", *args],
        cwd=SITE,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def plan_now(runner: Any, env_file: Path) -> tuple[float, dict[str, Any]]:
    """Seconds migration_runner takes to plan, and its result."""
    args = {
        "name": "wagtailsite",
        "tool": "django",
        "chdir": str(SITE),
        "command": [str(VENV / "bin" / "python"), "manage.py"],
        "env_file": str(env_file),
        "state": "planned",
    }
    out = io.StringIO()
    started = time.monotonic()
    with (
        patch_module_args(args),
        contextlib.redirect_stdout(out),
        contextlib.suppress(SystemExit),
    ):
        runner.main()
    elapsed = time.monotonic() - started
    return elapsed, json.loads(out.getvalue())


def plan_before(result: dict[str, Any], env: dict[str, str]) -> tuple[float, int]:
    """Seconds the former planner spent: one sqlmigrate process per planned migration
    (the helper process it also ran is not counted), and how many could not render."""
    started = time.monotonic()
    failed = 0
    for item in result["pending"]:
        app, name = item["revision"].split(".", 1)
        failed += manage(["sqlmigrate", app, name], env).returncode != 0
    return time.monotonic() - started, failed


@contextlib.contextmanager
def postgresql() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a Unix socket; yields the socket directory."""
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        data, socket = Path(tmp) / "data", Path(tmp)
        run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if run_as:
            shutil.chown(tmp, "postgres")
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": True}
        subprocess.run([*run_as, PG_BIN / "initdb", "-D", data, "-A", "trust"], **quiet)
        # The server's output goes to a log file: a pipe would be held open by it.
        options = f"-k {socket} -c listen_addresses='' -c fsync=off"
        subprocess.run(
            [
                *run_as,
                PG_BIN / "pg_ctl",
                "-D",
                data,
                "-l",
                Path(tmp) / "log",
                "-w",
                "-o",
                options,
                "start",
            ],
            **quiet,
        )
        try:
            yield str(socket)
        finally:
            subprocess.run(
                [*run_as, PG_BIN / "pg_ctl", "-D", data, "-m", "fast", "stop"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )


def fresh_postgresql_database(socket: str) -> None:
    for sql in ("DROP DATABASE IF EXISTS wagtail", "CREATE DATABASE wagtail"):
        subprocess.run(
            ["psql", "-h", socket, "-U", "postgres", "-c", sql], check=True, capture_output=True
        )


def measure_engine(
    runner: Any, engine: str, url: str, workdir: Path, skip_old: bool, reset: Any
) -> dict[str, Any]:
    settings_module(workdir, url)
    env = environment(workdir, url)
    env_file = workdir / "bench.env"
    env_file.write_text("".join(f'{k}="{v}"\n' for k, v in env.items() if k != "PATH"))
    figures: dict[str, Any] = {}

    reset()
    seconds, result = plan_now(runner, env_file)
    assert not result.get("failed"), result.get("msg")
    figures["first_release"] = {
        "pending": len(result["pending"]),
        "refused": result.get("refusal") is not None,
        "plan_s": round(seconds, 2),
    }
    log(f"{engine}: first release, {len(result['pending'])} migrations planned in {seconds:.1f} s")
    if not skip_old:
        before, failed = plan_before(result, env)
        figures["first_release"] |= {"before_s": round(before, 1), "before_unrendered": failed}
        log(f"{engine}: the former planner: {before:.1f} s, {failed} could not be rendered")

    migrated = manage(["migrate", "--noinput"], env)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    leaves = manage(["showmigrations", "--plan", ONE_MIGRATION_APP], env).stdout.split()
    names = [w.split(".", 1)[1] for w in leaves if w.startswith(f"{ONE_MIGRATION_APP}.")]
    undone = manage(["migrate", "--noinput", ONE_MIGRATION_APP, names[-2]], env)
    assert undone.returncode == 0, undone.stderr[-2000:]
    seconds, result = plan_now(runner, env_file)
    figures["one_migration"] = {
        "pending": [item["revision"] for item in result["pending"]],
        "classification": [item["classification"] for item in result["pending"]],
        "plan_s": round(seconds, 2),
    }
    log(f"{engine}: one migration planned in {seconds:.1f} s: {figures['one_migration']}")
    if not skip_old:
        before, _ = plan_before(result, env)
        figures["one_migration"]["before_s"] = round(before, 2)
    return figures


def maintenance_window() -> dict[str, Any]:
    """The 503 span users see while the Django example goes 1.0.0 -> 2.0.0 on SQLite."""
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from conftest import DJANGO_SINGLE, DJANGO_SINGLE_URL, ensure_live
    from test_django import SQLITE, schema_back_at_0001

    ensure_live("1.0.0", inventory=DJANGO_SINGLE)
    schema_back_at_0001(SQLITE)
    answers: list[tuple[float, int]] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(DJANGO_SINGLE_URL + "/", timeout=5) as response:
                    answers.append((time.time(), response.status))
            except urllib.error.HTTPError as exc:
                answers.append((time.time(), exc.code))
            except OSError:
                answers.append((time.time(), 0))
            time.sleep(0.02)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bluegreen",
            "release",
            "--version",
            "2.0.0",
            "-i",
            DJANGO_SINGLE,
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    stop.set()
    thread.join()
    unavailable = [t for t, status in answers if status == 503]
    window = (max(unavailable) - min(unavailable)) if unavailable else 0.0
    log(
        f"release exit {completed.returncode}; "
        f"{len(unavailable)} answers of 503 over {window:.1f} s"
    )
    return {
        "release_exit": completed.returncode,
        "window_s": round(window, 2),
        "answers_503": len(unavailable),
        "answers": len(answers),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-old", action="store_true", help="do not time the former planner")
    parser.add_argument(
        "--window", action="store_true", help="measure the SQLite window on the lab"
    )
    args = parser.parse_args()
    if not (SITE / "manage.py").is_file():
        print("build/wagtailsite is missing: run `make wagtail-artifacts` first", file=sys.stderr)
        return 2
    if (
        subprocess.run(
            [VENV / "bin" / "python", "-c", "import psycopg"], capture_output=True, check=False
        ).returncode
        != 0
    ):
        subprocess.run([VENV / "bin" / "pip", "install", "-q", "psycopg[binary]"], check=True)
    runner = load_migration_runner()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        workdir = Path(tmp)
        database = workdir / "wagtail.db"
        figures["sqlite"] = measure_engine(
            runner,
            "sqlite",
            f"sqlite:///{database}",
            workdir,
            args.skip_old,
            lambda: database.unlink(missing_ok=True),
        )
        with postgresql() as socket:
            figures["postgresql"] = measure_engine(
                runner,
                "postgresql",
                socket,
                workdir,
                args.skip_old,
                lambda: fresh_postgresql_database(socket),
            )
    if args.window:
        figures["sqlite_window"] = maintenance_window()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
