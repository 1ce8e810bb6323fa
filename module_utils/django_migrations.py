# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Django's migrations: the helper that reads the graph, and what its answers mean.

The helper script run by ``manage.py shell`` (graph, applied migrations, plan and SQL of
each), its JSON answer, the targets a request names, the state strings current returns,
which migrations cannot be unapplied, and the verdicts for operations without SQL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.module_utils.migration_error import MigrationError
from ansible.module_utils.sql_statements import (
    BREAKING,
    EXPAND_SAFE,
    WARNING,
    StatementVerdict,
    excerpt,
)


def python_operation_verdict(describe: str, file: str | None) -> StatementVerdict:
    """The verdict for a Django operation that cannot be written as SQL (RunPython)."""
    where = f" in {file}" if file else ""
    return StatementVerdict(
        sql=f"-- {describe} (Python code, no SQL)",
        classification=WARNING,
        operation="python code",
        reason=f"runs Python code that cannot be classified from SQL; review it{where}",
    )


def empty_database_verdict(describe: str) -> StatementVerdict:
    """The verdict for an operation applied to a database that has no tables yet."""
    return StatementVerdict(
        sql=f"-- {describe}",
        classification=EXPAND_SAFE,
        operation="first schema",
        reason="the database has no tables, so no running colour can depend on its schema",
    )


# Django operations by what they do to a colour still running the previous release, for
# migrations whose SQL cannot be rendered in advance (an operation that inspects tables
# an earlier migration of the same plan creates). Field additions are judged on the field.
_DJANGO_EXPAND_OPERATIONS = frozenset(
    {
        "CreateModel",
        "AddIndex",
        "RenameIndex",
        "RemoveIndex",
        "RemoveConstraint",
        "AlterModelOptions",
        "AlterModelManagers",
        "AlterModelTableComment",
    }
)
_DJANGO_BREAKING_OPERATIONS = {
    "RemoveField": "removes a column the old colour still reads and writes",
    "DeleteModel": "drops a table the old colour still uses",
    "RenameField": "renames a column the old colour still uses by its old name",
    "RenameModel": "renames a table the old colour still uses by its old name",
    "AlterModelTable": "renames a table the old colour still uses by its old name",
}
_DJANGO_WARNING_OPERATIONS = {
    "AlterField": "changes a column (type, null, constraints); review that the old colour's "
    "reads and writes still fit",
    "AddConstraint": "adds a constraint that rows written by the old colour must satisfy",
    "AlterUniqueTogether": "changes a unique constraint that rows written by the old colour "
    "must satisfy",
    "AlterIndexTogether": "changes indexes; review its locking",
    "AlterOrderWithRespectTo": "adds or removes the _order column",
    "RunSQL": "runs raw SQL that could not be rendered; review it",
    "SeparateDatabaseAndState": "runs database operations that could not be rendered; review them",
}


def django_operation_verdict(operation: Mapping[str, Any], file: str | None) -> StatementVerdict:
    """The verdict for one Django operation, judged from what it is when its SQL cannot be
    rendered: new tables and indexes are expand-safe, removals and renames breaking."""
    kind = str(operation.get("type", ""))
    describe = str(operation.get("describe", kind))
    sql = f"-- {describe} (SQL not rendered)"
    where = f" in {file}" if file else ""
    if kind in _DJANGO_EXPAND_OPERATIONS:
        return StatementVerdict(sql, EXPAND_SAFE, kind, "")
    if kind == "AddField":
        if operation.get("null") or operation.get("db_default") or operation.get("many_to_many"):
            return StatementVerdict(sql, EXPAND_SAFE, kind, "")
        return StatementVerdict(
            sql,
            BREAKING,
            kind,
            "adds a NOT NULL column without a database default (db_default): the old "
            "colour's inserts do not set it",
        )
    if kind in _DJANGO_BREAKING_OPERATIONS:
        return StatementVerdict(sql, BREAKING, kind, _DJANGO_BREAKING_OPERATIONS[kind])
    if kind in _DJANGO_WARNING_OPERATIONS:
        return StatementVerdict(sql, WARNING, kind, _DJANGO_WARNING_OPERATIONS[kind] + where)
    if not operation.get("sql", True):
        return python_operation_verdict(describe, file)
    return StatementVerdict(
        sql,
        BREAKING,
        kind or "unknown operation",
        f"an operation bluegreen does not know, whose SQL could not be rendered{where}; "
        "treated as breaking",
    )


