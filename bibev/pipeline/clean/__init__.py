"""``bibev transform clean``: compressed days → ``clean/YYYY/MM/DD/{VIN}.parquet``.

Pure core (frames in, frames out, thresholds as arguments): ``clean_frame`` and its steps
(``flag_observations``, ``widen``; ``quality.summarize``), for one vehicle or many at once.
I/O: ``clean_batch`` for the (VIN, day)s of a batch (``clean_partition`` for one) and
``run_clean`` for a run. See docs/clean.md.
"""

from .frame import ORDER, CleanDay, clean_frame, flag_observations
from .observe import OBSERVATION_SCHEMA, Mappings, day_bounds
from .params import DEFAULT_MAX_AGE, DEFAULT_PLAUSIBLE, CleanParams
from .partition import CleanJob, CleanResult, clean_batch, clean_partition
from .quality import QualityRecord
from .reasons import GLITCHES, SUPERSEDED
from .resolve import CHARGER_KIND_SOURCES
from .run import DEFAULT_BATCH_SIZE, CleanSummary, lock_name, run_clean, select_partitions
from .widen import widen

__all__ = [
    "CHARGER_KIND_SOURCES",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_AGE",
    "DEFAULT_PLAUSIBLE",
    "GLITCHES",
    "OBSERVATION_SCHEMA",
    "ORDER",
    "SUPERSEDED",
    "CleanDay",
    "CleanJob",
    "CleanParams",
    "CleanResult",
    "CleanSummary",
    "Mappings",
    "QualityRecord",
    "clean_batch",
    "clean_frame",
    "clean_partition",
    "day_bounds",
    "flag_observations",
    "lock_name",
    "run_clean",
    "select_partitions",
    "widen",
]
