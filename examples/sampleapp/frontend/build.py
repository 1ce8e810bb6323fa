"""The sample service's single-page frontend, built the way a bundler (Vite, webpack)
builds one: index.html plus assets whose names carry a hash of their content, under the
public path /ui/. `bluegreen build` runs it (pyproject.toml, [tool.bluegreen.frontend])
in a copy of this folder with BLUEGREEN_VERSION set, and ships dist/ in the artifact.

Every file names the version it belongs to, so a client can tell whether the page and
its script came from the same release (bench/frontend_switch.py checks exactly that).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

BASE = "/ui/"
HERE = Path(__file__).resolve().parent
DIST = HERE / "dist"


def hashed_name(stem: str, suffix: str, content: str) -> str:
    return f"{stem}.{hashlib.sha256(content.encode()).hexdigest()[:10]}{suffix}"


def main() -> None:
    version = os.environ.get("BLUEGREEN_VERSION") or "0.0.0"
    script = (
        f'window.SAMPLEAPP_FRONTEND_VERSION = "{version}";\n'
        "fetch('/notes?limit=5').then(r => r.json()).then(notes => {\n"
        "  document.getElementById('notes').textContent = JSON.stringify(notes);\n"
        "});\n"
    )
    style = f"/* sampleapp {version} */\nbody {{ font-family: sans-serif; margin: 2em; }}\n"
    script_name = hashed_name("app", ".js", script)
    style_name = hashed_name("app", ".css", style)
    page = (
        '<!doctype html>\n<html><head><meta charset="utf-8">\n'
        f'<meta name="sampleapp-version" content="{version}">\n'
        f"<title>sampleapp {version}</title>\n"
        f'<link rel="stylesheet" href="{BASE}assets/{style_name}">\n'
        f'<script defer src="{BASE}assets/{script_name}"></script>\n'
        f'</head><body><h1>sampleapp {version}</h1><pre id="notes"></pre></body></html>\n'
    )
    shutil.rmtree(DIST, ignore_errors=True)
    (DIST / "assets").mkdir(parents=True)
    (DIST / "index.html").write_text(page)
    (DIST / "assets" / script_name).write_text(script)
    (DIST / "assets" / style_name).write_text(style)


if __name__ == "__main__":
    main()
