"""Install the Sidecar, driven through the operators the preferences and the panel use, with the ticks a
running Blender makes. Every Blender: the first-run list offers it; without online access and without a
Package Source it refuses; from a folder without PyTorch it fails with a sentence and its log, and nothing
counts as installed. With `full`: a cancel mid-install, then an offline install from a folder of wheels, the
sidecar started from it answering, and Remove."""

import os

import bpy
from addon_support import (
    captured_output,
    config,
    draw_panels,
    install,
    module,
    session,
    set_preferences,
    tick_until,
)
from harness import run

PACKAGE = "bl_ext.user_default.triposr"


def installer():
    return module("runtime").installer


def environment() -> str:
    return str(module("preferences").sidecar_environment_path())


def missing() -> list:
    return [
        [item.preference, item.installable] for item in module("operators.common").setup_missing(bpy.context)
    ]


def press(operator, **properties) -> str:
    """Run an operator as a button does; its ERROR report, which bpy raises in background mode, or ""."""
    try:
        assert operator(**properties) == {"FINISHED"}
    except RuntimeError as exc:
        return str(exc)
    return ""


def draw(state: str, drawn: dict) -> None:
    """The panels, and the preferences' Install section, on real UILayouts (see draw_panels)."""
    draw_panels(state, drawn)
    preferences = bpy.context.preferences.addons[PACKAGE].preferences
    with captured_output() as output:
        menu = bpy.context.window_manager.popmenu_begin__internal("Install", icon="NONE")
        preferences.draw_install(menu.layout, bpy.context)
    drawn[state] += [line for line in output if "rna_ui" in line or "not found" in line or "rror" in line]


def cheap_checks(settings: dict, report: dict) -> None:
    tick_until(lambda: session().problem != "")  # the add-on has looked for a sidecar, and found none
    report["first_run"] = missing()
    report["polls"] = {
        "install": bpy.ops.triposr.install_sidecar.poll(),
        "cancel": bpy.ops.triposr.cancel_install.poll(),
        "remove": bpy.ops.triposr.remove_sidecar.poll(),
    }
    draw("first run", report["drawn"])

    bpy.context.preferences.system.use_online_access = False
    report["offline_refusal"] = press(bpy.ops.triposr.install_sidecar, wait=False)
    report["offline_started"] = installer().running

    set_preferences(package_source=settings["empty_source"])  # a folder lifts the refusal: no PyTorch in it
    report["empty_source_error"] = press(bpy.ops.triposr.install_sidecar, wait=False)
    draw("installing", report["drawn"])
    tick_until(lambda: not installer().running, timeout=120)
    report["failed"] = {
        "failure": installer().failure,
        "step": installer().index,
        "installed": module("installer").installed(module("preferences").sidecar_environment_path()),
        "runner": bpy.context.preferences.addons[PACKAGE].preferences.runner,
    }
    draw("failed", report["drawn"])


def full_install(settings: dict, report: dict) -> None:
    set_preferences(package_source=settings["wheels"])
    # Cancel while PyTorch is being installed: nothing is installed, and no pip is left running.
    assert press(bpy.ops.triposr.install_sidecar, wait=False) == ""
    tick_until(lambda: installer().index >= 1, timeout=120)
    process = installer().process
    assert press(bpy.ops.triposr.cancel_install) == ""
    report["cancelled"] = {
        "failure": installer().failure,
        "running": installer().running,
        "pip_exit": process.poll(),
        "installed": module("installer").installed(module("preferences").sidecar_environment_path()),
    }

    assert press(bpy.ops.triposr.install_sidecar, wait=False) == ""
    steps = set()

    def finished() -> bool:
        steps.add(installer().index)
        return not installer().running

    tick_until(finished, timeout=600)
    report["installed"] = {
        "failure": installer().failure,
        "steps_seen": sorted(steps),
        "marker": module("installer").installed(module("preferences").sidecar_environment_path()),
        "runner": bpy.context.preferences.addons[PACKAGE].preferences.runner,
        "missing": missing(),
        "remove_allowed": bpy.ops.triposr.remove_sidecar.poll(),
    }

    assert press(bpy.ops.triposr.start_sidecar, wait=False) == ""
    tick_until(lambda: not session().starting, timeout=180)  # it answered, or its start failed
    started = session().launcher.process
    report["served"] = {
        "connected": session().connected,
        "problem": session().problem,
        "program": started.args[:3],
        "version": session().info.version if session().info else None,
    }
    draw("installed", report["drawn"])

    assert press(bpy.ops.triposr.remove_sidecar) == ""
    report["removed"] = {
        "environment_left": os.path.exists(os.path.join(environment(), "installed.json")),
        "python_left": os.path.exists(report["installed"]["marker"]["python"]),
        "sidecar_exit": started.poll(),
        "connected": session().connected,
        "missing": missing(),
    }


def main() -> dict:
    settings = config()
    install(
        settings["zip"],
        endpoint=settings["endpoint"],
        runner="COMMAND",
        command=settings["command"],
        weights=settings["weights"],
        device="cpu",
        data_dir=settings["data_dir"],
        auto_start=False,
    )
    report: dict = {"drawn": {}, "environment": environment()}
    cheap_checks(settings, report)
    if settings["full"]:
        full_install(settings, report)
    return report


run(main)
