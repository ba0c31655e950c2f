"""``bibev sim``: simulate a fleet into ``temp/`` (a provider's wire format) and ``truth/``."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from bibev.cli.common import out, print_json, settings_from, storage_from
from bibev.cli.progress import progress_bar
from bibev.errors import ConfigError
from bibev.kafka_address import broker_problem
from bibev.sim import SimConfig, SimSummary, default_start, simulate_fleet
from bibev.sim.fleet import PROVIDERS
from bibev.sim.wire import FORMATS

logger = logging.getLogger(__name__)

Provider = StrEnum("Provider", {p.replace("-", "_"): p for p in PROVIDERS})  # type: ignore[misc]
Format = StrEnum(  # type: ignore[misc]
    "Format", {n.replace("-", "_"): n for n in sorted({name for _, name in FORMATS})}
)


# bibev.sim.kafka.DEFAULT_TOPIC, which is not imported here: it loads the Tesla protobuf code.
DEFAULT_TOPIC = "tesla_V"


class KafkaEncoding(StrEnum):
    protobuf = "protobuf"
    json = "json"


EPILOG = (
    "Without --start the last simulated day is yesterday (UTC), so every day is complete. "
    "The same --seed writes byte-identical files. Formats: "
    + "; ".join(f"{p}: " + ", ".join(name for q, name in FORMATS if q == p) for p in PROVIDERS)
    + "."
)


def sim(
    ctx: typer.Context,
    vehicles: Annotated[
        int | None, typer.Option(min=1, help="Fleet size.", show_default="10")
    ] = None,
    days: Annotated[
        int | None, typer.Option(min=1, help="Number of UTC days.", show_default="1")
    ] = None,
    start: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"], help="First UTC day.", show_default="the last day is yesterday"
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Random seed.", show_default="0")] = None,
    provider: Annotated[
        Provider | None, typer.Option(help="Wire format family.", show_default="tesla")
    ] = None,
    format_name: Annotated[
        Format | None,
        typer.Option(
            "--format", help="Provider format.", show_default="the provider's stream format"
        ),
    ] = None,
    mess: Annotated[
        bool,
        typer.Option(
            "--mess/--clean", help="Real-world mess, or exact sensors and clean delivery."
        ),
    ] = True,
    kafka: Annotated[
        str | None,
        typer.Option(
            "--kafka",
            metavar="HOST:PORT",
            help="Produce Tesla Fleet Telemetry records to this Kafka broker instead of temp/.",
        ),
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="Kafka topic (with --kafka).", show_default=DEFAULT_TOPIC)
    ] = None,
    encoding: Annotated[
        KafkaEncoding | None,
        typer.Option(help="Record values (with --kafka).", show_default="protobuf"),
    ] = None,
) -> None:
    """Simulate an EV fleet: provider messages into temp/, the truth into truth/.

    The raw messages go where a provider's would (temp/ under --root, or a Kafka topic with
    --kafka); the true sessions and battery capacities go to truth/.

    Example: bibev --root ./bibev-data sim --vehicles 5 --days 3 --seed 1 --provider tesla

    Example: bibev sim --vehicles 20 --kafka 127.0.0.1:9092 --topic tesla_V --encoding json
    """
    _check_kafka_options(kafka, topic=topic, encoding=encoding)
    n_days = days or 1
    today = datetime.now(UTC).date()
    first = start.date() if start else default_start(n_days, today)
    config = SimConfig(
        start=first,
        vehicles=vehicles or 10,
        days=n_days,
        seed=seed or 0,
        provider=provider.value if provider else "tesla",
        format=format_name.value if format_name else None,
        mess=mess,
    )
    _warn_about_future_days(config, today)
    if kafka:
        produce_to_kafka(
            config, kafka, topic or DEFAULT_TOPIC, (encoding or KafkaEncoding.protobuf).value
        )
        return
    storage = storage_from(ctx)
    settings = settings_from(ctx)
    logger.info(
        "simulating %d vehicles × %d days from %s (%s %s, seed %d) into %s",
        config.vehicles,
        config.days,
        config.start,
        config.provider,
        config.format_name,
        config.seed,
        storage.url,
    )
    with progress_bar("simulating vehicle-days", enabled=settings.progress) as on_progress:
        # one process unless asked (BIBEV_WORKERS / workers in bibev.toml): with a couple of
        # cores, worker processes cost more (start-up, pickling) than they win
        workers = settings.workers or 1
        summary = simulate_fleet(config, storage, on_progress=on_progress, workers=workers)
    out.print(summary_table(summary, storage.url))


def _check_kafka_options(
    kafka: str | None, *, topic: str | None, encoding: KafkaEncoding | None
) -> None:
    """Kafka options the user set are used, or refused: never silently ignored."""
    if kafka is not None:
        check_kafka_address(kafka)
        return
    for flag, value in (("--topic", topic), ("--encoding", encoding)):
        if value is not None:
            raise ConfigError(f"{flag} needs --kafka (without it sim writes to temp/)")


def check_kafka_address(value: str) -> str:
    """``value`` if it is HOST:PORT[,HOST:PORT…] (``bibev.kafka_address``); a ``ConfigError``
    otherwise, rather than a producer that retries an address it can never reach."""
    problem = broker_problem(value)
    if problem:
        raise ConfigError(f"--kafka {problem}")
    return value


def _warn_about_future_days(config: SimConfig, today: date) -> None:
    """Days after today are simulated as asked, but no pipeline stage takes them yet."""
    last = config.end - timedelta(days=1)
    if last > today:
        logger.warning(
            "%d simulated day(s), up to %s, are after today (%s, UTC): `bibev compact` does not "
            "process a day before it is over",
            min(config.days, (last - today).days),
            last,
            today,
        )


def produce_to_kafka(config: SimConfig, bootstrap: str, topic: str, encoding: str) -> None:
    """Tesla Fleet Telemetry to Kafka, keyed by VIN with the real headers (for bibev stream)."""
    if config.provider != "tesla":
        raise ConfigError(
            f"--kafka produces Tesla Fleet Telemetry: --provider {config.provider} cannot be used"
        )
    from bibev.sim.kafka import produce_fleet_telemetry

    logger.info(
        "producing %d vehicles × %d days to %s/%s", config.vehicles, config.days, bootstrap, topic
    )
    summary = produce_fleet_telemetry(
        bootstrap,
        topic=topic,
        encoding=encoding,
        vehicles=config.vehicles,
        days=config.days,
        seed=config.seed,
        start=config.start,
        mess=config.mess,
    )
    print_json(summary.as_dict())


def summary_table(summary: SimSummary, root: str) -> Table:
    """What was written, as a two-column table."""
    c = summary.config
    table = Table("", "", show_header=False, title="bibev sim")
    rows = [
        ("root", root),
        ("provider / format", f"{c.provider} / {c.format_name}"),
        ("vehicles", str(c.vehicles)),
        ("days", f"{c.days} ({c.start} … {date.fromordinal(c.end.toordinal() - 1)})"),
        ("seed", str(c.seed)),
        ("mess", "on" if c.mess else "off (--clean)"),
        ("messages", f"{summary.messages:,}"),
        ("lines (with copies)", f"{summary.lines:,}"),
        ("files", f"{summary.files:,}"),
        ("bytes", f"{summary.bytes:,} ({summary.bytes / 1e6:.1f} MB)"),
    ]
    for kind in ("driving", "charging", "idle"):
        rows.append((f"true {kind} sessions", f"{summary.sessions.get(kind, 0):,}"))
    rows.append(("sessions hidden offline", f"{summary.offline_sessions:,}"))
    garbage = sum(v for k, v in summary.mess.items() if k.startswith("garbage_"))
    rows.append(("garbage lines", f"{garbage:,} (listed in truth/garbage.parquet)"))
    for key, value in rows:
        table.add_row(key, value)
    return table
