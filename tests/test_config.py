from pathlib import Path

import pytest
from pydantic import SecretStr

from bibev.config import is_kafka_secret, load_settings
from bibev.errors import ConfigError


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bibev.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("flags", "environ", "toml", "expected", "source"),
    [
        ({}, {}, "", "./bibev-data", "default"),
        ({}, {}, 'root = "/from/toml"', "/from/toml", "config"),
        ({}, {"BIBEV_ROOT": "/from/env"}, 'root = "/from/toml"', "/from/env", "env"),
        ({"root": "/from/flag"}, {"BIBEV_ROOT": "/from/env"}, 'root = "/t"', "/from/flag", "flag"),
        ({"root": None}, {"BIBEV_ROOT": "/from/env"}, "", "/from/env", "env"),
    ],
)
def test_precedence(tmp_path, flags, environ, toml, expected, source):
    config = write_toml(tmp_path, toml)
    resolved = load_settings(flags, config_path=config, environ=environ)
    assert resolved.settings.root == expected
    assert resolved.sources["root"] == source


def test_config_found_through_env_variable(tmp_path):
    config = write_toml(tmp_path, "workers = 3\n[providers.tesla]\nclient_id = 'abc'\n")
    resolved = load_settings({}, environ={"BIBEV_CONFIG": str(config)})
    assert resolved.config_path == config
    assert resolved.settings.workers == 3
    assert resolved.settings.providers == {"tesla": {"client_id": "abc"}}


def test_bibev_table_is_accepted(tmp_path):
    config = write_toml(tmp_path, '[bibev]\nroot = "s3://bucket/x"\n')
    assert load_settings({}, config_path=config, environ={}).settings.root == "s3://bucket/x"


def test_default_database_is_sqlite_in_working_directory():
    settings = load_settings({}, environ={}).settings
    assert settings.database_url.get_secret_value() == "sqlite:///bibev.db"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("tesla,sim", ["tesla", "sim"]), (" tesla , bmw ,", ["tesla", "bmw"]), ("", [])],
)
def test_plugins_allow_list_from_env(value, expected):
    assert load_settings({}, environ={"BIBEV_PLUGINS": value}).settings.plugins == expected


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings({}, config_path=tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match="BIBEV_CONFIG"):
        load_settings({}, environ={"BIBEV_CONFIG": str(tmp_path / "nope.toml")})


def test_invalid_toml_and_unknown_key(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({}, config_path=write_toml(tmp_path, "root = "), environ={})
    with pytest.raises(ConfigError, match="roots"):
        load_settings({}, config_path=write_toml(tmp_path, 'roots = "x"'), environ={})


def test_a_settings_file_that_is_not_utf8_text_is_a_config_error(tmp_path):
    path = tmp_path / "bibev.toml"
    path.write_bytes(b"\xff\xfe root = 'x'")
    with pytest.raises(ConfigError, match=r"bibev.toml is not valid TOML: not UTF-8 text"):
        load_settings({}, config_path=path, environ={})


def test_invalid_value_names_its_source_and_not_its_value():
    with pytest.raises(ConfigError) as info:
        load_settings({}, environ={"BIBEV_WORKERS": "zero-secret-ish"})
    assert "workers" in str(info.value)
    assert "(env)" in str(info.value)
    assert "zero-secret-ish" not in str(info.value)


def test_s3_options_from_settings():
    settings = load_settings(
        {},
        environ={
            "BIBEV_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "BIBEV_S3_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "BIBEV_S3_SECRET_ACCESS_KEY": "very-secret",
        },
    ).settings
    assert settings.s3_options() == {
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"},
        "key": "AKIDEXAMPLE",
        "secret": "very-secret",
    }
    assert "very-secret" not in repr(settings)


def test_stream_settings_from_env_and_file(tmp_path):
    config = write_toml(
        tmp_path,
        'stream_group_id = "nightly"\n[kafka_consumer_config]\n'
        '"sasl.password" = "pw-123456"\n"session.timeout.ms" = 6000\n'
        '"enable.partition.eof" = false\n',
    )
    environ = {"BIBEV_STREAM_TOPICS": "tesla_V, tesla_alerts ,", "BIBEV_STREAM_BUFFER_SIZE": "500"}
    settings = load_settings({}, config_path=config, environ=environ).settings
    assert settings.stream_topics == ["tesla_V", "tesla_alerts"]
    assert settings.stream_buffer_size == 500
    assert settings.stream_group_id == "nightly"
    consumer = settings.kafka_consumer_config
    assert consumer["session.timeout.ms"] == "6000"
    assert consumer["enable.partition.eof"] == "false"
    assert isinstance(consumer["sasl.password"], SecretStr)
    assert consumer["sasl.password"].get_secret_value() == "pw-123456"
    assert "pw-123456" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("sasl.password", True),
        ("ssl.key.pem", True),
        ("sasl.oauthbearer.client.secret", True),
        ("sasl.username", False),
        ("session.timeout.ms", False),
    ],
)
def test_kafka_secret_names(name, secret):
    assert is_kafka_secret(name) is secret


def test_stream_buffer_size_below_one_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="stream_buffer_size"):
        load_settings({}, environ={"BIBEV_STREAM_BUFFER_SIZE": "0"})


@pytest.mark.parametrize("name", ["BIBEV_PROVIDERS", "BIBEV_KAFKA_CONSUMER_CONFIG"])
def test_env_value_that_is_not_json_is_a_config_error_naming_the_variable(name):
    with pytest.raises(ConfigError, match=f"^{name} is not valid JSON: ") as info:
        load_settings({}, environ={name: "not json pw-4242"})
    assert "pw-4242" not in str(info.value)
