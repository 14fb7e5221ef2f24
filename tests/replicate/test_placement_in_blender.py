"""A batch under the Fastest policy from the add-on, in real Blender: a sidecar with the local model and the
fake Replicate chooses where each image runs, within the budget set in the panel, and the Batch panel says
where each ran and why."""

from __future__ import annotations

from blender_env import run_script
from fake_replicate import TOKEN
from meshes import as_tripo_sr_on_replicate
from replicate_harness import SIDECAR_ARGS, start_sidecar
from service_harness import unique_png

from sidecar.backends.models import DEFAULT_PRICE_PER_SECOND

IMAGES = 6
MODEL_COST = 28.0 * DEFAULT_PRICE_PER_SECOND  # what the fake bills a prediction
BUDGET = 0.10  # pays for two


def test_a_placed_batch_shows_where_each_image_ran_and_keeps_its_budget(
    blender, addon_zip, launcher, fake, image, tmp_path
):
    fake.behaviour.mesh = as_tripo_sr_on_replicate()
    sidecar = start_sidecar(launcher, fake.url, TOKEN, *SIDECAR_ARGS)
    folder = tmp_path / "folder"
    folder.mkdir()
    for index in range(IMAGES):
        (folder / f"object_{index}.png").write_bytes(unique_png(image))
    report = run_script(
        blender,
        "addon_placement.py",
        tmp_path,
        zip=str(addon_zip),
        endpoint=sidecar.endpoint,
        batch=str(folder),
        budget=BUDGET,
    )
    assert {"fastest", "cheapest"} <= set(report["offered"])
    assert "[budget]" in report["main_text"] and "[deadline]" not in report["main_text"]
    forecast = " ".join(report["estimate_text"])
    assert "Fastest: ≈ " in forecast and "here" in forecast, report["estimate_text"]
    assert report["summary"] == f"{IMAGES} made", report["items"]
    batch_ids = {params["batch"] for params in report["sent_params"]}
    assert len(batch_ids) == 1 and all(params["budget"] == BUDGET for params in report["sent_params"])

    places = [item["placement"]["backend"] for item in report["items"]]
    assert set(places) <= {"local", "replicate"}
    on_replicate = places.count("replicate")
    assert on_replicate <= int(BUDGET // MODEL_COST), places
    assert report["cost"] == on_replicate * round(MODEL_COST, 4) <= BUDGET
    for item in report["items"]:
        where = "on Replicate: " if item["placement"]["backend"] == "replicate" else "here: "
        assert item["shown"].startswith(where + "fastest"), item
        # the panel wraps its lines to the sidebar's width
        assert f" · {item['shown']}" in " ".join(report["batch_text"]), report["batch_text"]
