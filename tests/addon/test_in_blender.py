"""The extension in real Blender (the bpy wheel), installed from build.py's zip, with a real sidecar."""

from __future__ import annotations

import json
import shutil
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pytest
import trimesh
from addon_helpers import SIDECAR_PYTHON, TINY, assert_panels_drew_cleanly, make_images
from blender_env import run_script
from sidecar_process import free_port

from sidecar.assets.colour import srgb_to_linear
from sidecar.assets.surface import Surface
from sidecar.glb import surface_to_glb
from sidecar.processes import is_alive

TOKEN = "r8_TripoSRTestTokenThatMustNeverBeSaved"
MATERIAL = "TripoSR Vertex Colour"


def sidecar_to_start(tmp_path: Path) -> dict:
    """Settings for a script whose add-on starts the sidecar itself: a free port, the tiny weights."""
    return {
        "endpoint": f"tcp://127.0.0.1:{free_port()}",
        "python": str(SIDECAR_PYTHON),
        "weights": str(TINY),
        "data_dir": str(tmp_path / "data"),
    }


def test_generate_cancel_undo_and_the_token(blender, addon_zip, running_sidecar, tmp_path):
    images = make_images(tmp_path / "images", 3)
    (corrupt,) = make_images(tmp_path / "broken", 1, corrupt=0)
    report = run_script(
        blender,
        "addon_generate.py",
        tmp_path,
        zip=str(addon_zip),
        endpoint=running_sidecar.endpoint,
        images=[str(path) for path in images],
        corrupt=str(corrupt),
        token=TOKEN,
    )
    assert report["poll_without_image"] is False and report["poll_while_running"] is False
    assert report["first_job"]["state"] == "DONE", report["first_job"]

    # One mesh, named after the image, in a new collection named after it, at the cursor, with the shared
    # material: the same on every Blender version, whatever its importer does.
    first = report["first"]
    assert first["in_scene"]
    (model,) = first["objects"]
    assert model == {
        **model,
        "name": "object_1",
        "mesh": "object_1",
        "type": "MESH",
        "parent": None,
        "collections": ["object_1"],
        "location": [1.0, 2.0, 0.5],
        "material": MATERIAL,
        "material_slots": 1,
        "nodes": ["ShaderNodeBsdfPrincipled", "ShaderNodeOutputMaterial", "ShaderNodeVertexColor"],
        "color_attributes": [["Color", "CORNER", "BYTE_COLOR"]],
        "selected": True,
        "active": True,
    }
    assert model["vertices"] > 100
    assert report["after_first"]["objects"] == ["object_1"], "no empties or other strays"
    assert report["after_first"]["materials"] == [MATERIAL]

    (second,) = report["second"]["objects"]
    assert second["location"] == [-3.0, 0.0, 0.0] and second["material"] == MATERIAL
    assert report["after_second"]["materials"] == [MATERIAL], "one material, reused: no DefaultMaterial.001"
    assert report["after_undo"] == report["after_first"], "one undo step takes one import back"

    assert report["cancelled_job"] == "CANCELLED", report["cancelled_at"]
    assert report["cancel_changes"] is False

    broken = report["broken_job"]
    assert broken["state"] == "FAILED" and broken["code"].startswith("image_"), broken
    assert report["recent"], "the sidecar lists what it made"
    (again,) = report["reimported"]
    assert again["material"] == MATERIAL and again["location"] == [0.0, 5.0, 0.0]

    assert report["token_in_blend"] is False
    assert TOKEN.encode() not in (tmp_path / "scene.blend").read_bytes()
    assert_panels_drew_cleanly(report, {"idle", "running", "done", "error"})


def overlapping(models: list[dict]) -> list[tuple[str, str]]:
    """Pairs of models whose footprints on the ground overlap."""
    pairs = []
    for index, a in enumerate(models):
        for b in models[index + 1 :]:
            (a_low, a_high), (b_low, b_high) = a["footprint"], b["footprint"]
            if all(a_low[axis] < b_high[axis] and b_low[axis] < a_high[axis] for axis in (0, 1)):
                pairs.append((a["name"], b["name"]))
    return pairs


