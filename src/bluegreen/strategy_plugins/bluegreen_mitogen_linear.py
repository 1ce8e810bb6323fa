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
source, so a changed file is compiled anew. Otherwise this is Mitogen's ``mitogen_linear``.
"""

from __future__ import annotations

from types import CodeType
from typing import Any

import ansible_mitogen.loaders
import ansible_mitogen.module_finder
import ansible_mitogen.strategy

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


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):  # type: ignore[misc,valid-type]
    """Mitogen's linear strategy (ansible_mitogen's ``mitogen_linear``)."""
