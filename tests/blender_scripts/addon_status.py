"""With the sidebar closed: the status bar shows a job's and a batch's progress and how they ended, and each
end is reported (what Blender prints for a report in background mode: "Info: ...", "Error: ...")."""

from types import SimpleNamespace

import bpy
from addon_support import captured_output, config, install, module, session, tick_until
from harness import run


def draw_status_bar(complaints: list) -> None:
    """Draw the add-on's part of the status bar with a real UILayout (see draw_panels)."""
    menu = bpy.context.window_manager.popmenu_begin__internal("status", icon="NONE")
    with captured_output() as output:
        module("ui.statusbar").draw_status(SimpleNamespace(layout=menu.layout), bpy.context)
    complaints += [line for line in output if "rna_ui" in line or "rror" in line]


def follow(done) -> dict:
    """Tick until `done()`, noting what the status bar said meanwhile, and what was reported."""
    status = session().status_line
    seen: list = []
    complaints: list = []

    def note_and_check() -> bool:
        if status() not in seen:
            seen.append(status())
            draw_status_bar(complaints)
        return done()

    with captured_output() as output:
        tick_until(note_and_check)
        note_and_check()
    reports = [line for line in output if line.startswith(("Info:", "Error:", "Warning:"))]
    return {"status": seen, "reports": reports, "complaints": complaints}


def main() -> dict:
    settings = config()
    install(settings["zip"], endpoint=settings["endpoint"], auto_start=False)
    tick_until(lambda: session().connected, timeout=20)
    statusbar = module("ui.statusbar")
    report = {"hooked": statusbar.draw_status in bpy.types.STATUSBAR_HT_header._dyn_ui_initialize()}
    scene_settings = bpy.context.scene.triposr
    scene_settings.source, scene_settings.resolution = "FILE", 32

    scene_settings.filepath = settings["image"]
    assert bpy.ops.triposr.generate(wait=False) == {"FINISHED"}
    job = session().tracker.get(session().current)
    report["job"] = follow(lambda: job.state.finished)
    report["after_job"] = session().status_line()

    scene_settings.filepath = settings["corrupt"]
    assert bpy.ops.triposr.generate(wait=False) == {"FINISHED"}
    job = session().tracker.get(session().current)
    report["failed_job"] = follow(lambda: job.state.finished) | {"error": job.error}

    assert bpy.ops.triposr.generate_batch(directory=settings["batch"], wait=False) == {"FINISHED"}
    batch = session().batch
    report["batch"] = follow(lambda: not batch.running and not session().tracker.ready())
    report["batch"]["after"] = session().status_line()
    return report


run(main)
