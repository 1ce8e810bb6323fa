"""nginx_maintenance: its rules as table tests, and the module in-process against a fake nginx.

The fake stands in for `nginx -t` and the reload: it records the include nginx loaded, so
the tests can assert what a user cares about (whether maintenance is on, the Retry-After
nginx sends, what is on disk) rather than which function ran.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nginx_maintenance
import pytest
import yaml
from ansible.module_utils import nginx_config
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.nginx_config import ChangeFailed, NginxConfigError
from ansible.module_utils.nginx_maintenance import (
    MaintenanceFiles,
    MaintenancePaths,
    failed_message,
    file_changes,
    files_after,
    render_flag,
    render_include,
    retry_after_in,
    site_checks_flag,
    validate_put_back,
    validate_retry_after,
)

TEST = ["nginx", "-t"]
RELOAD = ["systemctl", "reload", "nginx"]
SINCE = "2025-06-01T12:00:00Z"
STALE = (
    "does not check {flag} (it was rendered before maintenance mode existed): converge nginx "
    "first, e.g. release the live version again, which changes nothing else"
)


# --- rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("include", "expected"),
    [
        (None, None),
        (b"", None),
        (b"add_header Retry-After 300 always;\n", 300),
        (b"# Ansible managed\n# comment\nadd_header Retry-After 120 always;\n", 120),
        (b"    add_header   Retry-After 5   always ;\n", 5),
        (b"# add_header Retry-After 9 always;\n", None),
        (render_include(900).encode(), 900),
    ],
)
def test_retry_after_is_read_from_the_directive_only(include: bytes | None, expected) -> None:
    assert retry_after_in(include) == expected


@pytest.mark.parametrize(
    ("site", "expected"),
    [
        (None, False),
        ("", False),
        ("server { location / { proxy_pass http://app_live; } }", False),
        ("if (-f /var/www/app/maintenance.on) { return 503; }", True),
        ("if (-f /var/www/other/maintenance.on) { return 503; }", False),
    ],
)
def test_site_must_name_the_flag_file(site: str | None, expected: bool) -> None:
    assert site_checks_flag(site, "/var/www/app/maintenance.on") is expected


OFF = MaintenanceFiles(include=b"add_header Retry-After 300 always;\n", page=b"old page", flag=None)
ON = MaintenanceFiles(include=OFF.include, page=b"old page", flag=b'{"since": "earlier"}\n')
FRESH = MaintenanceFiles(include=None, page=None, flag=None)
NEW_FLAG_300 = render_flag(SINCE, 300).encode()


@pytest.mark.parametrize(
    ("current", "maintenance", "retry_after", "page", "expected"),
    [
        # On from off, same Retry-After: the include is left alone (no reload).
        (OFF, True, 300, "new page", MaintenanceFiles(OFF.include, b"new page", NEW_FLAG_300)),
        # On without a page: the page stays as it is.
        (OFF, True, 300, None, MaintenanceFiles(OFF.include, b"old page", NEW_FLAG_300)),
        # A new Retry-After rewrites the include; a flag already there keeps its time.
        (
            ON,
            True,
            60,
            "old page",
            MaintenanceFiles(render_include(60).encode(), b"old page", ON.flag),
        ),
        # First toggle on a host without any of the files.
        (
            FRESH,
            True,
            300,
            "page",
            MaintenanceFiles(render_include(300).encode(), b"page", NEW_FLAG_300),
        ),
        # Off removes the flag and nothing else, whatever retry_after and page say.
        (ON, False, 60, "ignored", MaintenanceFiles(ON.include, ON.page, None)),
        (OFF, False, 300, None, OFF),
    ],
)
def test_files_after_a_toggle(
    current: MaintenanceFiles,
    maintenance: bool,
    retry_after: int,
    page: str | None,
    expected: MaintenanceFiles,
) -> None:
    after = files_after(
        current, maintenance=maintenance, retry_after=retry_after, page=page, since=SINCE
    )

    assert after == expected


@pytest.mark.parametrize(
    ("put_back", "expected"),
    [
        ({"include": None, "page": None, "flag": None}, FRESH),
        ({"flag": None}, MaintenanceFiles(ON.include, ON.page, None)),
        ({}, ON),
    ],
)
def test_put_back_restores_only_the_files_named(put_back, expected: MaintenanceFiles) -> None:
    after = files_after(
        ON, maintenance=None, retry_after=300, page="ignored", since=SINCE, put_back=put_back
    )

    assert after == expected


def test_changes_are_written_include_first_and_the_flag_last() -> None:
    paths = MaintenancePaths(include="/i.conf", page="/p.html", flag="/m.on")
    after = MaintenanceFiles(include=b"new", page=b"new page", flag=b"{}")

    changes = file_changes(paths, FRESH, after)

    assert [(c.path, c.loaded) for c in changes] == [
        ("/i.conf", True),
        ("/p.html", False),
        ("/m.on", False),
    ]
    assert file_changes(paths, after, after) == []


def test_flag_records_when_maintenance_began_and_the_retry_after() -> None:
    assert json.loads(render_flag(SINCE, 120)) == {"since": SINCE, "retry_after": 120}


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"include": "x", "pages": "y"}, "put_back has 'pages'"),
        ({"flag": 3}, "put_back.flag must be the file's content as text"),
    ],
)
def test_put_back_refuses_what_no_run_returned(value: dict[str, Any], error: str) -> None:
    with pytest.raises(NginxConfigError, match=error):
        validate_put_back(value)


@pytest.mark.parametrize("value", [-1, True, "300"])
def test_retry_after_must_be_whole_seconds(value: object) -> None:
    with pytest.raises(NginxConfigError, match="retry_after"):
        validate_retry_after(value)


@pytest.mark.parametrize(
    ("failed", "expected", "unexpected"),
    [
        (
            ChangeFailed(path="/i.conf", step="write", stderr="[Errno 30] Read-only file system"),
            [
                "maintenance mode was not turned on: could not write /i.conf: [Errno 30]",
                "every file was put back as it was and nginx still serves them",
                "become: true",
            ],
            ["reloaded"],
        ),
        (
            ChangeFailed(
                path="/i.conf", step="test", command=("nginx", "-t"), rc=1, stderr="[emerg] bad\n"
            ),
            [
                "nginx -t failed after writing /i.conf: [emerg] bad;",
                "nginx still serves them",
                "nginx -t says what it rejects",
            ],
            ["reloaded"],
        ),
        (
            ChangeFailed(
                path="/i.conf",
                step="reload",
                command=("systemctl", "reload", "nginx"),
                rc=1,
                stderr="Job failed",
                reloaded_again=True,
            ),
            ["put back as it was and nginx was reloaded with them", "systemctl status nginx"],
            [],
        ),
        (
            ChangeFailed(
                path="/i.conf",
                step="reload",
                command=("systemctl", "reload", "nginx"),
                rc=1,
                stderr="Job failed",
                second_reload_stderr="still failing",
                reloaded_again=True,
            ),
            ["but reloading nginx again also failed: still failing", "nginx -T"],
            [],
        ),
        (
            ChangeFailed(
                path="/m.on",
                step="write",
                stderr="disk full",
                restore_errors={"/p.html": "disk full"},
            ),
            ["putting the files back also failed (/p.html: disk full)", "by hand"],
            ["put back as it was"],
        ),
    ],
)
def test_failure_says_what_nginx_has_now(
    failed: ChangeFailed, expected: list[str], unexpected: list[str]
) -> None:
    message = failed_message("turned on", failed)

    for text in expected:
        assert text in message
    for text in unexpected:
        assert text not in message


# --- the module --------------------------------------------------------------------------


class FakeNginx:
    """`nginx -t` and the reload as the module sees them; `loaded` is the include in use."""

    def __init__(self, include: Path) -> None:
        self.include = include
        self.loaded: bytes | None = None
        self.commands: list[list[str]] = []
        self.test_fails = False
        self.failing_reloads = 0

    def run_command(self, args: list[str], **_: Any) -> tuple[int, str, str]:
        self.commands.append(list(args))
        if args == TEST:
            if self.test_fails:
                return 1, "", f'nginx: [emerg] unknown directive "bogus" in {self.include}:1\n'
            return 0, "", "nginx: configuration file /etc/nginx/nginx.conf test is successful\n"
        if args == RELOAD:
            if self.failing_reloads:
                self.failing_reloads -= 1
                return 1, "", "Job for nginx.service failed.\n"
            self.loaded = self.include.read_bytes() if self.include.exists() else None
            return 0, "", ""
        raise FileNotFoundError(2, "No such file or directory", args[0])

    @property
    def retry_after(self) -> int | None:
        return retry_after_in(self.loaded)


class Host:
    """A load balancer's files: the site, the Retry-After include, the page and the flag."""

    def __init__(self, root: Path) -> None:
        self.site = root / "sites" / "sampleapp.conf"
        self.include = root / "bluegreen" / "sampleapp.maintenance.conf"
        self.page = root / "www" / "maintenance.html"
        self.flag = root / "www" / "maintenance.on"
        self.site.parent.mkdir(parents=True)
        self.site.write_text(f"location / {{ if (-f {self.flag}) {{ return 503; }} }}\n")

    def args(self, **overrides: Any) -> dict[str, Any]:
        return {
            "site_path": str(self.site),
            "flag_path": str(self.flag),
            "include_path": str(self.include),
            "page_path": str(self.page),
            **overrides,
        }

    def on(self, **overrides: Any) -> dict[str, Any]:
        return self.args(maintenance=True, page_content="<p>Under maintenance</p>\n", **overrides)

    def off(self) -> dict[str, Any]:
        return self.args(maintenance=False)

    def files(self) -> dict[str, bytes | None]:
        return {
            path.name: path.read_bytes() if path.exists() else None
            for path in (self.include, self.page, self.flag)
        }


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


