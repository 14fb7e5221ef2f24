"""Generate from the panel against a real sidecar, as an artist would, and report what the scene holds.

One model lands at the cursor in its own collection; a second shares the first's material; undo takes an
import back in one step; Cancel leaves the scene as it was; a broken image is reported; a past result
imports again; the Replicate token stays out of a saved .blend. The panels are drawn in each state on the way.
"""

import os

import bpy
from addon_support import (
    config,
    describe,
    draw_panels,
    install,
    scene_state,
    session,
    set_preferences,
    tick_for,
    tick_until,
)
from harness import run


def generate(image: str, resolution: int):
    settings = bpy.context.scene.triposr
    settings.source, settings.filepath, settings.resolution = "FILE", image, resolution
    assert bpy.ops.triposr.generate(wait=False) == {"FINISHED"}
    return session().tracker.get(session().current)


def collection_report(name: str) -> dict:
    collection = bpy.data.collections.get(name)
    if collection is None:
        return {}
    return {
        "in_scene": collection.name in bpy.context.scene.collection.children,
        "objects": [describe(obj) for obj in collection.objects],
    }


def main() -> dict:
    settings = config()
    install(settings["zip"], endpoint=settings["endpoint"], auto_start=False, heartbeat_timeout=10.0)
    report: dict = {"drawn": {}}
    drawn = report["drawn"]
    tick_until(lambda: session().connected, timeout=20)
    report["poll_without_image"] = bpy.ops.triposr.generate.poll()
    draw_panels("idle", drawn)

    first, second, third = settings["images"][:3]
    bpy.context.scene.cursor.location = (1.0, 2.0, 0.5)
    job = generate(first, 32)
    report["poll_while_running"] = bpy.ops.triposr.generate.poll()
    draw_panels("running", drawn)
    tick_until(lambda: job.state.finished)
    report["first_job"] = {"state": job.state.name, "error": job.error, "summary": job.summary()}
    report["first"] = collection_report(job.name)
    draw_panels("done", drawn)
    report["after_first"] = scene_state()

    bpy.context.scene.cursor.location = (-3.0, 0.0, 0.0)
    job = generate(second, 32)
    tick_until(lambda: job.state.finished)
    report["second"] = collection_report(job.name)
    report["after_second"] = scene_state()
    bpy.ops.ed.undo()
    report["after_undo"] = scene_state()

    before = scene_state()
    job = generate(third, 256)  # long enough to cancel on the way
    tick_until(lambda: job.state.name == "RUNNING")
    report["cancelled_at"] = job.progress_text()
    bpy.ops.triposr.cancel()
    tick_until(lambda: job.state.finished)
    tick_for(1.0)  # and nothing arrives later either
    report["cancelled_job"] = job.state.name
    report["cancel_changes"] = before != scene_state()

    job = generate(settings["corrupt"], 32)
    tick_until(lambda: job.state.finished)
    report["broken_job"] = {"state": job.state.name, "error": job.error, "code": job.error_code}
    draw_panels("error", drawn)

    bpy.ops.triposr.refresh_results()
    recent = session().recent
    report["recent"] = [record.get("filename") for record in recent]
    bpy.context.scene.cursor.location = (0.0, 5.0, 0.0)
    name = os.path.splitext(recent[0]["filename"])[0]
    existing = set(bpy.data.objects)
    bpy.ops.triposr.import_result(job=recent[0]["job"], name=name, wait=True)
    report["reimported"] = [describe(obj) for obj in bpy.data.objects if obj not in existing]

    set_preferences(replicate_token=settings["token"])
    path = os.path.join(settings["workdir"], "scene.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    with open(path, "rb") as stream:
        report["token_in_blend"] = settings["token"].encode() in stream.read()
    return report


run(main)
