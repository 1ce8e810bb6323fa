"""The ``bluegreen`` command: release, roll back and inspect blue/green deployments.

Exit codes (``ExitCode``), the same for every command:

======  =====================  ==========================================================
code    name                   meaning
======  =====================  ==========================================================
0       OK                     released, already live (unchanged), rollback done, status read
1       FAILED                 failed with the state unknown, or an internal error
2       USAGE                  bad usage or input (unknown inventory, invalid version, ...)
3       FAILED_BEFORE_SWITCH   the release failed before the switch; traffic never moved
4       ROLLED_BACK            the release switched, then went back to the previous colour
======  =====================  ==========================================================

The playbooks report their outcome with ``set_stats`` (``bluegreen_outcome``,
``bluegreen_message``); ``verdict()`` turns that into the exit code. A playbook that fails
without reporting an outcome exits 1 with the failing task's message.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import textwrap
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bluegreen.errors import BluegreenError, ExitCode, InputError
from bluegreen.interrupt import InterruptGuard
from bluegreen.progress import make_progress
from bluegreen.project import project_root
from bluegreen.runner import PlaybookResult, inventory_name, run_playbook
from bluegreen.settings import config_path, default_map, load_config, parse_duration
from bluegreen_module_utils.release_contract import (
    CLOSING_LABELS,
    EXIT_CODE_MEANINGS,
    OUTCOME_EXIT_CODES,
    STOPPED,
    STOPPED_EXIT_CODES,
)

# EXIT_CODE_MEANINGS and OUTCOME_EXIT_CODES are release_contract's, shared with the playbooks.
__all__ = ["EXIT_CODE_MEANINGS", "OUTCOME_EXIT_CODES", "ExitCode", "app", "main", "verdict"]

log = logging.getLogger(__name__)

DEFAULT_LABS = ["lab"]
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def verdict(command: str, result: PlaybookResult) -> tuple[ExitCode, str]:
    """The exit code and closing message for a ``release``/``rollback``/``status`` run."""
    if command == "status":
        if result.succeeded and result.outcome != "failed":
            return ExitCode.OK, result.message or "status read"
        return ExitCode.FAILED, result.message or result.problem or "status failed"
    if result.outcome == STOPPED:
        code = result.custom_stats.get("bluegreen_stopped_exit_code", ExitCode.FAILED)
        return ExitCode(int(code)), result.message or "stopped"
    if result.outcome is None:
        if result.succeeded:
            return ExitCode.FAILED, (
                f"{command} finished without reporting an outcome (the playbook must end "
                "with set_stats bluegreen_outcome); the state is unknown, check `bluegreen status`"
            )
        return ExitCode.FAILED, result.problem or result.message or f"{command} failed"
    code = OUTCOME_EXIT_CODES[command].get(result.outcome)
    message = result.message or result.outcome
    if code is None:
        return (
            ExitCode.FAILED,
            f"{command} reported an unknown outcome {result.outcome!r}: {message}",
        )
    if code is ExitCode.OK and not result.succeeded:
        return ExitCode.FAILED, f"{message}; but the run then failed: {result.problem}"
    return code, message


def _examples(*lines: str) -> str:
    return "[bold]Examples[/bold]\n\n" + "\n".join(f"  {escape(line)}" for line in lines)


def _exit_code_help() -> str:
    rows = "\n".join(f"  {int(code)}  {meaning}" for code, meaning in EXIT_CODE_MEANINGS.items())
    return f"[bold]Exit codes[/bold]\n\n{rows}"


app = typer.Typer(
    name="bluegreen",
    help=(
        "Blue/green releases of Python web services behind nginx, driven by Ansible.\n\n"
        "Run inside a bluegreen project (a directory with ansible.cfg and playbooks/), "
        "or point at one with --project-dir or BLUEGREEN_PROJECT_DIR."
    ),
    epilog=_examples(
        "bluegreen lab up",
        "bluegreen build examples/sampleapp --version 1.4.2",
        "bluegreen release --version 1.4.2 -i lab",
        "bluegreen status -i lab",
        "bluegreen rollback -i lab",
        "bluegreen --debug release --version 1.4.2 --json",
        "bluegreen --install-completion bash",
    )
    + "\n\n"
    + _exit_code_help()
    + "\n\n[bold]Configuration[/bold]\n\n"
    "  Defaults for any option come from bluegreen.toml in the project,\n"
    "  or ~/.config/bluegreen/config.toml, or --config / BLUEGREEN_CONFIG:\n"
    '  \\[defaults] inventory = "lab"    \\[release] wait = "10m"',
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
lock_app = typer.Typer(
    help="Show or break the release lock.",
    epilog=_examples(
        "bluegreen lock status", "bluegreen lock break 3f6c1d2e9b8a4c7d8e5f60718293a4b5"
    ),
    rich_markup_mode="rich",
    no_args_is_help=True,
)
lab_app = typer.Typer(
    help="Start, stop and inspect the local lab containers.",
    epilog=_examples("bluegreen lab up", "bluegreen lab status", "bluegreen lab down lab-single"),
    rich_markup_mode="rich",
    no_args_is_help=True,
)
app.add_typer(lab_app, name="lab")
app.add_typer(lock_app, name="lock")


@dataclasses.dataclass
class Settings:
    project_dir: Path | None = None
    debug: bool = False
    config: Path | None = None


InventoryOption = Annotated[
    str | None,
    typer.Option(
        "--inventory",
        "-i",
        metavar="NAME|PATH",
        help="Inventory name under inventories/ (lab, lab-single, ...) or a path; "
        "default: the one in ansible.cfg.",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object at the end instead of the live view.")
]
WaitOption = Annotated[
    str | None,
    typer.Option(
        "--wait",
        metavar="DURATION",
        help="When another release holds the lock, wait up to DURATION for it (90, 90s, "
        "10m, 1h) instead of refusing at once. A lock whose controller died is taken over "
        "either way.",
        show_default=False,
    ),
]
AppOption = Annotated[
    str | None,
    typer.Option(
        "--app",
        metavar="NAME",
        help="The service the inventory must describe (bluegreen_service_name); a guard "
        "against releasing to the wrong inventory.",
        show_default=False,
    ),
]
VerboseOption = Annotated[
    int,
    typer.Option(
        "--verbose", "-v", count=True, help="More ansible detail; repeat for more (-vvv)."
    ),
]
LabNames = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="NAMES",
        help="Labs, named as their inventories (default: lab).",
        show_default=False,
    ),
]
LabInventoryOption = Annotated[
    str | None,
    typer.Option(
        "--inventory",
        "-i",
        metavar="NAME|PATH",
        help="A lab's inventory: a name under inventories/, or a folder with hosts.yml (or "
        "the hosts file) anywhere; the lab is named after its folder. Added to NAMES. Only "
        "from the command line: bluegreen.toml's inventory is where releases go.",
        show_default=False,
    ),
]


@app.callback()
def _options(
    ctx: typer.Context,
    project_dir: Annotated[
        Path | None,
        typer.Option(
            "--project-dir",
            help="The bluegreen project; default: found upwards from the current directory, "
            "else $BLUEGREEN_PROJECT_DIR.",
            file_okay=False,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            metavar="FILE",
            help="Config file with option defaults; default: bluegreen.toml in the project, "
            "else ~/.config/bluegreen/config.toml, else $BLUEGREEN_CONFIG.",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    ctx.obj = Settings(project_dir=project_dir, debug=debug, config=config)
    if ctx.resilient_parsing:
        return
    with _reported(ctx):
        project = _project_or_none(ctx)
        path = config_path(project, config)
        if path is not None and hasattr(ctx.command, "commands"):
            ctx.default_map = default_map(ctx.command, load_config(path), path)


def _project_or_none(ctx: typer.Context) -> Path | None:
    try:
        return _project(ctx)
    except BluegreenError:
        return None


def _settings(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Settings) else Settings()


def _console(stderr: bool = False) -> Console:
    return Console(highlight=False, stderr=stderr)


@contextmanager
def _reported(ctx: typer.Context, json_output: bool = False) -> Iterator[None]:
    """Turn errors into one clear line (or a JSON object) and their exit code."""
    try:
        yield
    except typer.Exit:
        raise
    except BluegreenError as exc:
        _fail(ctx, exc.exit_code, str(exc), json_output)
    except Exception as exc:
        message = f"internal error: {type(exc).__name__}: {exc}"
        if not _settings(ctx).debug:
            message += " (run with --debug for the traceback)"
        _fail(ctx, ExitCode.FAILED, message, json_output)


def _fail(ctx: typer.Context, code: ExitCode, message: str, json_output: bool) -> None:
    if _settings(ctx).debug:
        Console(stderr=True).print_exception()
    if json_output:
        typer.echo(json.dumps({"outcome": None, "message": message, "exit_code": int(code)}))
    else:
        Console(stderr=True, highlight=False).print(
            f"[bold red]error:[/] {escape(message)}", soft_wrap=True
        )
    raise typer.Exit(int(code))


def _project(ctx: typer.Context) -> Path:
    return project_root(explicit=_settings(ctx).project_dir)


def _serial(text: str) -> int | str:
    """--serial as Ansible's play keyword takes it: a count of hosts, or a percentage."""
    match = re.fullmatch(r"([1-9][0-9]{0,3})(%?)", text.strip())
    if match is None or (match.group(2) and int(match.group(1)) > 100):
        raise InputError(
            f"--serial {text!r} is not a batch size: give a number of hosts (e.g. 1) or a "
            "percentage of the idle colour's hosts (e.g. 34%)"
        )
    return text.strip() if match.group(2) else int(match.group(1))


def _canary_steps(text: str | None) -> dict[str, list[int]]:
    """The release's `canary` input from --canary ({} without it: the inventory decides)."""
    if text is None:
        return {}
    if text.strip().lower() == "none":
        return {"canary": []}
    # Imported here: the analysis's module (and prometheus_client under it) took 60 ms of
    # every command's start-up, a rollback's among them.
    from bluegreen_module_utils.golden_signals import GoldenSignalsError, canary_steps_from_params

    try:
        return {"canary": canary_steps_from_params(text, "--canary")}
    except GoldenSignalsError as exc:
        raise InputError(str(exc)) from exc


def _check_version(version: str) -> str:
    if not _VERSION.match(version):
        raise InputError(
            f"invalid version {version!r}: use letters, digits and . _ + - (e.g. 1.4.2)"
        )
    return version


def _run(
    command: str,
    project: Path,
    extravars: dict[str, Any],
    inventory: str | None,
    json_output: bool,
    verbosity: int,
    compact: bool = False,
) -> PlaybookResult:
    playbook = f"playbooks/{command}.yml"
    console = _console()
    guard = InterruptGuard(command, console, interactive=not json_output and console.is_terminal)
    with guard:
        if json_output:
            result = run_playbook(
                project, playbook, extravars, inventory, verbosity=verbosity, cancel_callback=guard
            )
        else:
            with make_progress(console, verbosity, compact) as progress:
                result = run_playbook(
                    project,
                    playbook,
                    extravars,
                    inventory,
                    on_event=progress,
                    verbosity=verbosity,
                    cancel_callback=guard,
                )
    if guard.confirmed and command in ("release", "rollback"):
        return _finish_stopped(command, project, inventory, json_output, verbosity)
    return result


def _finish_stopped(
    command: str, project: Path, inventory: str | None, json_output: bool, verbosity: int
) -> PlaybookResult:
    """After a confirmed Ctrl-C: undo the stopped command through the recovery plays."""
    if not json_output:
        _console().print(
            Text(
                f"Stopped the {command}; putting traffic on the verified colour...",
                style="bold yellow",
            )
        )
    recovered = run_playbook(
        project, "playbooks/rollback.yml", {"recover_only": True}, inventory, verbosity=verbosity
    )
    plan = recovered.custom_stats.get("bluegreen_recovered") or {}
    action = plan.get("action") if isinstance(plan, Mapping) else None
    recovered.outcome = STOPPED
    recovered.message = f"{command} stopped by the operator: " + (
        recovered.message or recovered.problem or "see `bluegreen status`"
    )
    recovered.custom_stats["bluegreen_stopped_exit_code"] = int(
        STOPPED_EXIT_CODES.get(str(action), ExitCode.FAILED_BEFORE_SWITCH)
        if recovered.succeeded
        else ExitCode.FAILED
    )
    return recovered


def _show(
    command: str,
    project: Path,
    extravars: dict[str, Any],
    inventory: str | None,
    json_output: bool,
    verbose: int,
    view: Callable[[Mapping[str, Any]], RenderableType],
    good: Callable[[PlaybookResult, Any], bool],
) -> None:
    """Run a read-only playbook that reports ``bluegreen_<command>``; print it and exit."""
    result = _run(command, project, extravars, inventory, json_output, verbose, compact=True)
    report = result.custom_stats.get(f"bluegreen_{command}")
    ok = result.succeeded and good(result, report)
    code = ExitCode.OK if ok else ExitCode.FAILED
    message = result.message or result.problem or f"{command} failed"
    conclusion = Text(f"{'✔' if ok else '✘'} {message}", style="bold green" if ok else "bold red")
    _print_read_only(
        command,
        result,
        code,
        message,
        {command: report},
        view(report) if isinstance(report, Mapping) else None,
        json_output,
        conclusion,
    )


def _print_read_only(
    command: str,
    result: PlaybookResult,
    code: ExitCode,
    message: str,
    found: Mapping[str, Any],
    view: RenderableType | None,
    json_output: bool,
    conclusion: Text | None = None,
) -> NoReturn:
    """Print what a read-only command found (its JSON document with `found` added, or its
    view and how it ended) and exit with its code. Without a conclusion only a failure is
    announced."""
    if json_output:
        document = json_report(command, result, code, message) | dict(found)
        typer.echo(json.dumps(document, default=str))
        raise typer.Exit(int(code))
    console = _console()
    if view is not None:
        console.print(view)
    if conclusion is None and code is not ExitCode.OK:
        conclusion = Text(f"✘ failed: {message}", style="bold red")
    if conclusion is not None:
        console.print(conclusion, soft_wrap=True)
    raise typer.Exit(int(code))


def json_report(command: str, result: PlaybookResult, code: ExitCode, message: str) -> dict:
    """The one object ``--json`` prints; extra vars are never part of it."""
    return {
        "command": command,
        "outcome": result.outcome,
        "message": message,
        "exit_code": int(code),
        "rc": result.rc,
        "runner_status": result.status,
        "stats": result.stats,
        "custom_stats": result.custom_stats,
        "failures": [failure._asdict() for failure in result.failures],
        "run_dir": str(result.artifact_dir) if result.artifact_dir else None,
    }