@pytest.fixture
def nginx(host: Host, monkeypatch: pytest.MonkeyPatch) -> FakeNginx:
    fake = FakeNginx(host.include)
    monkeypatch.setattr(
        AnsibleModule, "run_command", lambda self, args, **kwargs: fake.run_command(args, **kwargs)
    )
    return fake


def installed(host: Host, nginx: FakeNginx, retry_after: int = 300) -> dict[str, bytes | None]:
    """The files as the role's first install leaves them, with nginx running that include."""
    host.include.parent.mkdir(parents=True, exist_ok=True)
    host.include.write_text(f"# Ansible managed\nadd_header Retry-After {retry_after} always;\n")
    host.page.parent.mkdir(parents=True, exist_ok=True)
    host.page.write_text("<p>old page</p>\n")
    nginx.loaded = host.include.read_bytes()
    return host.files()


class TestTurningOn:
    def test_on_creates_the_flag_and_page_without_reloading_for_the_same_retry_after(
        self, run_module, host: Host, nginx: FakeNginx
    ) -> None:
        before = installed(host, nginx)

        result = run_module(nginx_maintenance.main, host.on())

        assert result["failed"] is False, result["msg"]
        assert (result["changed"], result["maintenance"], result["was_on"]) == (True, True, False)
        assert (result["retry_after"], result["reloaded"]) == (300, False)
        assert nginx.commands == []
        assert host.page.read_text() == "<p>Under maintenance</p>\n"
        assert json.loads(host.flag.read_text())["retry_after"] == 300
        assert host.include.read_bytes() == before["sampleapp.maintenance.conf"]
        assert result["previous"] == {
            "include": before["sampleapp.maintenance.conf"].decode(),
            "page": "<p>old page</p>\n",
            "flag": None,
        }

    def test_a_new_retry_after_is_tested_and_reloaded_before_users_see_the_page(
        self, run_module, host: Host, nginx: FakeNginx
    ) -> None:
        installed(host, nginx)

        result = run_module(nginx_maintenance.main, host.on(retry_after=120))

        assert (result["changed"], result["reloaded"], result["retry_after"]) == (True, True, 120)
        assert nginx.commands == [TEST, RELOAD]
        assert nginx.retry_after == 120
        assert host.flag.exists()

    def test_first_toggle_on_a_bare_host_creates_every_file(
        self, run_module, host: Host, nginx: FakeNginx
    ) -> None:
        result = run_module(nginx_maintenance.main, host.on())

        assert result["failed"] is False, result["msg"]
        assert nginx.retry_after == 300
        assert all(content is not None for content in host.files().values())
        assert stat_mode(host.flag) == 0o644
        assert stat_mode(host.page.parent) == 0o755

    def test_turning_on_twice_changes_nothing_the_second_time(
        self, run_module, host: Host, nginx: FakeNginx
    ) -> None:
        installed(host, nginx)
        run_module(nginx_maintenance.main, host.on())
        files = host.files()
        nginx.commands.clear()

        again = run_module(nginx_maintenance.main, host.on())

        assert (again["changed"], again["was_on"], again["maintenance"]) == (False, True, True)
        assert host.files() == files
        assert nginx.commands == []

    def test_a_new_retry_after_while_on_keeps_the_time_maintenance_began(
        self, run_module, host: Host, nginx: FakeNginx
    ) -> None:
        installed(host, nginx)
        run_module(nginx_maintenance.main, host.on())
        flag = host.flag.read_bytes()

        result = run_module(nginx_maintenance.main, host.on(retry_after=900))

        assert (result["changed"], result["reloaded"], nginx.retry_after) == (True, True, 900)
        assert host.flag.read_bytes() == flag


