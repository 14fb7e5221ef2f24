"""A sidecar the add-on started dies (kill -9): the tick that follows its exit fails the running job with its
exit code and log, the next Generate starts it again, and a batch it dies under restarts it once and ends with
every model.
"""

import os
import signal

import bpy
from addon_support import config, generate, install_to_start_sidecars, module, session, tick_until
from harness import run


def kill(process) -> None:
    """kill -9, and wait until it has exited without reaping it (WNOWAIT): noticing is the add-on's part."""
    os.kill(process.pid, signal.SIGKILL)
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)


def main() -> dict:
    settings = config()
    install_to_start_sidecars(settings, auto_start=True)
    report: dict = {}
    assert bpy.ops.triposr.start_sidecar(wait=False) == {"FINISHED"}
    tick_until(lambda: session().connected, timeout=120)

    job = generate(settings["images"][0], 256)
    tick_until(lambda: job.state.name == "RUNNING", timeout=120)
    killed = session().launcher.process
    kill(killed)
    ticks: list[float] = []
    tick_until(lambda: job.state.finished, timeout=30, durations=ticks)
    report["killed"] = {
        "ticks_after_exit": len(ticks),
        "state": job.state.name,
        "error": job.error,
        "connected": session().connected,
        "problem": session().problem,
        "log": str(session().launcher.log_path),
    }

    job = generate(settings["images"][0], 32)  # Start Automatically: the next job brings it back
    report["next_job"] = {"first_state": job.state.name, "starting": session().starting}
    tick_until(lambda: job.state.finished, timeout=120)
    report["next_job"] |= {"state": job.state.name, "error": job.error, "objects": job.objects}
    report["restarted"] = session().launcher.process is not killed

    bpy.context.scene.triposr.resolution = 64
    assert bpy.ops.triposr.generate_batch(directory=settings["batch"], wait=False) == {"FINISHED"}
    batch = session().batch
    tick_until(lambda: sum(item.state is not None and item.state.name == "DONE" for item in batch.items) >= 2)
    in_flight = [item.name for item in batch.items if item.state is not None and not item.state.finished]
    processes = {session().launcher.process}
    kill(session().launcher.process)
    tick = module("tick").tick
    while batch.running or session().tracker.ready():
        tick()
        processes.add(session().launcher.process)
        assert len(processes - {None}) <= 2, "more than one restart"
    report["batch"] = {
        "in_flight_at_kill": in_flight,
        "processes": len(processes - {None}),
        "items": [
            {"name": item.name, "state": item.state.name, "resent": item.resent, "tries": item.tries}
            for item in batch.items
        ],
        "models": [obj.name for obj in bpy.data.collections[batch.collection].all_objects],
    }
    assert bpy.ops.triposr.stop_sidecar() == {"FINISHED"}
    return report


run(main)
