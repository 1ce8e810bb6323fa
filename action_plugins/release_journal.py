# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""release_journal, plus the controller's copy of the journal written in this process.

Every record a release journals goes to two files: the journal on the primary load
balancer (shared by every controller) and the controller's own copy (history and reports
without a round trip). With ``controller_path`` the module appends on the task's host as
always, and this plugin appends the very record the host wrote (same timestamp, same
redaction) to ``controller_path`` here, in the controller's process: no second task, and
no Python started on the controller for it. A release writes about 40 records.

When the host cannot be reached or its append fails, the controller's copy still gets
the record, built here by the same function, so the evidence is never lost from both
copies at once; the task's result stays the host's (failed or unreachable).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.action import ActionBase

try:  # In the collection bluegreen.release.
    from ansible_collections.bluegreen.release.plugins.module_utils import (
        release_journal as journal,
    )
except ImportError:  # In the tree: the bluegreen package maps module_utils/ (pyproject).
    from bluegreen_module_utils import release_journal as journal

DEFAULT_MODE = "0640"


def line_of(record: dict[str, Any]) -> str:
    """The journal line of a record the module returned: the bytes the host wrote."""
    return journal.JournalEntry(**record).to_line()


def line_built_here(args: dict[str, Any]) -> str:
    """The record the module would have written, built here (the host failed)."""
    return journal.build_entry(
        release_id=args.get("release_id") or "",
        step=args.get("step") or "",
        outcome=args.get("outcome") or "",
        now=datetime.now(journal.UTC),
        started_at=args.get("started_at"),
        finished_at=args.get("finished_at"),
        host=args.get("host"),
        message=args.get("message"),
        evidence=args.get("evidence") or {},
        redact_values=args.get("redact") or [],
    ).to_line()


def file_mode(mode: Any) -> int:
    """The module's ``mode`` (octal string or number) as a number for os.chmod."""
    return int(mode, 8) if isinstance(mode, str) else int(mode)


class ActionModule(ActionBase):
    """Run release_journal on the host; with controller_path, copy its record here."""

    _VALID_ARGS = frozenset()  # everything but controller_path goes to the module

    def run(self, tmp: str | None = None, task_vars: dict[str, Any] | None = None) -> dict:
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        copy_to = args.pop("controller_path", None)
        if args.get("state", "present") != "present":
            copy_to = None
        try:
            result.update(self._execute_module(self._task.action, args, task_vars=task_vars))
        except AnsibleConnectionFailure:
            if copy_to:
                self._append_here(copy_to, args, None)
            raise
        if not copy_to:
            return result
        result["controller_copy"] = self._append_here(copy_to, args, result.get("record"))
        if "error" in result["controller_copy"] and not result.get("failed"):
            result["failed"] = True
            result["msg"] = result["controller_copy"]["error"]
        return result

    def _append_here(
        self, path: str, args: dict[str, Any], record: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Append the host's record (or one built here) to the controller's copy."""
        try:
            line = line_of(record) if record else line_built_here(args)
        except (journal.JournalError, TypeError) as exc:
            return {"path": path, "error": f"release journal {path}: {exc}"}
        try:
            if self._play_context.check_mode:
                return {"path": path, "line_number": journal.next_line_number(path, line)}
            line_number = journal.append_line(path, line)
            os.chmod(path, file_mode(args.get("mode", DEFAULT_MODE)))
        except (OSError, journal.JournalError, ValueError) as exc:
            return {
                "path": path,
                "error": f"cannot append to the controller's copy of the release journal"
                f" {path}: {exc}; check the path, its permissions and free space",
            }
        return {"path": path, "line_number": line_number}
