"""Temp files → compressed rows and the lines that could not be read.

Pure: bytes in, frames out. Files of Tesla Fleet Telemetry JSON take the vectorised path
(``tesla_json``), all of them in one read; everything else, and every line that path hands back,
goes through the provider's adapter one line at a time (``generic``). Both give the same rows
for the same line. The files may come from the folders of several vehicles: each is flattened
against its own folder's VIN.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from bibev.providers.tesla import TeslaAdapter

from .generic import FLAT_SCHEMA, Adapters, Quarantined, flatten_lines
from .tesla_json import flatten_objects, odd_lines

_TESLA_LINE = re.compile(rb'"provider"\s*:\s*"tesla"')
# A blank line is empty or white space only, so it starts with white space (or is empty): where
# no line does, every line counts (one scan in C instead of a test per line). The pattern starts
# with a literal newline, which the regex engine finds fast; the first line is checked apart.
_WHITE = b" \t\n\r\x0b\x0c"
_BLANK_AFTER_NEWLINE = re.compile(rb"\n[ \t\n\r\x0b\x0c]")


@dataclass(frozen=True)
class FlatBatch:
    """What a list of temp files holds, flattened.

    ``lines`` are the non-blank lines of every file, in order; ``rows`` follows ``FLAT_SCHEMA``
    and its ``line`` column indexes ``lines``; ``numbers`` are the 1-based line numbers in their
    own file and ``starts`` the index in ``lines`` of each file's first line.
    """

    rows: pl.DataFrame
    lines: list[bytes]
    numbers: list[int]
    starts: list[int]
    quarantined: list[Quarantined]

    @property
    def messages(self) -> int:
        return len(self.lines)

    def file_of(self, line: int) -> int:
        """Index of the file that line ``line`` comes from."""
        return bisect.bisect_right(self.starts, line) - 1

    def per_line(self, name: str, values: Sequence[object], dtype: pl.DataType) -> pl.Series:
        """A series indexed by line holding ``values[file]`` for the file of each line."""
        counts = [
            end - start
            for start, end in zip(self.starts, [*self.starts[1:], len(self.lines)], strict=True)
        ]
        spread = pl.select(
            pl.Series(name, values, dtype=dtype)
            .repeat_by(pl.Series(counts, dtype=pl.UInt32))
            .explode()
        )
        return spread.to_series() if self.lines else pl.Series(name, [], dtype=dtype)


def split_lines(data: bytes) -> tuple[bytes, list[bytes], list[int]]:
    """``data`` without blank lines (joined by newlines), its lines, and their 1-based numbers."""
    pieces = data.split(b"\n")
    if pieces and not pieces[-1]:
        pieces.pop()
    if data[:1] not in _WHITE and not _BLANK_AFTER_NEWLINE.search(data):  # the usual case
        return data[:-1] if data.endswith(b"\n") else data, pieces, list(range(1, len(pieces) + 1))
    lines = [piece for piece in pieces if piece and not piece.isspace()]
    if len(lines) == len(pieces):
        return data.rstrip(b"\n"), lines, list(range(1, len(lines) + 1))
    numbers = [n for n, piece in enumerate(pieces, 1) if piece and not piece.isspace()]
    return b"\n".join(lines), lines, numbers


def flatten_files(files: Sequence[bytes], vins: Sequence[str], *, adapters: Adapters) -> FlatBatch:
    """Flatten every line of the given temp files (``vins[i]`` is the VIN of the folder of
    ``files[i]``); unreadable lines are listed in ``quarantined``, never raised (only a broken
    or disabled provider raises ``ConfigError``)."""
    lines: list[bytes] = []
    line_vins: list[str] = []
    numbers: list[int] = []
    starts: list[int] = []
    fast_texts: list[bytes] = []
    fast: list[int] = []
    slow: list[int] = []
    tesla_fast = adapters.adapter_class("tesla") is TeslaAdapter
    for data, vin in zip(files, vins, strict=True):
        text, file_lines, file_numbers = split_lines(data)
        start = len(lines)
        starts.append(start)
        lines.extend(file_lines)
        line_vins.extend([vin] * len(file_lines))
        numbers.extend(file_numbers)
        indices = range(start, len(lines))
        if tesla_fast and file_lines and _TESLA_LINE.search(file_lines[0]):
            odd = odd_lines(lines, indices)
            if odd:  # rare: only this file's text is joined again, without them
                skip = set(odd)
                good = [i for i in indices if i not in skip]
                text = b"\n".join([lines[i] for i in good])
                slow.extend(odd)
            if text:
                fast_texts.append(text)
                fast.extend(good if odd else indices)
        else:
            slow.extend(indices)
    frames = []
    if fast:
        fast_rows, left = flatten_objects(lines, line_vins, fast, b"\n".join(fast_texts))
        frames.append(fast_rows)
        slow = sorted([*slow, *left])
    slow_rows, quarantined = flatten_lines(lines, line_vins, slow, adapters=adapters)
    frames.append(slow_rows)
    rows = pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]
    return FlatBatch(rows.select(list(FLAT_SCHEMA)), lines, numbers, starts, quarantined)
