"""A batch the sidecar places: Fastest offered where it has several places, the budget set in the panel, and
where each image ran, and why, in the Batch panel."""

import bpy
from addon_support import config, install, module, panel_text, session, tick_until
from harness import run


def main() -> dict:
    settings = config()
    install(settings["zip"], endpoint=settings["endpoint"], auto_start=False)
    bpy.context.preferences.system.use_online_access = True
    tick_until(lambda: session().connected and session().info.hello["weights"] == "loaded", timeout=60)
    panels = module("ui.panels")
    scene = bpy.context.scene.triposr
    report = {"offered": [item[0] for item in module("properties").offered_backends(None, bpy.context)]}
    scene.backend, scene.budget, scene.resolution = "fastest", settings["budget"], 32
    scene.batch_folder = settings["batch"]
    module("tick").want_estimates(bpy.context)  # what the next tick does first
    tick_until(lambda: session().estimates.get("batch") is not None, timeout=30)
    report["main_text"] = panel_text(panels.TRIPOSR_PT_main)
    report["estimate_text"] = panel_text(panels.TRIPOSR_PT_batch)
    assert bpy.ops.triposr.generate_batch(directory=settings["batch"], wait=False) == {"FINISHED"}
    batch = session().batch
    tick_until(lambda: not batch.running and not session().tracker.ready(), timeout=240)
    jobs = [session().tracker.get(item.job) for item in batch.items]
    report["items"] = [
        {
            "state": item.state.value,
            "message": item.message,
            "placement": job.result.get("placement"),
            "shown": job.placement(),
        }
        for item, job in zip(batch.items, jobs, strict=True)
    ]
    report["sent_params"] = [job.params for job in jobs]
    report["cost"] = session().batch_cost()
    report["summary"] = batch.summary()
    report["batch_text"] = panel_text(panels.TRIPOSR_PT_batch)
    return report


run(main)
