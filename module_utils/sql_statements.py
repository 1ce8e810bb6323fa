# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""SQL statements and what they do to the colour still serving: expand-safe, warning, breaking.

A tokenizer and statement splitter for PostgreSQL, SQLite and MySQL text (sqlparse is
not available on the hosts), the table definitions the classifier needs, and the
classifier that sorts each statement a migration would run into expand-safe, warning or
breaking, with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

# Tables in which the tools record which migrations ran: writing them is bookkeeping.
BOOKKEEPING_TABLES = frozenset({"alembic_version", "django_migrations"})

EXCERPT_CHARS = 160

EXPAND_SAFE = "expand-safe"
WARNING = "warning"
BREAKING = "breaking"
_SEVERITY = {EXPAND_SAFE: 0, WARNING: 1, BREAKING: 2}


def worst(classifications: Iterable[str]) -> str:
    """The most severe of `classifications` (expand-safe when there are none)."""
    return max(classifications, key=_SEVERITY.__getitem__, default=EXPAND_SAFE)


@dataclass(frozen=True)
class Token:
    """One lexical token of SQL text."""

    kind: str  # word, quoted, string, number, punct, comment, space
    text: str
    start: int

    @property
    def keyword(self) -> str:
        """The upper-cased word, or the punctuation itself; "" for anything else."""
        if self.kind == "word":
            return self.text.upper()
        if self.kind == "punct":
            return self.text
        return ""

    @property
    def name(self) -> str:
        """The identifier this token names, without quotes."""
        if self.kind != "quoted":
            return self.text
        inner = self.text[1:-1] if len(self.text) > 1 else ""
        closing = self.text[0] if self.text[0] != "[" else "]"
        return inner.replace(closing * 2, closing) if closing != "]" else inner

    @property
    def key(self) -> str:
        """Case-folded identifier, to compare names across quoting styles."""
        return self.name.lower()


_WORD_START = re.compile(r"[A-Za-z_\u0080-\U0010ffff]")
_WORD = re.compile(r"[A-Za-z0-9_$\u0080-\U0010ffff]*")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
_SPACE = re.compile(r"\s+")


def _end_of_quoted(sql: str, start: int, quote: str, backslash: bool = False) -> int:
    """Index after the closing `quote` (doubled quotes escape it); len(sql) if unclosed."""
    index = start + 1
    while index < len(sql):
        char = sql[index]
        if backslash and char == "\\":
            index += 2
            continue
        if char == quote:
            if index + 1 < len(sql) and sql[index + 1] == quote:
                index += 2
                continue
            return index + 1
        index += 1
    return len(sql)


def _end_of_block_comment(sql: str, start: int) -> int:
    depth, index = 0, start
    while index < len(sql):
        if sql.startswith("/*", index):
            depth, index = depth + 1, index + 2
        elif sql.startswith("*/", index):
            depth, index = depth - 1, index + 2
            if depth == 0:
                return index
        else:
            index += 1
    return len(sql)


def tokenize(sql: str, dialect: str = "postgresql") -> list[Token]:
    """Split `sql` into tokens, honouring quotes, comments and dollar quoting.

    Handles ``'…'`` strings with doubled quotes, ``E'…'`` strings with backslash escapes,
    ``$tag$…$tag$`` bodies, ``"…"`` and ``\\`…\\``` identifiers (``[…]`` too on SQLite),
    ``--`` comments and nested ``/* */`` comments. Unterminated constructs run to the end.
    """
    tokens: list[Token] = []
    index = 0
    length = len(sql)
    while index < length:
        char = sql[index]
        start = index
        if char.isspace():
            index = _SPACE.match(sql, index).end()  # type: ignore[union-attr]
            kind = "space"
        elif sql.startswith("--", index):
            newline = sql.find("\n", index)
            index = length if newline == -1 else newline
            kind = "comment"
        elif sql.startswith("/*", index):
            index = _end_of_block_comment(sql, index)
            kind = "comment"
        elif char == "'":
            index = _end_of_quoted(sql, index, "'")
            kind = "string"
        elif char in "eE" and index + 1 < length and sql[index + 1] == "'":
            index = _end_of_quoted(sql, index + 1, "'", backslash=True)
            kind = "string"
        elif char in '"`':
            index = _end_of_quoted(sql, index, char)
            kind = "quoted"
        elif char == "[" and dialect == "sqlite":
            closing = sql.find("]", index + 1)
            index = length if closing == -1 else closing + 1
            kind = "quoted"
        elif char == "$" and (tag := _DOLLAR_TAG.match(sql, index)):
            closing = sql.find(tag.group(), tag.end())
            index = length if closing == -1 else closing + len(tag.group())
            kind = "string"
        elif _WORD_START.match(char):
            index = _WORD.match(sql, index + 1).end()  # type: ignore[union-attr]
            kind = "word"
        elif char.isdigit() or (char == "." and index + 1 < length and sql[index + 1].isdigit()):
            index = _NUMBER.match(sql, index).end()  # type: ignore[union-attr]
            kind = "number"
        else:
            index += 1
            kind = "punct"
        tokens.append(Token(kind, sql[start:index], start))
    return tokens


@dataclass(frozen=True)
class Statement:
    """One SQL statement: its text, its significant tokens, and the comments before it.

    A chunk of comments with no statement after it is a Statement with no tokens.
    """

    text: str
    tokens: tuple[Token, ...]
    comments: tuple[str, ...]

    @property
    def words(self) -> list[str]:
        return [token.keyword for token in self.tokens]


