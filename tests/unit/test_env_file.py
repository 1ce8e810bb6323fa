"""A colour's env file, read the way systemd reads it, and the secrets masked from output."""

from __future__ import annotations

import textwrap

from ansible.module_utils.env_file import parse_env_file, secret_values


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
