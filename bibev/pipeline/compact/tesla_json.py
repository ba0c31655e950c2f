"""A vectorised reader for Tesla Fleet Telemetry protojson in temp/ files.

The generic path decodes one message at a time in Python; this one reads many files at once with
``polars.read_ndjson`` and types the values in columns. It gives exactly the rows of
``TeslaAdapter.flatten`` (tests compare the two on the same lines), and hands every line it
cannot read exactly back to the generic path.

A message's ``data`` is read as JSON text, which polars writes back in one canonical form
(``[{"key": "Soc", "value": {"doubleValue": 71.2}}, …]``), so plain string splits recover each
datum's key, value field and raw JSON value. The JSON type of every value stays visible
(``"71.2"`` is not ``71.2``, ``"true"`` is not ``true``) and is read exactly as protojson
defines it. A line goes back to the generic path when

- polars cannot read it against the schema (not JSON, a payload that is not an object, …): the
  input is halved until such lines are isolated;
- a datum is not in the canonical form (a numeric key, no value, a ``null`` value, several value
  fields, an escaped string, a field this reader does not know) or its value does not parse;
- ``createdAt`` or ``received_at`` is not plain RFC 3339 with an offset, or the VIN is not the
  folder's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import polars as pl

from bibev.providers.tesla import vehicle_data_pb2 as pb
from bibev.providers.tesla.mapping import TELEMETRY_UNITS

from .generic import FLAT_SCHEMA

_S = pl.String()
_ENUM_FIELDS = tuple(f.json_name for f in pb.Value.DESCRIPTOR.fields if f.enum_type is not None)
STRING_FIELDS = ("stringValue", *_ENUM_FIELDS)

SCHEMA: dict[str, pl.DataType] = {
    "provider": _S,
    "received_at": _S,
    "rows_of_day": _S,
    "payload": pl.Struct({"vin": _S, "createdAt": _S, "isResend": _S, "is_resend": _S, "data": _S}),
}

_KNOWN_FIELDS = (
    *STRING_FIELDS,
    "intValue",
    "longValue",
    "floatValue",
    "doubleValue",
    "booleanValue",
    "invalid",
    "locationValue",
)
_DATA_START = '[{"key": "'
_DATA_END = "}]"
_DATUM_SEPARATOR = '}, {"key": "'
_KEY_END = '", "value": {"'
_FIELD_END = '": '
_BOOLEANS = {"true": True, "false": False}
# The columns every row of a message carries, from the message.
_CONTEXT = ("line", "vin", "ts", "received_at", "rows_of_day", "message_id", "key")
_VALUE_COLUMNS = ("value_f64", "value_i64", "value_str", "value_bool")
_LOCATION = r'^\{"latitude": ([^,{}"]+), "longitude": ([^,{}"]+)\}$'
_INSTANT = "%Y-%m-%dT%H:%M:%S%.f%#z"
_SMALLEST_PIECE = 1


def _looks_like_an_object(line: bytes) -> bool:
    return line[:1] == b"{" and (line[-1:] == b"}" or line.rstrip()[-1:] == b"}")


def _read(
    lines: Sequence[bytes], indices: list[int], data: bytes | None = None
) -> tuple[list[pl.DataFrame], list[int]]:
    """Parse the lines at ``indices`` (``data`` is them joined, when the caller has it); a piece
    polars refuses is halved until the bad lines are alone. Returns the parsed frames (with the
    original ``line``) and the refused lines."""
    if not indices:
        return [], []
    if data is None:
        data = b"\n".join(lines[i] for i in indices)
    try:
        frame = pl.read_ndjson(data, schema=SCHEMA)
    except pl.exceptions.PolarsError:
        frame = None
    if frame is not None and frame.height == len(indices):
        line = pl.Series("line", indices, dtype=pl.UInt32)
        return [frame.with_columns(line)], []
    if len(indices) <= _SMALLEST_PIECE:
        return [], indices
    middle = len(indices) // 2
    left_frames, left_refused = _read(lines, indices[:middle])
    right_frames, right_refused = _read(lines, indices[middle:])
    return left_frames + right_frames, left_refused + right_refused


def _messages(frame: pl.LazyFrame) -> pl.LazyFrame:
    """One row per line: its time, envelope fields, data list, and whether it is readable
    (``frame`` has the VIN of the line's folder in ``vin``)."""
    payload = pl.col("payload")
    received = pl.col("received_at").str.to_datetime(
        _INSTANT, time_unit="us", time_zone="UTC", strict=False
    )
    only_day = pl.col("rows_of_day").str.to_date("%Y-%m-%d", strict=False)
    created = payload.struct.field("createdAt").str.to_datetime(
        _INSTANT, time_unit="us", time_zone="UTC", strict=False
    )
    data = payload.struct.field("data")
    listed = (data == "[]") | (data.str.starts_with(_DATA_START) & data.str.ends_with(_DATA_END))
    readable = (
        (pl.col("provider") == "tesla")
        & (payload.struct.field("vin").str.strip_chars() == pl.col("vin"))
        & (pl.col("received_at").is_null() | received.is_not_null())
        & (pl.col("rows_of_day").is_null() | only_day.is_not_null())
        & payload.struct.field("is_resend").is_null()
        & created.is_not_null()
        & listed
    )
    stamp = pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
    return frame.select(
        "line",
        "vin",
        created.alias("ts"),
        received.alias("received_at"),
        only_day.alias("rows_of_day"),
        (payload.struct.field("isResend") == "true").fill_null(False).alias("resend"),
        data.alias("data"),
        readable.fill_null(False).alias("ok"),
    ).with_columns((pl.col("vin") + ":" + stamp).alias("message_id"))


def _shortest_float32(x: pl.Expr) -> pl.Expr:
    """protojson's reading of a float: the shortest decimal giving the same 32-bit float."""
    single = x.cast(pl.Float32)
    shortest = single.cast(pl.String).cast(pl.Float64)
    return pl.when(single.is_infinite() & x.is_finite()).then(x).otherwise(shortest)


def _unquoted(raw: pl.Expr) -> pl.Expr:
    """The text of a JSON string without escapes, else null."""
    inner = raw.str.strip_prefix('"').str.strip_suffix('"')
    plain = ~inner.str.contains('"', literal=True) & ~inner.str.contains("\\", literal=True)
    quoted = raw.str.starts_with('"') & raw.str.ends_with('"') & (raw.str.len_bytes() >= 2)
    return pl.when(quoted & plain).then(inner)


def _datums(messages: pl.DataFrame) -> pl.DataFrame:
    """One row per datum of the readable lines: ``message`` (its row in ``messages``), key,
    value field, raw value JSON, ``ok``.

    ``data`` is the canonical JSON text of the list, ``[{"key": "K", "value": {"F": RAW}}, …]``:
    a string value cannot contain the separator ``}, {"key": "`` (its quotes would be escaped),
    so splitting on it gives one ``K", "value": {"F": RAW}`` per datum. A datum of any other
    shape cannot pass the checks below, however it was split. Only the message's row number
    travels with each datum; its context is gathered once, at the end (``_plan``).
    """
    datums = (
        messages.lazy()
        .select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("message"), "ok", "data")
        .filter(pl.col("ok") & (pl.col("data") != "[]"))
        .select(
            "message",
            pl.col("data")
            .str.strip_prefix(_DATA_START)
            .str.strip_suffix(_DATA_END)
            .str.split(_DATUM_SEPARATOR),
        )
        .explode("data")
        .with_columns(pl.col("data").str.splitn(_KEY_END, 2).struct.rename_fields(["key", "tail"]))
        .unnest("data")
        .with_columns(
            pl.col("tail").str.splitn(_FIELD_END, 2).struct.rename_fields(["field", "rest"])
        )
        .unnest("tail")
    )
    key, rest = pl.col("key"), pl.col("rest")
    well_formed = (
        rest.str.ends_with("}")
        & (key.str.len_bytes() > 0)
        & ~key.str.contains('"', literal=True)
        & ~key.str.contains("\\", literal=True)
        & pl.col("field").is_in(_KNOWN_FIELDS)
    )
    return datums.select(
        "message",
        "key",
        "field",
        rest.str.strip_suffix("}").alias("raw"),
        well_formed.fill_null(False).alias("ok"),
    ).collect()