# The closing line's icon and style by exit code; its label is the contract's (CLOSING_LABELS).
_CLOSING_STYLES = {
    ExitCode.OK: ("✔", "bold green"),
    ExitCode.FAILED: ("✘", "bold red"),
    ExitCode.USAGE: ("✘", "bold red"),
    ExitCode.FAILED_BEFORE_SWITCH: ("✘", "bold yellow"),
    ExitCode.ROLLED_BACK: ("↩", "bold yellow"),
    ExitCode.PAUSED: ("⏸", "bold yellow"),
}


def write_release_reports(
    project: Path, inventory: str | None, result: PlaybookResult
) -> list[Path]:
    """The release report (md, html, json) into state/reports/<inventory>/, from the
    controller's journal. A report that cannot be written never fails the release."""
    release_id = result.custom_stats.get("bluegreen_release_id")
    if not release_id:
        return []
    from bluegreen.report import controller_journal, read_entries, write_reports

    name = inventory_name(project, inventory)
    try:
        entries = read_entries(controller_journal(project / "state", name))
        return write_reports(entries, project / "state" / "reports" / name, str(release_id), name)
    except (BluegreenError, OSError, ValueError) as exc:
        log.warning("the release report was not written: %s", exc)
        result.custom_stats["bluegreen_report_error"] = str(exc)
        return []


def _finish(command: str, result: PlaybookResult, json_output: bool) -> None:
    code, message = verdict(command, result)
    if json_output:
        typer.echo(json.dumps(json_report(command, result, code, message), default=str))
        raise typer.Exit(int(code))
    console = _console()
    icon, style = _CLOSING_STYLES.get(code, _CLOSING_STYLES[ExitCode.FAILED])
    label = CLOSING_LABELS.get(code, CLOSING_LABELS[ExitCode.FAILED])
    console.print(Text(f"{icon} {label}{message}", style=style), soft_wrap=True)
    reports = result.custom_stats.get("bluegreen_reports") or []
    html = next((path for path in reports if str(path).endswith(".html")), None)
    if html:
        console.print(Text(f"Report: {html}", style="dim"), soft_wrap=True)
    if code is not ExitCode.OK and result.artifact_dir:
        run_log = result.artifact_dir / "stdout"
        console.print(Text(f"Run log: {run_log}", style="dim"), soft_wrap=True)
    raise typer.Exit(int(code))


@app.command(
    epilog=_examples(
        "bluegreen release --version 1.4.2",
        "bluegreen release --version 1.4.2 -i lab-single",
        'bluegreen release --version 1.4.2 --force-window "INC-42 hotfix" --approved-by alice',
        "bluegreen release --version 1.4.2 -i inventories/example-production --json",
        "bluegreen release --version 1.4.2 --wait 10m",
        "bluegreen release --version 1.4.2 --app sampleapp -i lab",
        "bluegreen release --version 3.0.0 --allow-breaking-migrations",
        "bluegreen release --version 1.4.2 --canary 5,25,50",
        "bluegreen release --version 1.4.2 --pause-before-switch",
    )
)
def release(
    ctx: typer.Context,
    version: Annotated[
        str, typer.Option("--version", help="The artifact version to release, e.g. 1.4.2.")
    ],
    inventory: InventoryOption = None,
    app_name: AppOption = None,
    wait: WaitOption = None,
    force_window: Annotated[
        str | None,
        typer.Option(
            "--force-window",
            metavar="REASON",
            help="Release outside the inventory's release windows; the reason is journaled.",
        ),
    ] = None,
    approved_by: Annotated[
        str | None,
        typer.Option(
            "--approved-by",
            metavar="NAME",
            help="Who approved the release (required where the inventory says so); journaled.",
        ),
    ] = None,
    allow_breaking_migrations: Annotated[
        bool,
        typer.Option(
            "--allow-breaking-migrations",
            help="Apply migrations classified as breaking (drop, rename, NOT NULL without a "
            "default) although the old colour still runs on the schema.",
        ),
    ] = False,
    pause_before_switch: Annotated[
        bool,
        typer.Option(
            "--pause-before-switch",
            help="Deploy, check and judge the idle colour, then hold before the switch (lock "
            "held) until `bluegreen promote` switches it or `bluegreen abort` ends it. "
            "Default: the inventory's bluegreen_release_pause_before_switch.",
        ),
    ] = False,
    canary: Annotated[
        str | None,
        typer.Option(
            "--canary",
            metavar="STEPS",
            help="Before the switch, send these shares of clients (percent, e.g. 5,25,50) to "
            "the new colour in turn, each step judged against the live colour; none: switch "
            "at once. Default: the inventory's bluegreen_analysis_canary_steps.",
        ),
    ] = None,
    serial: Annotated[
        str | None,
        typer.Option(
            "--serial",
            metavar="N|N%",
            help="Deploy the idle colour N hosts (or N % of them) at a time, each batch "
            "started and gated before the next; a failed batch stops the release before the "
            "switch and leaves the later batches untouched. Default: all at once.",
        ),
    ] = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = 0,
) -> None:
    """Release a version: deploy it to the idle colour, check it, switch traffic, verify.

    A release its controller left unfinished (killed, crashed) is finished first:
    resumed when it had switched, rolled back otherwise; the outcome says which.
    Ctrl-C asks, then stops and puts traffic on the colour verified before.
    Exits 0 when released (or already live), 3 when it failed before the switch
    (traffic unchanged), 4 when it switched and then rolled back, 5 when it holds or
    pauses for a person, 1 otherwise.
    """
    with _reported(ctx, json_output):
        _check_version(version)
        policy = {"force_window": force_window, "approved_by": approved_by}
        extravars = {
            "app_version": version,
            **lock_extravars(wait, app_name),
            **{key: value for key, value in policy.items() if value},
            **({"allow_breaking_migrations": True} if allow_breaking_migrations else {}),
            **_canary_steps(canary),
            **({"pause_before_switch": True} if pause_before_switch else {}),
            **({"serial": _serial(serial)} if serial is not None else {}),
        }
        project = _project(ctx)
        result = _run("release", project, extravars, inventory, json_output, verbose)
        reports = write_release_reports(project, inventory, result)
        if reports:
            result.custom_stats["bluegreen_reports"] = [str(path) for path in reports]
        _finish("release", result, json_output)


class DataMethod(StrEnum):
    """How ``rollback --with-data`` puts the schema back."""

    auto = "auto"
    downgrade = "downgrade"
    restore = "restore"


