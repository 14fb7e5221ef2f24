"""Two Blenders at once on one endpoint. The first starts the sidecar; the second, started meanwhile, uses
it for a job of its own without starting another; the first runs a batch, during which the second finds that
it cannot stop the sidecar; the first's batch goes on to the end on the same process, which only the first may
stop, and the first quits without stopping it. The sidecar stays up for the second, whose next job runs on
it; the test sees it end once the second has quit too.

Each Blender runs this script with its role; they signal each other with files in a shared folder.
"""

import json
import os

import bpy
from addon_support import config, generate, install_to_start_sidecars, session, sidecar_processes, tick_until
from harness import run


def signal(folder: str, name: str, **contents) -> None:
    with open(os.path.join(folder, name), "w", encoding="utf-8") as stream:
        json.dump(contents, stream)


def wait_for(folder: str, name: str) -> dict:
    """Keep ticking, as Blender would, until the other Blender has signalled `name`; what it said."""
    tick_until(lambda: os.path.exists(os.path.join(folder, name)), timeout=300)
    with open(os.path.join(folder, name), encoding="utf-8") as stream:
        return json.load(stream)


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
    wait_for(folder, "second_checked")
    report = {"running_when_second_checked": batch.running}
    tick_until(lambda: not batch.running and not session().tracker.ready(), timeout=300)
    report |= {
        "items": [item.state.name for item in batch.items],
        "same_process": session().launcher.process is process and process.poll() is None,
        "may_stop": bpy.ops.triposr.stop_sidecar.poll(),
        "sidecar": process.pid,
    }
    # Quits with the sidecar running (the harness ends this process as it returns): the second still uses it.
    signal(folder, "first_quits", pid=os.getpid(), log=str(session().launcher.log_path))
    return report


def second(settings: dict) -> dict:
    folder = settings["signals"]
    wait_for(folder, "first_started")
    assert bpy.ops.triposr.start_sidecar(wait=False) == {"FINISHED"}
    report = {"took_over": session().launcher.process is not None, "connected": session().connected}
    job = generate(settings["image"], 32)
    tick_until(lambda: job.state.finished, timeout=300)
    report["job"] = job.state.name
    signal(folder, "second_connected")
    wait_for(folder, "first_running")
    report["may_stop"] = bpy.ops.triposr.stop_sidecar.poll()
    report["processes"] = sidecar_processes(settings["endpoint"])
    signal(folder, "second_checked")

    first_blender = wait_for(folder, "first_quits")
    # The sidecar's log says when it saw the first Blender's process end, and whom it stays up for.
    staying = f"Process {first_blender['pid']} has exited; staying up for [{os.getpid()}]"
    tick_until(lambda: staying in read(first_blender["log"]), timeout=120)
    job = generate(settings["other_image"], 32)  # not in the store: the model runs
    tick_until(lambda: job.state.finished, timeout=300)
    report["after_first_quit"] = {
        "job": job.state.name,
        "from_store": job.from_store,
        "started_one": session().launcher.process is not None,
        "processes": sidecar_processes(settings["endpoint"]),
    }
    return report


def read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as stream:
        return stream.read()


def main() -> dict:
    settings = config()
    install_to_start_sidecars(settings, auto_start=True)
    return {"first": first, "second": second}[settings["role"]](settings)


run(main)