class TestTurningOff:
    def test_off_removes_only_the_flag_and_never_reloads(
        self, run_module, host: Host, nginx: FakeNginx
    ) -> None:
        installed(host, nginx)
        run_module(nginx_maintenance.main, host.on(retry_after=60))
        files = host.files()
        nginx.commands.clear()

        result = run_module(nginx_maintenance.main, host.off())

        assert (result["changed"], result["was_on"], result["maintenance"]) == (True, True, False)
        assert result["retry_after"] is None
        assert nginx.commands == []
        assert host.files() == dict(files, **{"maintenance.on": None})

    def test_off_when_off_changes_nothing(self, run_module, host: Host, nginx: FakeNginx) -> None:
        installed(host, nginx)

        result = run_module(nginx_maintenance.main, host.off())

        assert (result["changed"], result["was_on"]) == (False, False)


class TestRefusal:
    @pytest.mark.parametrize("check_mode", [False, True])
    def test_a_site_that_does_not_check_the_flag_is_refused_and_nothing_changes(
        self, run_module, host: Host, nginx: FakeNginx, check_mode: bool
    ) -> None:
        before = installed(host, nginx)
        host.site.write_text("location / { proxy_pass http://sampleapp_live; }\n")

        result = run_module(nginx_maintenance.main, host.on(), check_mode=check_mode)

        assert result["failed"] is True
        assert result["msg"] == (
            f"maintenance mode was not turned on: the site {host.site} "
            + STALE.format(flag=host.flag)
        )
        assert (result["changed"], result["site_checks_flag"]) == (False, False)
        assert host.files() == before
        assert nginx.commands == []

    def test_a_missing_site_is_refused_too(self, run_module, host: Host, nginx: FakeNginx) -> None:
        host.site.unlink()

        result = run_module(nginx_maintenance.main, host.off())

        assert result["failed"] is True
        assert "maintenance mode was not turned off: the site" in result["msg"]

    @pytest.mark.parametrize(
        ("args", "error"),
        [
            ({"maintenance": True, "put_back": {}}, "mutually exclusive"),
            ({}, "one of the following is required: maintenance, put_back"),
            ({"maintenance": True, "site_path": None}, "missing parameter(s) required by"),
            ({"maintenance": True, "retry_after": -5}, "retry_after -5 is not valid"),
            ({"put_back": {"pages": None}}, "put_back has 'pages'"),
        ],
    )
    def test_bad_arguments_are_refused(
        self, run_module, host: Host, nginx: FakeNginx, args: dict[str, Any], error: str
    ) -> None:
        result = run_module(nginx_maintenance.main, {**host.args(), **args})

        assert result["failed"] is True
        assert error in result["msg"]
        assert not host.flag.exists()