DJANGO_JSON_MARKER = "BLUEGREEN-MIGRATION-JSON "

# Run by `manage.py shell -c` in the release's virtualenv: reads the migration graph and
# what is applied, and plans the targets, the way `migrate` does. Prints one JSON line.
_DJANGO_HELPER = r"""
import json, sys
REQUEST = json.loads(__REQUEST__)
def _bluegreen_main():
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.executor import MigrationExecutor
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    loader, graph = executor.loader, executor.loader.graph
    applied = set(loader.applied_migrations)
    apps = sorted({app for app, _ in graph.nodes})
    def tips(nodes):
        names = []
        for node in nodes:
            children = graph.node_map[node].children
            if not any(child[0] == node[0] and child in nodes for child in children):
                names.append(node[1])
        return sorted(names)
    current = {a: tips({n for n in graph.nodes if n[0] == a and n in applied}) for a in apps}
    leaves = {a: sorted(n for app, n in graph.leaf_nodes() if app == a) for a in apps}
    def resolve(app, name):
        if app not in apps:
            raise LookupError("app %r has no migrations (apps: %s)" % (app, ", ".join(apps)))
        if name == "zero":
            return [(app, None)]
        if not name:
            return [(app, leaf) for leaf in leaves[app]]
        return [(app, loader.get_migration_by_prefix(app, name).name)]
    if REQUEST["targets"] is None:
        targets = [("", graph.leaf_nodes())]
    else:
        targets = [("%s.%s" % (a, n) if n else a, resolve(a, n)) for a, n in REQUEST["targets"]]
    plans, seen, combined = [], set(), []
    for label, nodes in targets:
        plan = executor.migration_plan(nodes)
        steps = [("%s.%s" % (m.app_label, m.name), bool(b)) for m, b in plan]
        plans.append({"target": label, "steps": steps})
        for m, b in plan:
            key = "%s.%s" % (m.app_label, m.name)
            if key not in seen:
                seen.add(key)
                combined.append((m, bool(b)))
    with connection.cursor() as cursor:
        names = connection.introspection.table_names(cursor)
    empty = not [name for name in names if name != "django_migrations"]
    render = REQUEST["sql"] and not (empty and not any(b for _, b in combined))
    state, migrations, done = None, [], []
    for m, backwards in combined:
        module = sys.modules.get(m.__module__)
        item = {
            "revision": "%s.%s" % (m.app_label, m.name), "app": m.app_label, "name": m.name,
            "backwards": backwards, "file": getattr(module, "__file__", None),
            "operations": [_bluegreen_operation(o) for o in m.operations]}
        if render:
            state = _bluegreen_sql(loader, connection, m, backwards, state, item, done)
        migrations.append(item)
    tables = []
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL")
            tables = [row[0] for row in cursor.fetchall()]
    return {"current": current, "leaves": leaves, "plans": plans, "migrations": migrations,
            "applied": sorted("%s.%s" % node for node in applied),
            "vendor": connection.vendor, "tables": tables, "empty": empty, "rendered": render}
def _bluegreen_operation(o):
    answer = {"type": type(o).__name__, "describe": o.describe(),
              "reversible": bool(o.reversible), "sql": bool(o.reduces_to_sql)}
    field = getattr(o, "field", None)
    if field is not None and hasattr(field, "null"):
        answer["null"] = bool(field.null)
        from django.db.models.fields import NOT_PROVIDED
        answer["db_default"] = getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED
        answer["many_to_many"] = bool(getattr(field, "many_to_many", False))
    return answer
def _bluegreen_sql(loader, connection, m, backwards, state, item, done):
    # What sqlmigrate prints, for the whole plan in this one process: the project state
    # is carried from one forward migration to the next instead of rebuilt for each.
    if state is None or backwards:
        state = loader.project_state((m.app_label, m.name), at_end=False)
    try:
        with connection.schema_editor(collect_sql=True, atomic=m.atomic) as editor:
            if backwards:
                m.unapply(state, editor, collect_sql=True)
            else:
                m.apply(state, editor, collect_sql=True)
        item["sql"] = "\n".join(editor.collected_sql)
    except Exception as exc:
        item["sql"] = None
        item["sql_error"] = "%s: %s" % (type(exc).__name__, exc)
        # apply() may have stopped halfway through the state: rebuild it as the end of
        # every migration planned so far, so the next one starts where this one ends.
        done.append((m.app_label, m.name))
        return None if backwards else loader.graph.make_state(
            nodes=list(done), at_end=True, real_apps=loader.unmigrated_apps)
    done.append((m.app_label, m.name))
    return None if backwards else state
try:
    _bluegreen_result = _bluegreen_main()
except Exception as exc:
    _bluegreen_result = {"error": "%s: %s" % (type(exc).__name__, exc)}
print(__MARKER__ + json.dumps(_bluegreen_result))
"""


