"""``RepeatFilter``: a burst of the same warning is one line, then a line that counts it."""

from __future__ import annotations

import logging

from bibev.log_repeats import RepeatFilter


def record(level: int, message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("bibev.test", level, __file__, 1, message, args, None)


def test_a_repeated_warning_passes_once_per_period_and_counts_the_rest() -> None:
    now = [100.0]
    repeats = RepeatFilter(30.0, clock=lambda: now[0])
    failed = "FAIL [consumer-%d]: Connect to 127.0.0.1:1 failed (after %dms)"
    passed = []
    for step in range(40):  # one every 100 ms for 4 s, then one 30 s after the first
        now[0] = 100.0 + step * 0.1
        one = record(logging.ERROR, failed, step, step * 3)
        if repeats.filter(one):
            passed.append(one.getMessage())
    now[0] = 130.0
    last = record(logging.ERROR, failed, 99, 0)
    assert repeats.filter(last)
    assert passed == ["FAIL [consumer-0]: Connect to 127.0.0.1:1 failed (after 0ms)"]
    assert last.getMessage() == (
        "FAIL [consumer-99]: Connect to 127.0.0.1:1 failed (after 0ms)"
        " (39 more like it in the last 30 s)"
    )


def test_other_texts_levels_and_debug_lines_are_not_held_back() -> None:
    repeats = RepeatFilter(30.0, clock=lambda: 5.0)
    assert repeats.filter(record(logging.WARNING, "broker down"))
    assert repeats.filter(record(logging.ERROR, "broker down"))  # another level
    assert repeats.filter(record(logging.WARNING, "topic missing"))  # another text
    assert not repeats.filter(record(logging.WARNING, "broker down"))
    assert all(repeats.filter(record(logging.DEBUG, "fetch")) for _ in range(3))
