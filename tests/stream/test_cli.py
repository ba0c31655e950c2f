"""``bibev stream`` on the command line: usage errors, the printed counts and the runs row."""

import json
import uuid

import pytest

from bibev.cli.app import run
from bibev.db import open_database, recent_runs
from tests.stream.conftest import (
    FAST_GROUP,
    FAST_GROUP_CONFIG,
    fleet_records,
    produce,
    stored_by_position,
)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("BIBEV_ROOT", "BIBEV_DATABASE_URL", "BIBEV_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--consumer-config", "enable.auto.commit=true"], "bibev commits offsets itself"),
        (["--consumer-config", "session.timeout.ms"], "KEY=VALUE"),
        (["--buffer-size", "0"], "buffer-size"),
        (["--encoding", "avro"], "encoding"),
    ],
)
def test_usage_errors_exit_2_before_consuming(isolated, capsys, flags, message):
    assert run(["stream", "--bootstrap-servers", "127.0.0.1:1", *flags]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""
    assert not (isolated / "bibev-data").exists()


SECRET = "Hunter2SuperSecret"


@pytest.mark.parametrize(
    ("flags", "shown"),
    [
        (["--consumer-config", f"sasl.password:{SECRET}"], "'sasl.password…'"),
        (["--consumer-config", SECRET], "'…'"),
        (["--consumer-config", f"={SECRET}"], "'…'"),
        (["--consumer-config", f"security.protocol={SECRET}"], "Invalid value for"),
        (["--consumer-config", f"sasl.password:{SECRET}=x"], '"sasl.password…"'),
        (
            [
                "--consumer-config",
                f"ssl.key.pem={SECRET}",
                "--consumer-config",
                "security.protocol=SSL",
            ],
            "ssl.key.pem",
        ),
        (["--bootstrap-servers", f"bibev:{SECRET}@kafka"], "'***@kafka'"),
    ],
)
def test_a_config_error_never_shows_a_value(isolated, capsys, flags, shown):
    argv = ["--database-url", f"sqlite:///{isolated / 'runs.db'}", "stream"]
    assert run([*argv, "--bootstrap-servers", "127.0.0.1:1", *flags]) == 2
    captured = capsys.readouterr()
    assert shown in captured.err
    assert SECRET not in captured.err + captured.out


@pytest.mark.kafka
@pytest.mark.timeout(120)
def test_a_batch_run_prints_its_counts_and_records_a_run(
    isolated, capsys, kafka_broker, kafka_topic
):
    sent = produce(kafka_broker, kafka_topic, fleet_records(120, vehicles=6))
    database = f"sqlite:///{isolated / 'runs.db'}"
    argv = ["--root", str(isolated / "data"), "--database-url", database, "stream"]
    argv += ["--bootstrap-servers", kafka_broker, "--topic", kafka_topic, "--max-messages", "120"]
    argv += ["--group-id", f"cli-{uuid.uuid4().hex[:8]}", "--buffer-size", "50"]
    for pair in FAST_GROUP:
        argv += ["--consumer-config", pair]

    assert run(argv) == 0

    printed = json.loads(capsys.readouterr().out)
    assert printed["messages"] == 120
    assert printed["quarantined"] == 0
    assert printed["vins"] == 6
    assert printed["uncommitted"] == []
    assert len(stored_by_position(isolated / "data")) == len(sent)
    engine = open_database(database)
    try:
        (latest,) = recent_runs(engine, limit=1)
    finally:
        engine.dispose()
    assert (latest.command, latest.status) == ("stream", "ok")
    assert latest.counts["messages"] == 120
    assert latest.counts["files"] == printed["files"] >= 6
    assert latest.parameters["topics"] == [kafka_topic]


@pytest.mark.kafka
@pytest.mark.timeout(120)
def test_settings_file_configures_the_stream_and_its_secret_stays_out_of_logs(
    isolated, capsys, kafka_broker, kafka_topic
):
    produce(kafka_broker, kafka_topic, fleet_records(40, vehicles=2))
    password = "pw-" + uuid.uuid4().hex
    group = f"toml-{uuid.uuid4().hex[:8]}"
    (isolated / "bibev.toml").write_text(
        f'root = "{isolated / "data"}"\n'
        f'database_url = "sqlite:///{isolated / "runs.db"}"\n'
        f'kafka_bootstrap_servers = "{kafka_broker}"\n'
        f'stream_topics = ["{kafka_topic}"]\n'
        f'stream_group_id = "{group}"\n'
        "stream_buffer_size = 10\n"
        "[kafka_consumer_config]\n"
        + "".join(f'"{name}" = "{value}"\n' for name, value in FAST_GROUP_CONFIG.items())
    )

    argv = [
        "-v",
        "stream",
        "--max-messages",
        "40",
        "--consumer-config",
        f"sasl.password={password}",
    ]
    assert run(argv) == 0

    captured = capsys.readouterr()
    assert json.loads(captured.out)["messages"] == 40
    assert password not in captured.err
    assert len(stored_by_position(isolated / "data")) == 40
    engine = open_database(f"sqlite:///{isolated / 'runs.db'}")
    try:
        (latest,) = recent_runs(engine, limit=1)
    finally:
        engine.dispose()
    assert latest.parameters["group_id"] == group
    assert latest.parameters["buffer_size"] == 10
    assert "sasl.password" not in latest.parameters["consumer_config"]
    assert password not in json.dumps(latest.parameters)
