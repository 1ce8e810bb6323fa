"""Release windows and approval: pure decisions (module_utils/release_policy) and the module."""

from __future__ import annotations

from datetime import datetime

import pytest
import release_policy
from ansible.module_utils.release_policy import (
    PolicyError,
    in_window,
    next_opening,
    parse_days,
    parse_window,
    policy_decision,
    window_decision,
    zone,
)

BERLIN = "Europe/Berlin"
NIGHT = [{"start": "02:00", "end": "04:00"}]
OFFICE = [{"start": "09:00", "end": "17:00", "days": "mon-fri"}]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def local(text: str, tz: str = BERLIN) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone(tz))


# --- parsing -------------------------------------------------------------------------


def test_days_accept_names_lists_and_ranges_that_wrap_the_week() -> None:
    assert parse_days(None, "days") == frozenset(range(7))
    assert parse_days("mon-fri", "days") == frozenset(range(5))
    assert parse_days(["sat", "sun"], "days") == frozenset({5, 6})
    assert parse_days("fri-mon", "days") == frozenset({4, 5, 6, 0})


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"start": "25:00", "end": "04:00"}, "not a time of day"),
        ({"start": "02:00", "end": "02:00"}, "empty window"),
        ({"start": "02:00"}, "give start and end"),
        ({"start": "02:00", "end": "03:00", "days": "monday"}, "names the day"),
        ({"start": "02:00", "end": "03:00", "when": "x"}, "unknown keys"),
        ("0200", "not a window"),
    ],
)
def test_bad_windows_are_refused_with_the_fix(spec, fragment: str) -> None:
    with pytest.raises(PolicyError, match=fragment):
        parse_window(spec, "allowed window[0]")


def test_short_form_and_label() -> None:
    window = parse_window("22:00-06:00", "w")
    assert (window.start, window.end, window.crosses_midnight) == (22 * 60, 6 * 60, True)
    assert parse_window({**OFFICE[0], "name": "office"}, "w").label() == (
        "office (09:00-17:00 mon,tue,wed,thu,fri)"
    )


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(PolicyError, match="unknown time zone 'Mars/Olympus'"):
        window_decision(at("2026-11-23T10:00Z"), "Mars/Olympus", NIGHT, [])


# --- inside a window -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        ("2026-11-23T02:00", True),  # start is inside
        ("2026-11-23T03:59", True),
        ("2026-11-23T04:00", False),  # end is outside
        ("2026-11-23T01:59", False),
    ],
)
def test_window_bounds_are_start_inclusive_end_exclusive(moment: str, inside: bool) -> None:
    assert in_window(parse_window(NIGHT[0], "w"), local(moment)) is inside


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        ("2026-11-27T23:30", True),  # Friday evening: the window starts on Friday
        ("2026-11-28T05:59", True),  # Saturday morning: still Friday's window
        ("2026-11-28T06:00", False),
        ("2026-11-28T23:30", False),  # Saturday is not a start day
        ("2026-11-23T01:00", False),  # Monday morning would be Sunday's window
    ],
)
def test_a_window_crossing_midnight_belongs_to_the_day_it_starts(moment: str, inside: bool) -> None:
    window = parse_window({"start": "22:00", "end": "06:00", "days": "mon-fri"}, "w")
    assert in_window(window, local(moment)) is inside


def test_a_window_to_24_00_covers_the_last_minute() -> None:
    assert in_window(parse_window("18:00-24:00", "w"), local("2026-11-23T23:59"))


def test_windows_follow_the_wall_clock_across_daylight_saving_time() -> None:
    # Berlin is UTC+1 in winter and UTC+2 in summer: 02:30 on the wall is 01:30Z then 00:30Z.
    assert window_decision(at("2026-11-23T01:30Z"), BERLIN, NIGHT, []).allowed
    assert window_decision(at("2026-07-13T00:30Z"), BERLIN, NIGHT, []).allowed
    assert not window_decision(at("2026-07-13T02:30Z"), BERLIN, NIGHT, []).allowed


def test_spring_forward_skips_the_missing_hour_but_keeps_the_rest_of_the_window() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST. 00:59Z is 01:59 CET, 01:00Z is 03:00 CEST.
    assert not window_decision(at("2026-03-29T00:59Z"), BERLIN, NIGHT, []).allowed
    decision = window_decision(at("2026-03-29T01:00Z"), BERLIN, NIGHT, [])
    assert decision.allowed and "03:00 CEST" in decision.local_time


def test_fall_back_repeats_the_hour_and_both_are_inside() -> None:
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens at 00:30Z and 01:30Z.
    assert window_decision(at("2026-10-25T00:30Z"), BERLIN, NIGHT, []).allowed
    assert window_decision(at("2026-10-25T01:30Z"), BERLIN, NIGHT, []).allowed
    assert not window_decision(at("2026-10-25T03:00Z"), BERLIN, NIGHT, []).allowed  # 04:00 CET


# --- decisions -------------------------------------------------------------------------


def test_no_windows_allow_any_time() -> None:
    decision = window_decision(at("2026-11-23T10:00Z"), "UTC", [], [])
    assert decision.allowed and decision.reason == "no release windows are configured"


