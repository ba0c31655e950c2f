"""The `stream` benchmark runs end to end at its smallest size (figures are not checked)."""

import json

import pytest

from bench import stream as bench_stream

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]


def test_the_small_benchmark_runs_and_reports_both_contenders(tmp_path, capsys):
    out = tmp_path / "stream.json"
    assert bench_stream.main(["--size", "small", "--repeat", "1", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| small | protobuf | bibev |" in table
    assert "| small | protobuf | bare |" in table
    figures = json.loads(out.read_text())
    assert {m["contender"] for m in figures} == {"bibev", "bare"}
    assert all(m["messages"] > 1000 and m["msgs_per_s"] > 0 for m in figures)
    assert all(0 < m["peak_rss_mb"] < 4096 for m in figures)
