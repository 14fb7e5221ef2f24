"""Estimates from recorded runs: which runs count for a stage, how resolutions scale, what memory a job needs,
and the runs' database."""

from __future__ import annotations

import pytest

from shared import estimate_text
from sidecar import measurements as measurements_module
from sidecar.assets.options import AssetOptions
from sidecar.estimates import (
    DEFAULT_MODEL_BYTES,
    DEFAULT_NETWORK_SECONDS,
    MAX_EXPONENT,
    RECENT_RUNS,
    estimate,
    features,
    local_stages,
    peak_memory,
)
from sidecar.measurements import Measurements, Run
from sidecar.pipeline import GenerationParams

DEFAULTS = {"density": 50.0, "bake": 5.0, "encode": 8.0}


def job(resolution=128, **options) -> dict:
    generation = {
        name: options.pop(name) for name in list(options) if name in GenerationParams.__annotations__
    }
    return features(GenerationParams(resolution=resolution, **generation), AssetOptions(**options))


def run(resolution, origin="job", peak=None, sparse=True, **stage_seconds) -> Run:
    params = job(resolution, sparse=sparse)
    return Run("local", "cpu", "net", params, stage_seconds, peak_rss_bytes=peak, origin=origin)


def test_a_resolution_measured_takes_the_median_of_its_runs():
    runs = [run(128, density=2.0), run(128, density=9.0), run(128, density=3.0), run(64, density=0.5)]
    found = estimate(runs, job(128), ("density",), DEFAULTS)
    assert found.stage_seconds["density"] == 3.0
    assert found.basis == "measured"


def test_only_the_newest_runs_count_so_that_estimates_follow_the_machine_as_it_is_now():
    runs = [run(128, density=1.0, encode=0.5)] * RECENT_RUNS + [run(128, density=9.0, encode=4.0)] * 30
    found = estimate(runs, job(128), ("encode", "density"), DEFAULTS)  # newest first, as recorded
    assert found.stage_seconds == {"encode": 0.5, "density": 1.0}


def test_a_resolution_between_two_measured_scales_along_their_power_law():
    runs = [run(128, density=1.0), run(256, density=8.0)]  # the cube: a grid's growth
    found = estimate(runs, job(192), ("density",), DEFAULTS)
    assert found.stage_seconds["density"] == pytest.approx(8.0 * (192 / 256) ** 3)
    assert found.basis == "scaled" and "128 and 256" in found.how


def test_one_measured_resolution_scales_with_the_surface_or_the_grid():
    sparse = estimate([run(128, density=4.0)], job(256), ("density",), DEFAULTS)
    assert sparse.stage_seconds["density"] == pytest.approx(16.0)
    dense_run = Run("local", "cpu", "net", job(128, sparse=False), {"density": 4.0})
    dense = estimate([dense_run], job(256, sparse=False), ("density",), DEFAULTS)
    assert dense.stage_seconds["density"] == pytest.approx(32.0)


def test_the_exponent_two_noisy_runs_imply_is_bounded():
    runs = [run(128, density=0.01), run(256, density=10.0)]
    found = estimate(runs, job(512), ("density",), DEFAULTS)
    assert found.stage_seconds["density"] == pytest.approx(10.0 * 2**MAX_EXPONENT)


def test_a_jobs_runs_count_before_benchs_at_the_same_resolution():
    runs = [
        run(128, origin="bench", density=1.0),
        run(128, density=3.0),
        run(128, origin="bench", density=1.0),
    ]
    assert estimate(runs, job(128), ("density",), DEFAULTS).stage_seconds["density"] == 3.0


def test_a_stage_counts_only_runs_alike_in_what_it_depends_on():
    textured = Run("local", "cpu", "net", job(128, texture=1024), {"bake": 2.0, "density": 1.0})
    found = estimate([textured], job(128, texture=2048), ("density", "bake"), DEFAULTS)
    assert found.stage_seconds["density"] == 1.0  # the texture does not change the field's evaluation
    assert found.stage_seconds["bake"] == DEFAULTS["bake"]  # another texture size bakes differently
    assert found.basis == "default" and "not yet run a job like it" in found.how


