"""Smoke test of ``python -m bench compact``: it runs, every contender writes Parquet, and the
figures it reports are consistent (no timing is asserted: a benchmark is not a test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import compact as bench_compact


@pytest.mark.slow
def test_the_compact_benchmark_runs_at_small_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BIBEV_BENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(bench_compact, "CACHE", tmp_path)
    out = tmp_path / "figures.json"
    assert bench_compact.main(["--size", "small", "--repeat", "1", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    results = {r["contender"]: r for r in json.loads(out.read_text())["results"]}
    assert set(results) == {"bibev", "floor", "duckdb", "pandas"}
    assert all(r["bytes_out"] > 0 and r["seconds"] > 0 for r in results.values())
    assert results["bibev"]["bibev_speedup"] == pytest.approx(1.0)
    assert 0 < results["bibev"]["out_vs_json"] < 0.1
    assert "| small | bibev |" in table
    assert "compressed ≤ 10 % of JSON" in table
