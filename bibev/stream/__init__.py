"""Kafka → per-VIN buffers → ``temp/``: the ``bibev stream`` consumer (see docs/stream.md).

``run_stream(storage, options)`` consumes until stopped and drains; ``StreamOptions`` holds
the flags; ``stop_on_signals`` turns SIGTERM/SIGINT into a clean drain.
"""

from bibev.stream.consumer import StreamConsumer, StreamResult, run_stream, stop_on_signals
from bibev.stream.options import StreamOptions, build_options, kafka_config, parse_config_pairs
from bibev.stream.records import LineBuilder, decode_payload
from bibev.stream.stats import StreamCounts

__all__ = [
    "LineBuilder",
    "StreamConsumer",
    "StreamCounts",
    "StreamOptions",
    "StreamResult",
    "build_options",
    "decode_payload",
    "kafka_config",
    "parse_config_pairs",
    "run_stream",
    "stop_on_signals",
]
