"""Every module that declares ARGUMENT_SPEC documents each option as it is specified."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

LIBRARY = Path(__file__).resolve().parents[2] / "library"
MODULES = sorted(
    path.stem for path in LIBRARY.glob("*.py") if "\nARGUMENT_SPEC" in path.read_text()
)


def assert_documented(options: dict, spec: dict, where: str = "") -> None:
    """Each option (and suboption) documented as specified: same names, type, default,
    choices, elements and required."""
    assert options.keys() == spec.keys(), where
    for option, wanted in spec.items():
        documented = options[option]
        for key in ("type", "default", "choices", "elements"):
            assert documented.get(key) == wanted.get(key), (where + option, key)
        assert documented.get("required", False) == wanted.get("required", False), option
        assert documented["description"], where + option
        if "options" in wanted:
            assert_documented(documented.get("suboptions") or {}, wanted["options"], f"{option}.")


@pytest.mark.parametrize("name", MODULES)
def test_documentation_matches_the_argument_spec(name: str) -> None:
    module = importlib.import_module(name)
    options = yaml.safe_load(module.DOCUMENTATION)["options"]

    assert_documented(options, module.ARGUMENT_SPEC)
