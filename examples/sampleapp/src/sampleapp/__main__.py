"""Development server: ``python -m sampleapp`` listens on $PORT (default 8000).

Production runs gunicorn (see the README); this exists for a quick local look.
"""

import os

from sampleapp.app import create_app

if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
