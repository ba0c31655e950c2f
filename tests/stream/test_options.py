"""Stream options and the librdkafka configuration built from them."""

import pytest

from bibev.errors import ConfigError
from bibev.stream.options import build_options, kafka_config, parse_config_pairs


def test_defaults_follow_the_original_consumer():
    options = build_options()
    assert (options.topics, options.buffer_size, options.flush_interval) == (("tesla_V",), 1000, 30)
    assert (options.encoding, options.max_messages, options.max_seconds) == ("auto", None, None)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"buffer_size": 0}, "--buffer-size"),
        ({"flush_interval": 0}, "--flush-interval"),
        ({"flush_interval": float("inf")}, "--flush-interval: Input should be a finite number"),
        ({"max_seconds": float("inf")}, "--max-seconds: Input should be a finite number"),
        ({"stats_interval": float("nan")}, "--stats-interval"),
        ({"encoding": "avro"}, "encoding"),
        ({"topics": ()}, "--topic"),
        ({"max_messages": 0}, "--max-messages"),
        ({"consumer_config": {"enable.auto.commit": "true"}}, "bibev commits offsets itself"),
        ({"unknown": 1}, "unknown"),
        (
            {"bootstrap_servers": "kafka1:9092,kafka2"},
            "--bootstrap-servers: Value error, needs HOST:PORT.*not 'kafka2'",
        ),
        ({"bootstrap_servers": "kafka:0"}, "with ports 1 to 65535, not 'kafka:0'"),
    ],
)
def test_bad_options_are_config_errors(values, problem):
    with pytest.raises(ConfigError, match=problem):
        build_options(**values)


def test_topics_may_be_given_comma_separated():
    assert build_options(topics="tesla_V, tesla_alerts").topics == ("tesla_V", "tesla_alerts")


def test_config_pairs_parse_and_refuse_garbage():
    assert parse_config_pairs(["a.b=1", " c = x=y "]) == {"a.b": "1", "c": "x=y"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_config_pairs(["session.timeout.ms"])


def test_user_settings_override_defaults_but_never_the_commit_protocol():
    options = build_options(
        bootstrap_servers="k1:9092,k2:9092",
        group_id="fleet",
        consumer_config={"auto.offset.reset": "latest", "enable.auto.commit": "false"},
    )
    config = kafka_config(options)
    assert config["bootstrap.servers"] == "k1:9092,k2:9092"
    assert config["group.id"] == "fleet"
    assert config["auto.offset.reset"] == "latest"
    assert config["enable.auto.commit"] == "false"
    assert config["enable.auto.offset.store"] == "false"
