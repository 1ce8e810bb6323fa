"""A second service on a lab's container, beside the lab's own: its own name, ports, nginx
site, database and journal, so that a test can give it a first release on an empty
database whenever it runs. Its variables are in examples/third-party/<name>/inventory-vars.yml
(services nobody on this project wrote) or tests/integration/services/<name>.yml;
the inventory (inventories/scratch-<name>, not kept in git) is the lab's hosts with them.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from conftest import ROOT, shell

sys.path.insert(0, str(ROOT / "bench"))

from _load import side_inventory

SERVICES = Path(__file__).resolve().parent / "services"
# One user's requests to / through nginx, a new connection each, 50 ms apart, until
# killed. One process for the whole test, not a curl forked and exec'd per request: the
# django1 container used 249 s of CPU in ihatemoney's test with curl loops (ci26), 103 s
# with these.
TRAFFIC_LOOP = """\
import http.client, sys, time
while True:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
        conn.request("GET", "/")
        conn.getresponse().read()
        conn.close()
    except (OSError, http.client.HTTPException):
        pass
    time.sleep(0.05)
"""


@dataclass(frozen=True)
class SideService:
    name: str
    lab: str  # the inventory of the lab whose containers it runs on
    host: str
    public_port: int
    # The service's PostgreSQL database (and role) on the same host, dropped by clear();
    # None for a service on a SQLite file under /var/lib/<name>.
    postgresql: str | None = None
    # Variables that replace (or, for mappings, add to) those of its variables file.
    changes: dict | None = None

    @property
    def variables(self) -> Path:
        """Its bluegreen_service_* variables: a third-party service's are the example a
        user reads (examples/third-party/<name>/), the others are the tests' own."""
        example = ROOT / "examples" / "third-party" / self.name / "inventory-vars.yml"
        return example if example.exists() else SERVICES / f"{self.name}.yml"

    @property
    def inventory(self) -> str:
        return f"scratch-{self.name}"

    def on_host(self, command: str) -> str:
        result = shell(self.host, command, self.lab)
        assert result.get("rc") == 0, result
        return result["stdout"]

    def write_inventory(self) -> None:
        side_inventory(self.lab, self.name, self.variables, self.changes)

    def clear(self) -> None:
        """Write the inventory and remove every trace of the service from the host and
        the controller, so that its next release is a first one."""
        self.write_inventory()
        app = self.name
        self.on_host(
            f"systemctl stop '{app}@blue' '{app}@green' 2>/dev/null; "
            f"systemctl disable '{app}@blue' '{app}@green' 2>/dev/null; "
            # The container runtime's colours, should a stop have left one behind.
            "if systemctl -q is-active docker; then for p in blue green; do "
            f"docker ps -aq --filter label=com.docker.compose.project={app}-$p "
            "| xargs -r docker rm -f; done; fi; "
            f"rm -rf /opt/{app} /var/lib/{app} /etc/{app} /var/lib/bluegreen/{app} "
            f"/var/www/bluegreen/{app} /etc/nginx/conf.d/{app}.conf /etc/nginx/bluegreen/{app}.* "
            f"/etc/systemd/system/{app}@.service /var/log/nginx/bluegreen-{app}.requests.log*; "
            "systemctl daemon-reload; nginx -t -q && systemctl reload nginx; true"
        )
        if self.postgresql:
            database = self.postgresql
            psql = "cd / && runuser -u postgres -- psql -qc"
            # A fresh lab's PostgreSQL starts with the first release that needs it.
            self.on_host(
                f"if pg_isready -q; then {psql} 'DROP DATABASE IF EXISTS {database} WITH (FORCE)' "
                f"&& {psql} 'DROP ROLE IF EXISTS {database}'; fi; "
                f"rm -rf /var/backups/bluegreen/{app}"
            )
        (ROOT / "state" / "journal" / self.inventory / f"{app}.jsonl").unlink(missing_ok=True)

    def public(self, path: str = "/") -> tuple[int, str, str]:
        """Status, colour and version nginx answers for the service, asked on the host
        (0 for no answer, "" for a header it did not send)."""
        url = f"http://127.0.0.1:{self.public_port}{path}"
        lines = self.on_host(f"curl -s -o /dev/null -D - --max-time 5 {url} || true").splitlines()
        status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
        headers = {
            key.strip().lower(): value.strip()
            for key, _, value in (line.partition(":") for line in lines[1:])
        }
        return (
            status,
            headers.get("x-bluegreen-colour", ""),
            headers.get("x-bluegreen-version", ""),
        )

    def journal(self, release_id: str) -> dict[str, dict]:
        """The journal records of one release, by step (the last record of each step)."""
        lines = self.on_host(f"cat /var/lib/bluegreen/{self.name}/journal.jsonl").splitlines()
        records = [json.loads(line) for line in lines]
        return {r["step"]: r for r in records if r["release_id"] == release_id}

    @property
    def _traffic_script(self) -> str:
        return f"/usr/local/bin/bluegreen-test-traffic-{self.name}"

    def traffic(self, clients: int = 2) -> None:
        """Start `clients` loops of requests to / through nginx on the host (stop_traffic
        ends them): steady user traffic for a release to be judged on."""
        self.on_host(f"cat > {self._traffic_script} <<'EOF'\n{TRAFFIC_LOOP}EOF")
        for _ in range(clients):
            self.on_host(
                f"setsid nohup python3 {self._traffic_script} {self.public_port} >/dev/null 2>&1 &"
            )

    def stop_traffic(self) -> None:
        # "[p]ython3" matches the loops but not this command's own shell.
        self.on_host(f"pkill -f '[p]ython3 {self._traffic_script}'; true")

    def maintenance_on(self) -> bool:
        flag = f"/var/www/bluegreen/{self.name}/maintenance.on"
        return self.on_host(f"test -e {flag} && echo on || echo off").strip() == "on"


def judged_on_load_balancer_signals(steps: dict[str, dict]) -> None:
    """Both analyses of a release (journal records by step) judged it on what the load
    balancer measured, and passed: errors none, latency ok or within its warning (a cold
    service's slowest answers on a loaded machine), at least 50 requests after the switch."""
    for step in ("pre_switch_analysis", "analysis"):
        judged = steps[step]["evidence"]
        assert judged["decision"]["action"] == "pass", judged
        assert judged["verdict"] in ("ok", "warning"), judged
        assert judged["signals"]["error_rate"]["verdict"] == "ok", judged
        assert judged["signals"]["latency_p95"]["verdict"] in ("ok", "warning"), judged
    assert steps["analysis"]["evidence"]["requests"] >= 50, steps["analysis"]
