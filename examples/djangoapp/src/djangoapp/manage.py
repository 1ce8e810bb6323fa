"""``djangoapp-manage``: Django's manage.py for the installed package.

A release installs djangoapp into a virtualenv (no source tree, so no manage.py beside
it); this console script is the same thing: ``djangoapp-manage migrate``,
``djangoapp-manage sqlmigrate notes 0002``, ``djangoapp-manage shell -c ...``.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangoapp.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["djangoapp-manage", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
