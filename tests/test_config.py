from pathlib import Path

import pytest

from bibev.config import load_settings
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
