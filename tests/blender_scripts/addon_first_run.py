"""A first run with nothing set up: the panel lists what is missing, each with a button to the preferences,
and Generate says what to set; once the preferences are right, nothing is listed and Generate is allowed."""

import bpy
from addon_support import config, draw_panels, install, module, set_preferences, tick_until
from harness import run


def state() -> dict:
    lacking = module("operators.common").setup_missing(bpy.context)
    return {
        "missing": [[item.preference, item.sentence] for item in lacking],
        "generate_allowed": bpy.ops.triposr.generate.poll(),
    }


def main() -> dict:
    settings = config()
    install(
        settings["zip"],
        endpoint=settings["endpoint"],
        runner="COMMAND",
        command=settings["command"],
        weights=settings["missing_weights"],
        auto_start=True,
    )
    scene_settings = bpy.context.scene.triposr
    scene_settings.source, scene_settings.filepath = "FILE", settings["image"]
    ticks = 0

    def ticked_once() -> bool:
        nonlocal ticks
        ticks += 1
        return ticks > 1

    tick_until(ticked_once)  # the add-on looks for a sidecar, and finds none
    report: dict = {"drawn": {}, "first_run": state()}
    draw_panels("first run", report["drawn"])
    set_preferences(runner="PYTHON", python=settings["python"], weights=settings["weights"])
    report["set_up"] = state()
    return report


run(main)
