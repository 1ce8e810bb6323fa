"""bluegreen: Ansible-driven blue/green releases of Python web services behind nginx."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bluegreen")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
