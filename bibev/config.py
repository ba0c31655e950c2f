"""Settings: flags > ``BIBEV_*`` environment > ``bibev.toml`` > defaults.

``load_settings`` resolves every value once and remembers where each came from, so that
``bibev config show`` can say why a value is what it is.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    SettingsConfigDict,
    SettingsError,
)

from bibev.errors import ConfigError

ENV_PREFIX = "BIBEV_"
DEFAULT_CONFIG_NAME = "bibev.toml"


# librdkafka settings whose values are credentials (sasl.password, ssl.key.password,
# ssl.key.pem, sasl.oauthbearer.client.secret, sasl.oauthbearer.config, …).
_KAFKA_SECRET_WORDS = ("password", "secret", "passphrase", "key.pem", "oauthbearer.config")


def is_kafka_secret(name: str) -> bool:
    """Whether the librdkafka setting ``name`` holds a credential (never shown or logged)."""
    return any(word in name.lower() for word in _KAFKA_SECRET_WORDS)


def kafka_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """librdkafka settings as text (``true``/``false`` for booleans, as librdkafka spells
    them), credentials wrapped in ``SecretStr``."""
    settings: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        if is_kafka_secret(str(name)) and isinstance(value, str):
            value = SecretStr(value)
        settings[str(name)] = value
    return settings


class Settings(BaseSettings):
    """Every setting bibev reads. Field names are the ``bibev.toml`` keys and, upper-cased with
    the ``BIBEV_`` prefix, the environment variables."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    root: str = Field(
        "./bibev-data",
        description="Storage root: a directory, file://, s3://bucket/prefix or memory://",
    )
    database_url: SecretStr = Field(
        SecretStr("sqlite:///bibev.db"),
        description="SQLAlchemy URL; default is SQLite in the working directory",
    )
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, moto, …)")
    s3_region: str | None = Field(None, description="S3 region; default from the AWS configuration")
    s3_access_key_id: SecretStr | None = Field(
        None, description="S3 key; default from the usual AWS variables"
    )
    s3_secret_access_key: SecretStr | None = Field(
        None, description="S3 secret; default from the usual AWS variables"
    )
    plugins: Annotated[list[str] | None, NoDecode] = Field(
        None, description="Allow-list of provider adapters to load (comma-separated); default all"
    )
    workers: int | None = Field(
        None, ge=1, description="Worker processes per stage; default half the cores (at least 1)"
    )
    dask_address: str | None = Field(
        None, description="Run partitions on this Dask scheduler (tcp://host:8786)"
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines on stderr: text or json"
    )
    verbosity: int = Field(0, ge=-2, le=3, description="-2 quietest … 3 most verbose")
    progress: bool = Field(True, description="Show progress bars on a terminal")
    debug: bool = Field(False, description="Show tracebacks on errors")
    providers: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-provider options, e.g. [providers.tesla] in bibev.toml",
    )
    kafka_bootstrap_servers: str = Field(
        "localhost:9092", min_length=1, description="bibev stream: brokers, host:port[,…]"
    )
    stream_topics: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["tesla_V"],
        min_length=1,
        description="bibev stream: topics to consume (comma-separated)",
    )
    stream_group_id: str = Field(
        "bibev-stream", min_length=1, description="bibev stream: consumer group"
    )
    stream_buffer_size: int = Field(
        1000, ge=1, description="bibev stream: write a VIN's buffer at this many records"
    )
    stream_flush_interval: float = Field(
        30.0,
        gt=0,
        allow_inf_nan=False,
        description="bibev stream: write a buffer this many seconds old",
    )
    stream_stats_interval: float = Field(
        60.0,
        gt=0,
        allow_inf_nan=False,
        description="bibev stream: seconds between stats log lines",
    )
    kafka_consumer_config: dict[str, str | SecretStr] = Field(
        default_factory=dict,
        description="bibev stream: librdkafka consumer settings (secrets are masked)",
    )

    @field_validator("kafka_consumer_config", mode="before")
    @classmethod
    def _mask_kafka_secrets(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return kafka_settings(value)
        return value

    @field_validator("plugins", "stream_topics", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        """A comma-separated list (from a ``BIBEV_*`` variable) → its names."""
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    def s3_options(self) -> dict[str, Any]:
        """Keyword arguments for s3fs built from these settings (empty values left to botocore)."""
        options: dict[str, Any] = {}
        client_kwargs: dict[str, Any] = {}
        if self.s3_endpoint_url:
            client_kwargs["endpoint_url"] = self.s3_endpoint_url
        if self.s3_region:
            client_kwargs["region_name"] = self.s3_region
        if client_kwargs:
            options["client_kwargs"] = client_kwargs
        if self.s3_access_key_id:
            options["key"] = self.s3_access_key_id.get_secret_value()
        if self.s3_secret_access_key:
            options["secret"] = self.s3_secret_access_key.get_secret_value()
        return options


class ResolvedSettings(BaseModel):
    """Settings plus where each value came from: ``flag``, ``env``, ``config`` or ``default``."""

    settings: Settings
    sources: dict[str, str]
    config_path: Path | None


def find_config_path(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    """``--config`` wins, then ``BIBEV_CONFIG``, then ``./bibev.toml`` when it exists."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"config file not found: {explicit}")
        return explicit
    from_env = environ.get(f"{ENV_PREFIX}CONFIG")
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path} (from {ENV_PREFIX}CONFIG)")
        return path
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the settings file {path}: {exc.strerror}") from exc
    # A [bibev] table is accepted so that the settings can live beside other tools' tables.
    return dict(data.get("bibev", data))


class _EnvSource(EnvSettingsSource):
    """The ``BIBEV_*`` variables; a value that cannot be decoded is a ``ConfigError`` naming
    its variable (never its value, which may be a credential)."""

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        try:
            return super().prepare_field_value(field_name, field, value, value_is_complex)
        except ValueError as exc:
            name = f"{ENV_PREFIX}{field_name.upper()}"
            if isinstance(exc, json.JSONDecodeError):
                raise ConfigError(f"{name} is not valid JSON: {exc}") from exc
            # other decoders' messages may quote the value: name only the kind of error
            raise ConfigError(f"{name} cannot be read ({type(exc).__name__})") from exc


def _read_env(environ: Mapping[str, str]) -> dict[str, Any]:
    source = _EnvSource(Settings, env_prefix=ENV_PREFIX, case_sensitive=False)
    source.env_vars = {key.lower(): value for key, value in environ.items()}
    try:
        values = source()
    except SettingsError as exc:
        raise ConfigError(f"cannot read the {ENV_PREFIX}* variables: {exc}") from exc
    return {key: value for key, value in values.items() if key in Settings.model_fields}


def _describe(error: Any, sources: Mapping[str, str]) -> str:
    """One validation problem, naming the setting and its layer but never the value."""
    location = ".".join(str(part) for part in error["loc"])
    return f"{location}: {error['msg']} ({sources.get(str(error['loc'][0]), '?')})"


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> ResolvedSettings:
    """Resolve settings from flags, environment, config file and defaults, in that order.

    ``flags`` holds only the options the user actually set (``None`` values are ignored).
    """
    environ = os.environ if environ is None else environ
    path = find_config_path(config_path, environ)
    layers: list[tuple[str, dict[str, Any]]] = [
        ("config", _read_toml(path) if path else {}),
        ("env", _read_env(environ)),
        ("flag", {k: v for k, v in (flags or {}).items() if v is not None}),
    ]
    merged: dict[str, Any] = {}
    sources = dict.fromkeys(Settings.model_fields, "default")
    for origin, values in layers:
        for key, value in values.items():
            merged[key] = value
            sources[key] = origin
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(_describe(err, sources) for err in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from None
    return ResolvedSettings(settings=settings, sources=sources, config_path=path)
