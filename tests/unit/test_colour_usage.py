"""colour_usage's pure logic: systemd's accounting of a colour's unit, the host's memory
and disk, and the error events of its journal, read from text the module gathered."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import colour_usage
import pytest
from ansible.module_utils.colour_usage import (
    EXCERPT_LINE_CHARS,
    EXCERPTS,
    ColourUsageError,
    LogLine,
    cgroup_cpu_files,
    cgroup_cpu_ns,
    count_log_errors,
    counter,
    cpu_used,
    disk_used_percent,
    journal_lines,
    mark_from,
    memory_used_percent,
    parse_mark,
    parse_show,
    unit_usage,
    window,
)

SHOW = """Id=sampleapp@green.service
LoadState=loaded
ActiveState=active
InvocationID=aaa
CPUUsageNSec=2500000000
MemoryCurrent=83886080
TasksCurrent=7
CPUAccounting=yes
MemoryAccounting=yes
"""


def lines(*messages: str, priority: int = 6) -> list[LogLine]:
    return [LogLine(m, priority, f"c{i}") for i, m in enumerate(messages)]


def keep(text: str) -> str:
    return text


class TestAccounting:
    def test_systemctl_show_gives_the_unit_counters(self) -> None:
        usage = unit_usage("sampleapp@green", parse_show(SHOW))

        assert (usage.active, usage.invocation) == ("active", "aaa")
        assert (usage.cpu_ns, usage.memory_bytes, usage.tasks) == (2_500_000_000, 83886080, 7)

    @pytest.mark.parametrize("value", ["[not set]", "", str(2**64 - 1), "infinity", "x"])
    def test_an_unset_or_unknown_counter_is_none_never_zero(self, value: str) -> None:
        assert counter(value) is None

    def test_a_unit_systemd_does_not_know_is_refused(self) -> None:
        with pytest.raises(ColourUsageError, match="no unit sampleapp@pink"):
            unit_usage("sampleapp@pink", {"LoadState": "not-found"})

    def test_cpu_is_the_growth_of_the_counter_since_the_mark(self) -> None:
        mark = mark_from(unit_usage("u", parse_show(SHOW)), 100.0, "c1")
        later = unit_usage("u", parse_show(SHOW.replace("2500000000", "4000000000")))

        assert cpu_used(mark, later).seconds == pytest.approx(1.5)
        assert not cpu_used(mark, later).restarted

    def test_a_restarted_unit_counts_from_its_new_start(self) -> None:
        mark = mark_from(unit_usage("u", parse_show(SHOW)), 100.0, None)
        restarted = parse_show(SHOW.replace("aaa", "bbb").replace("2500000000", "300000000"))

        used = cpu_used(mark, unit_usage("u", restarted))
        assert (used.seconds, used.restarted) == (pytest.approx(0.3), True)

    def test_a_unit_without_cpu_accounting_names_the_setting(self) -> None:
        mark = mark_from(unit_usage("u", parse_show(SHOW)), 100.0, None)
        bare = unit_usage("u", parse_show(SHOW.replace("2500000000", "[not set]")))

        used = cpu_used(mark, bare)
        assert used.seconds is None
        assert "CPUAccounting=yes" in (used.reason or "")

    def test_the_window_gives_cpu_as_a_share_of_the_host_and_of_a_core(self) -> None:
        mark = mark_from(unit_usage("u", parse_show(SHOW)), 100.0, "c1")
        now = unit_usage("u", parse_show(SHOW.replace("2500000000", "7500000000")))

        read = window(mark, now, 110.0, 2, 41.0, 30.0, None, "no journal", None)
        # 5 CPU seconds in 10 s: half of one core, a quarter of the two CPUs.
        assert read["cpu"]["percent_of_core"] == pytest.approx(50.0)
        assert read["cpu"]["percent_of_host"] == pytest.approx(25.0)
        assert read["memory"]["process_bytes"] == 83886080
        assert read["window"]["seconds"] == 10.0
        # The journal could not be read: the next window starts at the same cursor.
        assert read["mark"]["cursor"] == "c1"
        assert read["log"] is None

    def test_host_memory_as_free_counts_it(self) -> None:
        meminfo = "MemTotal:       1000 kB\nMemFree:  100 kB\nMemAvailable:    250 kB\n"

        assert memory_used_percent(meminfo) == pytest.approx(75.0)
        assert memory_used_percent("MemTotal: 1000 kB\n") is None

    def test_disk_use_as_df_shows_it(self) -> None:
        # 1000 blocks, 300 free, 250 of them available to users: 700 / 950.
        assert disk_used_percent(1000, 300, 250) == pytest.approx(100 * 700 / 950)

    def test_a_mark_of_another_unit_is_refused(self) -> None:
        mark = mark_from(unit_usage("a@green", parse_show(SHOW)), 1.0, None).as_dict()

        with pytest.raises(ColourUsageError, match="mark of 'a@green', not of a@blue"):
            parse_mark(mark, "a@blue")
        assert parse_mark(mark, "a@green").cpu_ns == 2_500_000_000


TRACEBACK = (
    "Traceback (most recent call last):",
    '  File "/opt/app/app.py", line 3, in view',
    "    raise RuntimeError('boom')",
    "RuntimeError: boom",
)


class TestLogErrors:
    def test_a_logged_exception_is_one_event_with_its_traceback(self) -> None:
        found = count_log_errors(
            lines("GET / 200", "ERROR app: failed in /", *TRACEBACK, "GET / 200"), keep
        )

        assert (found.events, found.tracebacks, found.lines) == (1, 1, 7)
        assert found.excerpts == [["ERROR app: failed in /", *TRACEBACK]]

    def test_a_bare_traceback_is_an_event_and_so_is_each_one_after_it(self) -> None:
        found = count_log_errors(lines("failed in /", *TRACEBACK, "failed in /", *TRACEBACK), keep)

        assert (found.events, found.tracebacks) == (2, 2)
        # The line a bare traceback follows says what failed: kept with it.
        assert found.excerpts[0] == ["failed in /", *TRACEBACK]

    def test_chained_exceptions_are_one_event(self) -> None:
        chained = (
            *TRACEBACK,
            "",
            "During handling of the above exception, another exception occurred:",
            "",
            *TRACEBACK,
        )
        found = count_log_errors(lines(*chained), keep)

        assert (found.events, found.tracebacks) == (1, 2)

    def test_levels_are_words_and_journal_priorities_count(self) -> None:
        found = count_log_errors(
            [
                *lines("WARNING slow", "error_rate is fine", "no ERRORS here", "CRITICAL: disk"),
                LogLine("segfault", 3, None),
                LogLine("info", 6, None),
            ],
            keep,
        )

        assert found.events == 2

    def test_only_the_first_excerpts_are_kept_redacted_then_cut(self) -> None:
        secret = "s3cr3t-password-value"
        many = [f"ERROR {i} {secret} " + "x" * 400 for i in range(EXCERPTS + 2)]

        found = count_log_errors(lines(*many), lambda t: t.replace(secret, "********"))

        assert found.events == EXCERPTS + 2
        assert len(found.excerpts) == EXCERPTS
        assert all(secret not in line for e in found.excerpts for line in e)
        assert all(len(line) == EXCERPT_LINE_CHARS for e in found.excerpts for line in e)

    def test_journal_json_entries_with_byte_messages_are_decoded(self) -> None:
        entries: list[dict[str, Any]] = [
            {"MESSAGE": list(b"ERROR caf\xc3\xa9"), "PRIORITY": "6", "__CURSOR": "k1"},
            {"MESSAGE": "ok", "__CURSOR": "k2"},
        ]

        parsed = journal_lines(entries)
        assert [ln.message for ln in parsed] == ["ERROR café", "ok"]
        assert [ln.priority for ln in parsed] == [6, None]
        assert parsed[-1].cursor == "k2"


class TestModuleHelpers:
    def test_secrets_come_from_the_env_file(self, tmp_path) -> None:
        env = tmp_path / "green.env"
        env.write_text("APP_SECRET_KEY=abcdefghijkl\nPLAIN=visible\nMINE=mine-only-secret\n")

        found = colour_usage.secrets(str(env), ["MINE"])
        assert found == {"abcdefghijkl", "mine-only-secret"}
        assert colour_usage.secrets(str(tmp_path / "missing.env"), []) == set()

    def test_the_log_is_read_after_the_cursor_and_counted(self, monkeypatch) -> None:
        calls: list[list[str]] = []
        out = "\n".join(
            json.dumps({"MESSAGE": m, "PRIORITY": "6", "__CURSOR": f"k{i}"})
            for i, m in enumerate(["ERROR APP_SECRET abcdefghijkl", "fine"])
        )

        def fake(unit: str, args: list[str]) -> subprocess.CompletedProcess[str]:
            calls.append(args)
            return subprocess.CompletedProcess(args, 0, out, "")

        monkeypatch.setattr(colour_usage, "journal", fake)
        log, problem, cursor = colour_usage.read_log("u", "k0", 5.0, 100, {"abcdefghijkl"})

        assert "--after-cursor=k0" in calls[0]
        assert problem is None and cursor == "k1"
        assert log is not None and log.events == 1
        assert log.excerpts == [["ERROR APP_SECRET ********"]]


class TestCgroupFallback:
    def test_the_unit_cgroup_files_are_tried_most_direct_first(self) -> None:
        files = cgroup_cpu_files("/system.slice/a.service", root="/cg")

        assert files[0] == "/cg/unified/system.slice/a.service/cpu.stat"
        assert "/cg/cpuacct/system.slice/a.service/cpuacct.usage" in files
        assert cgroup_cpu_files("") == []

    def test_cpu_stat_usage_is_read_in_nanoseconds(self) -> None:
        text = "usage_usec 17360315\nuser_usec 3938934\nsystem_usec 13421380\n"

        assert cgroup_cpu_ns("/x/cpu.stat", text) == 17_360_315_000
        assert cgroup_cpu_ns("/x/cpuacct.usage", "123456789\n") == 123_456_789
        assert cgroup_cpu_ns("/x/cpu.stat", "user_usec 1\n") is None

    def test_the_module_falls_back_to_the_cgroup_when_systemd_has_no_count(
        self, monkeypatch, tmp_path
    ) -> None:
        cg = "/system.slice/a.service"
        stat = tmp_path / "unified" / cg.strip("/") / "cpu.stat"
        stat.parent.mkdir(parents=True)
        stat.write_text("usage_usec 2000\n")
        show = SHOW.replace("2500000000", "[not set]") + f"ControlGroup={cg}\n"

        class Module:
            def run_command(self, args: list[str]) -> tuple[int, str, str]:
                return 0, show, ""

        monkeypatch.setattr(
            colour_usage,
            "cgroup_cpu_files",
            lambda group: [f"{tmp_path}/unified{group}/cpu.stat"],
        )
        usage = colour_usage.read_unit(Module(), "a.service")  # type: ignore[arg-type]

        assert usage.cpu_ns == 2_000_000
        assert usage.cpu_source == str(stat)
