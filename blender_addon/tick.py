"""The one timer: polls the sidecar without waiting, imports what has arrived, redraws the panel.

All bpy work for jobs happens here, on Blender's main thread. Background mode fires no timers, so `tick` is a
plain function too: operators asked to wait, and the tests, call it in a loop.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import bpy

from .batch import image_count
from .placement import import_job
from .preferences import TRIPOSR_AddonPreferences, get_preferences
from .properties import scene_settings
from .runtime import installer, session
from .tracker import Job

BUSY_INTERVAL = 0.1
IDLE_INTERVAL = 1.0


def tick() -> float:
    preferences = get_preferences()
    follow_install(preferences)
    session.follow(preferences.launch_settings(), preferences.heartbeat_timeout, preferences.auto_start)
    session.online = bpy.app.online_access
    # A result is imported a tick after the one that received it, one per tick, so that no tick both takes
    # a large message off the socket and imports it. The importer leaves Edit or Sculpt mode to do its
    # work: a model waits until the artist is back in Object Mode.
    ready = session.tracker.ready()
    if ready and bpy.context.mode == "OBJECT":
        land(ready[0])
    want_estimates(bpy.context)
    session.update()
    while session.notices:
        notify(*session.notices.pop(0))
    if session.changed:
        session.changed = False
        redraw()
    return BUSY_INTERVAL if session.busy or session.tracker.ready() else IDLE_INTERVAL


def follow_install(preferences: TRIPOSR_AddonPreferences) -> None:
    """Move the sidecar's install on; once it is done, run the sidecar from it."""
    changed = installer.poll()
    if changed and installer.done:
        preferences.runner = "INSTALLED"
        session.notices.append(("INFO", "The sidecar is installed, and Run With is now Installed Sidecar"))
    elif changed and installer.failure:
        session.notices.append(("ERROR", installer.failure))
    if changed or installer.running:  # the preferences show its progress and the log's last lines
        session.changed = True
        for window in bpy.context.window_manager.windows:
            for area in window.screen.areas:
                if area.type == "PREFERENCES":
                    area.tag_redraw()


def want_estimates(context: bpy.types.Context) -> None:
    """What the panel shows estimates for: a job with its settings, and the batch folder's images."""
    if context.scene is None:  # between files
        return
    settings = scene_settings(context)
    params = settings.params()
    session.estimates.want("image", params, 1)
    folder = bpy.path.abspath(settings.batch_folder) if settings.batch_folder else ""
    count = image_count(Path(folder)) if folder else 0
    if count:
        session.estimates.want("batch", params, count)
    else:
        session.estimates.drop("batch")


def land(job: Job) -> None:
    """Import a result into the scene, as one undo step; only into the file it was made for."""
    if job.file != session.file:
        session.keep(job)
        return
    path = job.result.get("path")
    if job.glb is None and not (path and os.path.isfile(path)):
        session.fetch_bytes(job)  # the sidecar runs on another computer: its path means nothing here
        return
    item = session.batch_item(job)
    try:
        objects = import_job(job, session.batch if item else None, item)
    except Exception as exc:  # a broken GLB must not stop the tick, nor the rest of a batch
        session.import_failed(job, f"Blender could not import the model: {exc}")
        return
    session.imported(job, [obj.name for obj in objects])
    bpy.ops.ed.undo_push(message=f"TripoSR: {job.name}")


def notify(level: str, message: str) -> None:
    # bpy.ops raises an ERROR report in its Python caller once it has reported it: that part is not news here
    with contextlib.suppress(RuntimeError):
        bpy.ops.triposr.notify(level=level, message=message)  # type: ignore[attr-defined]


def redraw() -> None:
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()
    if session.status_line()[0]:
        redraw_status_bar()


def redraw_status_bar() -> None:
    """Have the status bar draw anew. Clearing the status text is what tags it for a redraw (no area of the
    window's screen holds it); a tool's text is set again on its next event."""
    for window in bpy.context.window_manager.windows:
        with bpy.context.temp_override(window=window):
            window.workspace.status_text_set_internal(None)


def run_until(done: Callable[[], bool]) -> None:
    """Tick until `done()`: the synchronous path that background mode, which fires no timers, needs.

    It ends: a job ends in a result, an error, a cancellation, or the client's `sidecar_lost` error.
    """
    while not done():
        time.sleep(min(tick(), BUSY_INTERVAL))


def timer() -> float:
    """`tick` as Blender's timer: a failing tick is reported, and the next one still comes."""
    try:
        return tick()
    except Exception:
        traceback.print_exc()
        return IDLE_INTERVAL


def register() -> None:
    bpy.app.timers.register(timer, first_interval=0.5, persistent=True)


def unregister() -> None:
    if bpy.app.timers.is_registered(timer):
        bpy.app.timers.unregister(timer)
    session.disconnect()
