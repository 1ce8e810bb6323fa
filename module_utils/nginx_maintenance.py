"""Decisions for the nginx_maintenance module, as pure functions.

Maintenance mode is three files next to a site that checks the flag on each request
(`if (-f <flag>) { return 503; }`): the flag, the page served with the 503, and an
include that sets the Retry-After header. The module reads them and the site, asks these
functions what each file should hold, and hands the change to module_utils/nginx_config.py,
which writes, tests and reloads (only for the include), and puts everything back on a
failure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ansible.module_utils.nginx_config import ChangeFailed, FileChange, NginxConfigError

FILES = ("include", "page", "flag")
_RETRY_AFTER_RE = re.compile(r"^\s*add_header\s+Retry-After\s+([0-9]+)\s+always\s*;", re.M)


@dataclass(frozen=True)
class MaintenanceFiles:
    """The files the toggle owns, as bytes; None when a file does not exist."""

    include: bytes | None
    page: bytes | None
    flag: bytes | None

    def as_text(self) -> dict[str, str | None]:
        contents = {"include": self.include, "page": self.page, "flag": self.flag}
        return {
            name: None if content is None else content.decode("utf-8", errors="replace")
            for name, content in contents.items()
        }


@dataclass(frozen=True)
class MaintenancePaths:
    include: str
    page: str
    flag: str


def state_word(on: bool) -> str:
    return "on" if on else "off"


def site_checks_flag(site: str | None, flag_path: str) -> bool:
    """Whether the site names the flag file; a site rendered before maintenance mode does not."""
    return site is not None and flag_path in site


def stale_site_message(site_path: str, flag_path: str) -> str:
    return (
        f"the site {site_path} does not check {flag_path} (it was rendered before maintenance "
        "mode existed): converge nginx first, e.g. release the live version again, which "
        "changes nothing else"
    )


def validate_retry_after(seconds: object) -> int:
    if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0:
        raise NginxConfigError(
            f"retry_after {seconds!r} is not valid: give the seconds users are asked to wait, "
            "0 or more"
        )
    return seconds


def validate_put_back(files: Mapping[str, Any]) -> dict[str, bytes | None]:
    """The files to put back, by name, as bytes; names left out are left as they are."""
    unknown = sorted(set(files) - set(FILES))
    if unknown:
        raise NginxConfigError(
            f"put_back has {', '.join(map(repr, unknown))}; give the previous value returned "
            f"by an earlier run, a mapping of {', '.join(FILES)} to content or null"
        )
    wrong = sorted(
        name for name, content in files.items() if not isinstance(content, (str, type(None)))
    )
    if wrong:
        raise NginxConfigError(
            f"put_back.{wrong[0]} must be the file's content as text, or null when it did not exist"
        )
    return {
        name: None if content is None else content.encode("utf-8")
        for name, content in files.items()
    }


def retry_after_in(include: bytes | None) -> int | None:
    """The Retry-After the include makes nginx send; None without a file or a directive."""
    if include is None:
        return None
    match = _RETRY_AFTER_RE.search(include.decode("utf-8", errors="replace"))
    return None if match is None else int(match.group(1))


def render_include(seconds: int) -> str:
    return (
        "# Written by bluegreen nginx_maintenance: the Retry-After of the maintenance page,\n"
        "# included by the site. Rewritten (then nginx is tested and reloaded) only when the\n"
        "# value changes; toggling maintenance itself never reloads nginx.\n"
        f"add_header Retry-After {seconds} always;\n"
    )


def render_flag(since: str, seconds: int) -> str:
    """The flag's content: when maintenance began and what users were told (for operators)."""
    return json.dumps({"since": since, "retry_after": seconds}) + "\n"


def files_after(
    current: MaintenanceFiles,
    *,
    maintenance: bool | None,
    retry_after: int,
    page: str | None,
    since: str,
    put_back: Mapping[str, bytes | None] | None = None,
) -> MaintenanceFiles:
    """What each file should hold after the task.

    On: the include only when the Retry-After it sends is not `retry_after` (so nginx is
    reloaded only then), the page when given, the flag only when it is missing (a flag
    already there keeps the time maintenance began). Off: the flag removed, nothing else.
    Put back: the previous content of each file named.
    """
    if put_back is not None:
        return MaintenanceFiles(
            include=put_back.get("include", current.include),
            page=put_back.get("page", current.page),
            flag=put_back.get("flag", current.flag),
        )
    if not maintenance:
        return MaintenanceFiles(include=current.include, page=current.page, flag=None)
    include = current.include
    if retry_after_in(include) != retry_after:
        include = render_include(retry_after).encode("utf-8")
    return MaintenanceFiles(
        include=include,
        page=current.page if page is None else page.encode("utf-8"),
        flag=current.flag if current.flag is not None else render_flag(since, retry_after).encode(),
    )


def file_changes(
    paths: MaintenancePaths, before: MaintenanceFiles, after: MaintenanceFiles
) -> list[FileChange]:
    """The files that change, in the order they are written: the include (which nginx loads,
    so it is tested and reloaded), then the page, then the flag, so users get the 503 only
    once the page and header are ready."""
    changes = [
        FileChange(paths.include, before.include, after.include, loaded=True),
        FileChange(paths.page, before.page, after.page),
        FileChange(paths.flag, before.flag, after.flag),
    ]
    return [change for change in changes if change.before != change.after]


def build_diffs(changes: Sequence[FileChange]) -> list[dict[str, str]]:
    def text(content: bytes | None) -> str:
        return "" if content is None else content.decode("utf-8", errors="replace")

    return [
        {
            "before": text(change.before),
            "after": text(change.after),
            "before_header": change.path,
            "after_header": change.path,
        }
        for change in changes
    ]


def failed_message(action: str, failed: ChangeFailed) -> str:
    """Why `action` ("turned on", "turned off", "put back") did not happen, and what nginx has."""
    if failed.step == "write":
        failure = f"could not write {failed.path}: {failed.stderr.strip()}"
    else:
        error = failed.stderr.strip() or "no error output"
        failure = f"{' '.join(failed.command)} failed after writing {failed.path}: {error}"
    if failed.restore_errors:
        errors = "; ".join(f"{path}: {error}" for path, error in failed.restore_errors.items())
        return (
            f"maintenance mode was not {action}: {failure}; putting the files back also failed "
            f"({errors}). Put them back by hand (remove each that did not exist), then run "
            "nginx -t and reload nginx"
        )
    if failed.second_reload_stderr is not None:
        second = failed.second_reload_stderr.strip() or "no error output"
        state = (
            f"every file was put back as it was, but reloading nginx again also failed: {second}. "
            "nginx may be stopped or still running what it loaded last: check it now "
            "(systemctl status nginx; nginx -T) before running again"
        )
    elif failed.reloaded_again:
        state = "every file was put back as it was and nginx was reloaded with them"
    else:
        state = "every file was put back as it was and nginx still serves them"
    advice = {
        "write": "Check that the directories exist or can be created and are writable "
        "(become: true), then run again",
        "test": "Fix the nginx configuration (nginx -t says what it rejects), then run again",
        "reload": "Find out why the reload failed (e.g. systemctl status nginx), then run again",
    }[failed.step]
    return f"maintenance mode was not {action}: {failure}; {state}. {advice}"