@app.command(
    epilog=_examples(
        "bluegreen rollback",
        "bluegreen rollback -i lab --json",
        "bluegreen rollback --wait 2m",
        "bluegreen rollback --with-data",
        "bluegreen rollback --with-data --accept-data-loss",
        "bluegreen rollback --allow-unverified",
    ),
)
def rollback(
    ctx: typer.Context,
    with_data: Annotated[
        bool,
        typer.Option(
            "--with-data",
            help="Also put the database back: downgrade to the previous release's revision "
            "when every migration since can be undone, otherwise restore the snapshot taken "
            "before the release.",
        ),
    ] = False,
    accept_data_loss: Annotated[
        bool,
        typer.Option(
            "--accept-data-loss",
            help="With --with-data: allow a restore that loses the writes accepted since the "
            "snapshot (without it such a restore is refused, saying what would be lost).",
        ),
    ] = False,
    method: Annotated[
        DataMethod,
        typer.Option(
            "--method",
            help="With --with-data: auto (downgrade when every step can be undone, else "
            "restore), downgrade (refuse unless it can), or restore (the snapshot).",
        ),
    ] = DataMethod.auto,
    allow_unverified: Annotated[
        bool,
        typer.Option(
            "--allow-unverified",
            help="Also go back to a version no analysis verified (it went live unverified, "
            "or was recovered before it was judged); never to one marked bad.",
        ),
    ] = False,
    inventory: InventoryOption = None,
    app_name: AppOption = None,
    wait: WaitOption = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = 0,
) -> None:
    """Switch traffic back to the previous colour (which is still warm).

    Only to a version that passed its analysis: a colour running a release marked bad
    is refused, and one never verified unless --allow-unverified is given. A release
    its controller left unfinished is what gets rolled back. Without --with-data the
    database is not touched. Exits 0 when rolled back (or nothing to roll back), 2 when
    a data rollback is refused, 3 when it failed before traffic moved, 1 otherwise.
    """
    with _reported(ctx, json_output):
        result = _run(
            "rollback",
            _project(ctx),
            {
                **lock_extravars(wait, app_name),
                **rollback_extravars(with_data, accept_data_loss, method),
                **({"allow_unverified": True} if allow_unverified else {}),
            },
            inventory,
            json_output,
            verbose,
        )
        _finish("rollback", result, json_output)


@app.command(
    epilog=_examples("bluegreen promote", "bluegreen promote -i lab --json"),
)
def promote(
    ctx: typer.Context,
    inventory: InventoryOption = None,
    app_name: AppOption = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = 0,
) -> None:
    """Finish the release that waits for a person: keep a paused one, switch a held one.

    Paused: the release went live but its post-switch analysis measured nothing healthy
    and the inventory's policy is to pause (the default for production inventories).
    Promote keeps it (it becomes a rollback target) and frees the lock; `bluegreen
    rollback` sends traffic back instead. Held (`release --pause-before-switch`): the
    release was deployed, checked and judged on the idle colour and stopped before its
    switch. Promote goes on with it: its canary steps, the switch and the post-switch
    analysis, ending as the release would have; a hold past its expiry is refused.
    `bluegreen abort` ends it instead. Exits 0 when promoted or released, 4 when the
    held release was rolled back, 5 when it paused, 2 when nothing waits or the hold
    expired, 1 otherwise.
    """
    with _reported(ctx, json_output):
        project = _project(ctx)
        result = _run(
            "promote", project, lock_extravars(None, app_name), inventory, json_output, verbose
        )
        # Only a held release that went on has a release to report (from its start to this
        # end); keeping a paused one, or a refusal, journals no release of its own.
        went_on = result.custom_stats.get("bluegreen_outcome") not in (None, "promoted", "refused")
        reports = write_release_reports(project, inventory, result) if went_on else []
        if reports:
            result.custom_stats["bluegreen_reports"] = [str(path) for path in reports]
        _finish("promote", result, json_output)


@app.command(
    epilog=_examples("bluegreen abort", "bluegreen abort -i lab --json"),
)
def abort(
    ctx: typer.Context,
    inventory: InventoryOption = None,
    app_name: AppOption = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = 0,
) -> None:
    """End the release held before its switch, and free the release lock.

    Traffic never moved to it and does not now; its colour keeps the version installed,
    never live (a rollback refuses it, the next release replaces it). Exits 0 when
    aborted, 2 when nothing is held, 1 otherwise.
    """
    with _reported(ctx, json_output):
        result = _run(
            "abort", _project(ctx), lock_extravars(None, app_name), inventory, json_output, verbose
        )
        _finish("abort", result, json_output)


@app.command(
    epilog=_examples("bluegreen status", "bluegreen status -i lab-single --json"),
)
def status(
    ctx: typer.Context,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = 0,
) -> None:
    """Show which colour is live on each load balancer, and each colour's version and health.

    Exits 0 when the status was read, 1 otherwise.
    """
    with _reported(ctx, json_output):
        result = _run("status", _project(ctx), {}, inventory, json_output, verbose, compact=True)
        report = result.custom_stats.get("bluegreen_status")
        view = status_view(report) if isinstance(report, Mapping) else None
        code, message = verdict("status", result)
        _print_read_only("status", result, code, message, {"status": report}, view, json_output)


@app.command(
    epilog=_examples(
        "bluegreen verify", "bluegreen verify --count 3", "bluegreen verify -i lab-single --json"
    ),
)
def verify(
    ctx: typer.Context,
    count: Annotated[
        int, typer.Option("--count", min=1, help="Measurements to take (each one window).")
    ] = 1,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = 0,
) -> None:
    """Judge the golden signals of the live colour now, with the release's thresholds.

    Prints each signal, its value, its thresholds and its verdict. Exits 0 when the
    verdict is ok or warning, 1 when it is critical or inconclusive.
    """
    with _reported(ctx, json_output):
        _show(
            "verify",
            _project(ctx),
            {"verify_count": count},
            inventory,
            json_output,
            verbose,
            view=signals_view,
            good=lambda result, report: result.outcome in ("ok", "warning"),
        )


class MaintenanceState(StrEnum):
    """What ``bluegreen maintenance`` puts the load balancers in."""

    on = "on"
    off = "off"


@app.command(
    epilog=_examples(
        "bluegreen maintenance on",
        "bluegreen maintenance on --retry-after 900 --message 'Database upgrade until 14:00 UTC.'",
        "bluegreen maintenance off -i lab-single --json",
    ),
)
def maintenance(
    ctx: typer.Context,
    state: Annotated[
        MaintenanceState,
        typer.Argument(help="on: users get the maintenance page; off: users reach the service."),
    ],
    retry_after: Annotated[
        int | None,
        typer.Option(
            "--retry-after",
            min=1,
            metavar="SECONDS",
            help="Seconds users are asked to wait (Retry-After header and the page); "
            "default: bluegreen_lb_maintenance_retry_after (300).",
            show_default=False,
        ),
    ] = None,
    message: Annotated[
        str | None,
        typer.Option(
            "--message",
            metavar="TEXT",
            help="What the page tells users (plain text); "
            "default: bluegreen_lb_maintenance_message.",
            show_default=False,
        ),
    ] = None,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = 0,
) -> None:
    """Turn maintenance mode on or off on every load balancer, all or none.

    While on, users get 503 with Retry-After and a maintenance page; the health
    path and /metrics still reach the live colour. Toggling holds the release lock.
    Exits 0 when maintenance is in the requested state (changed or not), 1 otherwise.
    """
    with _reported(ctx, json_output):
        result = _run(
            "maintenance",
            _project(ctx),
            maintenance_extravars(state, retry_after, message),
            inventory,
            json_output,
            verbose,
            compact=True,
        )
        _finish("maintenance", result, json_output)


def rollback_extravars(
    with_data: bool, accept_data_loss: bool, method: DataMethod = DataMethod.auto
) -> dict[str, Any]:
    """The extra vars of playbooks/rollback.yml."""
    if (accept_data_loss or method is not DataMethod.auto) and not with_data:
        raise InputError(
            "--accept-data-loss and --method only apply to a data rollback: add --with-data, "
            "or leave them out"
        )
    if not with_data:
        return {}
    extravars: dict[str, Any] = {
        "rollback_data": True,
        "rollback_accept_data_loss": accept_data_loss,
    }
    if method is not DataMethod.auto:
        extravars["rollback_data_method"] = method.value
    return extravars