def with_parent_empty(glb: bytes, translation: list[float]) -> bytes:
    """The GLB with its mesh node under a new root node that moves it, as other GLB writers lay files out."""
    length = struct.unpack_from("<I", glb, 12)[0]
    tree = json.loads(glb[20 : 20 + length])
    tree["nodes"].append(
        {"name": "world", "translation": translation, "children": tree["scenes"][0]["nodes"]}
    )
    tree["scenes"][0]["nodes"] = [len(tree["nodes"]) - 1]
    text = json.dumps(tree).encode()
    text += b" " * (-len(text) % 4)
    rest = glb[20 + length :]
    body = struct.pack("<II", len(text), 0x4E4F534A) + text + rest
    return struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body


def test_batches_of_images_and_of_glbs(blender, addon_zip, running_sidecar, tmp_path):
    good = tmp_path / "good"
    make_images(good, 6)
    mixed = tmp_path / "mixed"
    make_images(mixed, 6, corrupt=2)
    broken = tmp_path / "broken"
    broken.mkdir()
    for index in range(25):
        (broken / f"broken_{index}.png").write_bytes(b"not an image %d" % index)
    parented = tmp_path / "parented"
    parented.mkdir()
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    colours = np.tile(srgb_to_linear(np.array([200, 120, 40]) / 255), (len(sphere.vertices), 1))
    glb = surface_to_glb(Surface(sphere.vertices, sphere.faces, colours.astype(np.float32)))
    (parented / "lifted.glb").write_bytes(with_parent_empty(glb, [0.0, 1.0, 0.0]))
    wide = Surface(sphere.vertices * 6.0, sphere.faces, colours.astype(np.float32))  # wider than a grid cell
    (parented / "wide.glb").write_bytes(surface_to_glb(wide))
    report = run_script(
        blender,
        "addon_batch.py",
        tmp_path,
        zip=str(addon_zip),
        endpoint=running_sidecar.endpoint,
        good=str(good),
        mixed=str(mixed),
        broken=str(broken),
        data_dir=str(running_sidecar.data_dir),
        parented=str(parented),
    )
    first = report["first"]
    names = [f"object_{index}" for index in range(1, 7)]
    assert first["in_scene"] and first["progress"] == "6 made"
    assert [child["name"] for child in first["children"]] == names, "one collection per image, in order"
    models = [model for child in first["children"] for model in child["models"]]
    assert [model["name"] for model in models] == names
    assert all(model["collections"] == [model["name"]] and model["material"] == MATERIAL for model in models)
    assert overlapping(models) == []
    rows = sorted({model["location"][1] for model in models})
    columns = sorted({model["location"][0] for model in models})
    assert (len(rows), len(columns)) == (2, 3), "six models on a 3 by 2 grid from the cursor"
    assert min(columns) == 10.0 and max(rows) == 0.0
    assert not any(report["first_from_store"]), "the first run makes every model"

    assert report["same_file"] == ["CANCELLED"], "the same batch into the same file: nothing to make"
    assert report["same_file_said"] == ["Info: The models of all 6 images are in this file already"]
    missing_one = report["missing_one"]
    assert [item["name"] for item in missing_one["items"]] == ["object_2"], "only the deleted one is made"
    assert missing_one["progress"] == "1 made, 5 already in this file"

    assert all(report["again_from_store"]), "in a new file, the batch makes none: all six come from the store"
    assert {item["message"] for item in report["again"]["items"]} == {"from the store"}
    assert [child["name"] for child in report["again"]["children"]] == names

    mixed = report["mixed"]
    states = {item["name"]: (item["state"], item["message"]) for item in mixed["items"]}
    assert states.pop("object_3")[0] == "FAILED"
    assert {state for state, _ in states.values()} == {"DONE"}, states
    assert len(mixed["children"]) == 5 and mixed["progress"] == "5 made, 1 failed"
    recent = report["recent"]
    assert len(recent) == 11 and len({json.dumps(model) for model in recent}) == 11, "6 + 5 models, each once"

    glb_models = [model for child in report["glb_folder"]["children"] for model in child]
    assert len(glb_models) == report["glb_folder"]["glbs"] == 11, "6 + 5 models made; the store reuses files"
    assert overlapping(glb_models) == []
    lifted, wide = report["parented"]
    # glTF's up is +Y, Blender's +Z: the parent lifted the sphere, and it stays lifted without the parent.
    assert lifted["parent"] is None and lifted["location"] == [0.0, 0.0, 1.0]
    assert overlapping([lifted, wide]) == [], "the grid spreads out for a model wider than its cells"
    assert report["materials"] == [MATERIAL] and report["empties"] == []
    assert_panels_drew_cleanly(report, {"batch"})


