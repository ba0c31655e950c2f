"""Options of ``bibev stream`` and the librdkafka configuration built from them."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from bibev.config import kafka_settings
from bibev.errors import ConfigError
from bibev.kafka_address import broker_problem

# Settings that would break the commit protocol: bibev stores offsets and commits itself.
PROTECTED_CONFIG = {
    "enable.auto.commit": "false",
    "enable.auto.offset.store": "false",
}


class StreamOptions(BaseModel):
    """Everything one consumer process needs besides the storage root."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = Field("localhost:9092", min_length=1)
    topics: tuple[str, ...] = Field(("tesla_V",), min_length=1)
    group_id: str = Field("bibev-stream", min_length=1)
    buffer_size: int = Field(1000, ge=1, description="flush a VIN's buffer at this many records")
    flush_interval: float = Field(
        30.0, gt=0, allow_inf_nan=False, description="flush a buffer this many seconds old"
    )
    encoding: Literal["auto", "protobuf", "json"] = "auto"
    max_messages: int | None = Field(None, ge=1)
    max_seconds: float | None = Field(None, gt=0, allow_inf_nan=False)
    stats_interval: float = Field(60.0, gt=0, allow_inf_nan=False)
    # librdkafka settings; credentials (``is_kafka_secret``) are kept as ``SecretStr`` so that
    # they never show in a log line, the runs table or ``repr``.
    consumer_config: dict[str, str | SecretStr] = Field(default_factory=dict)
    batch_size: int = Field(10_000, ge=1, description="records per consume() call")
    max_buffered: int = Field(
        200_000, ge=1, description="flush the oldest buffers when more records than this wait"
    )
    commit_interval: float = Field(1.0, ge=0, description="at most one commit this often")
    commit_timeout: float = Field(
        10.0, gt=0, description="wait this long for a commit's answer (then send it again)"
    )
    close_timeout: float = Field(
        10.0, gt=0, description="wait this long for the Kafka client to close at the end"
    )
    write_workers: int = Field(4, ge=1, description="files written at once")
    poll_timeout: float = Field(0.5, gt=0)

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_brokers(cls, value: str) -> str:
        problem = broker_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("topics", mode="before")
    @classmethod
    def _split_topics(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(t.strip() for t in value.split(",") if t.strip())
        return value

    @field_validator("consumer_config", mode="before")
    @classmethod
    def _mask_secrets(cls, value: Any) -> Any:
        return kafka_settings(value) if isinstance(value, Mapping) else value

    @field_validator("consumer_config")
    @classmethod
    def _keep_commit_protocol(cls, value: dict[str, str | SecretStr]) -> dict[str, str | SecretStr]:
        for name, required in PROTECTED_CONFIG.items():
            if name in value and str(value[name]).lower() != required:
                raise ValueError(f"{name} must stay {required}: bibev commits offsets itself")
        return value


def _flag(loc: tuple[Any, ...]) -> str:
    """The command-line flag of a field: ``buffer_size`` → ``--buffer-size``."""
    if not loc:
        return "options"
    name = str(loc[0])
    return "--topic" if name == "topics" else "--" + name.replace("_", "-")


def build_options(**values: Any) -> StreamOptions:
    """``StreamOptions`` from keyword values (``None`` = default); errors are ``ConfigError``
    naming the command-line flag."""
    try:
        return StreamOptions(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{_flag(err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"invalid stream options: {problems}") from None


# What a librdkafka property name looks like (``sasl.password``, ``session.timeout.ms``): an
# error may show this much of what the user typed, never the rest (it may be a secret).
_PROPERTY_NAME = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+")


def shown_name(text: str) -> str:
    """The part of ``text`` that an error may quote: its start when that looks like a
    property name (``sasl.password`` of ``sasl.password:Hunter2``), followed by ``…`` when
    more is hidden; ``…`` alone when nothing looks like one."""
    found = _PROPERTY_NAME.match(text.strip())
    name = found.group(0) if found else ""
    return name if name == text.strip() else name + "…"


def parse_config_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """``["session.timeout.ms=6000", …]`` → dict; a pair without ``=`` is a ``ConfigError``
    (which never quotes the value: only the part that looks like a property name)."""
    config = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(
                f"consumer config must be KEY=VALUE, not {shown_name(pair)!r} "
                "(what follows the name is not shown: it may be a secret)"
            )
        config[name.strip()] = value.strip()
    return config


def client_error_text(text: str, options: StreamOptions) -> str:
    """A librdkafka error message without the user's values: a value it quotes
    (``Invalid value "…" for configuration property``), an unknown property's name beyond
    what looks like a name, and any credential of ``consumer_config``."""
    text = re.sub(r'Invalid value "[^"]*"', "Invalid value", text)
    text = re.sub(
        r'No such configuration property: "([^"]*)"',
        lambda found: f'No such configuration property: "{shown_name(found.group(1))}"',
        text,
    )
    for value in options.consumer_config.values():
        if isinstance(value, SecretStr) and value.get_secret_value():
            text = text.replace(value.get_secret_value(), "***")
    return text


def kafka_config(options: StreamOptions) -> dict[str, Any]:
    """librdkafka settings of the consumer: user settings on top of bibev's defaults, except
    the two that the commit protocol depends on."""
    config: dict[str, Any] = {
        "bootstrap.servers": options.bootstrap_servers,
        "group.id": options.group_id,
        "client.id": f"bibev-stream-{socket.gethostname()}-{os.getpid()}",
        "auto.offset.reset": "earliest",
        # librdkafka reconnects by itself; these bound its backoff between attempts.
        "reconnect.backoff.ms": 200,
        "reconnect.backoff.max.ms": 10_000,
    }
    config.update(
        {
            name: value.get_secret_value() if isinstance(value, SecretStr) else value
            for name, value in options.consumer_config.items()
        }
    )
    config.update(PROTECTED_CONFIG)
    return config
