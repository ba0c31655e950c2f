"""Tests of the example adapter on its own: no registry, no network (HTTP via MockTransport)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from bibev_provider_example.adapter import ExampleLoggerAdapter

from bibev.errors import DataContractError, ProviderAuthError
from bibev.providers import FlatRow

VIN = "5YJ3E1EA7KF000001"
MESSAGE = {
    "device": "FL-0042",
    "vin": VIN,
    "t": 1740823200,
    "readings": {"soc": 71.5, "odo_mi": 12034.2, "hv_v": 398.2, "chg": "ac", "amb_f": None},
}
TS = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)


def test_flatten_keeps_every_leaf():
    rows = ExampleLoggerAdapter().flatten(MESSAGE)
    mid = "FL-0042:1740823200"
    assert rows == [
        FlatRow(VIN, TS, "device", "FL-0042", message_id=mid),
        FlatRow(VIN, TS, "soc", 71.5, "%", mid),
        FlatRow(VIN, TS, "odo_mi", 12034.2, "mi", mid),
        FlatRow(VIN, TS, "hv_v", 398.2, "V", mid),
        FlatRow(VIN, TS, "chg", "ac", None, mid),
        FlatRow(VIN, TS, "amb_f", None, "degF", mid, invalid=True),
    ]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ([1, 2], "not a JSON object"),
        ({**MESSAGE, "vin": None}, "no vin"),
        ({**MESSAGE, "t": "yesterday"}, "epoch seconds"),
        ({**MESSAGE, "t": True}, "epoch seconds"),
        ({**MESSAGE, "readings": [71.5]}, "readings is not an object"),
        ({**MESSAGE, "readings": {"soc": {"v": 1}}}, "not a scalar"),
    ],
)
def test_flatten_rejects_malformed_messages(message, reason):
    with pytest.raises(DataContractError, match=reason):
        ExampleLoggerAdapter().flatten(message)


def test_fetch_pages_until_the_cursor_runs_out():
    seen: list[httpx.Request] = []
    pages = {
        None: {"messages": [MESSAGE, MESSAGE], "next": "c2"},
        "c2": {"messages": [MESSAGE], "next": "c3"},
        "c3": {"messages": [], "next": None},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=pages[request.url.params.get("after")])

    adapter = ExampleLoggerAdapter({"api_key": "k-123", "page_size": 2})
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        batches = list(adapter.fetch(client, [VIN], cursor=None))
    assert [(len(b.messages), b.cursor) for b in batches] == [(2, "c2"), (1, "c3")]
    assert seen[0].headers["Authorization"] == "Bearer k-123"
    assert seen[0].url.params.get_list("vin") == [VIN]
    assert seen[1].url.params["after"] == "c2"


def test_fetch_translates_a_rejected_key():
    transport = httpx.MockTransport(lambda request: httpx.Response(401))
    adapter = ExampleLoggerAdapter({"api_key": "wrong"})
    with httpx.Client(transport=transport) as client, pytest.raises(ProviderAuthError):
        list(adapter.fetch(client, [], cursor="c9"))