def test_the_sidecar_killed_restarted_and_stopped(blender, addon_zip, running_sidecar, tmp_path):
    (image,) = make_images(tmp_path / "images", 1)
    heartbeat = 3.0
    report = run_script(
        blender,
        "addon_sidecar.py",
        tmp_path,
        zip=str(addon_zip),
        endpoint=running_sidecar.endpoint,
        pid=running_sidecar.process.pid,
        python=str(SIDECAR_PYTHON),
        weights=str(TINY),
        data_dir=str(running_sidecar.data_dir),
        heartbeat=heartbeat,
        image=str(image),
    )
    assert report["started_over_running"] is False and report["processes_before"] == 1, "no second copy"

    assert report["lost_job"]["state"] == "FAILED" and report["lost_job"]["code"] == "sidecar_lost"
    assert report["noticed_after"] <= heartbeat + 1.0, "the panel says so within the heartbeat timeout"
    assert "Start" in report["problem"]
    assert report["longest_tick"] < 0.1, "Blender stays usable while the sidecar is gone"
    assert report["cube"] == "Cube"
    assert report["generate_allowed"] is False, "Generate explains that there is no sidecar"

    assert report["restarted"]["log"]
    assert report["after_restart"]["state"] == "DONE", report["after_restart"]
    assert report["after_restart"]["objects"] == ["object_1"]
    assert report["second_start_same_process"] and report["processes_after_second_start"] == 1

    assert report["stopped_exit_code"] == 0, "Stop shuts the sidecar down cleanly"
    assert report["connected_after_stop"] is False and report["processes_after_stop"] == 0
    assert report["auto_start"] == {"first_state": "WAITING", "starting": True, "state": "DONE", "error": ""}
    assert_panels_drew_cleanly(report, {"no sidecar", "starting"})


def big_glb(path: Path) -> Path:
    """A GLB of about 20 MB, shaped as the sidecar writes them: a sphere with linear vertex colours."""
    sphere = trimesh.creation.uv_sphere(radius=0.8, count=[424, 424])
    colours = np.random.default_rng(0).random((len(sphere.vertices), 3), dtype=np.float32)
    path.write_bytes(surface_to_glb(Surface(sphere.vertices, sphere.faces, colours)))
    return path


def test_ticks_while_a_20_mb_result_arrives(blender, addon_zip, running_sidecar, tmp_path, record_property):
    (image,) = make_images(tmp_path / "images", 1)
    report = run_script(
        blender,
        "addon_tick.py",
        tmp_path,
        zip=str(addon_zip),
        endpoint=running_sidecar.endpoint,
        image=str(image),
        data_dir=str(running_sidecar.data_dir),
        big_glb=str(big_glb(tmp_path / "big.glb")),
    )
    assert 19e6 < report["glb_bytes"] < 22e6
    for delivery in ("path", "bytes"):
        figures = report[delivery]
        record_property(delivery, figures)
        print(
            f"\nBlender {blender.series}, {report['glb_bytes'] / 1e6:.1f} MB GLB as {delivery}: "
            f"{figures['vertices']:,} vertices; arrival tick {figures['arrival_tick'] * 1000:.1f} ms, "
            f"import tick {figures['import_tick'] * 1000:.0f} ms, longest other tick "
            f"{figures['longest_other_tick'] * 1000:.1f} ms over {figures['ticks']} ticks"
        )
        assert figures["vertices"] > 300_000
        # Taking the result off the socket and every tick but the import's stay short; the import itself is
        # Blender's glTF importer at work, measured and reported.
        assert figures["arrival_tick"] < 0.05 and figures["longest_other_tick"] < 0.05