def split_statements(sql: str, dialect: str = "postgresql") -> list[Statement]:
    """The statements of `sql`, split at semicolons outside quotes, comments and bodies.

    A ``;`` inside a SQLite ``CREATE TRIGGER … BEGIN … END`` or a PostgreSQL
    ``BEGIN ATOMIC … END`` body does not end the statement.
    """
    statements: list[Statement] = []
    significant: list[Token] = []
    comments: list[str] = []
    depth = 0
    trigger = False

    def finish(end: int) -> None:
        nonlocal significant, comments, depth, trigger
        if significant or comments:
            text = sql[significant[0].start : end].strip() if significant else ""
            statements.append(Statement(text, tuple(significant), tuple(comments)))
        significant, comments, depth, trigger = [], [], 0, False

    for token in tokenize(sql, dialect):
        if token.kind == "space":
            continue
        if token.kind == "comment":
            if not significant:
                comments.append(token.text)
            continue
        keyword = token.keyword
        if keyword == ";" and depth == 0:
            finish(token.start)
            continue
        if significant and significant[0].keyword == "CREATE" and keyword == "TRIGGER":
            trigger = True
        opens_body = keyword == "BEGIN" and trigger
        opens_atomic = keyword == "ATOMIC" and significant and significant[-1].keyword == "BEGIN"
        if opens_body or opens_atomic or (keyword == "CASE" and depth > 0):
            depth += 1
        elif keyword == "END" and depth > 0:
            depth -= 1
        significant.append(token)
    if significant:
        last = significant[-1]
        finish(last.start + len(last.text))
    elif comments:
        finish(len(sql))
    return statements


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """`text` on one line, cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _join_tokens(tokens: Sequence[Token]) -> str:
    """Tokens as compact normalised text: VARCHAR(100), NUMERIC(10,2), DOUBLE PRECISION."""
    text = ""
    for token in tokens:
        piece = token.text.upper() if token.kind == "word" else token.text
        if text and not (piece in "(),.[]:" or text[-1] in "(.[:"):
            text += " "
        text += piece
    return text


def _split_top_level(tokens: Sequence[Token], separator: str = ",") -> list[list[Token]]:
    """`tokens` split at `separator` outside parentheses."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.keyword in ("(", "["):
            depth += 1
        elif token.keyword in (")", "]"):
            depth -= 1
        elif token.keyword == separator and depth == 0:
            parts.append([])
            continue
        parts[-1].append(token)
    return [part for part in parts if part]


class _Cursor:
    """A read position in a statement's significant tokens."""

    def __init__(self, tokens: Sequence[Token]) -> None:
        self.tokens = list(tokens)
        self.index = 0

    def peek(self, offset: int = 0) -> str:
        position = self.index + offset
        return self.tokens[position].keyword if position < len(self.tokens) else ""

    def at(self, *keywords: str) -> bool:
        return all(self.peek(offset) == word for offset, word in enumerate(keywords))

    def accept(self, *keywords: str) -> bool:
        if self.at(*keywords):
            self.index += len(keywords)
            return True
        return False

    def take(self) -> Token | None:
        if self.index >= len(self.tokens):
            return None
        token = self.tokens[self.index]
        self.index += 1
        return token

    def name(self) -> tuple[str, str]:
        """A possibly qualified name: (display text, key of its last part)."""
        parts: list[Token] = []
        token = self.take()
        while token is not None and token.kind in ("word", "quoted"):
            parts.append(token)
            if not self.at("."):
                break
            self.index += 1
            token = self.take()
        if not parts:
            return "?", "?"
        return ".".join(part.name for part in parts), parts[-1].key

    def parenthesised(self) -> list[Token]:
        """The tokens inside the parentheses at the cursor (empty if there are none)."""
        if not self.at("("):
            return []
        depth, start = 0, self.index
        while self.index < len(self.tokens):
            keyword = self.tokens[self.index].keyword
            self.index += 1
            if keyword == "(":
                depth += 1
            elif keyword == ")":
                depth -= 1
                if depth == 0:
                    return self.tokens[start + 1 : self.index - 1]
        return self.tokens[start + 1 :]

    def rest(self) -> list[Token]:
        rest = self.tokens[self.index :]
        self.index = len(self.tokens)
        return rest

    def done(self) -> bool:
        return self.index >= len(self.tokens)


# --------------------------------------------------------------------------------------
# Table definitions, as far as the classifier needs them
# --------------------------------------------------------------------------------------

_COLUMN_CONSTRAINT_WORDS = frozenset(
    {
        "CONSTRAINT",
        "NOT",
        "NULL",
        "DEFAULT",
        "PRIMARY",
        "UNIQUE",
        "CHECK",
        "REFERENCES",
        "GENERATED",
        "COLLATE",
        "AUTOINCREMENT",
        "AS",
        "ON",
    }
)
_TABLE_CONSTRAINT_WORDS = frozenset(
    {"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "EXCLUDE", "LIKE"}
)
_SERIAL_TYPES = frozenset({"SERIAL", "BIGSERIAL", "SMALLSERIAL", "SERIAL2", "SERIAL4", "SERIAL8"})
# Defaults that PostgreSQL must evaluate per row, so ADD COLUMN rewrites the whole table.
_VOLATILE_FUNCTIONS = frozenset(
    {
        "RANDOM",
        "GEN_RANDOM_UUID",
        "UUID_GENERATE_V1",
        "UUID_GENERATE_V1MC",
        "UUID_GENERATE_V4",
        "CLOCK_TIMESTAMP",
        "TIMEOFDAY",
        "NEXTVAL",
        "TXID_CURRENT",
    }
)
_TEXT_TYPES = frozenset({"TEXT", "VARCHAR", "CHARACTER VARYING", "CITEXT"})
_INTEGER_WIDTH = {"SMALLINT": 2, "INT2": 2, "INTEGER": 4, "INT": 4, "INT4": 4}
_INTEGER_WIDTH.update({"BIGINT": 8, "INT8": 8})


@dataclass
class Column:
    """A column as a CREATE TABLE or ADD COLUMN defines it."""

    name: str
    type: str
    not_null: bool = False
    default: str | None = None
    auto: bool = False  # serial, identity, autoincrement, SQLite rowid alias
    generated: bool = False
    unique: bool = False

    @property
    def has_default(self) -> bool:
        if self.auto or self.generated:
            return True
        return self.default is not None and self.default.upper() != "NULL"

    @property
    def volatile_default(self) -> bool:
        if self.default is None:
            return False
        return any(word in _VOLATILE_FUNCTIONS for word in re.findall(r"\w+", self.default.upper()))


@dataclass
class Table:
    name: str
    columns: dict[str, Column]
    constraints: tuple[str, ...] = ()
    # Only what the plan itself did to a table the database was not read for.
    partial: bool = False


def parse_column(tokens: Sequence[Token]) -> Column:
    """A column definition: name, type, then constraints in any order."""
    cursor = _Cursor(tokens)
    name_token = cursor.take()
    name = name_token.name if name_token is not None else "?"
    type_tokens: list[Token] = []
    depth = 0
    while not cursor.done():
        keyword = cursor.peek()
        if depth == 0 and keyword in _COLUMN_CONSTRAINT_WORDS:
            break
        depth += keyword == "("
        depth -= keyword == ")"
        type_tokens.append(cursor.take())  # type: ignore[arg-type]
    column = Column(name=name, type=_join_tokens(type_tokens))
    base_type = column.type.split("(")[0]
    column.auto = base_type in _SERIAL_TYPES
    while not cursor.done():
        if cursor.accept("NOT", "NULL"):
            column.not_null = True
        elif cursor.accept("NULL"):
            column.not_null = False
        elif cursor.accept("DEFAULT"):
            expression: list[Token] = []
            while not cursor.done() and (
                not expression
                or cursor.peek() not in (_COLUMN_CONSTRAINT_WORDS - {"NULL", "AS", "ON"})
            ):
                if cursor.at("("):
                    expression.append(cursor.tokens[cursor.index])
                    inner = cursor.parenthesised()
                    expression.extend(inner)
                    expression.append(Token("punct", ")", 0))
                else:
                    expression.append(cursor.take())  # type: ignore[arg-type]
            column.default = _join_tokens(expression)
        elif cursor.accept("PRIMARY", "KEY"):
            column.not_null = True  # a primary key column is NOT NULL
            if base_type == "INTEGER":
                column.auto = True  # SQLite: INTEGER PRIMARY KEY is the rowid
        elif cursor.accept("UNIQUE"):
            column.unique = True
        elif cursor.accept("AUTOINCREMENT"):
            column.auto = True
        elif cursor.accept("GENERATED"):
            if not cursor.accept("ALWAYS"):
                cursor.accept("BY", "DEFAULT")
            cursor.accept("AS")
            if cursor.accept("IDENTITY"):
                column.auto = True
            else:
                column.generated = True
            cursor.parenthesised()
        elif cursor.accept("AS"):
            column.generated = True
            cursor.parenthesised()
        elif cursor.at("CHECK"):
            cursor.take()
            cursor.parenthesised()
        else:
            cursor.take()
    return column


def parse_create_table(statement: Statement) -> Table | None:
    """The table a CREATE TABLE statement defines; None for other statements or AS SELECT."""
    cursor = _Cursor(statement.tokens)
    if not cursor.accept("CREATE"):
        return None
    cursor.accept("OR", "REPLACE")
    for modifier in ("GLOBAL", "LOCAL", "TEMP", "TEMPORARY", "UNLOGGED"):
        cursor.accept(modifier)
    if not cursor.accept("TABLE"):
        return None
    cursor.accept("IF", "NOT", "EXISTS")
    display, _ = cursor.name()
    body = cursor.parenthesised()
    if not body and not cursor.done():
        return Table(name=display, columns={})
    columns: dict[str, Column] = {}
    constraints: list[str] = []
    for item in _split_top_level(body):
        if item[0].keyword in _TABLE_CONSTRAINT_WORDS:
            constraints.append(_join_tokens(item))
            _apply_table_constraint(item, columns)
        else:
            column = parse_column(item)
            columns[column.name.lower()] = column
    return Table(name=display, columns=columns, constraints=tuple(constraints))


def _apply_table_constraint(tokens: Sequence[Token], columns: Mapping[str, Column]) -> None:
    cursor = _Cursor(tokens)
    if cursor.accept("CONSTRAINT"):
        cursor.name()
    if cursor.accept("PRIMARY", "KEY"):
        names = [token.key for token in cursor.parenthesised() if token.kind in ("word", "quoted")]
        for key in names:
            if key in columns:
                columns[key].not_null = True
        if len(names) == 1 and names[0] in columns and columns[names[0]].type == "INTEGER":
            columns[names[0]].auto = True


class Schema:
    """The tables a plan touches, as known before it and as each statement changes them.

    Seeded from the live database when it can be read (SQLite), then updated statement by
    statement, so a later statement is judged against what the earlier ones did: an index
    on a table created in the same plan locks nobody, a NOT NULL column added by the plan
    is unknown to the old colour.
    """

    def __init__(self) -> None:
        self.tables: dict[str, Table] = {}
        self.created: set[str] = set()  # tables the plan created
        self.added: set[tuple[str, str]] = set()  # columns the plan added to older tables

    def seed(self, create_sql: str, dialect: str = "sqlite") -> None:
        for statement in split_statements(create_sql, dialect):
            table = parse_create_table(statement)
            if table is not None:
                self.tables[table.name.rsplit(".", 1)[-1].lower()] = table

    def table_for(self, key: str, display: str) -> Table:
        """The table `key`, or an empty partial one to record what the plan does to it."""
        if key not in self.tables:
            self.tables[key] = Table(name=display, columns={}, partial=True)
        return self.tables[key]

    def column_for(self, key: str, table: str, column_key: str, display: str) -> Column:
        """The column, or a placeholder of unknown type to record what the plan does."""
        columns = self.table_for(key, table).columns
        if column_key not in columns:
            columns[column_key] = Column(name=display, type="")
        return columns[column_key]

    def is_new(self, table: str) -> bool:
        return table in self.created

    def is_new_column(self, table: str, column: str) -> bool:
        return table in self.created or (table, column) in self.added


# --------------------------------------------------------------------------------------
# The classifier
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementVerdict:
    """One statement a migration runs, and what it means for the colour still serving."""

    sql: str
    classification: str
    operation: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {
            "sql": self.sql,
            "classification": self.classification,
            "operation": self.operation,
            "reason": self.reason,
        }


_CONTROL_WORDS = frozenset(
    {"BEGIN", "COMMIT", "ROLLBACK", "START", "END", "SAVEPOINT", "RELEASE", "ABORT"}
)
_SESSION_WORDS = frozenset({"SET", "RESET", "PRAGMA", "SHOW", "USE", "DISCARD"})
_DESTRUCTIVE_WORDS = frozenset({"DROP", "RENAME", "TRUNCATE", "DELETE", "CHANGE", "MODIFY"})
_OBJECT_KINDS = (
    ("MATERIALIZED", "VIEW"),
    ("FOREIGN", "TABLE"),
    ("EVENT", "TRIGGER"),
    ("TEXT", "SEARCH", "CONFIGURATION"),
    ("TEXT", "SEARCH", "DICTIONARY"),
    ("ACCESS", "METHOD"),
    ("OPERATOR", "CLASS"),
    ("OPERATOR", "FAMILY"),
    ("FOREIGN", "DATA", "WRAPPER"),
    ("TABLE",),
    ("INDEX",),
    ("VIEW",),
    ("SEQUENCE",),
    ("TYPE",),
    ("DOMAIN",),
    ("FUNCTION",),
    ("PROCEDURE",),
    ("AGGREGATE",),
    ("TRIGGER",),
    ("SCHEMA",),
    ("EXTENSION",),
    ("RULE",),
    ("POLICY",),
    ("COLLATION",),
    ("STATISTICS",),
    ("OPERATOR",),
    ("PUBLICATION",),
    ("SUBSCRIPTION",),
    ("SERVER",),
    ("ROLE",),
    ("USER",),
    ("CAST",),
)


def is_control(statement: Statement) -> bool:
    """Transaction control (BEGIN, COMMIT, …) that says nothing about the schema."""
    return (
        bool(statement.tokens)
        and statement.tokens[0].keyword in _CONTROL_WORDS
        and not (
            statement.tokens[0].keyword == "BEGIN"
            and len(statement.tokens) > 1
            and statement.tokens[1].keyword
            not in (
                "TRANSACTION",
                "WORK",
                "DEFERRED",
                "IMMEDIATE",
                "EXCLUSIVE",
                "ISOLATION",
                "READ",
            )
        )
    )


def _object_kind(cursor: _Cursor) -> str:
    for kind in _OBJECT_KINDS:
        if cursor.accept(*kind):
            return " ".join(kind).lower()
    return ""


def _widening(old: str, new: str) -> bool:
    """Whether a type change only widens what the column accepts (old values still fit).

    False when the old type is unknown ("").
    """
    old_base, new_base = old.split("(")[0], new.split("(")[0]
    if new_base == "TEXT" and old_base in _TEXT_TYPES:
        return True
    if old_base in ("VARCHAR", "CHARACTER VARYING") and new_base == old_base:
        old_size, new_size = re.findall(r"\d+", old), re.findall(r"\d+", new)
        return not new_size or (bool(old_size) and int(new_size[0]) >= int(old_size[0]))
    if old_base in _INTEGER_WIDTH and new_base in _INTEGER_WIDTH:
        return _INTEGER_WIDTH[new_base] >= _INTEGER_WIDTH[old_base]
    return False


if TYPE_CHECKING:  # the hosts' Python 3.8 cannot subscript collections.abc.Callable
    # Judges one statement of a kind, with a cursor just past its leading words.
    Handler = Callable[[Statement, _Cursor], StatementVerdict]


class Classifier:
    """Sorts SQL statements into expand-safe, warning and breaking, statement by statement.

    Expand-safe: the colour still serving keeps working while and after it runs (new
    tables, nullable columns, columns with a default, concurrent indexes, NOT VALID
    constraints, inserts). Warning: compatible, but it locks or rewrites a live table,
    changes data, or cannot be judged from SQL: review it. Breaking: the old colour's
    queries fail or data is lost (drops, renames, type changes, NOT NULL without a
    default, truncation). Unrecognised statements are warnings, or breaking when they
    contain DROP, RENAME, TRUNCATE or DELETE.
    """

    def __init__(self, dialect: str = "postgresql", schema: Schema | None = None) -> None:
        self.dialect = dialect
        self.schema = schema if schema is not None else Schema()

    @staticmethod
    def _verdict(
        statement: Statement, classification: str, operation: str, reason: str
    ) -> StatementVerdict:
        return StatementVerdict(statement.text, classification, operation, reason)

    def classify(self, statements: Sequence[Statement]) -> list[StatementVerdict]:
        """Verdicts for `statements` in order, skipping comment-only chunks.

        Recognises the table rebuild that Django and Alembic's batch mode use on SQLite
        (CREATE TABLE new; INSERT INTO new SELECT … FROM old; DROP TABLE old; ALTER TABLE
        new RENAME TO old) and judges it by how the columns changed.
        """
        verdicts: list[StatementVerdict] = []
        real = [statement for statement in statements if statement.tokens]
        index = 0
        while index < len(real):
            rebuild = self._rebuild_at(real, index)
            if rebuild is not None:
                count, verdict_args = rebuild
                verdicts.extend(
                    StatementVerdict(statement.text, *verdict_args)
                    for statement in real[index : index + count]
                )
                index += count
                continue
            verdicts.append(self.statement(real[index]))
            index += 1
        return verdicts

    def statement(self, statement: Statement) -> StatementVerdict:
        cursor = _Cursor(statement.tokens)
        first = cursor.peek()
        if is_control(statement):
            return self._verdict(statement, EXPAND_SAFE, "transaction control", "")
        if first in _SESSION_WORDS:
            return self._verdict(statement, EXPAND_SAFE, "session setting", "")
        handler = {
            "CREATE": self._create,
            "DROP": self._drop,
            "ALTER": self._alter,
            "INSERT": self._insert,
            "UPDATE": self._update,
            "DELETE": self._delete,
            "TRUNCATE": self._truncate,
            "SELECT": self._select,
            "WITH": self._with,
            "VALUES": self._select,
            "COMMENT": self._harmless("comment"),
            "GRANT": self._harmless("grant privileges"),
            "ANALYZE": self._harmless("analyze"),
            "REVOKE": self._revoke,
            "VACUUM": self._vacuum,
            "REINDEX": self._concurrently("reindex"),
            "REFRESH": self._concurrently("refresh materialized view"),
            "CLUSTER": self._locking("cluster"),
            "LOCK": self._locking("lock table"),
            "DO": self._procedural,
            "CALL": self._procedural,
            "EXECUTE": self._procedural,
            "RENAME": self._mysql_rename,
        }.get(first)
        if handler is None:
            return self._unrecognised(statement)
        return handler(statement, cursor)

    # ---- generic outcomes -------------------------------------------------------------

    def _unrecognised(self, statement: Statement) -> StatementVerdict:
        destructive = sorted({w for w in statement.words if w in _DESTRUCTIVE_WORDS})
        if destructive:
            return self._verdict(
                statement,
                BREAKING,
                "unrecognised statement",
                f"the classifier does not recognise this statement and it contains "
                f"{', '.join(destructive)}, so it is treated as breaking; review it",
            )
        return self._verdict(
            statement,
            WARNING,
            "unrecognised statement",
            "the classifier does not recognise this statement; review it",
        )

    def _harmless(self, operation: str) -> Handler:
        def handler(statement: Statement, _cursor: _Cursor) -> StatementVerdict:
            return self._verdict(statement, EXPAND_SAFE, operation, "")

        return handler

    def _locking(self, operation: str) -> Handler:
        def handler(statement: Statement, _cursor: _Cursor) -> StatementVerdict:
            return self._verdict(
                statement,
                WARNING,
                operation,
                "takes an exclusive lock on a live table while it runs",
            )

        return handler

    def _concurrently(self, operation: str) -> Handler:
        def handler(statement: Statement, _cursor: _Cursor) -> StatementVerdict:
            if "CONCURRENTLY" in statement.words:
                return self._verdict(statement, EXPAND_SAFE, operation, "runs concurrently")
            return self._verdict(
                statement,
                WARNING,
                operation,
                "blocks the live table while it runs; add CONCURRENTLY",
            )

        return handler

    def _procedural(self, statement: Statement, _cursor: _Cursor) -> StatementVerdict:
        return self._verdict(
            statement,
            WARNING,
            "procedural code",
            "runs procedural code whose effect cannot be judged from SQL; review it",
        )

    def _revoke(self, statement: Statement, _cursor: _Cursor) -> StatementVerdict:
        return self._verdict(
            statement,
            WARNING,
            "revoke privileges",
            "the old colour may need the privileges this revokes",
        )

    def _vacuum(self, statement: Statement, _cursor: _Cursor) -> StatementVerdict:
        if "FULL" in statement.words:
            return self._verdict(
                statement, WARNING, "vacuum full", "rewrites the table under an exclusive lock"
            )
        return self._verdict(statement, EXPAND_SAFE, "vacuum", "")

    def _mysql_rename(self, statement: Statement, cursor: _Cursor) -> StatementVerdict:
        cursor.accept("RENAME")
        cursor.accept("TABLE")
        display, _ = cursor.name()
        return self._verdict(
            statement,
            BREAKING,
            f"rename table {display}",
            "the old colour still uses the table under its current name",
        )

    # ---- CREATE -----------------------------------------------------------------------

    def _create(self, statement: Statement, cursor: _Cursor) -> StatementVerdict:
        cursor.accept("CREATE")
        replace = cursor.accept("OR", "REPLACE")
        unique = cursor.accept("UNIQUE")
        for modifier in (
            "GLOBAL",
            "LOCAL",
            "TEMP",
            "TEMPORARY",
            "UNLOGGED",
            "RECURSIVE",
            "CONSTRAINT",
            "TRUSTED",
            "PROCEDURAL",
            "DEFAULT",
        ):
            cursor.accept(modifier)
        if cursor.at("TABLE"):
            return self._create_table(statement)
        if cursor.accept("INDEX"):
            return self._create_index(statement, cursor, unique)
        kind = _object_kind(cursor) or "object"
        cursor.accept("IF", "NOT", "EXISTS")
        display, _ = cursor.name()
        if replace:
            return self._verdict(
                statement,
                WARNING,
                f"replace {kind} {display}",
                "replaces the definition the old colour may rely on",
            )
        return self._verdict(statement, EXPAND_SAFE, f"create {kind} {display}", "")

    def _create_table(self, statement: Statement) -> StatementVerdict:
        table = parse_create_table(statement)
        display = table.name if table is not None else "?"
        key = display.rsplit(".", 1)[-1].lower()
        if table is not None:
            self.schema.tables[key] = table
            self.schema.created.add(key)
        if key in BOOKKEEPING_TABLES:
            return self._verdict(
                statement, EXPAND_SAFE, f"create table {display}", "records migration state"
            )
        return self._verdict(statement, EXPAND_SAFE, f"create table {display}", "a new table")

    def _create_index(
        self, statement: Statement, cursor: _Cursor, unique: bool
    ) -> StatementVerdict:
        concurrently = cursor.accept("CONCURRENTLY")
        cursor.accept("IF", "NOT", "EXISTS")
        index_name = "" if cursor.at("ON") else cursor.name()[0]
        cursor.accept("ON")
        cursor.accept("ONLY")
        table, key = cursor.name()
        kind = "unique index" if unique else "index"
        operation = f"create {kind} {index_name} on {table}".replace("  ", " ")
        if self.schema.is_new(key):
            return self._verdict(statement, EXPAND_SAFE, operation, "on a table new in this plan")
        if unique:
            return self._verdict(
                statement,
                WARNING,
                operation,
                "the old colour's writes that would duplicate a value start failing"
                + (
                    ""
                    if concurrently or self.dialect != "postgresql"
                    else "; it also blocks writes to the table while it builds: add CONCURRENTLY"
                ),
            )
        if concurrently or self.dialect != "postgresql":
            return self._verdict(statement, EXPAND_SAFE, operation, "")
        return self._verdict(
            statement,
            WARNING,
            operation,
            f"locking: blocks writes to {table} while the index builds; "
            "use CREATE INDEX CONCURRENTLY",
        )

    # ---- DROP -------------------------------------------------------------------------

    def _drop(self, statement: Statement, cursor: _Cursor) -> StatementVerdict:
        cursor.accept("DROP")
        kind = _object_kind(cursor) or "object"
        concurrently = cursor.accept("CONCURRENTLY")
        cursor.accept("IF", "EXISTS")
        names = [
            _Cursor(part).name()
            for part in _split_top_level(
                [t for t in cursor.rest() if t.keyword not in ("CASCADE", "RESTRICT")]
            )
        ] or [("?", "?")]
        display = ", ".join(name for name, _ in names)
        operation = f"drop {kind} {display}"
        if kind == "index":
            reason = "queries of the old colour may rely on this index"
            if self.dialect == "postgresql" and not concurrently:
                reason += "; it takes an exclusive lock on the table: use DROP INDEX CONCURRENTLY"
            return self._verdict(statement, WARNING, operation, reason)
        if kind == "table":
            keys = [key for _, key in names]
            new = all(self.schema.is_new(key) for key in keys)
            for key in keys:
                self.schema.tables.pop(key, None)
                self.schema.created.discard(key)
            if new:
                return self._verdict(statement, EXPAND_SAFE, operation, "a table new in this plan")
            return self._verdict(
                statement,
                BREAKING,
                operation,
                "the old colour still reads and writes this table, and its data is lost",
            )
        return self._verdict(
            statement, BREAKING, operation, f"the old colour may still use this {kind}"
        )

    def _truncate(self, statement: Statement, cursor: _Cursor) -> StatementVerdict:
        cursor.accept("TRUNCATE")
        cursor.accept("TABLE")
        cursor.accept("ONLY")
        display, _ = cursor.name()
        return self._verdict(
            statement, BREAKING, f"truncate {display}", "deletes every row of the table"
        )

    # ---- DML --------------------------------------------------------------------------

    def _insert(self, statement: Statement, cursor: _Cursor) -> StatementVerdict:
        cursor.accept("INSERT")
        while cursor.peek() in ("OR", "REPLACE", "IGNORE", "ABORT", "FAIL", "ROLLBACK"):
            cursor.take()
        cursor.accept("INTO")
        display, key = cursor.name()
        if key in BOOKKEEPING_TABLES:
            return self._verdict(
                statement, EXPAND_SAFE, f"insert into {display}", "records migration state"
            )
        return self._verdict(statement, EXPAND_SAFE, f"insert into {display}", "adds rows")

    def _update(self, statement: Statement, cursor: _Cursor) -> StatementVerdict:
        cursor.accept("UPDATE")
        cursor.accept("ONLY")
        display, key = cursor.name()
        if key in BOOKKEEPING_TABLES:
            return self._verdict(
                statement, EXPAND_SAFE, f"update {display}", "records migration state"
            )
        if self.schema.is_new(key):
            return self._verdict(statement, EXPAND_SAFE, f"update {display}", "a new table")
        return self._verdict(
            statement,
            WARNING,
            f"update {display}",
            "changes existing rows, which stay locked until the migration commits; "
            "batch large backfills",
        )

    def _delete(self, statement: Statement, cursor: _Cursor) -> StatementVerdict:
        cursor.accept("DELETE")
        cursor.accept("FROM")
        cursor.accept("ONLY")
        display, key = cursor.name()
        if key in BOOKKEEPING_TABLES:
            return self._verdict(
                statement, EXPAND_SAFE, f"delete from {display}", "records migration state"
            )
        return self._verdict(
            statement, WARNING, f"delete from {display}", "deletes rows the old colour may read"
        )

    def _select(self, statement: Statement, _cursor: _Cursor) -> StatementVerdict:
        return self._verdict(statement, EXPAND_SAFE, "query", "")

    def _with(self, statement: Statement, _cursor: _Cursor) -> StatementVerdict:
        writes = sorted({w for w in statement.words if w in ("INSERT", "UPDATE", "DELETE")})
        if writes:
            return self._verdict(
                statement,
                WARNING,
                "data-modifying query",
                f"a WITH query that runs {', '.join(writes)}; review it",
            )
        return self._verdict(statement, EXPAND_SAFE, "query", "")

    # ---- ALTER ------------------------------------------------------------------------

    def _alter(self, statement: Statement, cursor: _Cursor) -> StatementVerdict:
        cursor.accept("ALTER")
        if cursor.accept("TABLE"):
            return self._alter_table(statement, cursor)
        kind = _object_kind(cursor) or "object"
        cursor.accept("IF", "EXISTS")
        display, _ = cursor.name()
        rest = [token.keyword for token in cursor.rest()]
        operation = f"alter {kind} {display}"
        if kind == "index":
            if "TABLESPACE" in rest:
                return self._verdict(statement, WARNING, operation, "moves the index under a lock")
            return self._verdict(statement, EXPAND_SAFE, operation, "")
        if kind in ("type", "domain") and rest[:2] == ["ADD", "VALUE"]:
            return self._verdict(statement, EXPAND_SAFE, f"add value to type {display}", "")
        if "RENAME" in rest or rest[:2] == ["SET", "SCHEMA"]:
            return self._verdict(
                statement,
                BREAKING,
                f"{operation}: {' '.join(rest[:2]).lower()}",
                "the old colour still uses the current name",
            )
        if kind in ("type", "domain") and ("DROP" in rest or "ALTER" in rest):
            return self._verdict(
                statement, BREAKING, operation, f"changes the {kind} the old colour uses"
            )
        if kind == "domain":
            return self._verdict(
                statement,
                WARNING,
                operation,
                "changes what values the domain accepts; the old colour's writes may fail",
            )
        return self._verdict(statement, EXPAND_SAFE, operation, "")

    def _alter_table(self, statement: Statement, cursor: _Cursor) -> StatementVerdict:
        cursor.accept("IF", "EXISTS")
        cursor.accept("ONLY")
        display, key = cursor.name()
        cursor.accept("*")
        actions = _split_top_level(cursor.rest())
        if not actions:
            return self._unrecognised(statement)
        verdicts = [self._table_action(display, key, action) for action in actions]
        worst_class = worst(verdict[0] for verdict in verdicts)
        chosen = [verdict for verdict in verdicts if verdict[0] == worst_class]
        operation = "; ".join(verdict[1] for verdict in verdicts)
        reason = "; ".join(verdict[2] for verdict in chosen if verdict[2])
        return self._verdict(statement, worst_class, operation, reason)

    def _table_action(self, table: str, key: str, tokens: Sequence[Token]) -> tuple[str, str, str]:
        """(classification, operation, reason) for one ALTER TABLE action."""
        cursor = _Cursor(tokens)
        new_table = self.schema.is_new(key)
        if cursor.accept("ADD"):
            if cursor.peek() in _TABLE_CONSTRAINT_WORDS - {"LIKE"}:
                return self._add_constraint(table, key, cursor)
            if cursor.peek() in ("INDEX", "KEY", "FULLTEXT", "SPATIAL"):
                return WARNING, f"add index on {table}", "builds an index on a live table"
            cursor.accept("COLUMN")
            cursor.accept("IF", "NOT", "EXISTS")
            return self._add_column(table, key, parse_column(cursor.rest()))
        if cursor.accept("DROP"):
            if cursor.accept("CONSTRAINT"):
                cursor.accept("IF", "EXISTS")
                name, _ = cursor.name()
                return (
                    WARNING,
                    f"drop constraint {name} on {table}",
                    "removes a guarantee the data (and the old colour) may rely on",
                )
            if cursor.peek() in ("PRIMARY", "FOREIGN", "INDEX", "KEY", "CHECK"):
                return WARNING, f"drop {cursor.peek().lower()} on {table}", "removes a constraint"
            cursor.accept("COLUMN")
            cursor.accept("IF", "EXISTS")
            name, column_key = cursor.name()
            known = self.schema.tables.get(key)
            if known is not None:
                known.columns.pop(column_key, None)
            if new_table or (key, column_key) in self.schema.added:
                return EXPAND_SAFE, f"drop column {table}.{name}", "a column new in this plan"
            return (
                BREAKING,
                f"drop column {table}.{name}",
                "the old colour still reads and writes this column, and its data is lost",
            )
        if cursor.accept("RENAME"):
            if cursor.accept("TO"):
                new_name, new_key = cursor.name()
                table_def = self.schema.tables.pop(key, None)
                if table_def is not None:
                    self.schema.tables[new_key] = table_def
                if new_table:
                    self.schema.created.discard(key)
                    self.schema.created.add(new_key)
                    return EXPAND_SAFE, f"rename table {table} to {new_name}", "new in this plan"
                return (
                    BREAKING,
                    f"rename table {table} to {new_name}",
                    "the old colour still uses the table under its current name",
                )
            if cursor.accept("CONSTRAINT"):
                name, _ = cursor.name()
                return EXPAND_SAFE, f"rename constraint {name} on {table}", ""
            cursor.accept("COLUMN")
            old_name, old_key = cursor.name()
            cursor.accept("TO")
            new_name, new_key = cursor.name()
            known = self.schema.tables.get(key)
            if known is not None and old_key in known.columns:
                column = known.columns.pop(old_key)
                column.name = new_name
                known.columns[new_key] = column
            operation = f"rename column {table}.{old_name} to {new_name}"
            if new_table or (key, old_key) in self.schema.added:
                self.schema.added.add((key, new_key))
                return EXPAND_SAFE, operation, "a column new in this plan"
            return (
                BREAKING,
                operation,
                "the old colour still reads and writes the column under its current name",
            )
        if cursor.accept("ALTER"):
            cursor.accept("COLUMN")
            return self._alter_column(table, key, cursor)
        if cursor.accept("VALIDATE", "CONSTRAINT"):
            name, _ = cursor.name()
            return EXPAND_SAFE, f"validate constraint {name} on {table}", "does not block writes"
        if cursor.at("MODIFY") or cursor.at("CHANGE"):
            return (
                BREAKING,
                f"{cursor.peek().lower()} column on {table}",
                "redefines a column the old colour uses",
            )
        if cursor.accept("SET", "SCHEMA"):
            return (
                BREAKING,
                f"move table {table} to another schema",
                "the old colour still uses the table where it is",
            )
        words = [token.keyword for token in cursor.rest()]
        text = " ".join(words).lower()
        if words[:1] in (["OWNER"], ["REPLICA"], ["CLUSTER"]) or words[:2] in (
            ["SET", "WITHOUT"],
            ["SET", "STATISTICS"],
            ["RESET", "("],
            ["SET", "("],
        ):
            return EXPAND_SAFE, f"alter table {table}: {text}", ""
        return (
            WARNING,
            f"alter table {table}: {text}",
            "locks or rewrites the table, or changes its behaviour; review it",
        )

    def _add_column(self, table: str, key: str, column: Column) -> tuple[str, str, str]:
        operation = f"add column {table}.{column.name}"
        self.schema.table_for(key, table).columns[column.name.lower()] = column
        if self.schema.is_new(key):
            return EXPAND_SAFE, operation, "on a table new in this plan"
        self.schema.added.add((key, column.name.lower()))
        if column.not_null and not column.has_default:
            return (
                BREAKING,
                f"{operation} NOT NULL without default",
                "the old colour's INSERTs do not set it and fail (and it cannot be added "
                "to a table that has rows); add it nullable or with a server default",
            )
        if column.generated and self.dialect == "postgresql":
            return WARNING, operation, "a stored generated column rewrites the table under a lock"
        if (column.auto or column.volatile_default) and self.dialect == "postgresql":
            return (
                WARNING,
                operation,
                "a volatile default (serial, identity, random, clock) rewrites the table "
                "under an exclusive lock",
            )
        if column.unique:
            return WARNING, operation, "builds a unique index on a live table"
        if column.has_default:
            return EXPAND_SAFE, f"{operation} with default", ""
        return EXPAND_SAFE, f"{operation} (nullable)", ""

    def _add_constraint(self, table: str, key: str, cursor: _Cursor) -> tuple[str, str, str]:
        name = ""
        if cursor.accept("CONSTRAINT"):
            name = cursor.name()[0] + " "
        kind = cursor.peek().lower()
        words = [token.keyword for token in cursor.rest()]
        label = {"primary": "primary key", "foreign": "foreign key"}.get(kind, kind)
        operation = f"add {label} constraint {name}on {table}"
        if self.schema.is_new(key):
            return EXPAND_SAFE, operation, "on a table new in this plan"
        if words[-2:] == ["NOT", "VALID"]:
            return EXPAND_SAFE, operation, "NOT VALID: existing rows are not checked under lock"
        if kind in ("unique", "primary") and "USING" in words and "INDEX" in words:
            return EXPAND_SAFE, operation, "uses an index built beforehand"
        if kind in ("unique", "primary", "exclude"):
            return (
                WARNING,
                operation,
                "builds an index under a lock, and the old colour's conflicting writes fail; "
                "build a unique index CONCURRENTLY first and add the constraint USING INDEX",
            )
        return (
            WARNING,
            operation,
            "checks every row while holding a lock; add it NOT VALID, then VALIDATE CONSTRAINT",
        )

    def _alter_column(self, table: str, key: str, cursor: _Cursor) -> tuple[str, str, str]:
        name, column_key = cursor.name()
        column = self.schema.column_for(key, table, column_key, name)
        new = self.schema.is_new_column(key, column_key)
        target = f"{table}.{name}"
        if cursor.accept("SET", "DATA", "TYPE") or cursor.accept("TYPE"):
            type_tokens: list[Token] = []
            while not cursor.done() and cursor.peek() not in ("USING", "COLLATE"):
                type_tokens.append(cursor.take())  # type: ignore[arg-type]
            new_type = _join_tokens(type_tokens)
            old_type, column.type = column.type, new_type
            operation = f"alter column {target} type {new_type}"
            if new:
                return EXPAND_SAFE, operation, "a column new in this plan"
            if _widening(old_type, new_type):
                return (
                    WARNING,
                    operation,
                    f"widens {old_type} to {new_type}; old values still fit, but it may "
                    "rewrite the table under a lock",
                )
            return (
                BREAKING,
                operation,
                "the old colour reads and writes values of the current type, and the change "
                "may rewrite the table under a lock",
            )
        if cursor.accept("SET", "NOT", "NULL"):
            has_default, column.not_null = column.has_default, True
            operation = f"set not null on {target}"
            if new:
                return EXPAND_SAFE, operation, "a column new in this plan"
            if has_default:
                return (
                    WARNING,
                    operation,
                    "scans the table under an exclusive lock, and the old colour's writes of "
                    "an explicit NULL fail",
                )
            return (
                BREAKING,
                f"{operation} without default",
                "the old colour's writes that leave it empty fail",
            )
        if cursor.accept("DROP", "NOT", "NULL"):
            column.not_null = False
            return EXPAND_SAFE, f"drop not null on {target}", "relaxes a constraint"
        if cursor.accept("SET", "DEFAULT"):
            column.default = _join_tokens(cursor.rest()) or "?"
            return EXPAND_SAFE, f"set default on {target}", ""
        if cursor.accept("DROP", "DEFAULT"):
            was_not_null, column.default = column.not_null, None
            operation = f"drop default on {target}"
            if self.schema.is_new(key):
                return EXPAND_SAFE, operation, "on a table new in this plan"
            if was_not_null and (key, column_key) in self.schema.added:
                return (
                    BREAKING,
                    f"{operation} (NOT NULL column added in this plan)",
                    "the column is NOT NULL and the old colour does not know it, so its "
                    "INSERTs fail once the default is gone (Django's add-field pattern: give "
                    "the field db_default, or make it nullable)",
                )
            if was_not_null:
                return WARNING, operation, "INSERTs that omit this NOT NULL column will fail"
            return WARNING, operation, "INSERTs that omit this column no longer get a value"
        words = " ".join(token.keyword for token in cursor.rest()).lower()
        if words.startswith(
            ("set statistics", "set storage", "set (", "reset (", "set compression")
        ):
            return EXPAND_SAFE, f"alter column {target}: {words}", ""
        return WARNING, f"alter column {target}: {words}", "review it"

    # ---- the SQLite table rebuild ----------------------------------------------------

    def _rebuild_at(
        self, statements: Sequence[Statement], index: int
    ) -> tuple[int, tuple[str, str, str]] | None:
        """(statement count, verdict fields) when a table rebuild starts at `index`."""
        window = statements[index : index + 4]
        if len(window) < 4:
            return None
        create, insert, drop, rename = window
        new_table = parse_create_table(create)
        if new_table is None or not new_table.columns:
            return None
        new_key = new_table.name.rsplit(".", 1)[-1].lower()
        copy = _parse_insert_select(insert)
        if copy is None or copy[0] != new_key:
            return None
        _, targets, sources, old_key = copy
        drop_cursor = _Cursor(drop.tokens)
        if not (drop_cursor.accept("DROP", "TABLE")):
            return None
        drop_cursor.accept("IF", "EXISTS")
        if drop_cursor.name()[1] != old_key:
            return None
        rename_cursor = _Cursor(rename.tokens)
        if not rename_cursor.accept("ALTER", "TABLE"):
            return None
        if rename_cursor.name()[1] != new_key or not rename_cursor.accept("RENAME", "TO"):
            return None
        final_name, final_key = rename_cursor.name()
        if final_key != old_key:
            return None
        old_table = self.schema.tables.get(old_key)
        was_new = self.schema.is_new(old_key)
        new_table.name = final_name
        self.schema.tables[old_key] = new_table
        operation = f"rebuild table {final_name} (SQLite table copy)"
        if was_new:
            return 4, (EXPAND_SAFE, operation, "a table new in this plan")
        if old_table is None or old_table.partial:
            return 4, (
                BREAKING,
                operation,
                "the table's previous definition is unknown, so what the copy changes cannot "
                "be checked; treated as breaking: review the migration",
            )
        return 4, self._compare_tables(old_key, old_table, new_table, targets, sources, operation)

    def _compare_tables(
        self,
        key: str,
        old: Table,
        new: Table,
        targets: Sequence[str],
        sources: Sequence[str | None],
        operation: str,
    ) -> tuple[str, str, str]:
        """How a rebuild changes the table, judged column by column."""
        copied_from = {target: sources[index] for index, target in enumerate(targets)}
        findings: list[tuple[str, str]] = []
        renamed_sources = {
            source: target
            for target, source in copied_from.items()
            if source is not None and source != target and source in old.columns
        }
        for name, column in old.columns.items():
            if name in new.columns:
                continue
            if (key, name) in self.schema.added:
                findings.append((EXPAND_SAFE, f"drops column {column.name}, new in this plan"))
            elif name in renamed_sources:
                findings.append(
                    (
                        BREAKING,
                        f"renames column {column.name} to {renamed_sources[name]}",
                    )
                )
            else:
                findings.append((BREAKING, f"drops column {column.name}"))
        for name, column in new.columns.items():
            before = old.columns.get(name)
            if before is None:
                if name in renamed_sources.values():
                    continue
                self.schema.added.add((key, name))
                if column.not_null and not column.has_default:
                    findings.append(
                        (
                            BREAKING,
                            f"adds NOT NULL column {column.name} without a "
                            "default (the old colour's INSERTs fail)",
                        )
                    )
                else:
                    findings.append((EXPAND_SAFE, f"adds column {column.name}"))
                continue
            if (key, name) in self.schema.added:
                continue
            if before.type != column.type:
                if _widening(before.type, column.type):
                    findings.append(
                        (WARNING, f"widens {column.name} from {before.type} to {column.type}")
                    )
                else:
                    findings.append(
                        (
                            BREAKING,
                            f"changes the type of {column.name} from "
                            f"{before.type} to {column.type}",
                        )
                    )
            if column.not_null and not before.not_null:
                if column.has_default:
                    findings.append(
                        (
                            WARNING,
                            f"makes {column.name} NOT NULL (it has a "
                            "default; explicit NULL writes fail)",
                        )
                    )
                else:
                    findings.append(
                        (
                            BREAKING,
                            f"makes {column.name} NOT NULL without a "
                            "default (the old colour's writes that leave "
                            "it empty fail)",
                        )
                    )
            elif before.not_null and not column.not_null:
                findings.append((EXPAND_SAFE, f"makes {column.name} nullable"))
            if before.has_default and not column.has_default and column.not_null:
                findings.append((WARNING, f"drops the default of NOT NULL column {column.name}"))
        if sorted(old.constraints) != sorted(new.constraints):
            findings.append((WARNING, "changes the table's constraints"))
        if not findings:
            return EXPAND_SAFE, operation, "copies the table without changing its columns"
        classification = worst(level for level, _ in findings)
        reason = "; ".join(text for level, text in findings if level == classification)
        return classification, operation, reason


def _parse_insert_select(
    statement: Statement,
) -> tuple[str, list[str], list[str | None], str] | None:
    """(target table, target columns, source column per target, source table) of
    ``INSERT INTO t (cols) SELECT exprs FROM s``; None for anything else.

    A source is None when the value is an expression rather than a plain column.
    """
    cursor = _Cursor(statement.tokens)
    if not cursor.accept("INSERT", "INTO"):
        return None
    _, target_key = cursor.name()
    targets = [t.key for t in cursor.parenthesised() if t.kind in ("word", "quoted")]
    if not cursor.accept("SELECT"):
        return None
    select: list[Token] = []
    depth = 0
    while not cursor.done():
        keyword = cursor.peek()
        if keyword == "FROM" and depth == 0:
            break
        depth += keyword == "("
        depth -= keyword == ")"
        select.append(cursor.take())  # type: ignore[arg-type]
    if not cursor.accept("FROM"):
        return None
    _, source_key = cursor.name()
    sources: list[str | None] = []
    for expression in _split_top_level(select):
        names = [t for t in expression if t.keyword != "."]
        plain = all(t.kind in ("word", "quoted") for t in names) and len(names) <= 3
        sources.append(names[-1].key if plain and names else None)
    if len(sources) != len(targets):
        return None
    return target_key, targets, sources, source_key


_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit)\b.*")


def tool_error(tool_output: str) -> str:
    """The line of a tool's output that names its error: the last ``SomethingError: …``
    line of a traceback, not the warnings that came before it."""
    lines = [line.strip() for line in tool_output.splitlines() if line.strip()]
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line):
            return line
    return lines[-1] if lines else ""


def unplannable_verdict(tool_output: str) -> StatementVerdict:
    """The verdict for a migration whose SQL the tool could not render."""
    return StatementVerdict(
        sql="",
        classification=BREAKING,
        operation="unknown SQL",
        reason="the tool could not render this migration's SQL, so it cannot be checked; "
        f"treated as breaking: {excerpt(tool_error(tool_output), 300)}",
    )
