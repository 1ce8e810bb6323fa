# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""A colour's env file (systemd ``EnvironmentFile`` syntax) and the secrets in it.

parse_env_file() reads the file the way systemd does; secret_values() picks the values the
module must mask in its output (passwords, keys, tokens, database URLs and the passwords
inside URLs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Inside double quotes these characters lose the backslash before them; other escapes
# keep it, as in systemd (SHELL_NEED_ESCAPE).
_DOUBLE_QUOTE_ESCAPES = '"\\`$'


def parse_env_file(text: str) -> tuple[dict[str, str], list[int]]:
    """The assignments of a systemd EnvironmentFile, and the line numbers it ignored.

    Follows systemd's parser: ``#`` and ``;`` start comment lines, ``KEY=value`` with the
    value unquoted (backslash escapes the next character, trailing blanks dropped), in
    single quotes (literal) or in double quotes (backslash escapes ``" \\ ` $`` and a
    newline; other backslashes stay). A backslash before a newline continues the line.
    Lines without a valid name are ignored, like systemd does; their numbers are returned
    so the caller can warn without printing their content.
    """
    values: dict[str, str] = {}
    ignored: list[int] = []
    state = "pre_key"
    key: list[str] = []
    value: list[str] = []
    line = 1
    key_line = 1
    last_value_space: int | None = None

    def push() -> None:
        name = "".join(key).rstrip()
        if _ENV_NAME_RE.fullmatch(name):
            text_value = "".join(value)
            if last_value_space is not None:
                text_value = text_value[:last_value_space]
            values[name] = text_value
        else:
            ignored.append(key_line)

    for char in text:
        if state == "pre_key":
            if char in "#;":
                state = "comment"
            elif char not in " \t\r\n":
                state, key, value, key_line = "key", [char], [], line
        elif state == "key":
            if char in "\r\n":
                ignored.append(key_line)
                state = "pre_key"
            elif char == "=":
                state, last_value_space = "pre_value", None
            else:
                key.append(char)
        elif state == "pre_value":
            if char in "\r\n":
                push()
                state = "pre_key"
            elif char == "'":
                state = "single"
            elif char == '"':
                state = "double"
            elif char == "\\":
                state = "value_escape"
            elif char not in " \t":
                state = "value"
                value.append(char)
        elif state == "value":
            if char in "\r\n":
                push()
                state = "pre_key"
            elif char == "\\":
                state, last_value_space = "value_escape", None
            else:
                if char not in " \t":
                    last_value_space = None
                elif last_value_space is None:
                    last_value_space = len(value)
                value.append(char)
        elif state == "value_escape":
            state = "value"
            if char not in "\r\n":
                value.append(char)
        elif state == "single":
            if char == "'":
                state = "pre_value"
            else:
                value.append(char)
        elif state == "double":
            if char == '"':
                state = "pre_value"
            elif char == "\\":
                state = "double_escape"
            else:
                value.append(char)
        elif state == "double_escape":
            state = "double"
            if char in _DOUBLE_QUOTE_ESCAPES:
                value.append(char)
            elif char != "\n":
                value.extend(("\\", char))
        elif state == "comment":
            if char == "\\":
                state = "comment_escape"
            elif char in "\r\n":
                state = "pre_key"
        elif state == "comment_escape":
            state = "comment"
        if char == "\n":
            line += 1
    if state in ("pre_value", "value", "value_escape", "single", "double", "double_escape"):
        push()
    elif state == "key":
        ignored.append(key_line)
    return values, ignored


_SECRET_NAME_RE = re.compile(
    r"PASS|SECRET|TOKEN|KEY|CREDENTIAL|AUTH|PRIVATE|DSN|DATABASE_URL|_URL$|_URI$", re.I
)
# Shorter values would mask unrelated text all over the output (Ansible replaces substrings).
MIN_MASKED_LENGTH = 4


def secret_values(environment: Mapping[str, str]) -> set[str]:
    """Values that must never appear in the task's output.

    Whole values of variables whose names look secret (passwords, keys, tokens, database
    URLs) and the password inside any URL. Short values are left out because Ansible
    masks every occurrence of a masked string, and "1" would wreck the whole output.
    """
    secrets: set[str] = set()
    for name, value in environment.items():
        if _SECRET_NAME_RE.search(name):
            secrets.add(value)
        if "://" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                secrets.update((password, unquote(password)))
    return {value for value in secrets if len(value) >= MIN_MASKED_LENGTH}
