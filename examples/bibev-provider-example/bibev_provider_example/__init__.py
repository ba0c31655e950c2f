"""An example third-party bibev provider adapter for an (imaginary) OBD fleet logger.

bibev finds it through the ``bibev.providers`` entry point declared in this package's
``pyproject.toml``; nothing in bibev refers to it by name.
"""

__version__ = "0.1.0"