def lock_extravars(wait: str | None, app_name: str | None = None) -> dict[str, Any]:
    """Extra vars of the options every locking command shares."""
    extravars: dict[str, Any] = {}
    if wait is not None:
        extravars["bluegreen_lock_wait_seconds"] = parse_duration(wait)
    if app_name is not None:
        if not re.match(r"^[a-z][a-z0-9_-]*$", app_name):
            raise InputError(f"--app {app_name!r} is not a service name (lower case, digits, _ -)")
        extravars["bluegreen_expected_app"] = app_name
    return extravars


def maintenance_extravars(
    state: MaintenanceState, retry_after: int | None, message: str | None
) -> dict[str, Any]:
    """The extra vars of playbooks/maintenance.yml; options left out keep the inventory's."""
    if state is MaintenanceState.off and (retry_after is not None or message is not None):
        raise InputError(
            "--retry-after and --message describe the page: use them with `maintenance on`"
        )
    extravars: dict[str, Any] = {"maintenance": state.value}
    if retry_after is not None:
        extravars["bluegreen_lb_maintenance_retry_after"] = retry_after
    if message is not None:
        if not message.strip():
            raise InputError("--message is empty: say what users should read, or leave it out")
        extravars["bluegreen_lb_maintenance_message"] = message
    return extravars


@app.command(
    epilog=_examples(
        "bluegreen backup", "bluegreen backup --list", "bluegreen backup -i lab-single --json"
    ),
)
def backup(
    ctx: typer.Context,
    list_snapshots: Annotated[
        bool,
        typer.Option(
            "--list",
            help="List the snapshots (id, time, size, checksum, release, revision, verified) "
            "instead of taking one.",
        ),
    ] = False,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = 0,
) -> None:
    """Take a verified snapshot of the service's database now, under the release lock.

    The snapshot is read back for real (pg_restore, PRAGMA integrity_check) before it
    is kept. Exits 0 when it was taken and verified, 1 otherwise.
    """
    with _reported(ctx, json_output):
        if list_snapshots:
            _list_snapshots(ctx, inventory, json_output, verbose)
        result = _run("backup", _project(ctx), {}, inventory, json_output, verbose)
        _finish("backup", result, json_output)


@lock_app.command(
    "status",
    epilog=_examples("bluegreen lock status", "bluegreen lock status -i lab-single --json"),
)
def lock_status(
    ctx: typer.Context,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = 0,
) -> None:
    """Show who holds the release lock, since when, and whether its holder is alive.

    A holder whose controller process is gone, or whose lease ran out, is taken over by
    the next release or rollback. Exits 0 when the lock was read, 1 otherwise.
    """
    with _reported(ctx, json_output):
        result = _run("lock", _project(ctx), {}, inventory, json_output, verbose, compact=True)
        _finish("lock", result, json_output)


@lock_app.command(
    "break",
    epilog=_examples(
        "bluegreen lock break 3f6c1d2e9b8a4c7d8e5f60718293a4b5",
        "bluegreen lock break 3f6c1d2e9b8a4c7d8e5f60718293a4b5 --yes -i lab",
    ),
)
def lock_break(
    ctx: typer.Context,
    lock_id: Annotated[
        str,
        typer.Argument(
            metavar="LOCK_ID", help="The id of the lock to break, as `bluegreen lock status` shows."
        ),
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = 0,
) -> None:
    """Break the release lock with the given id (only that lock).

    For a release you know is dead but that cannot be detected as such (its controller
    was another machine and its lease has not run out). The next release or rollback
    finishes the release the lock belonged to. Exits 0 when broken, 1 otherwise.
    """
    with _reported(ctx, json_output):
        if not re.fullmatch(r"[0-9a-zA-Z._-]{1,128}", lock_id):
            raise InputError(f"{lock_id!r} is not a lock id; `bluegreen lock status` shows it")
        if not yes:
            _confirm(f"Break lock {lock_id}? A release still running under it would lose it.")
        result = _run(
            "lock",
            _project(ctx),
            {"lock_action": "break", "lock_id": lock_id},
            inventory,
            json_output,
            verbose,
            compact=True,
        )
        _finish("lock", result, json_output)


def _confirm(question: str) -> None:
    """Ask on a terminal; without one, refuse and name --yes."""
    console = _console()
    if not console.is_terminal:
        raise InputError(f"{question} Not asked without a terminal: pass --yes to confirm")
    if not typer.confirm(question, default=False):
        raise InputError("not confirmed; nothing was changed")


HISTORY_STATE_STYLES = {
    "verified": "green",
    "unverified": "bold yellow",
    "paused": "bold yellow",
    "held": "bold yellow",
    "aborted": "dim",
    "promoted": "green",
    "rolled-back": "yellow",
    "bad": "bold red",
    "failed": "red",
    "interrupted": "bold magenta",
    "prepared": "cyan",
    "active": "cyan",
    "unchanged": "dim",
    "done": "green",
}


@app.command(
    epilog=_examples("bluegreen history", "bluegreen history --limit 50 -i lab-single --json"),
)
def history(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest entries to show.")] = 20,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = 0,
) -> None:
    """Show past releases, rollbacks and other commands with their states.

    Read from the journal on the primary load balancer, which every controller writes.
    States: prepared, active, verified, unverified (live, but nothing measured it
    healthy), paused (the same, waiting for `bluegreen promote` or rollback), promoted,
    rolled-back, bad, failed, interrupted.
    Exits 0 when the journal was read, 1 otherwise.
    """
    with _reported(ctx, json_output):
        _show(
            "history",
            _project(ctx),
            {"history_limit": limit},
            inventory,
            json_output,
            verbose,
            view=history_view,
            good=lambda result, report: isinstance(report, Mapping),
        )


# Below this width the history is a list of two-line entries: seven table columns fold
# every cell on an 80-column terminal.
HISTORY_TABLE_MIN_WIDTH = 120


@dataclasses.dataclass(frozen=True)
class HistoryEntry:
    """One line of `bluegreen history`, with its cells as they are shown."""

    release_id: str
    command: str
    version: str
    colours: str
    state: str
    finished: str
    message: str

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> HistoryEntry:
        colour = entry.get("colour") or ""
        previous = entry.get("previous_colour") or ""
        return cls(
            release_id=str(entry.get("release_id")),
            command=str(entry.get("command")),
            version=str(entry.get("version") or "-"),
            colours=f"{previous}→{colour}" if previous and colour else colour or "-",
            state=str(entry.get("state")),
            finished=str(entry.get("finished_at") or "-")[:19].replace("T", " "),
            message=str(entry.get("message") or ""),
        )

    def state_text(self) -> Text:
        return Text(self.state, style=HISTORY_STATE_STYLES.get(self.state, ""))


@dataclasses.dataclass(frozen=True)
class HistoryTable:
    """The history as a table on a wide console, as two-line entries on a narrow one."""

    entries: tuple[HistoryEntry, ...]

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        if options.max_width >= HISTORY_TABLE_MIN_WIDTH:
            yield self.table()
        else:
            yield from self.lines(options.max_width)

    def table(self) -> Table:
        table = Table(title="History (oldest first)", title_justify="left")
        for column in ("release", "command", "version", "colour", "state", "finished", "message"):
            table.add_column(column, overflow="fold")
        for entry in self.entries:
            table.add_row(
                entry.release_id,
                entry.command,
                entry.version,
                entry.colours,
                entry.state_text(),
                entry.finished,
                textwrap.shorten(entry.message, 120, placeholder=" …"),
            )
        return table

    def lines(self, width: int) -> Iterator[Text]:
        yield Text("History (oldest first)", style="italic")
        for entry in self.entries:
            head = Text(f"{entry.release_id}  {entry.command} {entry.version}  {entry.colours}  ")
            head.append_text(entry.state_text())
            yield head
            prefix = f"  {entry.finished}  "
            room = max(width - len(prefix), 20)
            yield Text(prefix + textwrap.shorten(entry.message, room, placeholder=" …"))


def history_view(report: Mapping[str, Any]) -> RenderableType:
    table = HistoryTable(tuple(HistoryEntry.of(e) for e in report.get("releases") or []))
    parts: list[RenderableType] = [table]
    unfinished = report.get("unfinished")
    if isinstance(unfinished, Mapping):
        parts.append(
            Text(
                f"{unfinished.get('command')} {unfinished.get('release_id')} is unfinished: the "
                "next release or rollback finishes it (or it is still running: "
                "`bluegreen lock status`)",
                style="bold magenta",
            )
        )
    refused = report.get("rollback_refused_versions") or {}
    if refused:
        parts.append(
            Text(
                "A rollback will not go to: "
                + "; ".join(f"{version} ({why})" for version, why in refused.items()),
                style="dim",
            )
        )
    return Group(*parts)


ListOption = Annotated[
    bool,
    typer.Option(
        "--list",
        help="List the snapshots (id, time, size, checksum, release, revision, verified) "
        "and change nothing.",
    ),
]


@app.command(
    epilog=_examples(
        "bluegreen restore --list",
        "bluegreen restore 20261122T020304Z-1a2b3c",
        "bluegreen restore 20261122T020304Z-1a2b3c --yes",
    ),
)
def restore(
    ctx: typer.Context,
    snapshot_id: Annotated[
        str | None,
        typer.Argument(metavar="SNAPSHOT_ID", help="The snapshot to restore (see --list)."),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            help="Confirm: the writes accepted after the snapshot was taken are lost. "
            "Without it nothing is changed and the refusal says what would be lost.",
        ),
    ] = False,
    list_snapshots: ListOption = False,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = 0,
) -> None:
    """Put the database back to a named snapshot, under maintenance mode.

    Takes the release lock, turns maintenance mode on (users get 503 with Retry-After),
    verifies the snapshot, restores it into a fresh database and swaps it in, checks
    the live colour, turns maintenance mode off and journals it. Exits 0 when restored
    (or listed), 2 when refused for want of --yes, 1 otherwise.
    """
    with _reported(ctx, json_output):
        if list_snapshots:
            _list_snapshots(ctx, inventory, json_output, verbose)
        result = _run(
            "restore",
            _project(ctx),
            restore_extravars(snapshot_id, yes),
            inventory,
            json_output,
            verbose,
        )
        _finish("restore", result, json_output)


def restore_extravars(snapshot_id: str | None, confirmed: bool) -> dict[str, Any]:
    """The extra vars of playbooks/restore.yml; the confirmation repeats the snapshot id."""
    if not snapshot_id or not snapshot_id.strip():
        raise InputError(
            "name the snapshot to restore: bluegreen restore SNAPSHOT_ID "
            "(list them with `bluegreen restore --list`)"
        )
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", snapshot_id):
        raise InputError(
            f"invalid snapshot id {snapshot_id!r}: letters, digits, . _ - "
            "(as `bluegreen restore --list` shows them)"
        )
    extravars: dict[str, Any] = {"restore_snapshot": snapshot_id}
    if confirmed:
        extravars["restore_confirm"] = snapshot_id
    return extravars


def _list_snapshots(
    ctx: typer.Context, inventory: str | None, json_output: bool, verbose: int
) -> None:
    result = _run(
        "restore",
        _project(ctx),
        {"restore_list": True},
        inventory,
        json_output,
        verbose,
        compact=True,
    )
    snapshots = result.custom_stats.get("bluegreen_snapshots")
    view = snapshots_view(snapshots) if isinstance(snapshots, list) else None
    code, message = verdict("restore", result)
    _print_read_only("restore", result, code, message, {"snapshots": snapshots}, view, json_output)


def snapshots_view(snapshots: list[Any]) -> RenderableType:
    """The snapshots, newest first: what `restore SNAPSHOT_ID` can bring back."""
    if not snapshots:
        return Text("No snapshots yet. Take one with `bluegreen backup`.", style="dim")
    table = Table(title="Snapshots (newest first)", title_justify="left")
    for column in ("id", "taken", "size", "sha256", "release", "revision", "verified"):
        table.add_column(column, overflow="fold")
    for snapshot in snapshots:
        snapshot = snapshot if isinstance(snapshot, Mapping) else {}
        verified = snapshot.get("verified")
        table.add_row(
            str(snapshot.get("snapshot_id")),
            str(snapshot.get("started") or "-"),
            _size(snapshot.get("size_bytes")),
            str(snapshot.get("checksum") or "-")[:16],
            str(snapshot.get("release_id") or "-"),
            str(snapshot.get("revision") or "-"),
            Text("yes", style="green")
            if verified is True
            else Text("no", style="red")
            if verified is False
            else Text("?", style="yellow"),
        )
    return table


VERDICT_STYLES = {
    "ok": "green",
    "warning": "yellow",
    "critical": "bold red",
    "inconclusive": "magenta",
    "not_configured": "dim",
    "not_judged": "dim",
}


def signals_view(report: Mapping[str, Any]) -> RenderableType:
    """Each golden signal of a verify run: value, thresholds, verdict and why."""
    table = Table(
        title=f"Golden signals of {report.get('colour')} ({report.get('requests')} requests)",
        title_justify="left",
    )
    for column in ("signal", "value", "warning", "critical", "P0", "verdict", "reason"):
        table.add_column(column, overflow="fold")
    for name, signal in (report.get("signals") or {}).items():
        signal = signal if isinstance(signal, Mapping) else {}
        unit = signal.get("unit") or ""
        verdict_text = str(signal.get("verdict"))
        table.add_row(
            name,
            _with_unit(signal.get("value"), unit),
            _with_unit(signal.get("warning"), unit),
            _with_unit(signal.get("critical"), unit),
            _with_unit(signal.get("p0_threshold"), unit),
            Text(verdict_text, style=VERDICT_STYLES.get(verdict_text, "")),
            str(signal.get("reason") or ""),
        )
    return table


def _with_unit(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:.4g}"
    return f"{value} {unit}".strip()


def status_view(report: Mapping[str, Any]) -> RenderableType:
    """The ``bluegreen_status`` stats as a table of colours and a table of load balancers."""
    active = report.get("active_colour")
    colours = Table(title="Colours", title_justify="left")
    for column in ("colour", "version", "release state", "healthy", "traffic"):
        colours.add_column(column)
    states = report.get("version_states") or {}
    for colour, info in (report.get("colours") or {}).items():
        info = info if isinstance(info, Mapping) else {}
        healthy = info.get("healthy")
        state = str((states.get(info.get("version")) or {}).get("state") or "-")
        colours.add_row(
            Text(str(colour), style="bold blue" if colour == "blue" else "bold green"),
            str(info.get("version") or "-"),
            Text(state, style=HISTORY_STATE_STYLES.get(state, "")),
            Text("yes", style="green")
            if healthy
            else Text("no", style="red")
            if healthy is not None
            else Text("?", style="yellow"),
            Text("live", style="bold") if colour == active else Text("idle", style="dim"),
        )
    balancers = Table(title="Load balancers", title_justify="left")
    balancers.add_column("host")
    balancers.add_column("routes to")
    balancers.add_column("maintenance")
    routes = report.get("lb") or {}
    maintenance = report.get("maintenance") or {}
    for host, colour in routes.items():
        style = "bold" if colour == active else "bold red"
        on = maintenance.get(host)
        balancers.add_row(
            str(host),
            Text(str(colour), style=style),
            Text("on", style="bold yellow") if on else Text("off" if on is False else "?"),
        )
    parts: list[RenderableType] = [colours, balancers]
    if len(set(routes.values())) > 1:
        parts.append(
            Text(
                "Load balancers disagree on the live colour: run `bluegreen rollback` or "
                "re-run the release to bring them together.",
                style="bold red",
            )
        )
    return Group(*parts)


