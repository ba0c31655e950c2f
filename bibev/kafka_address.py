"""Kafka broker addresses as users give them: ``[PROTOCOL://]HOST:PORT[,…]``.

librdkafka takes anything and retries an address it can never reach for as long as it runs;
a command checks the address first and says what is wrong with it instead.
"""

from __future__ import annotations


def broker_problem(value: str) -> str | None:
    """What is wrong with ``value`` as HOST:PORT[,HOST:PORT…] (ports 1 to 65535, an optional
    ``PROTOCOL://``, IPv6 hosts in brackets), or ``None`` when nothing is."""
    for broker in value.split(","):
        if not _is_host_port(broker.strip()):
            return f"needs HOST:PORT[,HOST:PORT…] with ports 1 to 65535, not {_shown(broker)!r}"
    return None


def _shown(broker: str) -> str:
    """``broker`` as an error may show it: credentials before an ``@`` are masked."""
    return "***@" + broker.rsplit("@", 1)[1] if "@" in broker else broker


def _is_host_port(broker: str) -> bool:
    """``[PROTOCOL://]HOST:PORT``, an IPv6 host in brackets."""
    host, _, port = broker.split("://", 1)[-1].rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    return bool(host) and port.isascii() and port.isdigit() and 1 <= int(port) <= 65535
