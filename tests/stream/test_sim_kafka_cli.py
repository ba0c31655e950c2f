"""`bibev sim --kafka` then `bibev stream`, both through the command line as a user runs them."""

import json
import uuid
from collections import Counter
from datetime import date

import pytest

from bibev.cli.app import run
from bibev.sim import SimConfig
from bibev.sim.feed import tesla_payloads
from tests.stream.conftest import FAST_GROUP, read_lines

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_sim_kafka_then_stream_stores_every_simulated_payload(
    kafka_broker, kafka_topic, tmp_path, capsys, encoding
):
    sim = ["sim", "--vehicles", "3", "--days", "1", "--seed", "11", "--start", "2025-03-01"]
    kafka = ["--kafka", kafka_broker, "--topic", kafka_topic, "--encoding", encoding]
    assert run([*sim, *kafka]) == 0
    produced = json.loads(capsys.readouterr().out)
    expected = Counter(
        p.vin
        for p in tesla_payloads(SimConfig(start=date(2025, 3, 1), vehicles=3, days=1, seed=11))
    )
    assert produced["messages"] == sum(expected.values()) > 100
    assert produced["encoding"] == encoding
    assert produced["vins"] == len(expected)

    stream = ["stream", "--bootstrap-servers", kafka_broker, "--topic", kafka_topic]
    stream += [
        "--group-id",
        f"cli-{uuid.uuid4().hex[:8]}",
        "--max-messages",
        str(produced["messages"]),
    ]
    for pair in FAST_GROUP:
        stream += ["--consumer-config", pair]
    assert (
        run(["--root", str(tmp_path), "--database-url", f"sqlite:///{tmp_path}/b.db", *stream]) == 0
    )

    stored = Counter(doc["vin"] for _, doc in read_lines(tmp_path))
    assert stored == expected


def test_sim_kafka_refuses_other_providers(kafka_broker, capsys):
    assert run(["sim", "--provider", "bmw", "--kafka", kafka_broker]) == 2
    assert "--kafka produces Tesla Fleet Telemetry" in capsys.readouterr().err
