"""Changing the files nginx reads, all or nothing: the I/O nginx_color and nginx_maintenance share.

A change is a list of files, each with the content it had and the content it should
have (None: the file does not exist). Each file is written atomically (a temporary file
in its directory, renamed over it), so nginx never reads half a file. A file nginx loads
with its configuration is then checked with the test command and nginx is reloaded
gracefully. When any step fails, every file already written is put back as it was, and
nginx is reloaded again if it had been, or may have been, reloaded: the caller is told
what failed and what is on disk now, and words the message for its own files.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.file_system import make_directories

FILE_MODE = 0o644
DIRECTORY_MODE = 0o755


class NginxConfigError(ValueError):
    """A file that cannot be read or a request that is refused; the message says what to do."""


@dataclass(frozen=True)
class FileChange:
    """One file of a change: its content before and after (None: absent).

    `loaded` marks a file nginx reads when it loads its configuration: after writing it
    the configuration is tested and nginx reloaded. Other files (a page, a flag that an
    `if (-f ...)` checks on each request) take effect without a reload.
    """

    path: str
    before: bytes | None
    after: bytes | None
    loaded: bool = False


@dataclass(frozen=True)
class ChangeFailed:
    """Why a change stopped, and what putting the files back did.

    `step` is "write" (the file could not be written or removed), "test" or "reload".
    `restore_errors` maps each file that could not be put back to the error; empty when
    every file is as it was. `second_reload_stderr` is the error of reloading nginx after
    the files were put back; None when that worked or was not needed. `reloaded_again` says
    whether nginx was reloaded after the put-back (it was, or a reload was tried, before).
    """

    path: str
    step: str
    command: tuple[str, ...] = ()
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    restore_errors: dict[str, str] = field(default_factory=dict)
    second_reload_stderr: str | None = None
    reloaded_again: bool = False

    @property
    def restored(self) -> bool:
        """Every file written is as it was before the change."""
        return not self.restore_errors


def read_file(path: str) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise NginxConfigError(
            f"could not read {path}: {exc.strerror or exc}; run the task with become: true "
            "or fix the permissions of the file and its directory"
        ) from exc


def as_text(content: bytes | None) -> str | None:
    return None if content is None else content.decode("utf-8", errors="replace")


def write_atomic(module: Any, path: str, content: bytes) -> None:
    """Replace `path` with `content` by rename, so nginx never reads a half-written file."""
    directory = os.path.dirname(path) or "."
    make_directories(directory, DIRECTORY_MODE)
    handle, temp_path = tempfile.mkstemp(prefix=".bluegreen.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as temp_file:
            temp_file.write(content)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.chmod(temp_path, FILE_MODE)
        module.atomic_move(temp_path, path)
        os.chmod(path, FILE_MODE)
    finally:
        if os.path.exists(temp_path):
            os.unlink(temp_path)


def set_content(module: Any, path: str, content: bytes | None) -> None:
    """Write `content` to `path` atomically, or remove the file when `content` is None."""
    if content is not None:
        write_atomic(module, path, content)
    elif os.path.lexists(path):
        os.unlink(path)


def restore(module: Any, path: str, previous: bytes | None) -> str | None:
    """Put the previous content back (or remove the file); the error text if that failed."""
    try:
        set_content(module, path, previous)
    except Exception as exc:  # atomic_move raises bare Exception for some failures
        return str(exc)
    return None


def run(module: Any, command: Sequence[str]) -> tuple[int, str, str]:
    """Run `command`; a missing program is reported like a failed command, not a crash."""
    try:
        return module.run_command(list(command), handle_exceptions=False)
    except OSError as exc:
        return 127, "", f"cannot run {command[0]}: {exc}"


def put_back(module: Any, written: Sequence[FileChange]) -> dict[str, str]:
    """Put every written file back, last written first; the errors by path."""
    errors = {}
    for change in reversed(written):
        error = restore(module, change.path, change.before)
        if error is not None:
            errors[change.path] = error
    return errors


def apply_changes(
    module: Any,
    changes: Sequence[FileChange],
    test_command: Sequence[str],
    reload_command: Sequence[str],
) -> ChangeFailed | None:
    """Make each file of `changes` hold its `after` content, in order; None when done.

    On a failure every file written so far is put back. nginx is reloaded once more when
    it was reloaded (or a reload was tried) before the failure, so it serves the files put
    back; not when a file could not be put back, because nginx would then load a mix.
    """
    written: list[FileChange] = []
    reloaded = False
    for change in changes:
        if change.before == change.after:
            continue
        try:
            set_content(module, change.path, change.after)
        except Exception as exc:  # atomic_move raises bare Exception for some failures
            return _put_back_after(
                module, written, reloaded, reload_command, change.path, "write", stderr=str(exc)
            )
        written.append(change)
        if not change.loaded:
            continue
        for step, command in (("test", test_command), ("reload", reload_command)):
            reloaded = reloaded or step == "reload"
            rc, stdout, stderr = run(module, command)
            if rc != 0:
                return _put_back_after(
                    module,
                    written,
                    reloaded,
                    reload_command,
                    change.path,
                    step,
                    command=tuple(command),
                    rc=rc,
                    stdout=stdout,
                    stderr=stderr,
                )
    return None


def _put_back_after(
    module: Any,
    written: Sequence[FileChange],
    reloaded: bool,
    reload_command: Sequence[str],
    path: str,
    step: str,
    **outcome: Any,
) -> ChangeFailed:
    restore_errors = put_back(module, written)
    second_reload_stderr = None
    reloaded_again = reloaded and not restore_errors
    if reloaded_again:
        rc, _, stderr = run(module, reload_command)
        second_reload_stderr = None if rc == 0 else stderr
    return ChangeFailed(
        path=path,
        step=step,
        restore_errors=restore_errors,
        second_reload_stderr=second_reload_stderr,
        reloaded_again=reloaded_again,
        **outcome,
    )
