"""The Kafka seam: Tesla payloads as plain values, equal to the files' protojson."""

from __future__ import annotations

import itertools
import json
from collections import Counter

from bibev.providers.tesla import encode_payload, payload_to_protojson
from bibev.sim import SimConfig, tesla_payloads

from .conftest import START, simulate


def _key(doc: dict) -> str:
    return json.dumps(doc, sort_keys=True)


def test_feed_payloads_encode_to_the_same_protojson_as_the_files(tmp_path):
    options = {"vehicles": 3, "days": 1, "seed": 9}
    written = simulate(tmp_path, **options)
    in_files: dict[str, Counter] = {}
    for _, _, envelope in written.payloads():
        payload = envelope["payload"]
        if "vin" in payload and not payload["createdAt"].startswith("2025-02-30"):
            in_files.setdefault(envelope["vin"], Counter())[_key(payload)] += 1
    fed: dict[str, Counter] = {}
    kinds = Counter()
    for p in tesla_payloads(SimConfig(start=START, **options)):
        doc = payload_to_protojson(encode_payload(p.vin, p.created_at, p.data, p.is_resend))
        fed.setdefault(p.vin, Counter())[_key(doc)] += 1
        kinds.update(type(value).__name__ for _, value in p.data)
        kinds["resend"] += p.is_resend
    assert fed == in_files
    assert {"float", "int", "str", "bool", "tuple", "NoneType"} <= set(kinds)
    assert kinds["resend"] > 0


def test_feed_is_per_vehicle_in_delivery_order():
    payloads = list(
        tesla_payloads(SimConfig(start=START, vehicles=3, days=2, seed=9, batch_size=2))
    )
    by_vin: dict[str, list] = {}
    for p in payloads:
        by_vin.setdefault(p.vin, []).append(p.received_at)
    assert len(by_vin) == 3
    for received in by_vin.values():
        day_one = [r for r in received if r.day == START.day]
        assert day_one == sorted(day_one)
    created = [p.created_at for p in payloads]
    assert any(b < a for a, b in itertools.pairwise(created))  # out of order
