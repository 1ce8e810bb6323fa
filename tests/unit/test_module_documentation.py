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


@pytest.mark.parametrize("name", MODULES)
def test_documentation_matches_the_argument_spec(name: str) -> None:
    module = importlib.import_module(name)
    options = yaml.safe_load(module.DOCUMENTATION)["options"]

    assert options.keys() == module.ARGUMENT_SPEC.keys()
    for option, spec in module.ARGUMENT_SPEC.items():
        documented = options[option]
        for key in ("type", "default", "choices", "elements"):
            assert documented.get(key) == spec.get(key), (option, key)
        assert documented.get("required", False) == spec.get("required", False), option
        assert documented["description"], option