def test_a_machine_without_runs_gets_typical_figures_and_is_told_so():
    found = estimate([], job(512), ("encode", "density"), DEFAULTS)
    assert found.stage_seconds == {"encode": 8.0, "density": pytest.approx(50.0 * 4)}
    assert found.basis == "default" and "has not run a job yet" in found.how


def test_the_stages_a_job_runs_follow_its_asset_options():
    assert local_stages(AssetOptions()) == (
        "preprocess", "encode", "density", "cleanup", "colour", "export"
    )  # fmt: skip
    textured = local_stages(AssetOptions(texture=1024, ground=True, cleanup=False))
    assert textured == ("preprocess", "encode", "density", "decimate", "unwrap", "bake", "place", "export")
    assert set(DEFAULT_NETWORK_SECONDS["cpu"]) <= set(local_stages(AssetOptions()))


def test_below_twice_the_coarse_resolution_the_sparse_path_counts_as_the_whole_grid():
    whole = [run(64, density=1.0)]  # the coarse grid is the fine one at 64: the whole grid is evaluated
    assert job(64)["whole_grid"] and not job(128)["whole_grid"]
    assert estimate(whole, job(96), ("density",), DEFAULTS).stage_seconds["density"] == pytest.approx(1.5**3)
    assert estimate(whole, job(128), ("density",), DEFAULTS).basis == "default"


def test_peak_memory_interpolates_and_grows_beyond_the_largest_run():
    runs = [run(64, peak=1_000, sparse=False, density=1.0), run(128, peak=4_000, sparse=False, density=1.0)]
    assert peak_memory(runs, job(32, sparse=False)) == 1_000  # below the smallest: what the network needs
    assert peak_memory(runs, job(128, sparse=False)) == 4_000
    assert 1_000 < peak_memory(runs, job(96, sparse=False)) < 4_000
    grown = 1_000 + 3_000 * (256**3 - 64**3) / (128**3 - 64**3)
    assert peak_memory(runs, job(256, sparse=False)) == int(grown)
    assert peak_memory(runs, job(256)) > DEFAULT_MODEL_BYTES, "runs on the sparse path do not count"


def test_the_database_keeps_the_newest_runs_of_each_lane(tmp_path, monkeypatch):
    monkeypatch.setattr(measurements_module, "MAX_RUNS_PER_LANE", 3)
    measurements = Measurements(tmp_path)
    for index in range(5):
        measurements.add(run(64 + index, density=float(index)))
    measurements.add(Run("replicate", "A100", "tripo-sr", job(), {"predict": 20.0}, cost=0.03))
    # a second writer, as `bench` is beside a running sidecar
    other = Measurements(tmp_path)
    other.add(run(200, origin="bench", density=9.0))
    other.close()
    local = measurements.runs("local", "net")
    assert [r.params["resolution"] for r in local] == [200, 68, 67]
    assert local[0].origin == "bench" and local[1].stage_seconds == {"density": 4.0}
    assert [r.cost for r in measurements.runs("replicate")] == [0.03]
    assert measurements.runs("local", "another network") == []
    measurements.close()


def test_an_estimate_in_words():
    reply = {
        "count": 24,
        "local": {"seconds": 40.0, "batch_seconds": 960.0, "memory": {"fits": False, "needed_bytes": 9e9,
                  "free_bytes": 4e9}},
        "replicate": {"seconds": 15.0, "batch_seconds": 80.0, "cost": 0.04, "batch_cost": 0.96},
    }  # fmt: skip
    assert estimate_text.summary(reply) == "24 images: ≈ 16 min here · ≈ 80 s, $0.96 on Replicate"
    assert estimate_text.summary({**reply, "count": 1, "replicate": None}) == "≈ 40 s here"
    assert "about 9.0 GB more and 4.0 GB is free" in estimate_text.memory_warning(reply)
