# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""What Alembic's output means: ``history -v``, ``current`` and offline ``--sql``.

The revision graph, its heads and the current revisions, the target a request names,
the revisions a plan applies in order, the SQL of each, and whether a revision's
``downgrade()`` can undo it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ansible.module_utils.migration_error import MigrationError
from ansible.module_utils.sql_statements import Statement


@dataclass(frozen=True)
class AlembicRevision:
    revision: str
    parents: tuple[str, ...]
    path: str | None
    message: str


def parse_alembic_history(text: str) -> dict[str, AlembicRevision]:
    """The revisions in ``alembic history -v`` output, newest first as printed."""
    revisions: dict[str, AlembicRevision] = {}
    current: dict[str, Any] | None = None

    def close() -> None:
        if current is not None:
            revisions[current["revision"]] = AlembicRevision(
                revision=current["revision"],
                parents=current["parents"],
                path=current["path"],
                message=current["message"],
            )

    for line in text.splitlines():
        if line.startswith("Rev: "):
            close()
            current = {
                "revision": line[5:].split()[0],
                "parents": (),
                "path": None,
                "message": "",
            }
        elif current is None:
            continue
        elif line.startswith(("Parent: ", "Merges: ")):
            value = line.split(": ", 1)[1].strip()
            if value != "<base>":
                current["parents"] = tuple(p.strip() for p in value.split(",") if p.strip())
        elif line.startswith("Path: "):
            current["path"] = line[6:].strip()
        elif line.startswith("    ") and not current["message"] and line.strip():
            current["message"] = line.strip()
    close()
    return revisions


def alembic_marked_current(text: str) -> list[str]:
    """The revisions ``alembic history -v --indicate-current`` marks ``(current)``."""
    return [
        line[5:].split()[0]
        for line in text.splitlines()
        if line.startswith("Rev: ") and "(current)" in line
    ]


_UNKNOWN_REVISION_RE = re.compile(r"Can't locate revision identified by '([^']+)'")


def alembic_unknown_revision(output: str) -> str | None:
    """The revision Alembic reports the database at but cannot find in the release's scripts.

    That is the database of a later release: ``alembic current`` fails with
    "Can't locate revision identified by '0002'" when 1.0.0 (head 0001) reads it.
    """
    match = _UNKNOWN_REVISION_RE.search(output)
    return match.group(1) if match else None


def unknown_revision_note(current: str, head: str | None, release: str) -> str:
    """Why an upgrade of an older release left a newer database alone."""
    return (
        f"the database is at revision {current}, which release {release} does not ship (its "
        f"head is {head or 'none'}): a later release migrated it. Releases are expand-only, "
        "so this release's code runs on that schema and nothing was migrated; to take the "
        f"schema back, downgrade with the release that ships {current}"
    )


def alembic_heads(graph: Mapping[str, AlembicRevision]) -> list[str]:
    parents = {parent for revision in graph.values() for parent in revision.parents}
    return sorted(revision for revision in graph if revision not in parents)