@app.command(
    epilog=_examples(
        "bluegreen report",
        "bluegreen report 20261122T020304Z-ab12cd -i lab --format html -o release.html",
        "bluegreen report -i lab --journal /tmp/journal.jsonl --format json",
    )
)
def report(
    ctx: typer.Context,
    release_id: Annotated[
        str | None,
        typer.Argument(
            metavar="[RELEASE_ID]", help="The release to report on; default: the last one."
        ),
    ] = None,
    inventory: InventoryOption = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="md, html (self-contained) or json.")
    ] = "md",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report here instead of to stdout."),
    ] = None,
    journal: Annotated[
        Path | None,
        typer.Option(
            "--journal",
            help="Journal file (JSON lines) to read; default: the controller's copy, "
            "state/journal/<inventory>/<app>.jsonl.",
            dir_okay=False,
        ),
    ] = None,
    app_name: Annotated[
        str | None,
        typer.Option("--app", help="Service whose journal to read, when several share one."),
    ] = None,
) -> None:
    """Render the release report from the journal: every check with its evidence and time,
    the timeline, the decision and the exact rollback command. A check without evidence
    in the journal is shown as "not run", never as passed.

    After each release the reports are also written to state/reports/<inventory>/.
    """
    with _reported(ctx):
        from bluegreen.report import build_report, controller_journal, read_entries, render

        name = inventory_name(_project(ctx), inventory)
        path = journal or controller_journal(_project(ctx) / "state", name, app_name)
        text = render(build_report(read_entries(path), release_id, name), fmt)
        if output is None:
            typer.echo(text, nl=False)
        else:
            output.write_text(text, encoding="utf-8")
            _console(stderr=True).print(f"Report written to {output}")