def django_helper_script(targets: Sequence[tuple[str, str]] | None, sql: bool = False) -> str:
    """The helper for `manage.py shell -c`, planning `targets` (None: every app's leaves),
    and with `sql` rendering each planned migration's SQL the way sqlmigrate does."""
    request = json.dumps(
        {"targets": [list(t) for t in targets] if targets is not None else None, "sql": sql}
    )
    return (
        _DJANGO_HELPER.replace("__REQUEST__", repr(request))
        .replace("__MARKER__", repr(DJANGO_JSON_MARKER))
        .strip()
    )


def parse_django_helper(stdout: str) -> dict[str, Any]:
    """The helper's JSON; MigrationError when it is missing or reports an error."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(DJANGO_JSON_MARKER):
            result = json.loads(line[len(DJANGO_JSON_MARKER) :])
            if "error" in result:
                raise MigrationError(f"Django could not plan the migrations: {result['error']}")
            return result
    raise MigrationError(
        "Django printed no migration plan; check that command runs manage.py of the release "
        f"(output: {excerpt(stdout, 300) or 'none'})"
    )


_DJANGO_TARGET_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z0-9_]+))?")


def parse_django_targets(spec: str) -> list[tuple[str, str]]:
    """Targets from ``app.migration[,app.migration…]``: ``app.zero`` unapplies the app,
    a bare ``app`` means its latest migration. Names may be unique prefixes."""
    targets = []
    for part in spec.split(","):
        part = part.strip()
        match = _DJANGO_TARGET_RE.fullmatch(part)
        if not match:
            raise MigrationError(
                f"target {part!r} is not a Django migration: use app_label.migration_name "
                "(e.g. inventory.0002_product_note), app_label.zero, or several separated "
                "by commas, as returned in current"
            )
        targets.append((match.group(1), match.group(2) or ""))
    return targets


def django_state(names_by_app: Mapping[str, Sequence[str]]) -> str:
    """``app.migration`` for each app's latest applied migration (``app.zero`` for none),
    joined by commas: the string current returns and target accepts."""
    parts = []
    for app in sorted(names_by_app):
        names = names_by_app[app] or ["zero"]
        parts.extend(f"{app}.{name}" for name in names)
    return ",".join(parts)


def django_irreversible(operations: Sequence[Mapping[str, Any]]) -> str | None:
    """Why a Django migration cannot be unapplied, naming the operations; None if it can."""
    blocked = [op for op in operations if not op.get("reversible", True)]
    if not blocked:
        return None
    names = []
    for op in blocked:
        why = {
            "RunPython": "has no reverse_code",
            "RunSQL": "has no reverse_sql",
        }.get(op["type"], "is not reversible")
        names.append(f"{op['type']} ({op['describe']}) {why}")
    return "; ".join(names)