class TestCheckAndDiff:
    def test_check_mode_tells_what_would_change_and_writes_nothing(
        self, run_module, host: Host, nginx: FakeNginx
    ) -> None:
        before = installed(host, nginx)

        result = run_module(
            nginx_maintenance.main, host.on(retry_after=60), check_mode=True, diff=True
        )

        assert (result["changed"], result["maintenance"], result["retry_after"]) == (True, True, 60)
        assert (result["reloaded"], result["site_checks_flag"]) == (False, True)
        assert host.files() == before
        assert nginx.commands == []
        assert [d["after_header"] for d in result["diff"]] == [
            str(host.include),
            str(host.page),
            str(host.flag),
        ]
        assert "Retry-After 60 always;" in result["diff"][0]["after"]

    def test_diff_of_turning_off_is_the_flag_going_away(
        self, run_module, host: Host, nginx: FakeNginx
    ) -> None:
        installed(host, nginx)
        run_module(nginx_maintenance.main, host.on())
        flag = host.flag.read_text()

        result = run_module(nginx_maintenance.main, host.off(), diff=True)

        assert result["diff"] == [
            {
                "before": flag,
                "after": "",
                "before_header": str(host.flag),
                "after_header": str(host.flag),
            }
        ]

    def test_no_diff_without_diff_mode(self, run_module, host: Host, nginx: FakeNginx) -> None:
        assert "diff" not in run_module(nginx_maintenance.main, host.on())


