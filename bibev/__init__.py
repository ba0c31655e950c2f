"""bibev: EV battery analytics toolkit."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bibev")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"
