"""The pure decisions of migration_runner: env files, URLs, locks, the SQL classifier,
Alembic and Django output. No tool runs here."""

from __future__ import annotations

import textwrap

import pytest
from ansible.module_utils.migration_runner import (
    BREAKING,
    EXPAND_SAFE,
    WARNING,
    Classifier,
    LockHolder,
    MigrationError,
    PendingMigration,
    Schema,
    StatementVerdict,
    advisory_lock_ids,
    alembic_downgrade_problem,
    alembic_marked_current,
    alembic_plan,
    alembic_sql_sections,
    alembic_unknown_revision,
    application_name,
    build_request,
    choose_lock,
    default_lock_key,
    django_helper_script,
    django_irreversible,
    django_operation_verdict,
    django_state,
    excerpt,
    failed_migration_message,
    holder_from_application_name,
    holder_from_json,
    holder_json,
    lock_busy_message,
    parse_alembic_current,
    parse_alembic_history,
    parse_database_url,
    parse_django_helper,
    parse_django_targets,
    parse_env_file,
    pg_environment,
    refusal_message,
    relative_path,
    resolve_alembic_target,
    secret_values,
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


# --------------------------------------------------------------------------------------
# The env file
# --------------------------------------------------------------------------------------


class TestEnvFile:
    def test_systemd_quoting_rules(self) -> None:
        text = textwrap.dedent(
            """\
            # comment
            ; another comment
            PLAIN=value with spaces{trailing}
            DOUBLE="a \\"quoted\\" \\$HOME \\\\ and \\n stays"
            SINGLE='no \\escapes "here"'
              INDENTED = yes
            EMPTY=
            CONCAT="a"'b'c
            CONTINUED=first \\
            second
            URL="postgresql+psycopg://app:p%40ss@db1/app"
            """
        ).format(trailing="   ")

        values, ignored = parse_env_file(text)

        assert values == {
            "PLAIN": "value with spaces",
            "DOUBLE": 'a "quoted" $HOME \\ and \\n stays',
            "SINGLE": 'no \\escapes "here"',
            "INDENTED": "yes",
            "EMPTY": "",
            "CONCAT": "abc",
            "CONTINUED": "first second",
            "URL": "postgresql+psycopg://app:p%40ss@db1/app",
        }
        assert ignored == []

    def test_colour_env_template_output_round_trips(self) -> None:
        # roles/bluegreen_deploy/templates/colour.env.j2 escapes \ and " inside double quotes.
        secret = 'pa"ss\\word'
        line = 'SECRET="' + secret.replace("\\", "\\\\").replace('"', '\\"') + '"\n'

        assert parse_env_file(line)[0] == {"SECRET": secret}

    def test_invalid_lines_are_ignored_and_reported_by_number(self) -> None:
        values, ignored = parse_env_file("GOOD=1\nexport BAD=2\nno equals sign\n1X=3\nLAST=4")

        assert values == {"GOOD": "1", "LAST": "4"}
        assert ignored == [2, 3, 4]

    def test_comment_continues_after_a_backslash(self) -> None:
        values, _ = parse_env_file("# comment \\\nHIDDEN=1\nSHOWN=2\n")

        assert values == {"SHOWN": "2"}

    def test_crlf_line_endings(self) -> None:
        assert parse_env_file("A=1\r\nB=2\r\n")[0] == {"A": "1", "B": "2"}


class TestSecretValues:
    def test_secret_names_and_url_passwords_are_masked(self) -> None:
        secrets = secret_values(
            {
                "DATABASE_URL": "postgresql://app:hunter22@db1/app",
                "SECRET_KEY": "abcdefgh",
                "API_TOKEN": "tok-123456",
                "BLUEGREEN_COLOUR": "green",
                "PORT": "8001",
                "SENTRY": "https://key:sentrypw@sentry.example/1",
            }
        )

        assert secrets == {
            "postgresql://app:hunter22@db1/app",
            "hunter22",
            "abcdefgh",
            "tok-123456",
            "sentrypw",
        }

    def test_short_values_are_not_masked(self) -> None:
        assert secret_values({"DB_PASSWORD": "abc"}) == set()


# --------------------------------------------------------------------------------------
# Database URLs and the lock
# --------------------------------------------------------------------------------------


class TestDatabaseUrl:
    @pytest.mark.parametrize(
        ("url", "path"),
        [
            ("sqlite:////var/lib/app/app.db", "/var/lib/app/app.db"),
            ("sqlite:///app.db", "/srv/app/releases/1/app.db"),
            ("sqlite+pysqlite:////data/x.db", "/data/x.db"),
            ("sqlite://", None),
            ("sqlite:///:memory:", None),
        ],
    )
    def test_sqlite_paths(self, url: str, path: str | None) -> None:
        database = parse_database_url(url, "/srv/app/releases/1")

        assert (database.kind, database.sqlite_path) == ("sqlite", path)

    def test_postgresql_url_becomes_libpq_keywords(self) -> None:
        database = parse_database_url(
            "postgresql+psycopg://app:p%40ss@db1:5433/sample?sslmode=require&pool_size=5",
            "/srv",
        )

        assert database.kind == "postgresql"
        assert dict(database.pg_params) == {
            "host": "db1",
            "port": "5433",
            "user": "app",
            "password": "p@ss",
            "dbname": "sample",
            "sslmode": "require",
        }

    def test_unix_socket_host_in_query(self) -> None:
        database = parse_database_url("postgres:///app?host=/var/run/postgresql", "/srv")

        assert dict(database.pg_params) == {"dbname": "app", "host": "/var/run/postgresql"}

    def test_psql_gets_the_password_in_its_environment(self) -> None:
        environment = pg_environment({"host": "db1", "password": "x", "dbname": "a"})

        assert environment == {"PGHOST": "db1", "PGPASSWORD": "x", "PGDATABASE": "a"}

    def test_other_databases(self) -> None:
        assert parse_database_url("mysql://u@h/db", "/srv").kind == "other"


class TestChooseLock:
    def test_auto_on_postgresql_is_an_advisory_lock(self) -> None:
        database = parse_database_url("postgresql://db1/app", "/srv")

        assert choose_lock("auto", database, None, "DATABASE_URL").method == "postgresql"

    def test_auto_on_sqlite_is_flock_next_to_the_database(self) -> None:
        database = parse_database_url("sqlite:////var/lib/app/app.db", "/srv")

        plan = choose_lock("auto", database, None, "DATABASE_URL")

        assert (plan.method, plan.path) == ("flock", "/var/lib/app/.bluegreen-migrate.lock")

    def test_explicit_lock_file(self) -> None:
        plan = choose_lock("flock", None, "/run/lock/app.lock", "DATABASE_URL")

        assert (plan.method, plan.path) == ("flock", "/run/lock/app.lock")

    def test_without_a_database_url_it_says_which_variable_is_missing(self) -> None:
        with pytest.raises(MigrationError, match="APP_DB is set neither in env_file"):
            choose_lock("auto", None, None, "APP_DB")

    def test_postgresql_lock_on_sqlite_is_refused(self) -> None:
        database = parse_database_url("sqlite:////x.db", "/srv")

        with pytest.raises(MigrationError, match="needs a PostgreSQL database"):
            choose_lock("postgresql", database, None, "DATABASE_URL")

    def test_auto_on_another_database_asks_for_a_choice(self) -> None:
        with pytest.raises(MigrationError, match="lock: flock with lock_file"):
            choose_lock("auto", parse_database_url("mysql://h/db", "/"), None, "DATABASE_URL")

    def test_none(self) -> None:
        assert choose_lock("none", None, None, "DATABASE_URL").method == "none"


class TestLockHolder:
    def test_default_key_is_stable_and_fits_a_bigint(self) -> None:
        key = default_lock_key("sampleapp")

        assert key == default_lock_key("sampleapp")
        assert key != default_lock_key("otherapp")
        assert -(2**63) <= key < 2**63

    def test_advisory_lock_ids_split_the_key_as_pg_locks_shows_it(self) -> None:
        assert advisory_lock_ids(0x0000000100000002) == (1, 2)
        assert advisory_lock_ids(-1) == (0xFFFFFFFF, 0xFFFFFFFF)

    def test_flock_file_round_trip(self) -> None:
        holder = LockHolder("sampleapp", "app-green", 1234, "2.0.0", 1_700_000_000.0)

        assert holder_from_json(holder_json(holder)) == holder

    def test_empty_flock_file_has_no_holder(self) -> None:
        assert holder_from_json("") is None

    def test_application_name_round_trip_within_63_bytes(self) -> None:
        holder = LockHolder("app", "app-green", 1234, "2.0.0", 1_700_000_000.0)

        name = application_name(holder)

        assert name == "bluegreen-migrate/1700000000/1234/app-green/2.0.0"
        assert holder_from_application_name(name, "app") == holder

    def test_long_hostname_and_release_are_cut_to_fit(self) -> None:
        holder = LockHolder("app", "h" * 80, 4194304, "r" * 80, 1_700_000_000.0)

        name = application_name(holder)
        parsed = holder_from_application_name(name, "app")

        assert len(name.encode()) <= 63
        assert parsed is not None and parsed.pid == 4194304
        assert parsed.hostname.startswith("hhh") and parsed.release.startswith("rrr")

    def test_foreign_application_name_is_not_a_holder(self) -> None:
        assert holder_from_application_name("psql", "app") is None

    def test_busy_message_names_holder_and_what_to_do(self) -> None:
        holder = LockHolder("sampleapp", "app-green", 1234, "2.0.0", 1000.0)

        message = lock_busy_message(
            name="sampleapp", holder=holder, where="flock on /x.lock", waited=0, now=1012.0
        )

        assert message.startswith(
            "migration lock for sampleapp is held by app-green pid 1234 (release 2.0.0) "
            "since 1970-01-01T00:16:40Z (12 s ago) [flock on /x.lock]; nothing was migrated."
        )
        assert "lock_timeout" in message

    def test_busy_message_without_a_recorded_holder(self) -> None:
        message = lock_busy_message(name="a", holder=None, where="flock on /x", waited=2.5, now=0)

        assert "held by a process that has not recorded itself yet" in message
        assert "after waiting 2.5 s" in message


# --------------------------------------------------------------------------------------
# The request
# --------------------------------------------------------------------------------------


def params(**overrides):
    base = {"name": "app", "tool": "alembic", "chdir": "/srv/app/releases/2.0.0/"}
    base.update(overrides)
    return base


class TestBuildRequest:
    def test_defaults(self) -> None:
        request = build_request(params())

        assert request.chdir == "/srv/app/releases/2.0.0"
        assert request.command == ("venv/bin/alembic",)
        assert request.release == "2.0.0"
        assert request.lock_key == default_lock_key("app")
        assert (request.state, request.lock, request.lock_timeout) == ("current", "auto", 0.0)

    def test_django_default_command(self) -> None:
        request = build_request(params(tool="django"))

        assert request.command == ("venv/bin/python", "manage.py")

    def test_downgrade_needs_a_target(self) -> None:
        with pytest.raises(MigrationError, match="needs target"):
            build_request(params(state="downgraded"))

    def test_bad_django_target(self) -> None:
        with pytest.raises(MigrationError, match=r"app_label\.migration_name"):
            build_request(params(tool="django", target="not a target"))

    def test_relative_chdir(self) -> None:
        with pytest.raises(MigrationError, match="absolute"):
            build_request(params(chdir="releases/2"))


# --------------------------------------------------------------------------------------
# Alembic
# --------------------------------------------------------------------------------------

HISTORY = """\
Rev: 0003 (head)
Parent: 0002
Path: /srv/app/migrations/versions/0003_drop.py

    drop a column

    Revision ID: 0003
    Revises: 0002

Rev: 0002 (current)
Parent: 0001
Path: /srv/app/migrations/versions/0002_add.py

    add a column

Rev: 0001
Parent: <base>
Path: /srv/app/migrations/versions/0001_create.py

    create items

"""


class TestAlembic:
    def test_history(self) -> None:
        graph = parse_alembic_history(HISTORY)

        assert list(graph) == ["0003", "0002", "0001"]
        assert graph["0003"].parents == ("0002",)
        assert graph["0001"].parents == ()
        assert graph["0002"].path == "/srv/app/migrations/versions/0002_add.py"
        assert graph["0003"].message == "drop a column"
        assert alembic_marked_current(HISTORY) == ["0002"]

    def test_merge_revisions(self) -> None:
        graph = parse_alembic_history(
            "Rev: m (head) (mergepoint)\nMerges: a, b\nPath: /m.py\n\n"
            "Rev: a\nParent: <base>\nPath: /a.py\n\nRev: b\nParent: <base>\nPath: /b.py\n"
        )

        assert graph["m"].parents == ("a", "b")
        assert alembic_plan(graph, None, "m") == ("upgrade", ["a", "b", "m"])

    def test_current_ignores_other_output(self) -> None:
        graph = parse_alembic_history(HISTORY)

        assert parse_alembic_current("connecting...\n0002 (head)\n", graph) == ["0002"]
        assert parse_alembic_current("", graph) == []

    @pytest.mark.parametrize(
        ("current", "target", "expected"),
        [
            (None, "0003", ("upgrade", ["0001", "0002", "0003"])),
            ("0001", "0002", ("upgrade", ["0002"])),
            ("0003", "0001", ("downgrade", ["0003", "0002"])),
            ("0002", None, ("downgrade", ["0002", "0001"])),
            ("0002", "0002", ("none", [])),
        ],
    )
    def test_plan(self, current, target, expected) -> None:
        assert alembic_plan(parse_alembic_history(HISTORY), current, target) == expected

    def test_targets(self) -> None:
        graph = parse_alembic_history(HISTORY)

        assert resolve_alembic_target(None, graph) == "0003"
        assert resolve_alembic_target("head", graph) == "0003"
        assert resolve_alembic_target("base", graph) is None
        assert resolve_alembic_target("0002", graph) == "0002"
        with pytest.raises(MigrationError, match="is not a revision of this release"):
            resolve_alembic_target("9999", graph)
        with pytest.raises(MigrationError, match="matches several"):
            resolve_alembic_target("000", graph)

    def test_several_heads_must_be_merged(self) -> None:
        graph = parse_alembic_history(
            "Rev: a (head)\nParent: <base>\nPath: /a.py\n\nRev: b (head)\nParent: <base>\n"
        )

        with pytest.raises(MigrationError, match="merge them"):
            resolve_alembic_target("head", graph)

    def test_offline_sql_is_attributed_to_revisions(self) -> None:
        sql = textwrap.dedent(
            """\
            BEGIN;

            CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL);

            -- Running upgrade  -> 0001

            CREATE TABLE items (id INTEGER NOT NULL);

            INSERT INTO alembic_version (version_num) VALUES ('0001') RETURNING version_num;

            -- Running upgrade 0001 -> 0002

            ALTER TABLE items ADD COLUMN note TEXT;

            UPDATE alembic_version SET version_num='0002';

            COMMIT;
            """
        )

        preamble, sections = alembic_sql_sections(split_statements(sql))

        assert preamble[0].text == "BEGIN"
        assert list(sections) == ["0001", "0002"]
        assert sections["0002"][0].text == "ALTER TABLE items ADD COLUMN note TEXT"

    def test_downgrade_sections_belong_to_the_undone_revision(self) -> None:
        sql = "-- Running downgrade 0003 -> 0002\n\nALTER TABLE items ADD COLUMN c TEXT;\n"

        _, sections = alembic_sql_sections(split_statements(sql))

        assert list(sections) == ["0003"]


class TestAlembicDowngradeProblem:
    @pytest.mark.parametrize(
        ("body", "problem"),
        [
            ("    pass\n", "does nothing"),
            ('    """Cannot be undone."""\n', "does nothing"),
            ("    ...\n", "does nothing"),
            ('    """Why."""\n    raise NotImplementedError("no way back")\n', "raises Not"),
            ("    raise RuntimeError\n", "raises RuntimeError"),
            ("    raise exceptions.IrreversibleError()\n", "raises IrreversibleError"),
        ],
    )
    def test_irreversible(self, body: str, problem: str) -> None:
        source = f"def upgrade():\n    op.drop_column('t', 'c')\n\n\ndef downgrade():\n{body}"

        assert problem in alembic_downgrade_problem(source)

    def test_missing_downgrade(self) -> None:
        assert alembic_downgrade_problem("def upgrade():\n    pass\n") == (
            "it has no downgrade() function"
        )

    def test_real_downgrade_or_conditional_raise(self) -> None:
        source = textwrap.dedent(
            """\
            def downgrade():
                if context.is_offline_mode():
                    raise RuntimeError("online only")
                op.drop_column("t", "c")
            """
        )

        assert alembic_downgrade_problem(source) is None

    def test_line_number_is_named(self) -> None:
        source = "def downgrade():\n    pass\n\n\ndef downgrade():\n    raise ValueError\n"

        assert alembic_downgrade_problem(source) == "its downgrade() raises ValueError (line 6)"


# --------------------------------------------------------------------------------------
# Django
# --------------------------------------------------------------------------------------


class TestDjango:
    def test_targets(self) -> None:
        assert parse_django_targets("inventory.0002_note, auth.zero,shop") == [
            ("inventory", "0002_note"),
            ("auth", "zero"),
            ("shop", ""),
        ]

    def test_state_string_round_trips_as_target(self) -> None:
        state = django_state({"inventory": ["0003_backfill"], "auth": [], "shop": ["0001_a"]})

        assert state == "auth.zero,inventory.0003_backfill,shop.0001_a"
        assert parse_django_targets(state) == [
            ("auth", "zero"),
            ("inventory", "0003_backfill"),
            ("shop", "0001_a"),
        ]

    def test_irreversible_operations_are_named(self) -> None:
        reason = django_irreversible(
            [
                {"type": "AddField", "describe": "Add field x", "reversible": True},
                {"type": "RunPython", "describe": "Raw Python operation", "reversible": False},
                {"type": "RunSQL", "describe": "Raw SQL operation", "reversible": False},
            ]
        )

        assert reason == (
            "RunPython (Raw Python operation) has no reverse_code; "
            "RunSQL (Raw SQL operation) has no reverse_sql"
        )
        assert django_irreversible([{"type": "AddField", "reversible": True}]) is None

    def test_helper_script_is_valid_python_with_the_request(self) -> None:
        script = django_helper_script([("inventory", "zero")])

        compile(script, "<helper>", "exec")
        assert '[["inventory", "zero"]]' in script

    def test_helper_output_is_found_among_other_output(self) -> None:
        answer = parse_django_helper(
            '1 object imported automatically\nBLUEGREEN-MIGRATION-JSON {"current": {}}\n'
        )

        assert answer == {"current": {}}

    def test_helper_error_and_missing_output(self) -> None:
        with pytest.raises(MigrationError, match="could not plan the migrations: KeyError"):
            parse_django_helper('BLUEGREEN-MIGRATION-JSON {"error": "KeyError: x"}')
        with pytest.raises(MigrationError, match="printed no migration plan"):
            parse_django_helper("Unknown command: 'shell'")


# --------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------


def breaking_migration() -> PendingMigration:
    return PendingMigration(
        revision="0003",
        file="migrations/versions/0003_drop.py",
        description="drop",
        direction="upgrade",
        statements=[
            StatementVerdict(
                "ALTER TABLE items DROP COLUMN legacy_code",
                BREAKING,
                "drop column items.legacy_code",
                "the old colour still reads and writes this column",
            )
        ],
    )


class TestMessages:
    def test_refusal_names_operation_file_statement_and_next_step(self) -> None:
        message = refusal_message([breaking_migration()], "upgrade", "0002", "alembic")

        assert message.startswith("refusing to upgrade: 1 breaking operation(s): ")
        assert (
            "drop column items.legacy_code in 0003 (migrations/versions/0003_drop.py): the old "
            "colour still reads and writes this column [ALTER TABLE items DROP COLUMN "
            "legacy_code]" in message
        )
        assert "allow_breaking: true" in message
        assert message.endswith("Nothing was applied; the database is still at 0002")

    def test_pending_migration_summary(self) -> None:
        migration = breaking_migration()

        assert migration.classification == BREAKING
        assert migration.reason == (
            "drop column items.legacy_code: the old colour still reads and writes this column"
        )
        assert migration.as_dict()["statements"][0]["classification"] == BREAKING

    def test_failed_migration_names_stop_and_culprit(self) -> None:
        message = failed_migration_message(
            direction="upgrade",
            tool="alembic",
            stopped_at="0002",
            started_at="0001",
            failing=breaking_migration(),
            stderr="Traceback ...\n" + "noise\n" * 50 + "sqlite3.OperationalError: boom\n",
        )

        assert message.startswith(
            "alembic upgrade failed while running 0003 (migrations/versions/0003_drop.py); "
            "the database is at 0002 (it started at 0001)."
        )
        assert message.endswith("sqlite3.OperationalError: boom")
        assert "Traceback" not in message

    def test_relative_path(self) -> None:
        assert relative_path("/srv/r/1/m/v/a.py", "/srv/r/1") == "m/v/a.py"
        assert relative_path("/usr/lib/x.py", "/srv/r/1") == "/usr/lib/x.py"
        assert relative_path(None, "/srv") is None


@pytest.mark.parametrize(
    ("output", "revision"),
    [
        ("FAILED: Can't locate revision identified by '0002'\n", "0002"),
        ("ERROR [alembic.util.messaging] Can't locate revision identified by 'ae10f3'", "ae10f3"),
        ("FAILED: Target database is not up to date.", None),
        ("", None),
    ],
)
def test_unknown_revision_is_read_from_alembics_error(output: str, revision: str | None) -> None:
    assert alembic_unknown_revision(output) == revision


@pytest.mark.parametrize(
    ("operation", "classification"),
    [
        ({"type": "CreateModel", "describe": "Create model Tag"}, "expand-safe"),
        ({"type": "RenameIndex", "describe": "Rename unnamed index"}, "expand-safe"),
        ({"type": "AddField", "describe": "Add field note", "null": True}, "expand-safe"),
        (
            {"type": "AddField", "describe": "Add field n", "null": False, "db_default": True},
            "expand-safe",
        ),
        (
            {"type": "AddField", "describe": "Add field tags", "null": False, "many_to_many": True},
            "expand-safe",
        ),
        ({"type": "AddField", "describe": "Add field code", "null": False}, "breaking"),
        ({"type": "RemoveField", "describe": "Remove field code"}, "breaking"),
        ({"type": "DeleteModel", "describe": "Delete model Query"}, "breaking"),
        ({"type": "RenameField", "describe": "Rename field a to b"}, "breaking"),
        ({"type": "AlterField", "describe": "Alter field url"}, "warning"),
        ({"type": "AlterUniqueTogether", "describe": "Alter unique_together"}, "warning"),
        ({"type": "RunPython", "describe": "Raw Python operation", "sql": False}, "warning"),
        ({"type": "FancyThirdPartyOperation", "describe": "Do something"}, "breaking"),
    ],
)
def test_django_operation_verdict_judges_what_the_operation_does(
    operation: dict, classification: str
) -> None:
    verdict = django_operation_verdict(operation, "app/migrations/0002_x.py")
    assert verdict.classification == classification
    assert operation["describe"] in verdict.sql
    if classification == "breaking":
        assert verdict.reason


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