@app.command(
    epilog=_examples(
        "bluegreen build examples/sampleapp",
        "bluegreen build ~/src/shop-api --version 2.0.1 --output /srv/artifacts",
        "bluegreen build ~/src/mysite --name mysite --version 1.0.0 --with gunicorn",
        "bluegreen build ~/src/shop-api --include alembic.ini --include migrations",
        "bluegreen build . --version 2.0.1 --python-version 3.12.3",
        "bluegreen build . --version 2.0.1 --force --json",
        "bluegreen build examples/sampleapp --image --base-image bluegreen-runtime:bookworm",
        "bluegreen build . --image --base-image python:3.11-slim-bookworm --dockerfile Dockerfile",
    )
)
def build(
    ctx: typer.Context,
    project_dir: Annotated[
        Path,
        typer.Argument(
            metavar="PROJECT_DIR",
            help=(
                "The service to package: a package (pyproject.toml or setup.py) becomes its "
                "wheel plus its dependencies' wheels; a project with only requirements.txt "
                "(e.g. a Django site) becomes its files plus the wheels they require."
            ),
            exists=True,
            file_okay=False,
            resolve_path=True,
        ),
    ],
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            help="Artifact version; default: the package's own (required for a requirements.txt "
            "project).",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Service name of a requirements.txt project (lower case, digits, - and _), "
            "as in bluegreen_service_name; a package is named by itself.",
        ),
    ] = None,
    with_requirements: Annotated[
        list[str] | None,
        typer.Option(
            "--with",
            metavar="REQUIREMENT",
            help="A requirement installed beside the service that it does not require "
            "itself, e.g. gunicorn; repeatable.",
        ),
    ] = None,
    include: Annotated[
        list[str] | None,
        typer.Option(
            "--include",
            metavar="PATH",
            help="A file or directory of a package that the service needs at run time "
            "(alembic.ini, migrations), packed at the release root; adds to "
            "\\[tool.bluegreen] include in pyproject.toml; repeatable.",
        ),
    ] = None,
    python_version: Annotated[
        str | None,
        typer.Option(
            "--python-version",
            metavar="X.Y[.Z]",
            help="The hosts' python3 version, which environment markers are judged for "
            "(X.Y means X.Y.0); default: 3.11.2, Debian 12's.",
        ),
    ] = None,
    platform: Annotated[
        str | None,
        typer.Option(
            "--platform",
            help="The hosts' platform, manylinux_2_<glibc minor>_<x86_64|aarch64>; default: "
            "manylinux_2_36_x86_64, Debian 12 on x86_64.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Directory for the artifact; default: <bluegreen project>/artifacts.",
            file_okay=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing artifact of the same version.")
    ] = False,
    image: Annotated[
        bool,
        typer.Option(
            "--image",
            help="Also build a container image of the release (at /app, its venv at "
            "/app/venv) with docker, saved into the artifact as image.tar.",
        ),
    ] = False,
    base_image: Annotated[
        str | None,
        typer.Option(
            "--base-image",
            metavar="REF",
            help="The image's base, already on this machine or pullable; default: "
            "\\[tool.bluegreen.image] base in pyproject.toml (one of the two is required).",
        ),
    ] = None,
    dockerfile: Annotated[
        Path | None,
        typer.Option(
            "--dockerfile",
            metavar="PATH",
            help="The project's own Dockerfile (its build context is the release tree; it gets "
            "BASE_IMAGE and BLUEGREEN_VERSION); default: \\[tool.bluegreen.image] dockerfile, "
            "else a generated one.",
            dir_okay=False,
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the artifact as one JSON object.")
    ] = False,
) -> None:
    """Build a release artifact (with its sha256) that the hosts install offline.

    Every dependency is resolved and downloaded as a wheel for the hosts' Python
    and platform (--python-version, --platform), not for this machine's.

    A uv.lock, poetry.lock or pylock.toml holds each dependency to its locked version;
    one published only as an sdist is built here if its wheel fits the hosts.

    With --image the artifact also carries a container image of the same release, which
    docker builds here from a base image it never pulls unasked (image.tar, `docker save`).
    """
    with _reported(ctx, json_output):
        if version is not None:
            _check_version(version)
        output_dir = output if output is not None else _default_artifact_dir(ctx)
        from bluegreen.build import build_artifact

        # Only what was given: build_artifact owns the defaults.
        target = {
            key: value
            for key, value in (
                ("name", name),
                ("with_requirements", with_requirements),
                ("include", include),
                ("python_version", python_version),
                ("platform", platform),
                ("image", image or None),
                ("base_image", base_image),
                ("dockerfile", dockerfile),
            )
            if value is not None
        }
        artifact = build_artifact(project_dir, output_dir, version=version, force=force, **target)
        fields = _record(artifact)
        if json_output:
            typer.echo(json.dumps(fields, default=str))
            return
        table = Table(title="Artifact", title_justify="left", show_header=False)
        table.add_column(style="bold")
        table.add_column()
        for key in ("name", "version", "path", "sha256", "size"):
            value = fields.get(key)
            table.add_row(key, _size(value) if key == "size" else str(value))
        built_image = fields.get("image")
        if built_image:
            # Docker's short ID: the full one is in the manifest and in --json.
            table.add_row(
                "image", f"{built_image['tag']} ({built_image['id'].removeprefix('sha256:')[:12]})"
            )
        _console().print(table)


@app.command(
    epilog=_examples(
        "bluegreen init ~/src/shop-api",
        "bluegreen init ~/src/mysite --name mysite",
        "bluegreen init . -o ../deploy/inventories/shop --force",
    )
)
def init(
    ctx: typer.Context,
    project_dir: Annotated[
        Path,
        typer.Argument(
            metavar="PATH",
            help="The service's project as the team keeps it (its pyproject.toml, "
            "requirements files, manage.py, sources); read only, never imported or run.",
            exists=True,
            file_okay=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="DIR",
            help="The inventory folder to write; default: inventories/<name>/ of the "
            "bluegreen project.",
            file_okay=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Service name (lower case, digits, - and _), as in bluegreen_service_name; "
            "default: the project's own, else its folder's.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Write into an existing inventory: replace the three files init writes; its "
            "other files stay.",
        ),
    ] = False,
) -> None:
    """Write a starter inventory for a Python web service from its project's files.

    Detects the name, framework and application, server, migration tool, health route,
    database, lock files and static files, and writes hosts.yml (one VM running nginx,
    both colours and the database), group_vars/all/service.yml (each value with a comment
    saying where it was detected, or that it is a placeholder) and
    group_vars/all/vault.yml.example. Nothing is written when anything fails.
    """
    with _reported(ctx):
        from bluegreen.build import service_name
        from bluegreen.init_inventory import (
            detected_rows,
            inventory_texts,
            next_commands,
            notes,
            write_inventory,
        )
        from bluegreen.project_scan import scan_project

        scan = scan_project(project_dir, service_name(name) if name is not None else None)
        shown_path = str(project_dir)
        texts = inventory_texts(scan, shown_path)
        directory = output if output is not None else _default_inventory_dir(ctx, scan)
        write_inventory(directory, texts, force)

        console = _console()
        table = Table(title=f"Detected in {shown_path}", title_justify="left")
        for column in ("what", "value", "from"):
            table.add_column(column, overflow="fold")
        for row in detected_rows(scan):
            table.add_row(*(escape(cell) for cell in row))
        console.print(table)
        for note in notes(scan):
            console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
        shown_inventory = _shown(directory)
        console.print(f"Wrote {escape(shown_inventory)}/: {', '.join(texts)}")
        console.print("[bold]Next[/bold]")
        for number, command in enumerate(next_commands(scan, shown_path, shown_inventory), 1):
            console.print(f"  {number}. {escape(command)}", soft_wrap=True)


def _default_inventory_dir(ctx: typer.Context, scan: Any) -> Path:
    from bluegreen.init_inventory import default_inventory_dir
    from bluegreen.project_scan import service_name

    try:
        return default_inventory_dir(_project(ctx), service_name(scan))
    except InputError as exc:
        raise InputError(f"{exc}; or pass -o DIR") from exc


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    absolute = path.resolve()
    try:
        return str(absolute.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(absolute)


def _default_artifact_dir(ctx: typer.Context) -> Path:
    try:
        return _project(ctx) / "artifacts"
    except InputError as exc:
        raise InputError(f"{exc}; or pass --output DIR") from exc


def _record(obj: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return dict(vars(obj))


def _size(value: Any) -> str:
    if not isinstance(value, int):
        return str(value)
    size = float(value)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


@lab_app.command(
    "up",
    epilog=_examples(
        "bluegreen lab up",
        "bluegreen lab up lab lab-single",
        "bluegreen lab up -i ../shop/deploy/shop-lab",
    ),
)
def lab_up(
    ctx: typer.Context, names: LabNames = None, inventory: LabInventoryOption = None
) -> None:
    """Create and start the lab containers (idempotent) and wait for their sshd."""
    with _reported(ctx):
        from bluegreen.lab import Lab

        lab = Lab(_project(ctx))
        _console().print(lab_table(lab.up(_labs(ctx, names, inventory) or DEFAULT_LABS)))


@lab_app.command(
    "down",
    epilog=_examples(
        "bluegreen lab down",
        "bluegreen lab down lab-single --purge",
        "bluegreen lab down -i ../shop/deploy/shop-lab",
    ),
)
def lab_down(
    ctx: typer.Context,
    names: LabNames = None,
    inventory: LabInventoryOption = None,
    purge: Annotated[
        bool,
        typer.Option(
            "--purge",
            help="Also remove the cached lab image and the lab SSH key, once no lab "
            "container is left.",
        ),
    ] = False,
) -> None:
    """Remove the lab containers (and their network once none is left)."""
    with _reported(ctx):
        from bluegreen.lab import Lab

        wanted = _labs(ctx, names, inventory) or DEFAULT_LABS
        Lab(_project(ctx)).down(wanted, purge=purge)
        _console().print(f"Removed the containers of: {', '.join(wanted)}")


@lab_app.command("image", epilog=_examples("bluegreen lab image"))
def lab_image(ctx: typer.Context) -> None:
    """Build the lab base image unless it is cached, and print its name."""
    with _reported(ctx):
        from bluegreen.lab import Lab

        lab = Lab(_project(ctx), log=lambda line: _console(stderr=True).print(line))
        typer.echo(lab.ensure_image())


@lab_app.command(
    "status",
    epilog=_examples(
        "bluegreen lab status",
        "bluegreen lab status lab --json",
        "bluegreen lab status -i ../shop/deploy/shop-lab",
    ),
)
def lab_status(
    ctx: typer.Context,
    names: LabNames = None,
    inventory: LabInventoryOption = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the containers as a JSON list.")
    ] = False,
) -> None:
    """Show each lab container: its state and its ports on 127.0.0.1."""
    with _reported(ctx, json_output):
        from bluegreen.lab import Lab

        lab = Lab(_project(ctx))
        wanted = _labs(ctx, names, inventory)
        rows = lab.status(wanted) if wanted else lab.status()
        if json_output:
            typer.echo(json.dumps(rows, default=str))
        else:
            _console().print(lab_table(rows))


def _labs(ctx: typer.Context, names: list[str] | None, inventory: str | None) -> list[str]:
    """The labs asked for: NAMES, then -i. A lab never takes bluegreen.toml's inventory,
    which names where releases go (often real hosts)."""
    source = ctx.get_parameter_source("inventory")
    from_file = source is not None and source.name == "DEFAULT_MAP"
    return [*(names or []), *([inventory] if inventory and not from_file else [])]


def lab_table(rows: list[Mapping[str, Any]]) -> RenderableType:
    """Lab containers as a table, one column per key the lab reports."""
    if not rows:
        return Text("No lab containers. Start them with `bluegreen lab up`.", style="dim")
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    table = Table(title="Lab", title_justify="left")
    for column in columns:
        table.add_column(column.replace("_", " "))
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    return table


def _cell(value: Any) -> Text:
    if isinstance(value, Mapping):
        return Text(", ".join(f"{key}:{val}" for key, val in value.items()))
    if value in ("running", "up"):
        return Text(str(value), style="green")
    if value in ("exited", "absent", "down"):
        return Text(str(value), style="red")
    return Text("-" if value is None else str(value))


def main() -> None:
    """Console entry point (``bluegreen``)."""
    app()
