"""``bibev stream``: consume Tesla Fleet Telemetry from Kafka into ``temp/``, at least once."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from bibev.cli.common import print_json, settings_from
from bibev.cli.logs import mask_secrets
from bibev.config import is_kafka_secret

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
        typer.Option(
            show_default=False,
            help="Kafka brokers, host:port[,host:port…] (setting kafka_bootstrap_servers, "
            "default localhost:9092).",
        ),
    ] = None,
    topic: Annotated[
        list[str] | None,
        typer.Option(
            "--topic",
            show_default=False,
            help="Topic to consume; repeat for several (setting stream_topics, default tesla_V).",
        ),
    ] = None,
    group_id: Annotated[
        str | None,
        typer.Option(
            show_default=False,
            help="Consumer group; processes in one group share partitions (setting "
            "stream_group_id, default bibev-stream).",
        ),
    ] = None,
    buffer_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            show_default=False,
            help="Flush a VIN's buffer at this many records (setting stream_buffer_size, 1000).",
        ),
    ] = None,
    flush_interval: Annotated[
        float | None,
        typer.Option(
            show_default=False,
            help="Flush a buffer this many seconds old (setting stream_flush_interval, 30).",
        ),
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
        float | None,
        typer.Option(
            show_default=False,
            help="Seconds between stats log lines (setting stream_stats_interval, 60).",
        ),
    ] = None,
    consumer_config: Annotated[
        list[str] | None,
        typer.Option(
            "--consumer-config",
            metavar="KEY=VALUE",
            help="librdkafka consumer setting, repeatable (e.g. session.timeout.ms=6000, "
            "security.protocol=SASL_SSL); added to the setting kafka_consumer_config, "
            "overriding its keys.",
        ),
    ] = None,
) -> None:
    """Consume Tesla Fleet Telemetry from Kafka into temp/, at least once.

    Records are buffered per VIN and written to temp/{VIN}/{UTC day}/ when a buffer is full.

    Buffers are also written when old, when a partition is revoked and at shutdown.

    Bad records go to quarantine/stream/. The run's counts are printed as JSON at the end.

    Every option but --encoding, --max-messages and --max-seconds can also be set with
    BIBEV_* variables or bibev.toml (see bibev config show).

    Example: bibev --root s3://fleet/bibev stream --bootstrap-servers kafka:9092 --group-id bibev
    """
    # Imported here so that `bibev --help` does not pay for Kafka, polars and the database.
    from bibev.db import open_database, record_run
    from bibev.storage import Storage
    from bibev.stream import build_options, parse_config_pairs, run_stream, stop_on_signals

    pairs = parse_config_pairs(consumer_config or [])
    mask_secrets(value for name, value in pairs.items() if is_kafka_secret(name))
    settings = settings_from(
        ctx,
        kafka_bootstrap_servers=bootstrap_servers,
        stream_topics=list(topic) if topic else None,
        stream_group_id=group_id,
        stream_buffer_size=buffer_size,
        stream_flush_interval=flush_interval,
        stream_stats_interval=stats_interval,
    )
    options = build_options(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topics=tuple(settings.stream_topics),
        group_id=settings.stream_group_id,
        buffer_size=settings.stream_buffer_size,
        flush_interval=settings.stream_flush_interval,
        encoding=encoding.lower() if encoding else None,
        max_messages=max_messages,
        max_seconds=max_seconds,
        stats_interval=settings.stream_stats_interval,
        # A --consumer-config pair wins over the same key from the environment or the file.
        consumer_config={**settings.kafka_consumer_config, **pairs},
    )
    storage = Storage.from_settings(settings)
    engine = open_database(settings.database_url.get_secret_value())
    stop = threading.Event()
    try:
        # Credentials in consumer_config are SecretStr: they are recorded masked.
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
