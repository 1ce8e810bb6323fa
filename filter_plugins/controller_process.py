# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""The ansible-playbook process a command runs in, as the lock records its owner.

A task runs either in ansible-playbook's own process (the strategy runs the tasks that
never leave the controller there: bluegreen_mitogen_linear) or in a worker forked from it
(multiprocessing). Either way this names ansible-playbook, whose death is what makes a
held lock stale; a shell's ``$PPID`` named whichever ran the template.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from typing import Any


def bluegreen_controller_pid(_: Any = None) -> int:
    """The process id of ansible-playbook: this process's parent in a forked worker,
    else this process. (The value filtered is ignored.)"""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid is not None else os.getpid()


class FilterModule:
    """bluegreen's filters about the controller's own process."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"bluegreen_controller_pid": bluegreen_controller_pid}
