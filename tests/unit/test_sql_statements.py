"""The SQL tokenizer and the expand/breaking classifier, statement by statement,
including SQLite's table rebuilds."""

from __future__ import annotations

import textwrap

import pytest
from ansible.module_utils.sql_statements import (
    BREAKING,
    EXPAND_SAFE,
    WARNING,
    Classifier,
    Schema,
    excerpt,
    split_statements,
    tokenize,
    tool_error,
    unplannable_verdict,
)


def classify(sql: str, dialect: str = "postgresql", schema: Schema | None = None):
    return Classifier(dialect, schema).classify(split_statements(sql, dialect))


def only(sql: str, dialect: str = "postgresql", schema: Schema | None = None):
    verdicts = classify(sql, dialect, schema)
    assert len(verdicts) == 1, verdicts
    return verdicts[0]


# --------------------------------------------------------------------------------------
# Tokenizer and statement splitting
# --------------------------------------------------------------------------------------


class TestSplitStatements:
    def test_semicolons_in_strings_identifiers_and_comments_do_not_split(self) -> None:
        sql = textwrap.dedent(
            """\
            -- a comment; with a semicolon
            INSERT INTO "odd;table" VALUES ('a;b', 'it''s; fine');
            /* block; comment /* nested; */ still comment; */
            SELECT E'escaped \\' quote; here', $$ body; $$, $tag$ $$ ; $tag$;
            """
        )

        statements = split_statements(sql)

        assert [s.text for s in statements] == [
            """INSERT INTO "odd;table" VALUES ('a;b', 'it''s; fine')""",
            "SELECT E'escaped \\' quote; here', $$ body; $$, $tag$ $$ ; $tag$",
        ]
        assert statements[0].comments == ("-- a comment; with a semicolon",)

    def test_comment_only_tail_is_kept_without_tokens(self) -> None:
        statements = split_statements("SELECT 1;\n-- Running upgrade 1 -> 2\n")

        assert [s.text for s in statements] == ["SELECT 1", ""]
        assert statements[1].tokens == ()
        assert statements[1].comments == ("-- Running upgrade 1 -> 2",)

    def test_sqlite_trigger_body_is_one_statement(self) -> None:
        sql = (
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN "
            "UPDATE a SET x = CASE WHEN 1 THEN 2 END; DELETE FROM b; END; SELECT 1"
        )

        assert len(split_statements(sql, "sqlite")) == 2

    def test_postgresql_begin_atomic_body_is_one_statement(self) -> None:
        sql = "CREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT 1; SELECT 2; END; SELECT 3"

        assert [s.words[0] for s in split_statements(sql)] == ["CREATE", "SELECT"]

    def test_transaction_begin_is_its_own_statement(self) -> None:
        assert [s.text for s in split_statements("BEGIN; SELECT 1; COMMIT;")] == [
            "BEGIN",
            "SELECT 1",
            "COMMIT",
        ]

    def test_unterminated_string_runs_to_the_end(self) -> None:
        statements = split_statements("SELECT 'open; DROP TABLE x")

        assert len(statements) == 1

    def test_quoted_identifiers_unquote_with_doubled_quotes(self) -> None:
        tokens = [t for t in tokenize('"a""b" `c``d` [e f]', "sqlite") if t.kind == "quoted"]

        assert [t.name for t in tokens] == ['a"b', "c`d", "e f"]

    def test_brackets_are_not_identifiers_on_postgresql(self) -> None:
        kinds = [t.kind for t in tokenize("text[]") if t.kind != "space"]

        assert kinds == ["word", "punct", "punct"]

    def test_positional_parameter_is_not_a_dollar_quote(self) -> None:
        statements = split_statements("SELECT $1; SELECT 2")

        assert len(statements) == 2


# --------------------------------------------------------------------------------------
# The classifier, statement by statement
# --------------------------------------------------------------------------------------

