"""Make the project's modules importable the way Ansible ships them, and run them in-process.

Ansible packs `module_utils/<x>.py` as `ansible.module_utils.<x>` and runs `library/<x>.py`
as a script. Here module_utils/ is added to the `ansible.module_utils` package's path, so
each file imports under that name, and library/ goes on sys.path so tests can
`import nginx_color`. module_utils/ itself is kept off sys.path: its files share names
with the modules in library/.
"""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ansible.module_utils
import pytest
from ansible.module_utils.testing import patch_module_args

ROOT = Path(__file__).resolve().parents[2]


# After ansible-core's own directory, so our files are found only under names it lacks;
# one module_utils file importing another then resolves the way AnsiballZ packs it.
if str(ROOT / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(ROOT / "module_utils"))

for _path in sorted((ROOT / "module_utils").glob("*.py")):
    if _path.stem != "__init__":
        importlib.import_module(f"ansible.module_utils.{_path.stem}")

if str(ROOT / "library") not in sys.path:
    sys.path.insert(0, str(ROOT / "library"))


RunModule = Callable[..., dict[str, Any]]


@pytest.fixture
def run_module(capsys: pytest.CaptureFixture[str]) -> RunModule:
    """Run a module's main() with `args`; the JSON result it printed, with `failed` set.

    Ansible-only keys go in as keyword arguments: run(main, args, check_mode=True, diff=True).
    """

    def run(
        main: Callable[[], None],
        args: dict[str, Any],
        *,
        check_mode: bool = False,
        diff: bool = False,
    ) -> dict[str, Any]:
        module_args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
        capsys.readouterr()
        with patch_module_args(module_args), pytest.raises(SystemExit) as exit_info:
            main()
        result = json.loads(capsys.readouterr().out)
        result.setdefault("failed", False)
        assert (exit_info.value.code != 0) == result["failed"], result
        return result

    return run


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    """An HTTP server on 127.0.0.1 answering with ``handler``, in a thread; its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two age key pairs made by age-keygen: the team's and a stranger's."""
    if shutil.which("age-keygen") is None:
        pytest.fail("age-keygen is missing: `make deps` installs Debian's age package")
    made = {}
    for name in ("team", "stranger"):
        identity = subprocess.run(["age-keygen"], capture_output=True, text=True, check=True)
        secret = identity.stdout
        recipient = subprocess.run(
            ["age-keygen", "-y"], input=secret, capture_output=True, text=True, check=True
        ).stdout.strip()
        made[f"{name}_identity"] = secret
        made[f"{name}_recipient"] = recipient
    yield made
