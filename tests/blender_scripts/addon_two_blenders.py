"""Two Blenders at once on one endpoint. The first starts the sidecar; the second, started meanwhile, uses
it for a job of its own without starting another; the first runs a batch, during which the second finds that
it cannot stop the sidecar, and quits; the first's batch goes on to the end, on the same process, which only
the first may stop.

Each Blender runs this script with its role; they signal each other with files in a shared folder.
"""

import os

import bpy
from addon_support import config, install_to_start_sidecars, session, sidecar_processes, tick_until
from harness import run


def signal(folder: str, name: str) -> None:
    with open(os.path.join(folder, name), "w", encoding="utf-8"):
        pass


def wait_for(folder: str, name: str) -> None:
    """Keep ticking, as Blender would, until the other Blender has signalled `name`."""
    tick_until(lambda: os.path.exists(os.path.join(folder, name)), timeout=300)


def first(settings: dict) -> dict:
    folder = settings["signals"]
    assert bpy.ops.triposr.start_sidecar(wait=False) == {"FINISHED"}
    tick_until(lambda: session().connected, timeout=120)
    process = session().launcher.process
    signal(folder, "first_started")
    wait_for(folder, "second_connected")
    bpy.context.scene.triposr.resolution = 64
    assert bpy.ops.triposr.generate_batch(directory=settings["batch"], wait=False) == {"FINISHED"}
    batch = session().batch
    tick_until(lambda: any(item.state is not None and item.state.name == "RUNNING" for item in batch.items))
    signal(folder, "first_running")
    wait_for(folder, "second_quit")
    report = {"running_when_second_quit": batch.running}
    tick_until(lambda: not batch.running and not session().tracker.ready(), timeout=300)
    report |= {
        "items": [item.state.name for item in batch.items],
        "same_process": session().launcher.process is process and process.poll() is None,
        "may_stop": bpy.ops.triposr.stop_sidecar.poll(),
    }
    assert bpy.ops.triposr.stop_sidecar() == {"FINISHED"}
    report["exit_code"] = process.poll()
    return report


def second(settings: dict) -> dict:
    folder = settings["signals"]
    wait_for(folder, "first_started")
    assert bpy.ops.triposr.start_sidecar(wait=False) == {"FINISHED"}
    report = {"took_over": session().launcher.process is not None, "connected": session().connected}
    scene_settings = bpy.context.scene.triposr
    scene_settings.source, scene_settings.filepath, scene_settings.resolution = "FILE", settings["image"], 32
    assert bpy.ops.triposr.generate(wait=False) == {"FINISHED"}
    job = session().tracker.get(session().current)
    tick_until(lambda: job.state.finished, timeout=300)
    report["job"] = job.state.name
    signal(folder, "second_connected")
    wait_for(folder, "first_running")
    report["may_stop"] = bpy.ops.triposr.stop_sidecar.poll()
    report["processes"] = len(sidecar_processes(settings["endpoint"]))
    signal(folder, "second_quit")  # the harness ends this process as it returns
    return report


def main() -> dict:
    settings = config()
    install_to_start_sidecars(settings, auto_start=True)
    return {"first": first, "second": second}[settings["role"]](settings)


run(main)
