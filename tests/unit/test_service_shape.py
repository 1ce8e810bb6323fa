"""The service's ports and name, as every command checks them before the lock."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.module_utils.service_shape import service_shape_problems

BOTH = ["blue", "green"]


@pytest.mark.parametrize(
    ("ports", "colours", "name", "expected", "problem"),
    [
        ({"blue": 8001, "green": 8002}, BOTH, "shop", None, ""),
        ({"blue": 8001, "green": 8001}, ["blue"], "shop", None, ""),
        ({"blue": 8001, "green": 8002}, BOTH, "shop", "shop", ""),
        ({"blue": 8001}, BOTH, "shop", None, "must give blue and green a port each"),
        ("8001", BOTH, "shop", None, "must give blue and green a port each"),
        ({"blue": 8001, "green": 8001}, BOTH, "shop", None, "distinct ports"),
        ({"blue": 8001, "green": 8002}, BOTH, "Shop", None, "lower case letters"),
        ({"blue": 8001, "green": 8002}, BOTH, "1shop", None, "a letter first"),
        ({"blue": 8001, "green": 8002}, BOTH, None, None, "lower case letters"),
        ({"blue": 8001, "green": 8002}, BOTH, "shop", "blog", "--app blog was asked for"),
    ],
)
def test_service_shape_problems_name_the_variable(
    ports: Any, colours: list[str], name: Any, expected: Any, problem: str
) -> None:
    problems = service_shape_problems(ports, colours, name, expected)
    if not problem:
        assert problems == []
    else:
        assert len(problems) == 1
        assert problem in problems[0]


def test_ports_and_name_are_both_reported() -> None:
    problems = service_shape_problems({"blue": 1}, BOTH, "A", None)
    assert [p.split(" ")[0] for p in problems] == [
        "bluegreen_service_ports",
        "bluegreen_service_name",
    ]