def test_a_sidecar_that_dies_is_seen_at_once_and_a_batch_restarts_it(blender, addon_zip, tmp_path):
    images = make_images(tmp_path / "images", 6)
    report = run_script(
        blender,
        "addon_dead_sidecar.py",
        tmp_path,
        zip=str(addon_zip),
        **sidecar_to_start(tmp_path),
        images=[str(path) for path in images],
        batch=str(tmp_path / "images"),
    )
    killed = report["killed"]
    assert killed["ticks_after_exit"] == 1, "the first tick after the exit fails the job, not the heartbeat"
    assert killed["state"] == "FAILED" and not killed["connected"]
    expected = f"The sidecar stopped (exit code -9, SIGKILL); its log: {killed['log']}"
    assert killed["error"] == killed["problem"] == expected

    assert report["next_job"]["first_state"] == "WAITING" and report["next_job"]["starting"]
    assert report["next_job"]["state"] == "DONE" and report["restarted"], report["next_job"]

    batch = report["batch"]
    assert batch["processes"] == 2, "one automatic restart"
    assert [item["state"] for item in batch["items"]] == ["DONE"] * 6, batch["items"]
    # object_1 is there from the jobs before: the batch's is object_1.001
    assert sorted(name.split(".")[0] for name in batch["models"]) == [f"object_{i}" for i in range(1, 7)]
    resent = [item["name"] for item in batch["items"] if item["resent"]]
    assert resent and set(resent) <= set(batch["in_flight_at_kill"]), "only what the death took goes again"
    assert all(item["tries"] == 1 + item["resent"] for item in batch["items"]), "once, to the new sidecar"


def test_settings_say_what_to_fix_and_when_to_restart(blender, addon_zip, tmp_path):
    other = tmp_path / "other-weights"
    shutil.copytree(TINY, other)
    report = run_script(
        blender,
        "addon_settings.py",
        tmp_path,
        zip=str(addon_zip),
        **sidecar_to_start(tmp_path),
        other_weights=str(other),
        missing_weights=str(tmp_path / "no-weights"),
    )
    typed = report["typed_without_tcp"]
    assert "lacks its tcp://" in typed["problem"] and "Set Endpoint in Edit > Preferences" in typed["problem"]
    assert typed["generate_allowed"] is False and typed["start_allowed"] is False
    tracebacks = [line for line in report["output"] if "Traceback" in line or "ZMQError" in line]
    assert tracebacks == [], report["output"]
    assert report["fixed"] in ("", f"No sidecar answers at {report['endpoint']}."), "fixed: the sentence goes"

    assert report["restart_needed"] == "Weights"
    assert report["restarted"] == {
        "new_process": True,
        "first_exit": 0,
        "restart_needed": "",
        "weights": str(other),
    }
    weights_error = report["weights_error"]
    assert "--" not in weights_error and "Set Weights in Edit > Preferences" in weights_error, weights_error
    assert_panels_drew_cleanly(report, {"bad endpoint", "restart needed"})


def test_the_status_bar_and_reports_tell_an_artist_with_the_sidebar_closed(
    blender, addon_zip, running_sidecar, tmp_path
):
    (image,) = make_images(tmp_path / "images", 1)
    (corrupt,) = make_images(tmp_path / "broken", 1, corrupt=0)
    make_images(tmp_path / "mixed", 3, corrupt=1)
    report = run_script(
        blender,
        "addon_status.py",
        tmp_path,
        zip=str(addon_zip),
        endpoint=running_sidecar.endpoint,
        image=str(image),
        corrupt=str(corrupt),
        batch=str(tmp_path / "mixed"),
    )
    assert report["hooked"], "the add-on draws in Blender's status bar"
    job = report["job"]
    bars = [(text, factor) for text, factor in job["status"] if factor is not None]
    assert bars and all(text.startswith("TripoSR object_1: ") for text, _ in bars), job["status"]
    assert job["status"][-1] == ["TripoSR object_1: done", None]
    assert job["reports"] == ["Info: object_1: done"]
    assert report["after_job"] == ["TripoSR object_1: done", None], "the end stays in view a while"

    failed = report["failed_job"]
    assert failed["reports"] == [f"Error: object_1 failed: {failed['error']}"]

    batch = report["batch"]
    assert ["TripoSR mixed: 1 / 3: 1 made", 1 / 3] in batch["status"] or any(
        text.startswith("TripoSR mixed: ") and factor is not None for text, factor in batch["status"]
    ), batch["status"]
    assert batch["reports"] == ["Info: Batch mixed: 2 made, 1 failed"], batch["reports"]
    assert batch["after"] == ["TripoSR Batch mixed: 2 made, 1 failed", None]
    assert job["complaints"] == failed["complaints"] == batch["complaints"] == []