def _scalars(datums: pl.LazyFrame) -> pl.LazyFrame:
    """Rows of every datum but locations, typed exactly as protojson says, with ``bad``."""
    field, raw = pl.col("field"), pl.col("raw")
    number = pl.when(raw.str.starts_with('"')).then(_unquoted(raw)).otherwise(raw)
    double = pl.when(field == "doubleValue").then(number.cast(pl.Float64, strict=False))
    single = pl.when(field == "floatValue").then(
        _shortest_float32(number.cast(pl.Float64, strict=False))
    )
    boolean = raw.replace_strict(_BOOLEANS, default=None, return_dtype=pl.Boolean)
    typed = datums.filter(field.ne_missing("locationValue")).with_columns(
        pl.coalesce(double, single).alias("value_f64"),
        pl.when(field.is_in(["intValue", "longValue"]))
        .then(number.cast(pl.Int64, strict=False))
        .alias("value_i64"),
        pl.when(field.is_in(STRING_FIELDS)).then(_unquoted(raw)).alias("value_str"),
        pl.when(field == "booleanValue").then(boolean).alias("value_bool"),
        ((field == "invalid") & raw.is_in(["true", '"true"'])).alias("invalid"),
    )
    readable = pl.any_horizontal(
        [pl.col(name).is_not_null() for name in _VALUE_COLUMNS]
        + [(field == "invalid") & raw.is_in(["true", "false", '"true"'])]
    )
    return typed.select(
        "message", "key", *_VALUE_COLUMNS, "invalid", (~(pl.col("ok") & readable)).alias("bad")
    )


