"""Batches against a real sidecar: a folder of images becomes collections on a grid; running it again into
the same file skips what is there already; in a new file it takes every model from the sidecar's store; a
broken image among others is reported while the rest arrive; Recent Results lists each model once, however
many jobs failed since; a folder of GLBs comes back in the same layout.
"""

import glob
import os
import shutil

import bpy
from addon_support import captured_output, config, describe, draw_panels, install, session, tick_until
from harness import run
from mathutils import Vector


def footprint(obj) -> list[list[float]]:
    """The model's extent in world X and Y: [[min x, min y], [max x, max y]]."""
    corners = [obj.matrix_world @ Vector(corner) for corner in obj.bound_box]
    return [
        [min(c.x for c in corners), min(c.y for c in corners)],
        [max(c.x for c in corners), max(c.y for c in corners)],
    ]


def batch_report(batch) -> dict:
    parent = bpy.data.collections[batch.collection] if batch.collection else None
    children = []
    for child in parent.children if parent else []:
        models = [describe(obj) | {"footprint": footprint(obj)} for obj in child.objects]
        children.append({"name": child.name, "models": models})
    return {
        "collection": batch.collection,
        "in_scene": parent is not None and parent.name in bpy.context.scene.collection.children,
        "progress": batch.progress_text(),
        "items": [{"name": i.name, "state": i.state.name, "message": i.message} for i in batch.items],
        "children": children,
    }


def run_batch(folder: str, drawn: dict | None = None):
    assert bpy.ops.triposr.generate_batch(directory=folder, wait=False) == {"FINISHED"}
    batch = session().batch
    if drawn is not None:
        tick_until(lambda: any(item.state and item.state.name == "RUNNING" for item in batch.items))
        draw_panels("batch", drawn)
    tick_until(lambda: not batch.running and not session().tracker.ready(), timeout=180)
    return batch


def main() -> dict:
    settings = config()
    install(settings["zip"], endpoint=settings["endpoint"], auto_start=False)
    report: dict = {"drawn": {}}
    tick_until(lambda: session().connected, timeout=20)
    scene_settings = bpy.context.scene.triposr
    scene_settings.resolution = 32
    bpy.context.scene.cursor.location = (10.0, 0.0, 0.0)

    first = run_batch(settings["good"], report["drawn"])
    report["first"] = batch_report(first)
    report["first_from_store"] = [session().tracker.get(item.job).from_store for item in first.items]
    with captured_output() as output:
        report["same_file"] = sorted(bpy.ops.triposr.generate_batch(directory=settings["good"], wait=False))
    report["same_file_said"] = [line for line in output if line.startswith("Info:")]
    for obj in list(bpy.data.collections[first.items[1].collection].objects):  # the artist deletes one
        bpy.data.objects.remove(obj)
    missing_one = run_batch(settings["good"])
    report["missing_one"] = batch_report(missing_one)

    bpy.ops.wm.read_homefile(use_empty=True)  # File > New
    scene_settings = bpy.context.scene.triposr
    scene_settings.resolution = 32
    bpy.context.scene.cursor.location = (10.0, 0.0, 0.0)
    again = run_batch(settings["good"])
    report["again"] = batch_report(again)
    report["again_from_store"] = [session().tracker.get(item.job).from_store for item in again.items]

    scene_settings.resolution = 40  # other parameters: nothing from the store
    report["mixed"] = batch_report(run_batch(settings["mixed"]))
    run_batch(settings["broken"])  # newer than every model: failures must not push them off Recent Results
    assert bpy.ops.triposr.refresh_results() == {"FINISHED"}
    report["recent"] = [[model["image_sha256"], model["params"]["resolution"]] for model in session().recent]

    glbs = os.path.join(settings["workdir"], "glbs")
    os.makedirs(glbs)
    for path in glob.glob(os.path.join(settings["data_dir"], "results", "*.glb")):
        shutil.copy(path, glbs)
    bpy.context.scene.cursor.location = (0.0, 0.0, 0.0)
    assert bpy.ops.triposr.import_glb_folder(directory=glbs) == {"FINISHED"}
    imported = bpy.data.collections["glbs"]
    report["glb_folder"] = {
        "glbs": len(os.listdir(glbs)),
        "children": [
            [describe(obj) | {"footprint": footprint(obj)} for obj in c.objects] for c in imported.children
        ],
    }
    assert bpy.ops.triposr.import_glb_folder(directory=settings["parented"]) == {"FINISHED"}
    parented = bpy.data.collections["parented"].all_objects
    report["parented"] = [describe(obj) | {"footprint": footprint(obj)} for obj in parented]
    report["materials"] = sorted(material.name for material in bpy.data.materials)
    report["empties"] = [obj.name for obj in bpy.data.objects if obj.type != "MESH"]
    return report


run(main)