EXPAND_SAFE_CASES = [
    "CREATE TABLE t (id serial PRIMARY KEY, name text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS public.t (id int)",
    "ALTER TABLE t ADD COLUMN c text",
    "ALTER TABLE t ADD c text NULL",
    "ALTER TABLE t ADD COLUMN IF NOT EXISTS c integer",
    "ALTER TABLE t ADD COLUMN c integer NOT NULL DEFAULT 0",
    "ALTER TABLE t ADD COLUMN c boolean DEFAULT false NOT NULL",
    "ALTER TABLE t ADD COLUMN c timestamptz NOT NULL DEFAULT now()",
    "alter table t add column c int references u (id)",
    "CREATE INDEX CONCURRENTLY ix ON t (c)",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix ON t USING btree (lower(c))",
    "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (u_id) REFERENCES u (id) NOT VALID",
    "ALTER TABLE t ADD CONSTRAINT ck CHECK (c > 0) NOT VALID",
    "ALTER TABLE t VALIDATE CONSTRAINT fk",
    "ALTER TABLE t ADD CONSTRAINT uq UNIQUE USING INDEX ix",
    "ALTER TABLE t ALTER COLUMN c DROP NOT NULL",
    "ALTER TABLE t ALTER COLUMN c SET DEFAULT 'x'",
    "ALTER TABLE t ALTER COLUMN c SET STATISTICS 500",
    "ALTER TABLE t OWNER TO app",
    "CREATE VIEW v AS SELECT 1",
    "CREATE SEQUENCE s",
    "CREATE EXTENSION IF NOT EXISTS pgcrypto",
    "ALTER TYPE mood ADD VALUE 'meh'",
    "ALTER INDEX ix RENAME TO ix2",
    "COMMENT ON COLUMN t.c IS 'drop; rename'",
    "INSERT INTO t (a) VALUES (1)",
    "UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001'",
    "DELETE FROM alembic_version WHERE alembic_version.version_num = '0001'",
    'INSERT INTO "django_migrations" ("app", "name", "applied") VALUES (\'a\', \'b\', now())',
    "SELECT pg_advisory_lock(1)",
    "SET statement_timeout = '5s'",
    "PRAGMA foreign_keys = OFF",
    "GRANT SELECT ON t TO reader",
    "ANALYZE t",
    "REINDEX INDEX CONCURRENTLY ix",
    "ALTER TABLE t RENAME CONSTRAINT a TO b",
]

WARNING_CASES = [
    ("CREATE INDEX ix ON t (c)", "use CREATE INDEX CONCURRENTLY"),
    ("create unique index concurrently ix on t (c)", "duplicate"),
    ("ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES u (id)", "NOT VALID"),
    ("ALTER TABLE t ADD CONSTRAINT ck CHECK (c > 0)", "NOT VALID"),
    ("ALTER TABLE t ADD PRIMARY KEY (id)", "USING INDEX"),
    ("ALTER TABLE t ADD COLUMN c text UNIQUE", "unique index"),
    ("ALTER TABLE t ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid()", "rewrites"),
    ("ALTER TABLE t ADD COLUMN n bigserial", "rewrites"),
    ("ALTER TABLE t ADD COLUMN n int GENERATED ALWAYS AS (a + 1) STORED", "generated"),
    ("ALTER TABLE t ALTER COLUMN c DROP DEFAULT", "no longer get a value"),
    ("ALTER TABLE t DROP CONSTRAINT IF EXISTS fk", "guarantee"),
    ("DROP INDEX ix", "DROP INDEX CONCURRENTLY"),
    ("DROP INDEX CONCURRENTLY IF EXISTS ix", "may rely on this index"),
    ("UPDATE t SET c = 0 WHERE c IS NULL", "batch large backfills"),
    ("DELETE FROM t WHERE c IS NULL", "deletes rows"),
    ("CREATE OR REPLACE VIEW v AS SELECT 1", "replaces"),
    ("DO $$ BEGIN PERFORM 1; END $$", "procedural"),
    ("VACUUM FULL t", "exclusive lock"),
    ("REFRESH MATERIALIZED VIEW mv", "CONCURRENTLY"),
    ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", "exclusive lock"),
    ("REVOKE SELECT ON t FROM reader", "privileges"),
    ("ALTER TABLE t SET TABLESPACE fast", "review it"),
    ("WITH gone AS (DELETE FROM t RETURNING id) SELECT count(*) FROM gone", "DELETE"),
    ("FROBNICATE everything", "does not recognise"),
]