class TestFailures:
    def test_failed_nginx_test_puts_the_include_back_and_never_shows_the_page(
        self, run_module, host: Host, nginx: FakeNginx
    ) -> None:
        before = installed(host, nginx)
        nginx.test_fails = True

        result = run_module(nginx_maintenance.main, host.on(retry_after=60))

        assert result["failed"] is True
        assert f"nginx -t failed after writing {host.include}" in result["msg"]
        assert "every file was put back as it was" in result["msg"]
        assert 'unknown directive "bogus"' in result["failed_command"]["stderr"]
        assert (result["failed_command"]["rc"], result["failed_command"]["cmd"]) == (1, TEST)
        assert (result["changed"], result["maintenance"]) == (False, False)
        assert host.files() == before
        assert nginx.commands == [TEST]
        assert nginx.retry_after == 300

    def test_failed_reload_puts_the_include_back_and_reloads_with_it(
        self, run_module, host: Host, nginx: FakeNginx
    ) -> None:
        before = installed(host, nginx)
        nginx.failing_reloads = 1

        result = run_module(nginx_maintenance.main, host.on(retry_after=60))

        assert result["failed"] is True
        assert "nginx was reloaded with them" in result["msg"]
        assert (result["changed"], result["reloaded"]) == (False, True)
        assert host.files() == before
        assert nginx.commands == [TEST, RELOAD, RELOAD]
        assert nginx.retry_after == 300

    def test_a_flag_that_cannot_be_written_puts_back_the_page_and_the_include(
        self, run_module, host: Host, nginx: FakeNginx, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        before = installed(host, nginx)
        write_atomic = nginx_config.write_atomic

        def flag_fails(module: AnsibleModule, path: str, content: bytes) -> None:
            if path == str(host.flag):
                raise OSError(28, "No space left on device")
            write_atomic(module, path, content)

        monkeypatch.setattr(nginx_config, "write_atomic", flag_fails)

        result = run_module(nginx_maintenance.main, host.on(retry_after=60))

        assert result["failed"] is True
        assert f"could not write {host.flag}: [Errno 28] No space left on device" in result["msg"]
        assert "cmd" not in result
        assert host.files() == before
        assert nginx.commands == [TEST, RELOAD, RELOAD]
        assert nginx.retry_after == 300

    def test_a_failed_put_back_says_the_files_need_a_hand(
        self, run_module, host: Host, nginx: FakeNginx, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        installed(host, nginx)
        nginx.test_fails = True
        monkeypatch.setattr(nginx_config, "restore", lambda module, path, previous: "disk full")

        result = run_module(nginx_maintenance.main, host.on(retry_after=60))

        assert result["failed"] is True
        assert f"putting the files back also failed ({host.include}: disk full)" in result["msg"]
        assert result["changed"] is True


class TestPutBack:
    def test_put_back_undoes_a_toggle_exactly(
        self, run_module, host: Host, nginx: FakeNginx
    ) -> None:
        before = installed(host, nginx)
        toggled = run_module(nginx_maintenance.main, host.on(retry_after=60))
        nginx.commands.clear()

        result = run_module(
            nginx_maintenance.main,
            {**host.args(site_path=None), "put_back": toggled["previous"]},
        )

        assert result["failed"] is False, result["msg"]
        assert (result["changed"], result["maintenance"], result["reloaded"]) == (True, False, True)
        assert result["site_checks_flag"] is None
        assert host.files() == before
        assert nginx.commands == [TEST, RELOAD]
        assert nginx.retry_after == 300

    def test_put_back_removes_files_that_did_not_exist(
        self, run_module, host: Host, nginx: FakeNginx
    ) -> None:
        toggled = run_module(nginx_maintenance.main, host.on())

        run_module(nginx_maintenance.main, {**host.args(), "put_back": toggled["previous"]})

        assert host.files() == {name: None for name in host.files()}

    def test_put_back_of_an_unchanged_host_is_a_no_op(
        self, run_module, host: Host, nginx: FakeNginx
    ) -> None:
        installed(host, nginx)
        run_module(nginx_maintenance.main, host.on())
        unchanged = run_module(nginx_maintenance.main, host.on())

        result = run_module(
            nginx_maintenance.main, {**host.args(), "put_back": unchanged["previous"]}
        )

        assert (result["changed"], result["maintenance"]) == (False, True)


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_examples_and_return_are_valid_yaml() -> None:
    examples = yaml.safe_load(nginx_maintenance.EXAMPLES)
    returned = yaml.safe_load(nginx_maintenance.RETURN)

    assert all("nginx_maintenance" in task for task in examples)
    assert {"maintenance", "was_on", "retry_after", "reloaded", "previous"} <= returned.keys()
