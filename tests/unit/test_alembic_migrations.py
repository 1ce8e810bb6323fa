"""What Alembic's history, current and --sql output mean, and which downgrades can run."""

from __future__ import annotations

import textwrap

import pytest
from ansible.module_utils.alembic_migrations import (
    alembic_downgrade_problem,
    alembic_marked_current,
    alembic_plan,
    alembic_sql_sections,
    alembic_unknown_revision,
    parse_alembic_current,
    parse_alembic_history,
    resolve_alembic_target,
)
from ansible.module_utils.migration_error import MigrationError
from ansible.module_utils.sql_statements import split_statements

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

    @pytest.mark.parametrize(
        ("direction", "owner"), [("upgrade", "06884b17c50f"), ("downgrade", "7a9b38559992")]
    )
    def test_a_decorated_migrations_statements_are_its_own(
        self, direction: str, owner: str
    ) -> None:
        # ihatemoney 7.x decorates a migration: Alembic names the wrapper, not the direction.
        sql = (
            "-- Running wrapper 7a9b38559992 -> 06884b17c50f\n\n"
            "ALTER TABLE project ALTER COLUMN logging_preference TYPE loggingmode;\n"
        )

        _, sections = alembic_sql_sections(split_statements(sql), direction)

        assert list(sections) == [owner]
        assert sections[owner][0].text.startswith("ALTER TABLE project ALTER COLUMN")

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
