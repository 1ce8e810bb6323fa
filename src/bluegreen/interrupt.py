"""Ctrl-C during a release: ask, then stop at once and let the journal finish the job.

A release cannot be paused halfway safely, but it can be killed halfway safely: the
lock, the journal and the recovery plays exist for exactly that (a kill -9 of the
controller). So a confirmed Ctrl-C kills the playbook, and the caller then runs the
rollback playbook, which finds the interrupted release in the journal and puts traffic
on (or back on) the colour that was verified.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import TextIO

from rich.console import Console

QUESTION = (
    "Stop the {command} now? Traffic will stay on, or go back to, the colour that was"
    " verified before it. [y/N] "
)


class InterruptGuard:
    """Catches SIGINT while a playbook runs; ``__call__`` is ansible-runner's cancel_callback.

    Interactive: the first Ctrl-C asks for confirmation (a second Ctrl-C at the prompt,
    or "y", confirms). Not interactive (--json, no terminal): SIGINT or SIGTERM stops.
    """

    def __init__(
        self,
        command: str,
        console: Console,
        interactive: bool,
        answers: TextIO | None = None,
    ) -> None:
        self.command = command
        self.console = console
        self.interactive = interactive
        self.answers = answers if answers is not None else sys.stdin
        self.requested = False
        self.confirmed = False
        self._prompting = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> InterruptGuard:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.requested or signum == signal.SIGTERM or not self.interactive:
            self.confirmed = True
        self.requested = True
        if self._prompting:
            # Interrupts the blocking read of the answer: a second Ctrl-C is a yes.
            raise KeyboardInterrupt

    def __call__(self) -> bool:
        """True once the operator confirmed that the run must stop."""
        if self.confirmed:
            return True
        if not self.requested:
            return False
        self.console.print()
        self.console.print(QUESTION.format(command=self.command), end="")
        self._prompting = True
        try:
            answer = self.answers.readline().strip().lower()
        except KeyboardInterrupt:
            answer = "y"
        finally:
            self._prompting = False
        if answer in ("y", "yes") or self.confirmed:
            self.confirmed = True
            return True
        self.console.print(f"Going on with the {self.command}.")
        self.requested = False
        return False
