"""How long the add-on's ticks take while a 20 MB result arrives and is imported.

A real job's GLB in the sidecar's store is swapped for a 20 MB one, then imported again from the store: once
handed over as a path (what a sidecar on this computer does) and once sent through the socket as bytes.
"""

import os
import shutil
import time

import bpy
from addon_support import config, install, module, session, tick_until
from harness import run


def measure(job_id: str, name: str) -> dict:
    """Every tick's duration until the model is in the scene, and which tick imported it."""
    tick = module("tick").tick
    assert bpy.ops.triposr.import_result(job=job_id, name=name, wait=False) == {"FINISHED"}
    job = session().tracker.get(job_id)
    durations, arrived, imported = [], None, None
    deadline = time.monotonic() + 120
    while not job.state.finished:
        assert time.monotonic() < deadline
        before = job.state.name
        started = time.perf_counter()
        tick()
        durations.append(time.perf_counter() - started)
        if before != "READY" and job.state.name == "READY":
            arrived = len(durations) - 1
        if before == "READY" and job.state.finished:
            imported = len(durations) - 1
        time.sleep(0.01)
    assert job.state.name == "DONE", job.error
    others = [seconds for index, seconds in enumerate(durations) if index != imported]
    return {
        "ticks": len(durations),
        "arrival_tick": durations[arrived],
        "import_tick": durations[imported],
        "longest_other_tick": max(others),
        "vertices": len(bpy.data.objects[job.objects[0]].data.vertices),
    }


def main() -> dict:
    settings = config()
    install(settings["zip"], endpoint=settings["endpoint"], auto_start=False)
    tick_until(lambda: session().connected, timeout=20)
    scene_settings = bpy.context.scene.triposr
    scene_settings.source, scene_settings.filepath, scene_settings.resolution = "FILE", settings["image"], 32
    bpy.ops.triposr.generate(wait=True)
    job_id = session().current
    shutil.copy(settings["big_glb"], os.path.join(settings["data_dir"], "results", f"{job_id}.glb"))

    report = {"glb_bytes": os.path.getsize(settings["big_glb"])}
    report["path"] = measure(job_id, "big_path")
    type(session()).deliver = property(lambda self: "bytes")  # as for a sidecar on another computer
    report["bytes"] = measure(job_id, "big_bytes")
    return report


run(main)
