"""Named crash points inside a compaction, for testing its crash safety.

Setting ``BIBEV_TEST_CRASH_AT`` to one of ``CRASH_POINTS`` makes the process die on the spot
(``os._exit``: no cleanup, no lock release, exactly like a killed process) the first time it
reaches that point. The crash tests run a real ``bibev compact`` in a subprocess with it set, then
run again without it and compare the result with an uninterrupted run.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

CRASH_ENV = "BIBEV_TEST_CRASH_AT"
CRASH_EXIT_CODE = 137

CRASH_POINTS = (
    "after-lock",  # lock taken, nothing read yet
    "after-reroute",  # messages of other days written to their own temp folder
    "after-quarantine",  # unreadable lines written to quarantine/
    "mid-write",  # the new Parquet file written to _tmp/, not yet moved into place
    "after-write",  # compressed file in place and verified, no temp file deleted yet
    "mid-delete",  # the first temp file deleted, the others not
    "after-delete",  # every input deleted, lock still held
)


def crash_point(name: str) -> None:
    """Die here when ``BIBEV_TEST_CRASH_AT`` names this point."""
    if os.environ.get(CRASH_ENV) == name:
        logger.critical("simulated crash at %s", name)
        logging.shutdown()
        os._exit(CRASH_EXIT_CODE)
