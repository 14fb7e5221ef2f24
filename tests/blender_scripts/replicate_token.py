"""A Replicate job from the panel, with the token only in the add-on's preferences.

Without online access, Generate refuses to send anything away and says why. With it, Generate starts the
sidecar (the token goes into its environment), the job runs on the fake Replicate and lands with its cost.
The scene is saved to a .blend, which the test searches for the token along with the sidecar's log and store.
"""

import os

import bpy
from addon_support import config, draw_panels, install_to_start_sidecars, module, session, tick_until
from harness import run


def main() -> dict:
    settings = config()
    install_to_start_sidecars(settings, auto_start=True, replicate_token=settings["token"])
    report: dict = {"drawn": {}}
    scene = bpy.context.scene.triposr
    scene.source, scene.filepath, scene.backend = "FILE", settings["image"], "replicate"

    bpy.context.preferences.system.use_online_access = False
    report["offline"] = {
        "allowed": bpy.ops.triposr.generate.poll(),
        "problem": module("operators.common").sidecar_problem(bpy.context, scene.backend),
        "sidecar_started": session().starting or session().connected,
    }
    draw_panels("offline", report["drawn"])

    bpy.context.preferences.system.use_online_access = True
    assert bpy.ops.triposr.generate(wait=False) == {"FINISHED"}
    job = session().tracker.get(session().current)
    tick_until(lambda: job.state.finished, timeout=180)
    report["job"] = {"state": job.state.name, "error": job.error, "summary": job.summary()}
    report["backends"] = session().info.backends
    draw_panels("done", report["drawn"])

    report["log"] = str(session().launcher.log_path)
    assert bpy.ops.triposr.stop_sidecar() == {"FINISHED"}
    path = os.path.join(settings["workdir"], "scene.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    report["blend"] = path
    return report


run(main)
