"""A canary secret given through ansible-vault and through extra vars reaches the places
that need it (the service's environment, the webhook, the SMTP login) and nowhere else:
not the runner's artifacts and logs under state/, not the journals on the controller and
the load balancer, not the reports, not the ansible log, not the commands' output."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BLUEGREEN, JOURNAL_PATH, LAB, ROOT, ensure_live, live, shell
from receivers import receivers

from bluegreen.report import REPORT_FORMATS, build_report, read_entries, render, write_reports

pytestmark = [pytest.mark.lab, pytest.mark.lab_group("lab2"), pytest.mark.usefixtures("lab")]

ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
ANSIBLE_VAULT = str(Path(sys.executable).parent / "ansible-vault")


def canary_inventory(tmp_path: Path, password_file: Path, secret_vars: dict) -> Path:
    """A copy of the lab inventory (same hosts, same name) with a vault-encrypted vars file."""
    inventory = tmp_path / LAB
    shutil.copytree(ROOT / "inventories" / LAB, inventory)
    connection = inventory / "group_vars" / "lab_hosts.yml"
    connection.write_text(connection.read_text().replace("{{ inventory_dir }}/../..", str(ROOT)))
    vault = inventory / "group_vars" / "all" / "zz_canary_vault.yml"
    vault.write_text(json.dumps(secret_vars))
    subprocess.run(
        [ANSIBLE_VAULT, "encrypt", "--vault-password-file", str(password_file), str(vault)],
        check=True,
        capture_output=True,
    )
    assert b"$ANSIBLE_VAULT" in vault.read_bytes()
    return inventory


def notify(url: str, smtp_port: int, token: str) -> dict:
    return {
        "bluegreen_notify_webhook_url": f"{url}/{token}",
        "bluegreen_notify_email_to": ["releases@example.test"],
        "bluegreen_notify_smtp_host": "127.0.0.1",
        "bluegreen_notify_smtp_port": smtp_port,
        "bluegreen_notify_smtp_secure": "never",
        "bluegreen_notify_smtp_username": "bluegreen",
        "bluegreen_notify_smtp_password": token,
        "bluegreen_service_secrets": {"BLUEGREEN_CANARY": token},
    }


def files_containing(folder: Path, needles: list[bytes]) -> list[str]:
    # The other test groups' commands run beside this one and remove their runner
    # folders when they end: os.walk skips a folder gone mid-walk (rglob raised, ci of
    # stop 27), and a file gone before it is read cannot hold this test's canaries.
    found = []
    for parent, _, names in os.walk(folder):
        for name in names:
            path = Path(parent, name)
            try:
                data = path.read_bytes() if not path.is_symlink() else b""
            except FileNotFoundError:
                continue
            found += [f"{path}: {n.decode()}" for n in needles if n in data]
    return found


def test_a_canary_secret_appears_nowhere_but_where_it_is_used(tmp_path: Path) -> None:
    vault_canary = f"bgcanary-vault-{secrets.token_hex(8)}"
    extra_canary = f"bgcanary-extra-{secrets.token_hex(8)}"
    canaries = [vault_canary, extra_canary]
    if live().status != 200:
        ensure_live("2.0.0")
    current = str(live().version)
    first = "1.0.0" if current == "2.0.0" else "2.0.0"
    idle = "green" if live().colour == "blue" else "blue"
    password_file = tmp_path / "vault-password"
    password_file.write_text(secrets.token_hex(16))
    ansible_log = tmp_path / "ansible.log"
    env = os.environ | {
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_LOG_PATH": str(ansible_log),
    }
    outputs: list[str] = []

    with receivers() as (url, smtp_port, received):
        inventory = canary_inventory(tmp_path, password_file, notify(url, smtp_port, vault_canary))
        # Through the bluegreen command (ansible-runner), secrets from vault.
        vault_run = subprocess.run(
            [*BLUEGREEN, "release", "--version", first, "-i", str(inventory), "--json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1800,
            env=env | {"ANSIBLE_VAULT_PASSWORD_FILE": str(password_file)},
        )
        outputs += [vault_run.stdout, vault_run.stderr]
        assert vault_run.returncode == 0, vault_run.stdout + vault_run.stderr
        reached_service = shell(
            f"app-{idle}",
            f"grep -q 'BLUEGREEN_CANARY=\"{vault_canary}\"' /etc/sampleapp/{idle}.env"
            " && echo yes || echo no",
        )["stdout"].strip()

        # Through plain ansible-playbook, the same secrets as extra vars (over the vault).
        extra = tmp_path / "extra.json"
        extra.write_text(
            json.dumps(
                {"bluegreen_cli": {"app_version": current}, **notify(url, smtp_port, extra_canary)}
            )
        )
        extra_run = subprocess.run(
            [
                ANSIBLE_PLAYBOOK,
                "-i",
                str(inventory),
                "--vault-password-file",
                str(password_file),
                "-e",
                f"@{extra}",
                "playbooks/release.yml",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1800,
            env=env,
        )
        outputs += [extra_run.stdout, extra_run.stderr]
        assert extra_run.returncode == 0, extra_run.stdout[-3000:] + extra_run.stderr
        received.wait_for(webhooks=4, mails=4)

    # The canaries did reach the places that need them, so the search below means something.
    assert reached_service == "yes"
    assert sorted({p.rsplit("/", 1)[-1] for p in received.webhook_paths}) == sorted(canaries)
    assert sorted(set(received.passwords)) == sorted(canaries)
    assert live().version == current

    lb_journal = "\n".join(shell("lb1", f"cat {JOURNAL_PATH}")["stdout_lines"])
    journal_file = tmp_path / "journal.jsonl"
    journal_file.write_text(lb_journal)
    entries = read_entries(journal_file)
    reports = tmp_path / "reports"
    write_reports(entries, reports / LAB)
    rendered = [
        render(build_report(entries, release_id, LAB), fmt)
        for release_id in {e["release_id"] for e in entries}
        for fmt in REPORT_FORMATS
    ]
    cli_report = subprocess.run(
        [*BLUEGREEN, "report", "-i", LAB, "--journal", str(journal_file), "--format", "html"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    outputs += [cli_report.stdout, cli_report.stderr]

    needles = [c.encode() for c in canaries]
    leaks = files_containing(ROOT / "state", needles) + files_containing(reports, needles)
    leaks += [f"ansible log: {c}" for c in canaries if c in ansible_log.read_text()]
    leaks += [f"lb journal: {c}" for c in canaries if c in lb_journal]
    leaks += [f"report: {c}" for c in canaries for text in rendered if c in text]
    leaks += [f"command output: {c}" for c in canaries for text in outputs if c in text]
    assert ansible_log.stat().st_size > 0
    assert not leaks, "\n".join(leaks)
