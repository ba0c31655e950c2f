"""Day batches and their runner: grouping, order, and a failing partition failing alone."""

from __future__ import annotations

from datetime import date

import pytest

from bibev.errors import PartialFailure
from bibev.pipeline.partitions import Batch, day_batches, raise_for_failures, run_batches

D1, D2 = date(2025, 3, 1), date(2025, 3, 2)


@pytest.mark.parametrize(
    ("vins", "size", "expected"),
    [
        (3, 10, [3]),
        (10, 5, [5, 5]),
        (101, 100, [51, 50]),
        (7, 1, [1] * 7),
    ],
)
def test_day_batches_are_even_and_never_larger_than_size(vins, size, expected):
    partitions = [(f"V{i}", D1) for i in range(vins)]
    batches = day_batches(partitions, size)
    assert [len(b) for b in batches] == expected
    assert [p for b in batches for p in b] == partitions


def test_day_batches_never_mix_days():
    partitions = [("A", D1), ("B", D2), ("C", D1)]
    assert day_batches(partitions, 10) == [(("A", D1), ("C", D1)), (("B", D2),)]


def test_day_batches_refuse_an_empty_size():
    with pytest.raises(ValueError, match="at least one"):
        day_batches([("A", D1)], 0)


def _lengths(batch: Batch) -> list[int]:
    if any(vin == "BAD" for vin, _ in batch):
        if len(batch) == 1:
            raise RuntimeError("this one is broken")
        raise RuntimeError("a member is broken")
    return [len(vin) for vin, _ in batch]


def test_run_batches_isolates_a_failing_partition():
    partitions = [("AA", D1), ("BAD", D1), ("CCCC", D1), ("D", D2)]
    seen: list[tuple[int, int]] = []
    results = run_batches(
        _lengths, partitions, batch_size=10, workers=1, on_progress=lambda d, t: seen.append((d, t))
    )
    assert [r.partition for r in results] == partitions
    assert [r.value for r in results] == [2, None, 4, 1]
    assert results[1].error is not None
    assert "this one is broken" in results[1].error
    assert seen[-1] == (4, 4)


@pytest.mark.parametrize(
    ("failed", "total", "message"),
    [
        (1, 3, "1 of 3 partition(s) failed; the others are done"),
        (2, 2, "2 of 2 partition(s) failed"),
    ],
)
def test_failures_raise_a_partial_failure_that_counts_them(failed, total, message):
    failures = [(f"VIN{i} 2025-03-01", "broken") for i in range(failed)]
    with pytest.raises(PartialFailure) as caught:
        raise_for_failures(failures, total)
    assert str(caught.value) == message
    assert caught.value.exit_code == 5
    assert caught.value.failures == failures
    raise_for_failures([], total)  # nothing failed: nothing raised