def parse_alembic_current(text: str, graph: Mapping[str, AlembicRevision]) -> list[str]:
    """The revisions ``alembic current`` printed, ignoring any other output."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if words and words[0] in graph and words[0] not in found:
            found.append(words[0])
    return found


def resolve_alembic_target(target: str | None, graph: Mapping[str, AlembicRevision]) -> str | None:
    """The revision id `target` names: head (default), base (None), an id or unique prefix."""
    heads = alembic_heads(graph)
    if target in (None, "head", "heads"):
        if len(heads) != 1:
            raise MigrationError(
                f"the migrations have {len(heads)} heads ({', '.join(heads) or 'none'}); "
                "merge them (alembic merge heads) in the release, or name one in target"
            )
        return heads[0]
    if target == "base":
        return None
    if target in graph:
        return target
    matches = [revision for revision in graph if revision.startswith(target or "")]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(list(graph)[:10])
    problem = "matches several revisions" if matches else "is not a revision of this release"
    raise MigrationError(
        f"target {target!r} {problem}; known revisions: {known}. Use a full revision id, "
        "head or base"
    )


def alembic_ancestors(graph: Mapping[str, AlembicRevision], revision: str | None) -> set[str]:
    """`revision` and every revision it depends on."""
    seen: set[str] = set()
    stack = [revision] if revision else []
    while stack:
        item = stack.pop()
        if item in seen or item not in graph:
            continue
        seen.add(item)
        stack.extend(graph[item].parents)
    return seen


def alembic_order(graph: Mapping[str, AlembicRevision], revisions: set[str]) -> list[str]:
    """`revisions` in application order (parents before children)."""
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(revision: str) -> None:
        if revision in seen or revision not in revisions:
            return
        seen.add(revision)
        for parent in graph[revision].parents:
            visit(parent)
        ordered.append(revision)

    for revision in sorted(revisions):
        visit(revision)
    return ordered


def alembic_plan(
    graph: Mapping[str, AlembicRevision], current: str | None, target: str | None
) -> tuple[str, list[str]]:
    """(direction, revisions to run in order) to go from `current` to `target`.

    upgrade when the target is ahead, downgrade (newest first) when it is behind, none
    when they are equal. Branches that are neither are refused.
    """
    have = alembic_ancestors(graph, current)
    want = alembic_ancestors(graph, target)
    if have == want:
        return "none", []
    if have <= want:
        return "upgrade", alembic_order(graph, want - have)
    if want <= have:
        return "downgrade", list(reversed(alembic_order(graph, have - want)))
    raise MigrationError(
        f"the database is at {current}, which is on another branch than {target}; "
        "migrate along one branch (or merge the heads) first"
    )


# Alembic names the migration function it runs ("upgrade", "downgrade", or whatever a
# decorator called its wrapper), then the revisions on each side of the arrow.
_MARKER_RE = re.compile(r"^--\s*Running (\w+) (.*?)\s*->\s*(.*?)\s*$")


def alembic_sql_sections(
    statements: Sequence[Statement], direction: str = "upgrade"
) -> tuple[list[Statement], dict[str, list[Statement]]]:
    """Offline SQL split by the ``-- Running upgrade a -> b`` comments Alembic writes.

    Returns the statements before the first marker (the version table, BEGIN) and the
    statements of each revision: the new revision for an upgrade, the undone one for a
    downgrade. ``direction`` is the SQL's (``alembic upgrade --sql`` or ``downgrade``):
    a migration whose function is decorated is marked with its wrapper's name instead
    of the direction, and its statements must still count for its own revision.
    """
    preamble: list[Statement] = []
    sections: dict[str, list[Statement]] = {}
    revision: str | None = None
    for statement in statements:
        for comment in statement.comments:
            match = _MARKER_RE.match(comment.strip())
            if match:
                name, left, right = match.groups()
                ran = name if name in ("upgrade", "downgrade") else direction
                revision = right if ran == "upgrade" else left
                sections.setdefault(revision, [])
        if not statement.tokens:
            continue
        if revision is None:
            preamble.append(statement)
        else:
            sections[revision].append(statement)
    return preamble, sections


def alembic_downgrade_problem(source: str) -> str | None:
    """Why a revision's ``downgrade()`` cannot undo it, or None when it looks real.

    Irreversible: no ``downgrade`` function, a body of only ``pass``/``...``/docstring,
    or a ``raise`` among its top-level statements. SyntaxError propagates.
    """
    tree = ast.parse(source)
    function = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "downgrade":
            function = node
    if function is None:
        return "it has no downgrade() function"
    body = list(function.body)
    if body and _is_docstring(body[0]):
        body = body[1:]
    if all(
        isinstance(node, ast.Pass)
        or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
        for node in body
    ):
        return f"its downgrade() does nothing (line {function.lineno})"
    for node in body:
        if isinstance(node, ast.Raise):
            return f"its downgrade() raises {_raised_name(node.exc)} (line {node.lineno})"
    return None


def _raised_name(node: ast.expr | None) -> str:
    """The exception a raise names (ast.unparse is not available before Python 3.9)."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return "an exception"


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )
