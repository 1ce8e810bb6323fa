"""Snapshot, verify and restore a PostgreSQL database of 1 GB or more in the lab; time each.

    .venv/bin/python bench/backup_restore.py --lab lab
    .venv/bin/python bench/backup_restore.py --lab lab --formats custom:1 directory:2:1
    .venv/bin/python bench/backup_restore.py --lab lab --formats custom:1 custom:1+age

Fills a throwaway database (``bluegreen_bench``, never the service's) on the lab's db
host with generate_series (INSERT ... SELECT in SQL, so it is fast), then for each
format:jobs runs the project's ``backup_snapshot`` module on that host, as the roles do:
``state=present verify=false`` (pg_dump), ``state=verified`` (checksums, then
``pg_restore --list`` and ``pg_restore -f /dev/null``), ``state=restored`` into a fresh
database (pg_restore with the jobs, then ANALYZE). A format ending in ``+age`` is the
same, encrypted to the inventory's ``bluegreen_backup_encrypt_to`` (the lab's own key
pair), verified and restored with its ``bluegreen_backup_identity``: pg_dump through a
pipe into age, verification decrypting every byte twice, pg_restore reading age's pipe
(one job: a pipe cannot seek). Times are the module's own
``duration_s`` (on the host, without Ansible's overhead); MB/s is the database size
over each time. Everything it created is removed at the end, also after a failure
(``--keep`` keeps the filled database, which ``--reuse`` then skips filling again).

Prints a table and, last, one JSON object: ``snapshot_s``, ``verify_s``, ``restore_s``,
``size_mb`` of the fastest format, the same of the fastest encrypted one under
``encrypted``, and every format under ``formats``. Target for 1 GB, encrypted or not:
snapshot + verify under 60 s, restore under 60 s. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from _load import BenchError, log, run_module

DATABASE = "bluegreen_bench"
DEST = "/var/backups/bluegreen-bench"
ROW_BYTES = 180  # on-disk bytes per row of the table below, heap and primary key, measured
# The inventory's keys, templated on the host by Ansible: never on a command line.
ENCRYPTION_ARGS = {"encrypt_to": "{{ bluegreen_backup_encrypt_to }}"}
IDENTITY_ARGS = {"identity": "{{ bluegreen_backup_identity }}"}
TARGET_S = 60.0


def psql(inventory: str, host: str, sql: str, database: str = "postgres") -> str:
    result = run_module(
        inventory,
        host,
        "ansible.builtin.command",
        {
            "argv": [
                "psql",
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                database,
                "-c",
                sql,
            ]
        },
        become_user="postgres",
    )
    if result.get("failed") or result.get("rc"):
        raise BenchError(f"psql on {host} failed: {result.get('stderr') or result.get('msg')}")
    return str(result.get("stdout", "")).strip()


def database_mb(inventory: str, host: str) -> float:
    size = psql(inventory, host, f"SELECT pg_database_size('{DATABASE}')")
    return int(size) / 1e6


def fill(inventory: str, host: str, size_mb: int) -> float:
    """Create and fill the bench database to about size_mb; its size in MB."""
    psql(inventory, host, f"DROP DATABASE IF EXISTS {DATABASE}")
    psql(inventory, host, f"CREATE DATABASE {DATABASE}")
    psql(
        inventory,
        host,
        "CREATE TABLE events (id bigint PRIMARY KEY, created timestamptz NOT NULL, "
        "kind int NOT NULL, payload text NOT NULL)",
        DATABASE,
    )
    rows = int(size_mb * 1e6 / ROW_BYTES)
    started = time.monotonic()
    # Batches keep each statement's transaction (and the WAL it holds) bounded.
    batch = 2_000_000
    for first in range(1, rows + 1, batch):
        last = min(rows, first + batch - 1)
        psql(
            inventory,
            host,
            "INSERT INTO events SELECT g, now() - g * interval '1 second', g % 97, "
            "md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) "
            f"FROM generate_series({first}, {last}) AS g",
            DATABASE,
        )
        log(f"  {last:,} of {rows:,} rows")
    psql(inventory, host, "VACUUM ANALYZE events", DATABASE)
    size = database_mb(inventory, host)
    log(f"filled {DATABASE}: {size:.0f} MB in {time.monotonic() - started:.0f} s")
    return size


def snapshot_module(inventory: str, host: str, args: dict) -> dict:
    result = run_module(
        inventory, host, "backup_snapshot", {"dest": DEST, **args}, become_user="postgres"
    )
    if result.get("failed"):
        raise BenchError(f"backup_snapshot {args.get('state')} failed: {result.get('msg')}")
    return result


Format = tuple[str, int, int | None, bool]


def format_name(fmt: str, jobs: int, level: int | None, encrypted: bool) -> str:
    return f"{fmt}_{jobs}_{'default' if level is None else level}" + ("_age" if encrypted else "")


def measure(
    inventory: str,
    host: str,
    fmt: str,
    jobs: int,
    level: int | None,
    encrypted: bool,
    size_mb: float,
) -> dict:
    name = format_name(fmt, jobs, level, encrypted)
    keys = IDENTITY_ARGS if encrypted else {}
    snapshot_id = f"bench-{name}"
    target = f"{DATABASE}_restored_{name}"
    dump_args = {
        "engine": "postgresql",
        "database": DATABASE,
        "pg_format": fmt,
        "jobs": jobs,
        "snapshot_id": snapshot_id,
        "verify": False,
    }
    if level is not None:
        dump_args["compress"] = level
    if encrypted:
        dump_args.update(ENCRYPTION_ARGS)
    taken = snapshot_module(inventory, host, dump_args)
    verified = snapshot_module(
        inventory, host, {"state": "verified", "snapshot_id": snapshot_id, **keys}
    )
    restored = snapshot_module(
        inventory,
        host,
        {
            "state": "restored",
            "snapshot_id": snapshot_id,
            "restore_target": target,
            "jobs": jobs,
            **keys,
        },
    )
    if encrypted and not taken["manifest"].get("encryption"):
        raise BenchError(f"{snapshot_id} was not encrypted: is {inventory}'s encrypt_to empty?")
    load_1m = round(os.getloadavg()[0], 1)
    snapshot_s, verify_s, restore_s = (
        taken["duration_s"],
        verified["duration_s"],
        restored["duration_s"],
    )
    return {
        "format": fmt,
        "jobs": jobs,
        "compress": level,
        "encrypted": encrypted,
        "size_mb": round(size_mb, 1),
        "dump_mb": round(taken["size_bytes"] / 1e6, 1),
        "snapshot_s": snapshot_s,
        "verify_s": verify_s,
        "restore_s": restore_s,
        "snapshot_mb_s": round(size_mb / snapshot_s, 1),
        "verify_mb_s": round(size_mb / verify_s, 1),
        "restore_mb_s": round(size_mb / restore_s, 1),
        # The machine's load right after; the lab shares its cores with everything else.
        "load_1m": load_1m,
        "cpus": os.cpu_count(),
    }


def existing_mb(inventory: str, host: str) -> float:
    """Size of a bench database left by an earlier run with --keep; 0 when there is none."""
    found = psql(inventory, host, f"SELECT count(*) FROM pg_database WHERE datname = '{DATABASE}'")
    return database_mb(inventory, host) if found == "1" else 0.0


def clean(inventory: str, host: str, formats: list[Format], keep_filled: bool) -> None:
    for fmt, jobs, level, encrypted in formats:
        name = format_name(fmt, jobs, level, encrypted)
        try:
            psql(inventory, host, f"DROP DATABASE IF EXISTS {DATABASE}_restored_{name}")
        except BenchError as exc:
            log(f"cleanup: {exc}")
    if keep_filled:
        log(f"kept {DATABASE} for --reuse; drop it with a run without --keep")
    else:
        try:
            psql(inventory, host, f"DROP DATABASE IF EXISTS {DATABASE}")
        except BenchError as exc:
            log(f"cleanup: {exc}")
    run_module(inventory, host, "ansible.builtin.file", {"path": DEST, "state": "absent"})


def parse_formats(values: list[str]) -> list[Format]:
    """FORMAT[:JOBS[:LEVEL]][+age] each; LEVEL is pg_dump's compression, default pg_dump's
    own; +age encrypts."""
    formats = []
    for value in values:
        spec, plus, suffix = value.partition("+")
        fmt, jobs, level, *rest = [*spec.split(":"), "", ""]
        if fmt not in ("custom", "directory") or rest[0] or not (jobs or "1").isdigit():
            raise SystemExit(
                f"--formats {value!r}: give FORMAT[:JOBS[:LEVEL]][+age], e.g. custom:1 "
                "directory:2:1 custom:1+age"
            )
        if level and not (level.isdigit() and int(level) <= 9):
            raise SystemExit(f"--formats {value!r}: LEVEL is a compression level from 0 to 9")
        if plus and (suffix != "age" or fmt == "directory"):
            raise SystemExit(f"--formats {value!r}: only +age, and with the custom format")
        formats.append((fmt, int(jobs or 1), int(level) if level else None, bool(plus)))
    return formats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lab", default="lab", help="inventory of the PostgreSQL lab")
    parser.add_argument("--host", default="db1", help="the db host of the lab")
    parser.add_argument("--size-mb", type=int, default=1100, help="database size to fill")
    parser.add_argument(
        "--formats",
        nargs="+",
        default=["custom:1", "custom:1+age", "directory:2"],
        help="FORMAT[:JOBS[:LEVEL]][+age]",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="use a bench database an earlier --keep run left"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the filled database for a later --reuse"
    )
    options = parser.parse_args(argv)
    formats = parse_formats(options.formats)
    results = []
    try:
        run_module(
            options.lab,
            options.host,
            "ansible.builtin.file",
            {"path": DEST, "state": "directory", "owner": "postgres", "mode": "0700"},
        )
        size = existing_mb(options.lab, options.host) if options.reuse else 0.0
        if size >= options.size_mb * 0.95:
            log(f"reusing {DATABASE} ({size:.0f} MB) from an earlier run")
        else:
            size = fill(options.lab, options.host, options.size_mb)
        for fmt, jobs, level, encrypted in formats:
            log(
                f"{fmt} format, {jobs} job(s), compression {level or 'default'}"
                + (", encrypted (age)" if encrypted else "")
            )
            results.append(measure(options.lab, options.host, fmt, jobs, level, encrypted, size))
            log(f"  {results[-1]}")
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(json.dumps({"error": str(exc), "formats": results}))
        return 1
    finally:
        clean(options.lab, options.host, formats, keep_filled=options.keep)
    print(
        f"{'format':14} {'jobs':>4} {'level':>5} {'dump MB':>8} {'snapshot s':>10} {'verify s':>8} "
        f"{'restore s':>9} {'snap MB/s':>9} {'rest MB/s':>9}"
    )
    for r in results:
        level = "-" if r["compress"] is None else r["compress"]
        label = r["format"] + ("+age" if r["encrypted"] else "")
        print(
            f"{label:14} {r['jobs']:>4} {level:>5} {r['dump_mb']:>8} "
            f"{r['snapshot_s']:>10} {r['verify_s']:>8} {r['restore_s']:>9} "
            f"{r['snapshot_mb_s']:>9} {r['restore_mb_s']:>9}"
        )
    print(
        json.dumps(
            {**summary(results), "encrypted": summary(results, encrypted=True), "formats": results}
        )
    )
    return 0


def summary(results: list[dict], *, encrypted: bool | None = None) -> dict | None:
    """The fastest format's figures (among the encrypted ones only, with encrypted=True),
    and whether they meet the targets."""
    chosen = [r for r in results if encrypted is None or r["encrypted"] == encrypted]
    if not chosen:
        return None
    best = min(chosen, key=lambda r: r["snapshot_s"] + r["verify_s"] + r["restore_s"])
    return {
        **{key: best[key] for key in ("snapshot_s", "verify_s", "restore_s", "size_mb")},
        **{key: best[key] for key in ("format", "jobs", "compress", "encrypted")},
        "meets_target": best["snapshot_s"] + best["verify_s"] < TARGET_S
        and best["restore_s"] < TARGET_S,
    }


if __name__ == "__main__":
    sys.exit(main())