def test_refused_windows_win_over_allowed_ones() -> None:
    decision = window_decision(
        at("2026-11-23T10:00Z"), "UTC", [{"start": "00:00", "end": "24:00"}], OFFICE
    )
    assert not decision.allowed
    assert decision.refused_by == "09:00-17:00 mon,tue,wed,thu,fri"
    assert "refused window 09:00-17:00" in decision.reason


def test_a_refusal_names_the_next_allowed_time_in_local_time() -> None:
    # Monday 11:12 Berlin; next allowed: Tuesday 02:00 Berlin (01:00Z).
    decision = window_decision(at("2026-11-23T10:12Z"), BERLIN, NIGHT, OFFICE)
    assert not decision.allowed
    assert decision.next_opening == "2026-11-24T02:00:00+01:00"
    assert "next allowed time is Tue 2026-11-24 02:00 CET" in decision.reason


def test_next_opening_is_none_when_the_policy_never_allows() -> None:
    tz = zone("UTC")
    never = [parse_window("00:00-24:00", "w")]
    assert next_opening(at("2026-11-23T10:00Z"), tz, [], never) is None


def test_outside_the_windows_is_refused_naming_the_window_and_the_flag() -> None:
    window = window_decision(at("2026-11-23T10:12Z"), BERLIN, NIGHT, [])
    decision = policy_decision(window, "", False, "")
    assert not decision.proceed
    assert "outside the allowed windows 02:00-04:00" in decision.message
    assert "--force-window" in decision.message and "force_window" in decision.message


def test_a_forcing_reason_lets_the_release_proceed_and_is_kept() -> None:
    window = window_decision(at("2026-11-23T10:12Z"), BERLIN, NIGHT, [])
    decision = policy_decision(window, "  hotfix for INC-42 ", False, "")
    assert decision.proceed and decision.forced
    assert decision.force_reason == "hotfix for INC-42"
    assert "window forced: hotfix for INC-42" in decision.message


def test_a_reason_inside_the_window_does_not_count_as_forcing() -> None:
    window = window_decision(at("2026-11-23T01:30Z"), BERLIN, NIGHT, [])
    assert not policy_decision(window, "just in case", False, "").forced


def test_a_required_approval_needs_a_name() -> None:
    window = window_decision(at("2026-11-23T01:30Z"), BERLIN, NIGHT, [])
    refused = policy_decision(window, "", True, " ")
    assert not refused.proceed and "--approved-by" in refused.message
    approved = policy_decision(window, "", True, "alice")
    assert approved.proceed and approved.approved_by == "alice"
    assert "approved by alice" in approved.message


def test_a_rollback_is_never_refused_but_says_what_it_broke() -> None:
    window = window_decision(at("2026-11-23T10:12Z"), BERLIN, NIGHT, [])
    decision = policy_decision(window, "", True, "", enforce=False)
    assert decision.proceed and len(decision.problems) == 2
    assert "allowed because rollback is an emergency" in decision.message


# --- the module ------------------------------------------------------------------------


def test_module_refuses_outside_the_window_and_returns_the_decision(run_module) -> None:
    result = run_module(
        release_policy.main,
        {"timezone": BERLIN, "allowed_windows": NIGHT, "now": "2026-11-23T10:12:00Z"},
    )
    assert result["failed"] and not result["changed"]
    assert "02:00-04:00" in result["msg"] and "--force-window" in result["msg"]
    assert result["window"]["allowed"] is False and result["proceed"] is False


def test_module_passes_with_a_reason_in_check_mode(run_module) -> None:
    result = run_module(
        release_policy.main,
        {
            "timezone": BERLIN,
            "allowed_windows": NIGHT,
            "now": "2026-11-23T10:12:00Z",
            "force_reason": "INC-42",
            "approval_required": True,
            "approved_by": "alice",
        },
        check_mode=True,
    )
    assert not result["failed"] and not result["changed"]
    assert (result["forced"], result["force_reason"], result["approved_by"]) == (
        True,
        "INC-42",
        "alice",
    )


def test_module_reports_a_bad_window_as_a_clear_error(run_module) -> None:
    result = run_module(release_policy.main, {"refused_windows": ["9-17"]})
    assert result["failed"] and "not a time of day" in result["msg"]


# --- the command -----------------------------------------------------------------------


def test_release_passes_the_forcing_reason_and_the_approver_as_extra_vars(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from bluegreen import cli
    from bluegreen.runner import PlaybookResult

    (tmp_path / "playbooks").mkdir()
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    monkeypatch.chdir(tmp_path)
    calls: list[dict] = []

    def fake_run(project_dir, playbook, extravars, inventory, **kwargs) -> PlaybookResult:
        calls.append(extravars)
        return PlaybookResult(rc=0, status="successful", outcome="unchanged", message="live")

    monkeypatch.setattr(cli, "run_playbook", fake_run)
    args = ["release", "--version", "1.4.2", "--json"]
    CliRunner().invoke(cli.app, [*args, "--force-window", "INC-42", "--approved-by", "alice"])
    CliRunner().invoke(cli.app, args)
    assert calls == [
        {"app_version": "1.4.2", "force_window": "INC-42", "approved_by": "alice"},
        {"app_version": "1.4.2"},
    ]
