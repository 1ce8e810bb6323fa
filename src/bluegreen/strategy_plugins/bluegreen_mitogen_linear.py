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

Ansible forks a worker for every task on every host, even for one that never leaves the
controller (set_fact, assert, an include): about 25 ms each from an 80 MB process on
these machines, more than the task's own work. Here such a task (an include, or an
action whose plugin declares ``_requires_connection = False``) runs in the strategy's
process, on a copy of the task as a worker has one, and its result goes through the same
queue. A rollback moved traffic 2.9 s after its start instead of 3.2 to 3.4
(docs/benchmarks.md, session 18). Otherwise this is Mitogen's ``mitogen_linear``.
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
from ansible import constants as C
from ansible import context
from ansible._internal import _task
from ansible._internal._errors import _error_utils
from ansible.errors import AnsibleError
from ansible.executor.process.worker import WorkerProcess
from ansible.executor.task_executor import TaskExecutor
from ansible.executor.task_result import _RawTaskResult
from ansible.playbook.block import Block
from ansible.playbook.task import Task
from ansible.plugins import loader as plugin_loader
from ansible.template import Templar
from ansible.utils.display import Display

display = Display()

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


def runs_in_process(task: Any) -> bool:
    """Whether ``task`` runs in the strategy's own process rather than in a forked worker:
    an include, or an action whose plugin says it needs no connection to its host
    (Ansible's own ``_requires_connection = False``: set_fact, assert, debug, fail,
    set_stats, ...; and role_inputs). Such a task's work is templating, and the worker
    forked for it (about 25 ms on these machines, from an 80 MB process) cost more."""
    if task.async_val:
        return False
    if task.action in C._ACTION_ALL_INCLUDES:
        return True
    handler = ansible_mitogen.loaders.action_loader.get(
        task.action, class_only=True, collection_list=task.collections
    )
    return handler is not None and not getattr(handler, "_requires_connection", True)


# The play variable naming the hosts whose connection opens while the controller works.
CONNECT_AHEAD = "bluegreen_strategy_connect_ahead"

# Hosts whose connection this ansible-playbook process opened (or is opening) ahead; kept
# across plays (a strategy object lives for one play).
_AHEAD_HOSTS: set[str] = set()


def hosts_to_connect_ahead(names: Any, known: Iterable[str]) -> list[str]:
    """The inventory hosts in ``names`` (a name or a list, as the play variable gives
    them) that have no connection opened ahead yet, in order, each once."""
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list | tuple):
        return []
    wanted = [str(name) for name in names if str(name) not in _AHEAD_HOSTS]
    known_names = set(known)
    return list(dict.fromkeys(name for name in wanted if name in known_names))


class Discarded:
    """The result queue of a worker whose result nobody waits for: what it sends (its
    result, its display) is dropped."""

    def send_task_result(self, *args: Any, **kwargs: Any) -> None:
        pass

    def send_callback(self, *args: Any, **kwargs: Any) -> None:
        pass

    def send_display(self, *args: Any, **kwargs: Any) -> None:
        pass

    def send_prompt(self, *args: Any, **kwargs: Any) -> None:
        pass

    def put(self, *args: Any, **kwargs: Any) -> None:
        pass


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):  # type: ignore[misc,valid-type]
    """Mitogen's linear strategy (ansible_mitogen's ``mitogen_linear``), waking on results."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        with self._results_lock:
            self._results = NotifyingResults(self._results_lock, self._results)

    def _queue_task(self, host: Any, task: Any, task_vars: Any, play_context: Any) -> None:
        """Ansible's queueing, except that a task that never leaves the controller runs
        here at once, its result sent through the same queue a worker's goes through."""
        if CONNECT_AHEAD in task_vars:
            self._connect_ahead(task, task_vars, play_context)
        if not runs_in_process(task):
            return super()._queue_task(host, task, task_vars, play_context)
        self._queued_task_cache[(host.name, task._uuid)] = {
            "host": host,
            "task": task,
            "task_vars": task_vars,
            "play_context": play_context,
        }
        self._tqm.send_callback("v2_runner_on_start", host, task)
        # A worker's task is a forked copy: the executor squashes and templates it in place.
        own_task = task.copy()
        result = self._result_here(host, own_task, task_vars, play_context)
        self._pending_results += 1
        try:
            fields = own_task.dump_attrs()
            self._final_q.send_task_result(
                _RawTaskResult(host=host, task=own_task, return_data=result, task_fields=fields)
            )
        except Exception as exc:
            # A result that cannot be pickled: its error instead, as a worker sends it.
            error = _error_utils.result_dict_from_exception(exc)
            self._final_q.send_task_result(
                _RawTaskResult(host=host, task=own_task, return_data=error, task_fields={})
            )
        return None

    def _result_here(self, host: Any, task: Any, task_vars: Any, play_context: Any) -> Any:
        """What a worker's executor would return for ``task``, run in this process."""
        try:
            with _task.TaskContext(task):
                return TaskExecutor(
                    host,
                    task,
                    task_vars,
                    play_context,
                    self._loader,
                    plugin_loader.get_plugin_loader_namespace(),
                    self._final_q,
                    self._variable_manager,
                ).run()
        except Exception as exc:
            return _error_utils.result_dict_from_exception(exc)

    def _connect_ahead(self, task: Any, task_vars: Any, play_context: Any) -> None:
        """Open the connection to each host the play names in CONNECT_AHEAD while the
        controller runs the tasks that need no host (the inventory's checks): a worker
        forked to ping it, whose result nobody waits for. Mitogen's first connection to a
        host (SSH, then its interpreter bootstrapped) took 0.9 s of a rollback's 2.9
        before the lock; the first task on that host then finds it open (Mitogen's
        connection service hands every worker the one context per host, waiting for one
        being opened). A connection that fails here is not reported: the task that needs
        it fails with the reason."""
        play = task.get_play()
        names = Templar(loader=self._loader, variables=task_vars).template(task_vars[CONNECT_AHEAD])
        for name in hosts_to_connect_ahead(names, self._inventory.hosts):
            _AHEAD_HOSTS.add(name)
            host = self._inventory.get_host(name)
            probe = Task.load(
                {"name": "Open the connection ahead", "action": "ansible.builtin.ping"},
                block=Block(play=play),
                variable_manager=self._variable_manager,
                loader=self._loader,
            )
            probe_vars = self._variable_manager.get_vars(
                play=play,
                host=host,
                task=probe,
                _hosts=self._hosts_cache,
                _hosts_all=self._hosts_cache_all,
            )
            self.add_tqm_variables(probe_vars, play=play)
            worker = WorkerProcess(
                final_q=Discarded(),
                task_vars=probe_vars,
                host=host,
                task=probe,
                play_context=play_context,
                loader=self._loader,
                variable_manager=self._variable_manager,
                shared_loader_obj=plugin_loader.get_plugin_loader_namespace(),
                worker_id=-1,
                cliargs=context.CLIARGS,
            )
            # A daemon: ansible-playbook ends it at exit rather than wait for it.
            worker.daemon = True
            display.vvv(f"opening the connection to {name} ahead", host=name)
            worker.start()

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
