"""Migrations of the notes app, those of the installed version only.

0001 lives here; later ones live in one directory per release line (not packages, so
Django does not list them) that ``__path__`` names when the installed version has them.
Django's loader lists the modules of ``__path__``, so ``djangoapp-manage migrate`` of
1.0.0 sees 0001 and of 2.0.0 sees 0001 and 0002: the Django counterpart of Alembic's
version_locations (see djangoapp/releases.py).
"""

from pathlib import Path

from django.conf import settings

from djangoapp.releases import migration_dirs

__path__ = [
    *__path__,
    *(str(Path(__file__).parent / name) for name in migration_dirs(settings.BLUEGREEN_VERSION)),
]
