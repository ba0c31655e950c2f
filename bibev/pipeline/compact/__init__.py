"""``bibev compact``: temp/ JSON lines → ``compressed/YYYY/MM/DD/{VIN}.parquet``, exactly once.

Pure steps: ``flatten_files`` (temp file bytes → compressed rows + unreadable lines),
``split_by_day`` (rows of this day, lines of other days), ``compact_frames`` (merge with the
existing day, drop exact duplicates, one stable order). I/O: ``compact_day`` for one (VIN, day),
``compact_partitions`` for several at once, and ``run_compact`` for a whole run. See
docs/compact.md for the guarantees.
"""

from .day import CompactResult, Outcome, compact_day, compact_partitions, plan_partition
from .flatten import FlatBatch, flatten_files
from .generic import FLAT_SCHEMA, Adapters, Quarantined
from .locking import lock_name
from .merge import IDENTITY, ORDER, compact_frames, conform
from .route import DaySplit, split_by_day
from .run import CompactSummary, DaySelection, run_compact, select_days

__all__ = [
    "FLAT_SCHEMA",
    "IDENTITY",
    "ORDER",
    "Adapters",
    "CompactResult",
    "CompactSummary",
    "DaySelection",
    "DaySplit",
    "FlatBatch",
    "Outcome",
    "Quarantined",
    "compact_day",
    "compact_frames",
    "compact_partitions",
    "conform",
    "flatten_files",
    "lock_name",
    "plan_partition",
    "run_compact",
    "select_days",
    "split_by_day",
]
