"""Per-VIN buffers and the committable offset of each partition."""

import pytest

from bibev.stream.buffers import StreamBuffers

A, B, C = "5YJ3E1EA7KF000001", "5YJ3E1EA7KF000002", "5YJ3E1EA7KF000003"
P0, P1 = ("tesla_V", 0), ("tesla_V", 1)


def filled(records, buffer_size=100):
    """``records``: (vin, day, tp, offset); every record is also marked done."""
    buffers = StreamBuffers(buffer_size)
    for i, (vin, day, tp, offset) in enumerate(records):
        buffers.add(vin, day, f"line {tp[1]}:{offset}", tp, offset, now=float(i))
        buffers.advance(tp, offset)
    return buffers


def test_a_buffer_spanning_midnight_keeps_one_list_per_day():
    buffers = filled([(A, "2025-03-01", P0, 0), (A, "2025-03-02", P0, 1), (A, "2025-03-01", P0, 2)])
    (buffer,) = buffers.take([A])
    assert buffer.days == {"2025-03-01": ["line 0:0", "line 0:2"], "2025-03-02": ["line 0:1"]}
    assert buffer.count == 3


def test_a_full_buffer_is_set_aside_and_the_next_record_starts_a_new_one():
    buffers = StreamBuffers(2)
    for offset in range(5):
        buffers.add(A, "d", f"x{offset}", P0, offset, 0.0)
    buffers.add(B, "d", "y", P0, 5, 0.0)
    assert [b.days["d"] for b in buffers.ready] == [["x0", "x1"], ["x2", "x3"]]
    assert (buffers.buffered, buffers.vins) == (6, 2)
    ready = buffers.take_ready()
    assert (len(ready), buffers.ready, buffers.buffered) == (2, [], 2)
    buffers.advance(P0, 5)
    assert buffers.committable(P0) == 0  # the ready buffers are not written yet
    buffers.flushed(ready)
    assert buffers.committable(P0) == 4  # A's open buffer starts at offset 4


@pytest.mark.parametrize(
    ("flushed", "expected"),
    [
        ([], {P0: 0, P1: 0}),  # A holds P0 from 0 and P1 from 0
        ([A], {P0: 1, P1: 3}),  # B still holds P0:1; C holds P1:3
        ([B], {P0: 0, P1: 0}),  # A holds the first offsets of both
        ([A, B], {P0: 3, P1: 3}),  # nothing of P0 buffered: everything read is safe
        ([A, B, C], {P0: 3, P1: 5}),
    ],
)
def test_the_committable_offset_waits_for_the_oldest_unflushed_record(flushed, expected):
    buffers = filled(
        [
            (A, "d", P0, 0),
            (B, "d", P0, 1),
            (A, "d", P1, 0),
            (A, "d", P1, 1),
            (A, "d", P0, 2),
            (A, "d", P1, 2),
            (C, "d", P1, 3),
            (C, "d", P1, 4),
        ]
    )
    buffers.flushed(buffers.take(flushed))
    assert {tp: buffers.committable(tp) for tp in (P0, P1)} == expected


def test_a_taken_buffer_holds_commits_back_until_it_is_flushed():
    buffers = filled([(A, "d", P0, 0), (A, "d", P0, 1)])
    taken = buffers.take([A])
    assert buffers.committable(P0) == 0  # the write may still fail
    buffers.flushed(taken)
    assert buffers.committable(P0) == 2


def test_offsets_not_yet_done_are_never_committable():
    buffers = StreamBuffers(10)
    buffers.add(A, "d", "x", P0, 7, 0.0)  # buffered but its batch is not finished
    buffers.flushed(buffers.take([A]))
    assert buffers.committable(P0) is None
    buffers.advance(P0, 7)
    assert buffers.committable(P0) == 8


def test_to_commit_reports_only_progress_since_the_last_commit():
    buffers = filled([(A, "d", P0, 0), (B, "d", P1, 0)])
    buffers.flushed(buffers.take([A, B]))
    assert buffers.to_commit() == {P0: 1, P1: 1}
    buffers.mark_committed({P0: 1})
    assert buffers.to_commit() == {P1: 1}
    assert buffers.to_commit([P0]) == {}
    assert buffers.uncommitted() == [P1]


def test_aged_and_oldest_go_in_creation_order():
    buffers = filled([(A, "d", P0, 0), (B, "d", P0, 1), (A, "d", P0, 2), (C, "d", P0, 3)])
    assert buffers.aged(cutoff=1.0) == [A, B]
    assert buffers.aged(cutoff=0.5) == [A]
    assert buffers.oldest(keep=2) == [A]  # A holds 2 of 4
    assert buffers.oldest(keep=1) == [A, B]


def test_holding_and_forget_a_revoked_partition():
    buffers = filled([(A, "d", P0, 0), (B, "d", P1, 0), (C, "d", P0, 1)])
    assert buffers.holding([P0]) == [A, C]
    buffers.flushed(buffers.take(buffers.holding([P0])))
    buffers.forget([P0])
    assert buffers.committable(P0) is None
    assert buffers.committable(P1) == 0
    assert list(buffers.buffers) == [B]


def test_buffer_size_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        StreamBuffers(0)


def test_the_offset_a_partition_starts_at_is_not_committed_again():
    buffers = StreamBuffers(10)
    buffers.add(A, "d", "x", P0, 5, 0.0)  # the group had committed 5: reading starts there
    buffers.advance(P0, 5, first=5)
    assert buffers.committable(P0) == 5
    assert buffers.to_commit() == {}  # committing 5 again would say nothing new
    buffers.flushed(buffers.take([A]))
    assert buffers.to_commit() == {P0: 6}


def test_a_batch_of_lines_larger_than_a_buffer_is_split_in_order():
    buffers = StreamBuffers(2)
    lines = [b"x0", b"x1", b"x2", b"x3", b"x4"]
    buffers.add_lines(A, {"d": lines, "e": [b"y5"]}, {P0: 10, P1: 3}, now=0.0)
    ready = buffers.take_ready()
    assert [b.days for b in ready] == [
        {"d": [b"x0", b"x1"]},
        {"d": [b"x2", b"x3"]},
        {"d": [b"x4"], "e": [b"y5"]},
    ]
    assert (buffers.buffered, buffers.vins) == (0, 0)  # all three full, all taken
    buffers.advance(P0, 15)
    buffers.advance(P1, 3)
    buffers.flushed(ready[:2])
    # The last buffer holds the batch's first offsets (it cannot tell where its own lines
    # start): the commit waits for it, which is early but never late.
    assert (buffers.committable(P0), buffers.committable(P1)) == (10, 3)
    buffers.flushed(ready[2:])
    assert (buffers.committable(P0), buffers.committable(P1)) == (16, 4)
