"""Settings as an artist types them: an endpoint without tcp:// gets a sentence that names the preference,
and no traceback, and the sentence goes once it is fixed; weights changed under a running sidecar say that it
needs a restart, and Restart applies them; the sidecar's own advice comes without command-line options.
"""

import bpy
from addon_support import (
    captured_output,
    config,
    draw_panels,
    install_to_start_sidecars,
    session,
    set_preferences,
    tick_until,
)
from harness import run


def main() -> dict:
    settings = config()
    address = settings["endpoint"].removeprefix("tcp://")
    report: dict = {"drawn": {}, "endpoint": settings["endpoint"]}
    with captured_output() as output:
        install_to_start_sidecars(settings, endpoint=address, auto_start=True)
        tick_until(lambda: "Endpoint" in session().problem, timeout=10)
        report["typed_without_tcp"] = {
            "problem": session().problem,
            "generate_allowed": bpy.ops.triposr.generate.poll(),
            "start_allowed": bpy.ops.triposr.start_sidecar.poll(),
        }
        draw_panels("bad endpoint", report["drawn"])
        set_preferences(endpoint=settings["endpoint"])
        tick_until(lambda: "Endpoint" not in session().problem, timeout=10)
        report["fixed"] = session().problem
    report["output"] = output

    assert bpy.ops.triposr.start_sidecar(wait=False) == {"FINISHED"}
    # Loaded: a sidecar asked to stop while its model still loads exits once the load is done, which on a
    # busy machine outlasts the grace the restart gives it before it ends the process.
    tick_until(lambda: session().connected and session().info.weights == "loaded", timeout=120)
    first = session().launcher.process
    set_preferences(weights=settings["other_weights"])
    tick_until(lambda: session().restart_needed, timeout=10)
    report["restart_needed"] = session().restart_needed
    draw_panels("restart needed", report["drawn"])
    assert bpy.ops.triposr.restart_sidecar() == {"FINISHED"}
    tick_until(lambda: session().connected, timeout=120)
    report["restarted"] = {
        "new_process": session().launcher.process is not first,
        "first_exit": first.poll(),
        "restart_needed": session().restart_needed,
        "weights": session().launcher.settings.weights,
    }

    set_preferences(weights=settings["missing_weights"])
    assert bpy.ops.triposr.restart_sidecar() == {"FINISHED"}
    tick_until(lambda: session().info is not None and session().info.weights == "failed", timeout=120)
    report["weights_error"] = session().info.weights_error
    assert bpy.ops.triposr.stop_sidecar() == {"FINISHED"}
    return report


run(main)
