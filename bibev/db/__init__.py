"""The bibev database: models, engines, migrations (``bibev.db.migrate``) and the runs log."""

from bibev.db.engine import display_url, make_engine, open_database
from bibev.db.models import Base, IngestCursor, Run, Vehicle
from bibev.db.runs import RunRecorder, recent_runs, record_run

__all__ = [
    "Base",
    "IngestCursor",
    "Run",
    "RunRecorder",
    "Vehicle",
    "display_url",
    "make_engine",
    "open_database",
    "recent_runs",
    "record_run",
]
