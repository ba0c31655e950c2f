"""``bibev stream``: consume Tesla Fleet Telemetry from Kafka into ``temp/``, at least once."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from bibev.cli.common import print_json, settings_from

EPILOG = (
    "Offsets are committed only after the records before them are durably written, so a "
    "crash loses nothing (records may arrive twice; compaction removes the copies). "
    "SIGTERM or Ctrl-C drains: flush, commit, exit 0. Several processes with the same "
    "--group-id share the partitions. See docs/stream.md."
)


def stream(
    ctx: typer.Context,
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(help="Kafka brokers, host:port[,host:port…] (default localhost:9092)."),
    ] = None,
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", help="Topic to consume; repeat for several (default tesla_V)."),
    ] = None,
    group_id: Annotated[
        str | None, typer.Option(help="Consumer group; processes in one group share partitions.")
    ] = None,
    buffer_size: Annotated[
        int | None, typer.Option(help="Flush a VIN's buffer at this many records (1000).")
    ] = None,
    flush_interval: Annotated[
        float | None, typer.Option(help="Flush a buffer this many seconds old (30).")
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(
            metavar="auto|protobuf|json",
            help="Record values: protobuf, protojson (json), or detected per record (auto).",
        ),
    ] = None,
    max_messages: Annotated[
        int | None, typer.Option(help="Stop (and drain) after this many records.")
    ] = None,
    max_seconds: Annotated[
        float | None, typer.Option(help="Stop (and drain) after this many seconds.")
    ] = None,
    stats_interval: Annotated[
        float | None, typer.Option(help="Seconds between stats log lines (60).")
    ] = None,
    consumer_config: Annotated[
        list[str] | None,
        typer.Option(
            "--consumer-config",
            metavar="KEY=VALUE",
            help="librdkafka consumer setting, repeatable (e.g. session.timeout.ms=6000, "
            "security.protocol=SASL_SSL).",
        ),
    ] = None,
) -> None:
    """Consume Tesla Fleet Telemetry from Kafka into temp/, at least once.

    Records are buffered per VIN and written to temp/{VIN}/{UTC day}/ when a buffer is full.

    Buffers are also written when old, when a partition is revoked and at shutdown.

    Bad records go to quarantine/stream/. The run's counts are printed as JSON at the end.

    Example: bibev --root s3://fleet/bibev stream --bootstrap-servers kafka:9092 --group-id bibev
    """
    # Imported here so that `bibev --help` does not pay for Kafka, polars and the database.
    from bibev.db import open_database, record_run
    from bibev.storage import Storage
    from bibev.stream import build_options, parse_config_pairs, run_stream, stop_on_signals

    settings = settings_from(ctx)
    options = build_options(
        bootstrap_servers=bootstrap_servers,
        topics=tuple(topic) if topic else None,
        group_id=group_id,
        buffer_size=buffer_size,
        flush_interval=flush_interval,
        encoding=encoding.lower() if encoding else None,
        max_messages=max_messages,
        max_seconds=max_seconds,
        stats_interval=stats_interval,
        consumer_config=parse_config_pairs(consumer_config or []) or None,
    )
    storage = Storage.from_settings(settings)
    engine = open_database(settings.database_url.get_secret_value())
    stop = threading.Event()
    try:
        parameters = {"root": storage.url, **options.model_dump(mode="json")}
        with record_run(engine, "stream", parameters) as run, stop_on_signals(stop):
            result = run_stream(storage, options, stop=stop)
            run.counts = result.counts.counts()
    finally:
        engine.dispose()
    print_json(
        {
            **result.counts.counts(),
            "uncommitted": [f"{t}[{p}]" for t, p in result.uncommitted],
        }
    )
