# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Mitogen for Ansible's linear strategy, with its module-dependency scan's compiles kept.

Before Mitogen sends a module to a host, its ModuleDepService scans the module for the
module_utils it imports, once per module per command: it compiles the module's source and
that of every file it imports, ansible.module_utils.basic's forty among them, again for
each module. That is about 50 ms of CPU a module, 92 % of it in ``compile``, and a
release runs some thirty modules (docs/benchmarks.md, session 16). Here each file's code
is compiled once per command: ansible_mitogen.module_finder calls ``compile`` by its
global name, which this module points at a cache keyed by the file's name and its exact
source, so a changed file is compiled anew.

Between a task's queueing and its results, Ansible's strategy polls its result queue
every ``internal_poll_interval`` (1 ms), CPU that grows with every second a task waits:
under the suite's load a release's controller CPU went from 20.5 to 16.0 s without it
(docs/benchmarks.md, session 17). Here the strategy sleeps on
the queue's condition until a result arrives, woken by the thread that appends it.
Otherwise this is Mitogen's ``mitogen_linear``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from contextlib import suppress
from threading import Condition
from types import CodeType
from typing import Any

import ansible_mitogen.loaders
import ansible_mitogen.module_finder
import ansible_mitogen.strategy
from ansible.errors import AnsibleError

_COMPILED: dict[tuple[Any, str, str], CodeType] = {}


def compiled(source: Any, filename: str, mode: str, *args: Any, **kwargs: Any) -> CodeType:
    """``compile(source, filename, mode)``, once for each exact source and name."""
    if args or kwargs:
        return compile(source, filename, mode, *args, **kwargs)
    key = (source, filename, mode)
    code = _COMPILED.get(key)
    if code is None:
        code = _COMPILED[key] = compile(source, filename, mode)
    return code


# The scan runs in Mitogen's mux process, forked from ansible-playbook when the strategy
# starts its first play: patched here, when ansible-playbook loads this plugin, it is in
# place there.
ansible_mitogen.module_finder.compile = compiled  # type: ignore[attr-defined]

Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


# How long the strategy sleeps at most without a result: it then checks again that no
# worker died and that the run was not stopped, as Ansible's own loop does each pass.
IDLE_CHECK_S = 0.1


class NotifyingResults(deque):
    """The strategy's result queue: appending wakes whoever waits on ``condition``.
    Ansible's results thread appends while it holds that condition's lock."""

    def __init__(self, condition: Condition, items: Iterable[Any] = ()) -> None:
        super().__init__(items)
        self.condition = condition

    def append(self, item: Any) -> None:
        super().append(item)
        # Appended without the lock (not what Ansible does today), notify_all raises: the
        # strategy still finds the result at its next check, IDLE_CHECK_S later.
        with suppress(RuntimeError):
            self.condition.notify_all()


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):  # type: ignore[misc,valid-type]
    """Mitogen's linear strategy (ansible_mitogen's ``mitogen_linear``), waking on results."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        with self._results_lock:
            self._results = NotifyingResults(self._results_lock, self._results)

    def _wait_on_pending_results(self, iterator: Any) -> list[Any]:
        """Ansible's loop (results until none is pending), sleeping on the queue's
        condition between passes instead of polling it."""
        results: list[Any] = []
        while self._pending_results > 0 and not self._tqm._terminated:
            if self._tqm.has_dead_workers():
                raise AnsibleError("A worker was found in a dead state")
            results.extend(self._process_pending_results(iterator))
            if self._pending_results > 0:
                with self._results_lock:
                    if not self._results:
                        self._results_lock.wait(IDLE_CHECK_S)
        return results