BREAKING_CASES = [
    ("ALTER TABLE t DROP COLUMN c", "drop column t.c"),
    ("alter table t drop c cascade", "drop column t.c"),
    ("ALTER TABLE IF EXISTS ONLY t DROP COLUMN IF EXISTS c", "drop column t.c"),
    ('ALTER TABLE "Order" DROP COLUMN "Total"', "drop column Order.Total"),
    ("ALTER TABLE t ADD COLUMN c int NOT NULL", "NOT NULL without default"),
    ("ALTER TABLE t ADD c integer DEFAULT NULL NOT NULL", "NOT NULL without default"),
    ("ALTER TABLE t ADD COLUMN c int PRIMARY KEY", "NOT NULL without default"),
    ("ALTER TABLE t RENAME COLUMN a TO b", "rename column t.a to b"),
    ("ALTER TABLE t RENAME a TO b", "rename column t.a to b"),
    ("ALTER TABLE t RENAME TO u", "rename table t to u"),
    ("RENAME TABLE t TO u", "rename table t"),
    ("ALTER TABLE t ALTER COLUMN c TYPE bigint", "alter column t.c type BIGINT"),
    ("ALTER TABLE t ALTER c SET DATA TYPE varchar(10) USING c::varchar", "type VARCHAR(10)"),
    ("ALTER TABLE t ALTER COLUMN c SET NOT NULL", "set not null on t.c without default"),
    ("ALTER TABLE t SET SCHEMA archive", "move table t"),
    ("ALTER TABLE t MODIFY COLUMN c bigint", "modify column on t"),
    ("DROP TABLE t", "drop table t"),
    ("DROP TABLE IF EXISTS a, b CASCADE", "drop table a, b"),
    ("DROP VIEW v", "drop view v"),
    ("DROP MATERIALIZED VIEW mv", "drop materialized view mv"),
    ("DROP FUNCTION f(int)", "drop function f"),
    ("TRUNCATE TABLE t", "truncate t"),
    ("ALTER TYPE mood RENAME VALUE 'a' TO 'b'", "alter type mood: rename value"),
    ("ALTER VIEW v RENAME TO w", "alter view v: rename to"),
    ("FROBNICATE DROP everything", "unrecognised statement"),
]


@pytest.mark.parametrize("sql", EXPAND_SAFE_CASES)
def test_expand_safe(sql: str) -> None:
    verdict = only(sql)

    assert verdict.classification == EXPAND_SAFE, verdict


@pytest.mark.parametrize(("sql", "reason"), WARNING_CASES)
def test_warning(sql: str, reason: str) -> None:
    verdict = only(sql)

    assert verdict.classification == WARNING, verdict
    assert reason in verdict.reason


@pytest.mark.parametrize(("sql", "operation"), BREAKING_CASES)
def test_breaking(sql: str, operation: str) -> None:
    verdict = only(sql)

    assert verdict.classification == BREAKING, verdict
    assert operation in verdict.operation


class TestClassifierDetails:
    def test_keywords_in_comments_and_strings_do_not_count(self) -> None:
        verdicts = classify(
            "-- DROP TABLE users;\n"
            "/* ALTER TABLE users DROP COLUMN email; */\n"
            "INSERT INTO audit (note) VALUES ('DROP TABLE users; RENAME');"
        )

        assert [v.classification for v in verdicts] == [EXPAND_SAFE]

    def test_quoted_identifier_with_semicolon_is_one_statement(self) -> None:
        verdict = only('ALTER TABLE "weird;name" ADD COLUMN "x" int NOT NULL')

        assert verdict.classification == BREAKING
        assert verdict.operation.startswith("add column weird;name.x")

    def test_case_does_not_matter(self) -> None:
        assert only("aLtEr TaBlE t DrOp CoLuMn c").classification == BREAKING

    def test_several_actions_take_the_worst(self) -> None:
        verdict = only("ALTER TABLE t ADD COLUMN c int, DROP COLUMN d")

        assert verdict.classification == BREAKING
        assert verdict.operation == "add column t.c (nullable); drop column t.d"
        assert "data is lost" in verdict.reason

    def test_create_index_without_concurrently_is_fine_on_sqlite(self) -> None:
        assert only("CREATE INDEX ix ON t (c)", "sqlite").classification == EXPAND_SAFE

    def test_a_table_new_in_the_plan_can_be_changed_freely(self) -> None:
        verdicts = classify(
            "CREATE TABLE x (id serial PRIMARY KEY, c text);"
            "CREATE INDEX ON x (c);"
            "ALTER TABLE x ADD COLUMN d int NOT NULL;"
            "ALTER TABLE x ALTER COLUMN c TYPE varchar(5);"
            "ALTER TABLE x DROP COLUMN d;"
            "DROP TABLE x"
        )

        assert [v.classification for v in verdicts] == [EXPAND_SAFE] * 6

    def test_a_column_new_in_the_plan_can_be_changed_freely(self) -> None:
        verdicts = classify(
            "ALTER TABLE t ADD COLUMN c int;"
            "ALTER TABLE t ALTER COLUMN c TYPE bigint;"
            "ALTER TABLE t ALTER COLUMN c SET NOT NULL;"
            "ALTER TABLE t RENAME COLUMN c TO d;"
            "ALTER TABLE t DROP COLUMN d"
        )

        assert [v.classification for v in verdicts] == [EXPAND_SAFE] * 5

    def test_django_add_field_with_default_then_drop_default_is_breaking(self) -> None:
        verdicts = classify(
            'ALTER TABLE "shop_item" ADD COLUMN "qty" integer DEFAULT 0 NOT NULL;'
            'ALTER TABLE "shop_item" ALTER COLUMN "qty" DROP DEFAULT;'
        )

        assert [v.classification for v in verdicts] == [EXPAND_SAFE, BREAKING]
        assert "db_default" in verdicts[1].reason

    def test_set_not_null_after_a_default_is_a_warning(self) -> None:
        verdicts = classify(
            'ALTER TABLE "t" ALTER COLUMN "r" SET DEFAULT \'\';'
            'UPDATE "t" SET "r" = \'\' WHERE "r" IS NULL; SET CONSTRAINTS ALL IMMEDIATE;'
            'ALTER TABLE "t" ALTER COLUMN "r" SET NOT NULL;'
        )

        assert [v.classification for v in verdicts] == [EXPAND_SAFE, WARNING, EXPAND_SAFE, WARNING]

    def test_widening_a_known_varchar_is_only_a_warning(self) -> None:
        schema = Schema()
        schema.seed("CREATE TABLE t (c varchar(10))")

        verdict = only("ALTER TABLE t ALTER COLUMN c TYPE varchar(20)", schema=schema)

        assert verdict.classification == WARNING
        assert "widens VARCHAR(10) to VARCHAR(20)" in verdict.reason

    def test_transaction_control_is_not_judged(self) -> None:
        verdicts = classify("BEGIN; COMMIT;")

        assert {v.operation for v in verdicts} == {"transaction control"}

    def test_excerpt_is_one_short_line(self) -> None:
        text = excerpt("ALTER TABLE t\n   DROP COLUMN c" + " x" * 200, 40)

        assert "\n" not in text
        assert len(text) == 40


