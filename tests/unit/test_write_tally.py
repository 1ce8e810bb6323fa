"""How the no-lost-writes harness counts: only a 2xx is acknowledged; id and body must match."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from _load import Write, tally_writes


def write(body: str, status: int | None, note_id: int | None = None, retry: str | None = None):
    return Write(body, 0.0, 0.1, status, note_id, retry)


def test_acknowledged_rows_that_are_stored_are_present() -> None:
    writes = [write("a", 201, 1), write("b", 201, 2)]

    tally = tally_writes(writes, {1: "a", 2: "b"})

    assert (tally.acknowledged, tally.present, tally.lost) == (2, 2, 0)


def test_a_row_whose_id_now_holds_another_body_is_lost() -> None:
    # A restore can give a lost row's id to a later insert.
    writes = [write("before", 201, 7), write("after-restore", 201, 7)]

    tally = tally_writes(writes, {7: "after-restore"})

    assert (tally.acknowledged, tally.present, tally.lost) == (2, 1, 1)
    assert tally.lost_samples == ["id 7: before"]


def test_a_missing_row_is_lost() -> None:
    tally = tally_writes([write("a", 201, 3)], {3: None})

    assert tally.lost == 1


def test_maintenance_answers_are_not_acknowledged_and_counted_apart() -> None:
    writes = [write("a", 503, retry="300"), write("b", 503), write("c", None), write("d", 500)]

    tally = tally_writes(writes, {})

    assert tally.acknowledged == 0 and tally.lost == 0
    assert tally.maintenance_503 == 1
    assert tally.other_failures == 3
    assert tally.attempted == 4
