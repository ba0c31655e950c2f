"""``bibev transform segment``: clean series → charging, driving and idle sessions.

Pure steps: ``label_rows`` (what each row says), ``session_runs`` (runs and their rules),
``read_gaps``/``offline_sessions`` (what happened while the car was offline),
``session_features`` and ``segment_series``/``segment_day`` (end to end). I/O: ``run_segment``.
See docs/segmentation.md.
"""

from bibev.pipeline.segment.day import (
    active_sessions,
    segment_day,
    segment_id,
    segment_series,
    sessions_of_day,
    with_idle,
)
from bibev.pipeline.segment.features import FLAGS, SEGMENT_SCHEMA, session_features
from bibev.pipeline.segment.offline import offline_sessions, read_gaps
from bibev.pipeline.segment.params import DEFAULT_PARAMS, SegmentParams
from bibev.pipeline.segment.rules import KINDS, label_rows
from bibev.pipeline.segment.run import (
    SegmentJob,
    SegmentResult,
    SegmentSummary,
    run_segment,
    segment_partition,
    select_partitions,
)
from bibev.pipeline.segment.sessions import session_runs

__all__ = [
    "DEFAULT_PARAMS",
    "FLAGS",
    "KINDS",
    "SEGMENT_SCHEMA",
    "SegmentJob",
    "SegmentParams",
    "SegmentResult",
    "SegmentSummary",
    "active_sessions",
    "label_rows",
    "offline_sessions",
    "read_gaps",
    "run_segment",
    "segment_day",
    "segment_id",
    "segment_partition",
    "segment_series",
    "select_partitions",
    "session_features",
    "session_runs",
    "sessions_of_day",
    "with_idle",
]
