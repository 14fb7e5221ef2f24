"""The sidecar's life seen from Blender: Start finds one that runs; a sidecar killed mid-job is reported
within the heartbeat timeout while Blender stays usable; Start brings it back; Generate works again; Stop.
"""

import os
import signal
import time

import bpy
from addon_support import (
    config,
    draw_panels,
    generate,
    install_to_start_sidecars,
    session,
    set_preferences,
    sidecar_processes,
    tick_until,
)
from harness import run


def main() -> dict:
    settings = config()
    install_to_start_sidecars(settings, heartbeat_timeout=settings["heartbeat"], auto_start=False)
    report: dict = {"drawn": {}}
    tick_until(lambda: session().connected, timeout=20)
    assert bpy.ops.triposr.start_sidecar(wait=False) == {"FINISHED"}
    report["started_over_running"] = session().launcher.process is not None
    report["processes_before"] = len(sidecar_processes(settings["endpoint"]))

    job = generate(settings["image"], 256)
    tick_until(lambda: job.state.name == "RUNNING")
    os.kill(settings["pid"], signal.SIGKILL)
    killed_at = time.monotonic()
    ticks: list[float] = []
    tick_until(lambda: job.state.finished and not session().connected, timeout=60, durations=ticks)
    report["noticed_after"] = time.monotonic() - killed_at
    report["longest_tick"] = max(ticks)
    report["lost_job"] = {"state": job.state.name, "code": job.error_code, "error": job.error}
    report["problem"] = session().problem
    report["generate_allowed"] = bpy.ops.triposr.generate.poll()
    draw_panels("no sidecar", report["drawn"])
    bpy.ops.mesh.primitive_cube_add(location=(0, 0, 0))  # Blender is still at the artist's service
    report["cube"] = bpy.context.active_object.name

    assert bpy.ops.triposr.start_sidecar(wait=False) == {"FINISHED"}
    started = session().launcher.process
    draw_panels("starting", report["drawn"])
    tick_until(lambda: session().connected, timeout=120)
    report["restarted"] = {"pid": started.pid, "log": os.path.isfile(session().launcher.log_path)}
    job = generate(settings["image"], 32)
    tick_until(lambda: job.state.finished)
    report["after_restart"] = {"state": job.state.name, "objects": job.objects, "error": job.error}

    assert bpy.ops.triposr.start_sidecar(wait=False) == {"FINISHED"}
    report["second_start_same_process"] = session().launcher.process is started
    report["processes_after_second_start"] = len(sidecar_processes(settings["endpoint"]))

    assert bpy.ops.triposr.stop_sidecar() == {"FINISHED"}
    report["stopped_exit_code"] = started.poll()
    report["connected_after_stop"] = session().connected
    report["processes_after_stop"] = len(sidecar_processes(settings["endpoint"]))

    set_preferences(auto_start=True)  # Generate with no sidecar: it starts one, and the job waits for it
    job = generate(settings["image"], 40)
    report["auto_start"] = {"first_state": job.state.name, "starting": session().starting}
    tick_until(lambda: job.state.finished, timeout=120)
    report["auto_start"] |= {"state": job.state.name, "error": job.error}
    assert bpy.ops.triposr.stop_sidecar() == {"FINISHED"}
    return report


run(main)