def test_a_model_lands_only_in_the_file_it_was_made_for(blender, addon_zip, running_sidecar, tmp_path):
    (image,) = make_images(tmp_path / "images", 1)
    report = run_script(
        blender,
        "addon_files.py",
        tmp_path,
        zip=str(addon_zip),
        endpoint=running_sidecar.endpoint,
        image=str(image),
    )
    elsewhere = report["made_elsewhere"]
    assert elsewhere["state"] == "KEPT" and elsewhere["objects"] == [], "none lands in the file opened since"
    assert elsewhere["reports"] == [
        "Info: object_1 was made for the file open before: import it from Recent Results"
    ]
    assert report["made_here"] == {"state": "DONE", "objects": ["object_1"]}
    assert report["kept_job"] in report["recent"]
    assert report["imported"] == ["kept", "object_1"]


def test_two_blenders_share_a_sidecar_that_only_its_starter_stops(blender, addon_zip, tmp_path):
    # ... and that stays up while either of them is open: the second's jobs go on after the first quits.
    images = make_images(tmp_path / "images", 4)
    signals = tmp_path / "signals"
    signals.mkdir()
    shared = {
        "zip": str(addon_zip),
        **sidecar_to_start(tmp_path),
        "signals": str(signals),
        "batch": str(tmp_path / "images"),
        "image": str(images[0]),
        "other_image": str(images[1]),
    }
    roles = ("first", "second")
    for role in roles:
        (tmp_path / role).mkdir()
    with ThreadPoolExecutor(2) as pool:  # two Blender processes at once
        script = "addon_two_blenders.py"
        runs = [pool.submit(run_script, blender, script, tmp_path / r, role=r, **shared) for r in roles]
        first = runs[0].result()
        sidecar = psutil.Process(first["sidecar"])  # the first Blender has quit; the second still runs
        second = runs[1].result()
    assert second["took_over"] is False and second["connected"], "the second uses the first one's sidecar"
    assert second["job"] == "DONE" and second["processes"] == [first["sidecar"]]
    assert second["may_stop"] is False, "only the Blender that started the sidecar stops it"
    assert first["running_when_second_checked"], "the second looked while the first's batch ran"
    assert first["items"] == ["DONE"] * 4 and first["same_process"] and first["may_stop"]
    assert second["after_first_quit"] == {
        "job": "DONE",
        "from_store": False,
        "started_one": False,
        "processes": [first["sidecar"]],
    }, "the first one's sidecar ran the second's job after the first had quit"
    wait_until_exited(sidecar, timeout=60)  # the last Blender that used it has quit


def wait_until_exited(process: psutil.Process, timeout: float) -> None:
    """Not psutil's wait(): it waits for a process that no one reaps, and a zombie has exited."""
    deadline = time.monotonic() + timeout
    while is_alive(process):
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"process {process.pid} still ran {timeout} s after the last Blender quit")
        time.sleep(0.1)


def test_a_first_run_shows_what_is_missing_and_where_to_set_it(blender, addon_zip, tmp_path):
    (image,) = make_images(tmp_path / "images", 1)
    report = run_script(
        blender,
        "addon_first_run.py",
        tmp_path,
        zip=str(addon_zip),
        **sidecar_to_start(tmp_path),
        command=str(tmp_path / "nowhere" / "triposr-sidecar"),
        missing_weights=str(tmp_path / "weights"),
        image=str(image),
    )
    first_run = report["first_run"]
    assert [preference for preference, _ in first_run["missing"]] == ["Command", "Weights"]
    assert first_run["missing"][0][1] == f"There is no program at {tmp_path / 'nowhere' / 'triposr-sidecar'}."
    assert first_run["generate_allowed"] is False
    assert report["set_up"] == {"missing": [], "generate_allowed": True}
    assert_panels_drew_cleanly(report, {"first run"})