# --------------------------------------------------------------------------------------
# The SQLite table rebuild (Django, Alembic batch mode)
# --------------------------------------------------------------------------------------

PRODUCT = (
    'CREATE TABLE "inventory_product" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
    '"name" varchar(100) NOT NULL, "note" text NULL)'
)


def rebuild(columns: str, insert_columns: str, select: str) -> str:
    return (
        f'CREATE TABLE "new__inventory_product" ({columns});'
        f'INSERT INTO "new__inventory_product" ({insert_columns}) SELECT {select} '
        'FROM "inventory_product";'
        'DROP TABLE "inventory_product";'
        'ALTER TABLE "new__inventory_product" RENAME TO "inventory_product";'
    )


def seeded(*creates: str) -> Schema:
    schema = Schema()
    for create in creates:
        schema.seed(create)
    return schema


class TestSqliteRebuild:
    def test_adding_a_nullable_column_by_copy_is_expand_safe(self) -> None:
        sql = rebuild(
            '"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(100) NOT NULL, '
            '"note" text NULL, "tags" text NULL',
            '"id", "name", "note"',
            '"id", "name", "note"',
        )

        verdicts = classify(sql, "sqlite", seeded(PRODUCT))

        assert len(verdicts) == 4
        assert {v.classification for v in verdicts} == {EXPAND_SAFE}
        assert verdicts[0].operation == "rebuild table inventory_product (SQLite table copy)"
        assert verdicts[0].reason == "adds column tags"

    def test_django_not_null_field_with_python_default_is_breaking(self) -> None:
        sql = rebuild(
            '"qty" integer NOT NULL, "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
            '"name" varchar(100) NOT NULL, "note" text NULL',
            '"id", "name", "note", "qty"',
            '"id", "name", "note", 0',
        )

        verdicts = classify(sql, "sqlite", seeded(PRODUCT))

        assert {v.classification for v in verdicts} == {BREAKING}
        assert "adds NOT NULL column qty without a default" in verdicts[0].reason

    def test_db_default_makes_the_new_not_null_column_safe(self) -> None:
        sql = rebuild(
            '"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(100) NOT NULL, '
            '"note" text NULL, "weight" integer DEFAULT 1 NOT NULL',
            '"id", "name", "note"',
            '"id", "name", "note"',
        )

        assert classify(sql, "sqlite", seeded(PRODUCT))[0].classification == EXPAND_SAFE

    def test_dropping_a_column_by_copy_is_breaking(self) -> None:
        sql = rebuild(
            '"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(100) NOT NULL',
            '"id", "name"',
            '"id", "name"',
        )

        verdict = classify(sql, "sqlite", seeded(PRODUCT))[0]

        assert verdict.classification == BREAKING
        assert verdict.reason == "drops column note"

    def test_renaming_a_column_by_copy_is_breaking(self) -> None:
        sql = rebuild(
            '"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(100) NOT NULL, '
            '"remark" text NULL',
            '"id", "name", "remark"',
            '"id", "name", "note"',
        )

        verdict = classify(sql, "sqlite", seeded(PRODUCT))[0]

        assert verdict.classification == BREAKING
        assert verdict.reason == "renames column note to remark"

    def test_making_a_column_not_null_by_copy_is_breaking(self) -> None:
        sql = rebuild(
            '"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(100) NOT NULL, '
            '"note" text NOT NULL',
            '"id", "name", "note"',
            '"id", "name", coalesce("note", \'\')',
        )

        verdict = classify(sql, "sqlite", seeded(PRODUCT))[0]

        assert verdict.classification == BREAKING
        assert "makes note NOT NULL without a default" in verdict.reason

    def test_changing_a_type_by_copy_is_breaking_unless_it_widens(self) -> None:
        narrowed = rebuild(
            '"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(50) NOT NULL, '
            '"note" text NULL',
            '"id", "name", "note"',
            '"id", "name", "note"',
        )
        widened = narrowed.replace("varchar(50)", "varchar(200)")

        assert classify(narrowed, "sqlite", seeded(PRODUCT))[0].classification == BREAKING
        assert classify(widened, "sqlite", seeded(PRODUCT))[0].classification == WARNING

    def test_rebuild_of_a_table_whose_definition_is_unknown_is_breaking(self) -> None:
        sql = rebuild('"id" integer NOT NULL PRIMARY KEY', '"id"', '"id"')

        verdict = classify(sql, "sqlite")[0]

        assert verdict.classification == BREAKING
        assert "previous definition is unknown" in verdict.reason

    def test_alembic_batch_copy_with_qualified_columns(self) -> None:
        sql = (
            "CREATE TABLE _alembic_tmp_items (\n    id INTEGER NOT NULL, \n    name TEXT NOT NULL,"
            " \n    note TEXT, \n    PRIMARY KEY (id)\n);\n"
            "INSERT INTO _alembic_tmp_items (id, name, note) "
            "SELECT items.id, items.name, items.note FROM items;\n"
            "DROP TABLE items;\n"
            "ALTER TABLE _alembic_tmp_items RENAME TO items;\n"
        )
        schema = seeded(
            "CREATE TABLE items (id INTEGER NOT NULL, name TEXT NOT NULL, legacy_code TEXT, "
            "note TEXT, PRIMARY KEY (id))"
        )

        verdict = classify(sql, "sqlite", schema)[0]

        assert verdict.classification == BREAKING
        assert verdict.reason == "drops column legacy_code"

    def test_later_statements_see_the_rebuilt_table(self) -> None:
        schema = seeded(PRODUCT)
        sql = rebuild(
            '"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(100) NOT NULL, '
            '"note" text NULL, "sku" varchar(20) NULL',
            '"id", "name", "note"',
            '"id", "name", "note"',
        ) + rebuild(
            '"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(100) NOT NULL, '
            '"note" text NULL',
            '"id", "name", "note"',
            '"id", "name", "note"',
        )

        verdicts = classify(sql, "sqlite", schema)

        assert verdicts[0].reason == "adds column sku"
        assert verdicts[4].classification == EXPAND_SAFE
        assert verdicts[4].reason == "drops column sku, new in this plan"


def test_tool_error_is_the_exception_line_not_the_warnings_before_it() -> None:
    output = (
        "WARNINGS:\n?: (wagtailadmin.W003) The WAGTAILADMIN_BASE_URL setting is not defined\n"
        + "\tHINT: This should be the base URL used to access the Wagtail admin site.\n" * 5
        + 'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n'
        + "ValueError: Found wrong number (0) of indexes for taggit_taggeditem(content_type_id, "
        + "object_id).\n"
    )
    assert tool_error(output).startswith("ValueError: Found wrong number (0) of indexes")
    assert "ValueError: Found wrong number" in unplannable_verdict(output).reason
    assert "WAGTAILADMIN_BASE_URL" not in unplannable_verdict(output).reason
