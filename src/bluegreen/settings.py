"""Defaults from a config file, and the small value types options share.

The config file is TOML: a ``[defaults]`` table for every command and one table per
command, keyed by the options' long names::

    # bluegreen.toml (project root), or ~/.config/bluegreen/config.toml
    [defaults]
    inventory = "lab"

    [release]
    wait = "10m"

    [lock]          # a table for a command group applies to its subcommands
    inventory = "lab"

Options given on the command line win over the file; the file wins over built-in
defaults. An unknown command or option in the file is an error that names it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bluegreen.errors import InputError

CONFIG_NAME = "bluegreen.toml"
_DURATION = re.compile(r"^\s*(\d+)\s*(s|sec|m|min|h)?\s*$")
_UNIT_SECONDS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}


def parse_duration(text: str, option: str = "--wait") -> int:
    """Seconds in ``90``, ``90s``, ``10m`` or ``1h``; anything else is an InputError."""
    match = _DURATION.match(text)
    if not match:
        raise InputError(
            f"{option} {text!r} is not a duration: give seconds (90) or a number with s, m or h"
            " (90s, 10m, 1h)"
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def config_path(project: Path | None, explicit: Path | None = None) -> Path | None:
    """The config file in effect: --config, $BLUEGREEN_CONFIG, the project's, the user's."""
    if explicit is not None:
        if not explicit.is_file():
            raise InputError(f"config file {explicit} does not exist; fix --config")
        return explicit
    from_env = os.environ.get("BLUEGREEN_CONFIG")
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise InputError(f"BLUEGREEN_CONFIG names {path}, which does not exist")
        return path
    candidates = [project / CONFIG_NAME] if project else []
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    candidates.append(config_home / "bluegreen" / "config.toml")
    return next((path for path in candidates if path.is_file()), None)


def load_config(path: Path) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"cannot read the config file {path}: {exc}") from exc
    for table, values in document.items():
        if not isinstance(values, dict):
            raise InputError(
                f"{path}: {table!r} must be a table ([{table}]) of option = value lines"
            )
    return document


# Typer carries its own copy of click, so commands are duck-typed here: a group has
# ``commands``; an option is a parameter whose ``param_type_name`` is "option".


def _option_names(command: Any) -> dict[str, str]:
    """Config key (long option name without dashes, - or _) -> click parameter name."""
    names: dict[str, str] = {}
    for param in command.params:
        if getattr(param, "param_type_name", "") != "option" or param.name is None:
            continue
        for opt in param.opts:
            if opt.startswith("--"):
                key = opt[2:]
                names[key] = param.name
                names[key.replace("-", "_")] = param.name
    return names


def default_map(group: Any, config: Mapping[str, Any], source: Path) -> dict[str, Any]:
    """click's default_map for ``group`` from a config document; unknown keys are errors."""
    defaults = dict(config.get("defaults") or {})
    unknown_tables = sorted(set(config) - {"defaults"} - set(group.commands))
    if unknown_tables:
        raise InputError(
            f"{source}: no command {', '.join(unknown_tables)}; tables are [defaults] or one of"
            f" {', '.join(sorted(group.commands))}"
        )
    known_anywhere: set[str] = set()
    result: dict[str, Any] = {}
    for name, command in group.commands.items():
        section = dict(config.get(name) or {})
        if hasattr(command, "commands"):
            result[name] = {
                sub: _command_defaults(
                    subcommand,
                    defaults,
                    section,
                    f"{name} {sub}",
                    source,
                    known_anywhere,
                    strict=False,
                )
                for sub, subcommand in command.commands.items()
            }
            _check_known(
                section,
                set().union(*(_option_names(c) for c in command.commands.values())),
                name,
                source,
            )
            continue
        result[name] = _command_defaults(
            command, defaults, section, name, source, known_anywhere, strict=True
        )
    unknown_defaults = sorted(set(defaults) - known_anywhere)
    if unknown_defaults:
        raise InputError(
            f"{source}: [defaults] sets {', '.join(unknown_defaults)}, which no command has"
        )
    return result


def _command_defaults(
    command: Any,
    defaults: Mapping[str, Any],
    section: Mapping[str, Any],
    label: str,
    source: Path,
    known_anywhere: set[str],
    strict: bool,
) -> dict[str, Any]:
    names = _option_names(command)
    known_anywhere.update(key for key in defaults if key in names)
    if strict:
        _check_known(section, set(names), label, source)
    values = {names[key]: value for key, value in defaults.items() if key in names}
    values.update({names[key]: value for key, value in section.items() if key in names})
    return values


def _check_known(section: Mapping[str, Any], names: set[str], label: str, source: Path) -> None:
    unknown = sorted(set(section) - names)
    if unknown:
        options = ", ".join(sorted(n for n in names if "_" not in n or "-" not in n))
        raise InputError(
            f"{source}: [{label.split()[0]}] sets {', '.join(unknown)}, which `bluegreen"
            f" {label}` does not have; its options are: {options}"
        )
