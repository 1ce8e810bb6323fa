"""WSGI entrypoint: ``gunicorn sampleapp.wsgi:app``.

Configuration comes from the environment (DATABASE_URL, BLUEGREEN_COLOUR); a ``+crash``
build raises here, so the gunicorn worker fails to boot and gunicorn exits.
"""

from sampleapp.app import create_app

app = create_app()
