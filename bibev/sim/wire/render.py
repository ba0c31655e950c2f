"""Vectorised JSON writing shared by the wire formats.

A message line is ``head + datum fragments + tail``: heads and tails are built once per
message, fragments once per datum, all as polars string columns (no Python per message).
Nested objects are opened and closed from the datums' ``Field.path``: between two datums of
one message the deeper levels of the first are closed and those of the second opened, so a
format only writes its leaf text. ``assemble`` interleaves heads, fragments and tails into one
Arrow string array whose data buffer *is* the file content, in order.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from bibev.sim.wire.fields import BOOL, ENUM, FLOAT, INT, LOCATION, RenderInput, WireFormat

COPY_ORIGINAL, COPY_RESEND, COPY_TRUNCATED, COPY_NO_VIN, COPY_BAD_TS = range(5)
BAD_TIMESTAMP = "2025-02-30T25:61:00Z"
UTC_US = pl.Datetime("us", "UTC")


def _json_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def iso_ms(us: pl.Expr) -> pl.Expr:
    """RFC 3339 UTC text as providers write it: milliseconds unless the instant has none
    (instants here are whole milliseconds)."""
    text = us.cast(UTC_US).dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
    return text.str.replace(".000Z", "Z", literal=True)


def iso_us(us: pl.Expr) -> pl.Expr:
    """RFC 3339 UTC text with microseconds (the envelope's ``received_at``)."""
    return us.cast(UTC_US).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")


def field_table(fmt: WireFormat, values: list[str]) -> pl.Expr:
    """One literal per field, picked by each datum's ``field``."""
    return pl.lit(pl.Series(values, dtype=pl.String)).gather(pl.col("field"))


_KIND_CODES = {FLOAT: 0, INT: 1, BOOL: 2, ENUM: 3, LOCATION: 4}


def value_text(fmt: WireFormat) -> pl.Expr:
    """The JSON text of each datum's value (``render_lines`` adds it: ``add_value_text``)."""
    return pl.col("_text")


def add_value_text(datums: pl.DataFrame, fmt: WireFormat) -> pl.DataFrame:
    """Add ``_text``, the JSON text of each datum's value: a number, ``true``/``false``, a
    quoted enum name or ``{"latitude","longitude"}``; quoted when the datum ``as_string``.

    Built in steps, each one materialised, so that no branch is computed twice."""
    kinds = pl.Series([_KIND_CODES[f.kind] for f in fmt.fields], dtype=pl.Int8)
    offsets = pl.Series(np.cumsum([0] + [len(f.names) for f in fmt.fields])[:-1], dtype=pl.Int64)
    names = [_json_str(n) if n is not None else '""' for f in fmt.fields for n in f.names]
    kind = pl.col("_kind")
    number = pl.col("_number")
    name_at = pl.lit(offsets).gather(pl.col("field")) + pl.col("value").cast(pl.Int64, strict=False)
    enum = pl.lit(pl.Series(names or ['""'])).gather(
        pl.when(kind == _KIND_CODES[ENUM]).then(name_at).otherwise(0)
    )
    # _lon is null except for locations, which makes this cheap on the other rows
    location = pl.concat_str(
        pl.lit('{"latitude":'), number, pl.lit(',"longitude":'), pl.col("_lon"), pl.lit("}")
    )
    text = (
        pl.when(kind == _KIND_CODES[FLOAT])
        .then(number)
        .when(kind == _KIND_CODES[INT])
        .then(pl.col("value").cast(pl.Int64, strict=False).cast(pl.String))
        .when(kind == _KIND_CODES[BOOL])
        .then(pl.when(pl.col("value") != 0).then(pl.lit("true")).otherwise(pl.lit("false")))
        .when(kind == _KIND_CODES[LOCATION])
        .then(location)
        .otherwise(enum)
    )
    quoted = pl.concat_str(pl.lit('"'), pl.col("_text"), pl.lit('"'))
    return (
        datums.with_columns(
            _kind=pl.lit(kinds).gather(pl.col("field")),
            _number=pl.col("value").cast(pl.String),
            _lon=pl.col("value2").fill_nan(None).cast(pl.String),
        )
        .with_columns(_text=text)
        .with_columns(_text=pl.when(pl.col("as_string")).then(quoted).otherwise(pl.col("_text")))
        .drop("_kind", "_number", "_lon")
    )


def nesting(
    fmt: WireFormat, field: np.ndarray, msg: np.ndarray
) -> tuple[np.ndarray, pl.Series, pl.Series]:
    """Per datum: whether a comma precedes it, and the texts opening and closing its objects."""
    paths = [f.path for f in fmt.fields]
    depth = max((len(p) for p in paths), default=0)
    common = np.array([[_common(a, b) for b in paths] for a in paths], dtype=np.int64)
    n = field.size
    same_prev = np.zeros(n, dtype=bool)
    same_prev[1:] = msg[1:] == msg[:-1]
    shared = np.zeros(n, dtype=np.int64)
    if n > 1:
        shared[1:] = np.where(same_prev[1:], common[field[:-1], field[1:]], 0)
    c_next = np.zeros(n, dtype=np.int64)
    c_next[:-1] = shared[1:]
    opens = [
        "".join(f"{_json_str(p[k])}:{{" for k in range(c, len(p)))
        for p in paths
        for c in range(depth + 1)
    ]
    open_idx = field.astype(np.int64) * (depth + 1) + np.minimum(shared, depth)
    lengths = np.array([len(p) for p in paths], dtype=np.int64)
    closes = ["}" * k for k in range(depth + 1)]
    close_idx = lengths[field] - c_next
    return (
        same_prev,
        pl.Series(opens, dtype=pl.String).gather(pl.Series(open_idx)),
        pl.Series(closes, dtype=pl.String).gather(pl.Series(close_idx)),
    )


def _common(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def envelope_head(fmt: WireFormat, source: pl.Expr) -> pl.Expr:
    """``{"provider","format","vin","received_at","source","payload":`` of each message."""
    return pl.concat_str(
        pl.lit(f'{{"provider":{_json_str(fmt.provider)},"format":{_json_str(fmt.name)},"vin":"'),
        pl.col("vin"),
        pl.lit('","received_at":"'),
        iso_us(pl.col("received_us")),
        pl.lit('","source":'),
        source,
        pl.lit(',"payload":'),
    )


def kafka_source(topic: pl.Expr) -> pl.Expr:
    return pl.concat_str(
        pl.lit('{"topic":"'),
        topic,
        pl.lit('","partition":'),
        pl.col("partition").cast(pl.String),
        pl.lit(',"offset":'),
        pl.col("offset").cast(pl.String),
        pl.lit("}"),
    )


def url_source(url: pl.Expr) -> pl.Expr:
    return pl.concat_str(pl.lit('{"url":"'), url, pl.lit('"}'))


def finish_tail(payload_tail: pl.Expr) -> pl.Expr:
    """Close the envelope; a truncated copy loses its last characters (never valid JSON)."""
    full = pl.concat_str(payload_tail, pl.lit("}"))
    cut = (full.str.len_chars() - 2 - pl.col("cut")).clip(lower_bound=0)
    truncated = full.str.slice(0, cut)
    body = pl.when(pl.col("copy") == COPY_TRUNCATED).then(truncated).otherwise(full)
    return pl.concat_str(body, pl.lit("\n"))


def payload_time(us: pl.Expr) -> pl.Expr:
    """The message's own timestamp text; garbage copies get an impossible date."""
    return pl.when(pl.col("copy") == COPY_BAD_TS).then(pl.lit(BAD_TIMESTAMP)).otherwise(iso_ms(us))


def assemble(
    heads: pl.Series, frags: pl.Series, tails: pl.Series, msg: np.ndarray
) -> tuple[pa.Array, np.ndarray]:
    """Interleave per-message heads and tails with the datum fragments (``msg`` sorted).

    Returns the pieces as one large-string Arrow array and, per message, the index of its
    head piece (plus a last entry: the number of pieces), so that the bytes of messages
    ``a … b-1`` are one slice of the array's data buffer.
    """
    n_msg, n_datum = heads.len(), frags.len()
    counts = np.bincount(msg, minlength=n_msg)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    m = np.arange(n_msg)
    head_pos = first + 2 * m
    pos = np.empty(n_datum + 2 * n_msg, dtype=np.int64)
    pos[:n_msg] = head_pos
    pos[n_msg : n_msg + n_datum] = np.arange(n_datum) + 2 * msg + 1
    pos[n_msg + n_datum :] = first + counts + 2 * m + 1
    inverse = np.empty_like(pos)
    inverse[pos] = np.arange(pos.size)
    pieces = pl.concat([heads, frags, tails]).gather(inverse)
    arrow = pieces.to_arrow()
    if arrow.type != pa.large_string():
        arrow = arrow.cast(pa.large_string())
    return arrow, np.concatenate([head_pos, [pos.size]])


def piece_bytes(pieces: pa.Array, start: int, stop: int) -> bytes:
    """The concatenated bytes of pieces ``start … stop-1``."""
    chunk = pieces.slice(start, stop - start) if stop > start else pieces.slice(0, 0)
    if stop <= start:
        return b""
    buffers = chunk.buffers()
    offsets = np.frombuffer(
        buffers[1], dtype=np.int64, count=len(chunk) + 1, offset=chunk.offset * 8
    )
    return bytes(memoryview(buffers[2])[offsets[0] : offsets[-1]])


def render_lines(
    inp: RenderInput, head: pl.Expr, tail: pl.Expr, leaf: pl.Expr
) -> tuple[pl.Series, pl.Series, pl.Series]:
    """Heads, fragments and tails of a nested format whose datum text is ``leaf``."""
    heads_tails = inp.messages.select(head.alias("head"), tail.alias("tail"))
    field, msg = inp.datums["field"].to_numpy(), inp.datums["msg"].to_numpy()
    comma, open_text, close_text = nesting(inp.fmt, field, msg)
    datums = add_value_text(inp.datums, inp.fmt)
    frags = datums.with_columns(_comma=comma, _open=open_text, _close=close_text).select(
        pl.concat_str(
            pl.when(pl.col("_comma")).then(pl.lit(",")).otherwise(pl.lit("")),
            pl.col("_open"),
            leaf,
            pl.col("_close"),
        ).alias("frag")
    )["frag"]
    return heads_tails["head"], frags, heads_tails["tail"]


def per_datum(inp: RenderInput, expr: pl.Expr) -> pl.Expr:
    """A message-level text (``expr`` over ``inp.messages``) for each datum of the message."""
    values = inp.messages.select(expr.alias("v"))["v"]
    return pl.lit(values).gather(pl.col("msg"))


def mqtt_source(topic: pl.Expr) -> pl.Expr:
    return pl.concat_str(pl.lit('{"topic":"'), topic, pl.lit('"}'))