def _locations(datums: pl.LazyFrame) -> pl.LazyFrame:
    """``locationValue`` datums as two rows, ``<key>.latitude`` and ``<key>.longitude``."""
    located = datums.filter(pl.col("field") == "locationValue").with_columns(
        pl.col("raw").str.extract_groups(_LOCATION).struct.rename_fields(["lat", "lon"])
    )
    lat = pl.col("raw").struct.field("lat").cast(pl.Float64, strict=False)
    lon = pl.col("raw").struct.field("lon").cast(pl.Float64, strict=False)
    bad = ~(pl.col("ok") & lat.is_not_null() & lon.is_not_null())
    halves = [
        located.select(
            "message",
            (pl.col("key") + f".{name}").alias("key"),
            value.alias("value_f64"),
            pl.lit(None, pl.Int64).alias("value_i64"),
            pl.lit(None, pl.String).alias("value_str"),
            pl.lit(None, pl.Boolean).alias("value_bool"),
            pl.lit(False).alias("invalid"),
            bad.alias("bad"),
        )
        for name, value in (("latitude", lat), ("longitude", lon))
    ]
    return pl.concat(halves, how="vertical")


def _message_rows(messages: pl.LazyFrame) -> pl.LazyFrame:
    """An ``_isResend`` row per re-sent message, and a ``bad`` row per unreadable line."""
    return messages.filter(~pl.col("ok") | pl.col("resend")).select(
        *_CONTEXT[:-1],
        pl.lit("_isResend").alias("key"),
        pl.lit(None, pl.Float64).alias("value_f64"),
        pl.lit(None, pl.Int64).alias("value_i64"),
        pl.lit(None, pl.String).alias("value_str"),
        pl.lit(True).alias("value_bool"),
        pl.lit(False).alias("invalid"),
        (~pl.col("ok")).alias("bad"),
    )


def _plan(frame: pl.DataFrame) -> pl.DataFrame:
    """Every row of every parsed line, with ``bad`` set on what only the generic path can read.

    The messages and their datums are computed once and shared by the three kinds of rows (a
    lazy plan would compute them once per kind)."""
    messages = _messages(frame.lazy()).collect()
    datums = _datums(messages).lazy()
    values = pl.concat([_scalars(datums), _locations(datums)]).collect()
    context = messages.select(_CONTEXT[:-1]).gather(values.get_column("message"))
    rows = pl.concat(
        [
            pl.concat([context, values.drop("message")], how="horizontal"),
            _message_rows(messages.lazy()).collect(),
        ]
    )
    unit = pl.col("key").replace_strict(TELEMETRY_UNITS, default=None, return_dtype=pl.String)
    return rows.select(
        "vin",
        pl.lit("tesla", pl.String).alias("provider"),
        "ts",
        "received_at",
        "key",
        *_VALUE_COLUMNS,
        unit.alias("unit"),
        "message_id",
        "invalid",
        "line",
        "rows_of_day",
        pl.col("bad").fill_null(True),
    )


def odd_lines(lines: Sequence[bytes], indices: Iterable[int]) -> list[int]:
    """The lines at ``indices`` that cannot be JSON objects: one of them in a read makes polars
    refuse the whole read, so they go straight to the generic path."""
    return [
        i
        for i in indices
        if (lines[i][:1] != b"{" or lines[i][-1:] != b"}") and not _looks_like_an_object(lines[i])
    ]


def flatten_tesla_json(
    lines: Sequence[bytes], vins: Sequence[str], indices: Sequence[int], data: bytes
) -> tuple[pl.DataFrame, list[int]]:
    """Rows (``FLAT_SCHEMA``) of the lines at ``indices`` that this reader can read exactly, and
    the indices of the lines left to the generic path.

    ``vins[i]`` is the VIN of the folder of ``lines[i]``; ``data`` is exactly
    ``lines[i] for i in indices`` joined by newlines (none of them blank). The ``line`` column
    of the rows holds indices into ``lines``.
    """
    odd = odd_lines(lines, indices)
    if odd:
        skip = set(odd)
        indices = [i for i in indices if i not in skip]
        data = b"\n".join([lines[i] for i in indices])
    rows, left = flatten_objects(lines, vins, indices, data)
    return rows, sorted([*odd, *left])


def flatten_objects(
    lines: Sequence[bytes], vins: Sequence[str], indices: Sequence[int], data: bytes
) -> tuple[pl.DataFrame, list[int]]:
    """``flatten_tesla_json`` for lines that all look like JSON objects (no ``odd_lines``)."""
    frames, refused = _read(lines, list(indices), data)
    if not frames:
        return pl.DataFrame(schema=FLAT_SCHEMA), sorted(refused)
    parsed = pl.concat(frames)
    folder_vin = pl.Series("vin", vins, dtype=pl.String).gather(parsed.get_column("line"))
    flat = _plan(parsed.with_columns(folder_vin))
    bad = flat.filter("bad").get_column("line").unique()
    rows = flat.filter(~pl.col("line").is_in(bad.implode())) if bad.len() else flat
    left = sorted({*refused, *bad.to_list()})
    return rows.drop("bad").cast(pl.Schema(FLAT_SCHEMA)), left
