"""Repeated YAML in playbooks and role tasks: windows of consecutive lines found more than once.

Each file's lines are normalised (stripped; blank and comment lines dropped), and every
run of ``size`` consecutive normalised lines is a window. A window that occurs more than
once, in one file or in several, is a step written twice; the count is the number of
distinct such windows. ``make lint`` fails when it is above the threshold.

    python -m bluegreen.yaml_windows [--size 8] [--max 10] [--list] [ROOT]

Above the threshold (or with ``--list``) each repeated window is listed with its places.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

WINDOW_SIZE = 8
DEFAULT_MAX = 10


@dataclass(frozen=True)
class Line:
    """A normalised line and where it stands in its file (1-based)."""

    text: str
    path: Path
    number: int


@dataclass(frozen=True)
class Place:
    path: Path
    first_line: int
    last_line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.first_line}-{self.last_line}"


@dataclass(frozen=True)
class RepeatedWindow:
    lines: tuple[str, ...]
    places: tuple[Place, ...]


def yaml_files(root: Path) -> list[Path]:
    """The YAML that runs: playbooks/*.yml and the roles' tasks and handlers, relative to
    ``root``, sorted. Declarations (argument specs, defaults, meta) are left out: an
    option documented for two entry points is one input, not a step written twice."""
    found = [*(root / "playbooks").glob("*.yml")]
    for kind in ("tasks", "handlers"):
        found += (root / "roles").glob(f"*/{kind}/**/*.yml")
    return sorted(path.relative_to(root) for path in found if path.is_file())


def normalised_lines(text: str, path: Path) -> list[Line]:
    """The lines of ``text`` stripped, without blank lines and comment lines."""
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped and not stripped.startswith("#"):
            lines.append(Line(stripped, path, number))
    return lines


def repeated_windows(
    files: Iterable[tuple[Path, str]], size: int = WINDOW_SIZE
) -> list[RepeatedWindow]:
    """Every distinct window of ``size`` normalised lines found more than once in ``files``
    (path and text), most repeated first."""
    places: dict[tuple[str, ...], list[Place]] = defaultdict(list)
    for path, text in files:
        lines = normalised_lines(text, path)
        for start in range(len(lines) - size + 1):
            window = lines[start : start + size]
            key = tuple(line.text for line in window)
            places[key].append(Place(path, window[0].number, window[-1].number))
    repeated = [
        RepeatedWindow(key, tuple(found)) for key, found in places.items() if len(found) > 1
    ]
    return sorted(repeated, key=lambda w: (-len(w.places), str(w.places[0])))


def scan(root: Path, size: int = WINDOW_SIZE) -> list[RepeatedWindow]:
    """The repeated windows of the playbooks and roles under ``root``."""
    return repeated_windows(
        ((path, (root / path).read_text(encoding="utf-8")) for path in yaml_files(root)), size
    )


def report(windows: Sequence[RepeatedWindow]) -> str:
    parts = []
    for window in windows:
        places = ", ".join(str(place) for place in window.places)
        parts.append(f"{len(window.places)}x {places}\n    {window.lines[0]}")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bluegreen.yaml_windows",
        description="Count windows of consecutive YAML lines repeated in playbooks and roles.",
    )
    parser.add_argument("root", nargs="?", type=Path, default=Path("."), help="the tree")
    parser.add_argument("--size", type=int, default=WINDOW_SIZE, help="lines per window")
    parser.add_argument(
        "--max",
        type=int,
        default=DEFAULT_MAX,
        help=f"fail above this many repeated windows (default {DEFAULT_MAX})",
    )
    parser.add_argument(
        "--list", action="store_true", help="list every repeated window, even within the threshold"
    )
    args = parser.parse_args(argv)
    windows = scan(args.root, args.size)
    too_many = len(windows) > args.max
    if windows and (too_many or args.list):
        print(report(windows))
    print(
        f"{len(windows)} repeated {args.size}-line windows in playbooks and roles "
        f"(at most {args.max}): {'too many' if too_many else 'ok'}"
    )
    return 1 if too_many else 0


if __name__ == "__main__":
    sys.exit(main())
