"""`triposr-sidecar bench`: the run record as a table and as JSON."""

from __future__ import annotations

import json
import subprocess
import sys

from service_harness import DEFAULT_STAGES


def test_bench_prints_a_table_and_writes_json(tmp_path, tiny_weights):
    record_file = tmp_path / "record.json"
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "bench", "--weights", str(tiny_weights), "--device", "cpu",
         "--resolutions", "32,48", "--json", str(record_file), "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = done.stdout.splitlines()
    header = next(line for line in table if line.startswith("resolution"))
    for column in ("encode", "density", "total", "peak RSS", "vertices"):
        assert column in header
    assert any(line.startswith("32 ") for line in table) and any(line.startswith("48 ") for line in table)
    assert f"2 runs recorded in {tmp_path / 'data' / 'runs.sqlite'}" in done.stdout
    record = json.loads(record_file.read_text())
    assert record["random_weights"] is False and record["load_seconds"] > 0
    assert record["usable_devices"][-1] == "cpu"
    assert [run["resolution"] for run in record["runs"]] == [32, 48]
    for run in record["runs"]:
        assert run["error"] is None
        assert run["vertices"] > 0 and run["peak_rss_bytes"] > 0
        assert set(run["stage_seconds"]) == DEFAULT_STAGES


def test_a_resolution_whose_projected_memory_exceeds_the_machine_is_skipped():
    import psutil

    from sidecar.benchmark import ResolutionRun, _beyond_memory

    total = psutil.virtual_memory().total
    heavy = ResolutionRun(512, peak_rss_bytes=total // 2, vertices=26_000_000)
    skipped = _beyond_memory(heavy, 1024, baseline=0, sparse=True)
    assert skipped is not None and skipped.resolution == 1024 and "26,000,000 vertices" in skipped.skipped
    light = ResolutionRun(512, peak_rss_bytes=total // 100, vertices=600_000)
    assert _beyond_memory(light, 1024, baseline=0, sparse=True) is None
    assert _beyond_memory(light, 1024, baseline=0, sparse=False) is None  # 8x of 1 % still fits
    assert _beyond_memory(None, 256, baseline=0, sparse=True) is None
