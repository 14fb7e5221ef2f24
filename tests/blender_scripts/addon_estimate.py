"""Estimates in the panel: beside Generate for the image, in the Batch panel for the folder's images; asked
again when the settings change, and learned from the jobs the sidecar runs."""

import bpy
from addon_support import config, generate, install, module, panel_text, session, tick_until
from harness import run


def shown(subject: str) -> dict:
    """Tick until the panel has the estimate for the settings as they are now."""
    module("tick").want_estimates(bpy.context)  # what a tick does first: the settings may have changed
    tick_until(lambda: session().estimates.get(subject) is not None, timeout=30)
    return session().estimates.get(subject)


def main() -> dict:
    settings = config()
    install(settings["zip"], endpoint=settings["endpoint"], auto_start=False)
    tick_until(lambda: session().connected and session().info.hello["weights"] == "loaded", timeout=60)
    panels = module("ui.panels")
    scene_settings = bpy.context.scene.triposr
    scene_settings.resolution = 64
    scene_settings.batch_folder = settings["batch"]
    report = {"first": shown("image"), "batch": shown("batch")}
    report["main_text"] = panel_text(panels.TRIPOSR_PT_main)
    report["batch_text"] = panel_text(panels.TRIPOSR_PT_batch)

    scene_settings.resolution = 128
    module("tick").want_estimates(bpy.context)  # as the next tick does
    report["stale_shown"] = session().estimates.get("image") is not None
    report["at_128"] = shown("image")

    scene_settings.resolution = 64
    job = generate(settings["image"], 64)
    tick_until(lambda: job.state.finished)
    report["job"] = {"state": job.state.value, "seconds": job.result.get("total_seconds")}
    learned = module("estimates").REFRESH_SECONDS + 1
    tick_until(lambda: shown("image")["local"]["basis"] == "measured", timeout=learned + 30)
    report["after_job"] = shown("image")
    report["after_job_text"] = panel_text(panels.TRIPOSR_PT_main)
    return report


run(main)
