"""The 3D Viewport's sidebar tab "TripoSR": the image and its settings, what comes out, the sidecar, batches,
past results."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import bpy

from ..operators.common import setup_missing
from ..preferences import TRIPOSR_AddonPreferences, get_preferences, sidecar_log_path
from ..properties import scene_settings
from ..readiness import Missing
from ..runtime import installer, session
from ..session import OFFLINE
from ..shared import estimate_text
from ..shared.protocol import POLICIES
from ..tracker import Job, JobState

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import IconItems

STATE_ICONS: dict[JobState | None, IconItems] = {
    None: "LAYER_USED",
    JobState.WAITING: "SORTTIME",
    JobState.SUBMITTED: "SORTTIME",
    JobState.QUEUED: "SORTTIME",
    JobState.RUNNING: "PLAY",
    JobState.CANCELLING: "X",
    JobState.READY: "IMPORT",
    JobState.DONE: "CHECKMARK",
    JobState.KEPT: "FILE_BLEND",
    JobState.FAILED: "ERROR",
    JobState.CANCELLED: "X",
}


def wrapped(
    layout: bpy.types.UILayout,
    context: bpy.types.Context,
    text: str,
    icon: IconItems = "NONE",
    wrap: Callable[[str, int], list[str]] = textwrap.wrap,
) -> None:
    """A label broken into lines that fit the sidebar (Blender's labels do not wrap)."""
    width = context.region.width if context.region else 300
    scale = context.preferences.system.ui_scale or 1.0  # 0 where nothing is displayed
    characters = max(20, int(width / (7 * scale)))
    column = layout.column(align=True)
    for index, line in enumerate(wrap(text, characters) or [""]):
        column.label(text=line, icon=icon if index == 0 else "BLANK1")


def path_lines(path: str, characters: int) -> list[str]:
    """A path in lines of at most `characters`, broken after a separator where it can be."""
    lines: list[str] = []
    while len(path) > characters:
        cut = max(path.rfind("/", 0, characters), path.rfind("\\", 0, characters)) + 1 or characters
        lines.append(path[:cut])
        path = path[cut:]
    return [*lines, path]


class SidebarPanel(bpy.types.Panel):
    """Where the add-on's panels live: the 3D Viewport's sidebar, tab "TripoSR". Not registered itself."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "TripoSR"


class TRIPOSR_PT_main(SidebarPanel):
    bl_label = "Image to 3D"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        settings = scene_settings(context)

        layout.row().prop(settings, "source", expand=True)
        if settings.source == "FILE":
            layout.prop(settings, "filepath", text="")
        else:
            layout.template_ID(settings, "image", open="image.open")
        column = layout.column()
        column.prop(settings, "backend")
        if settings.backend in POLICIES:
            column.prop(settings, "budget")
        if settings.backend == "cheapest":
            column.prop(settings, "deadline")
        if settings.backend != "local":
            column.prop(settings, "replicate_model")
            if not bpy.app.online_access:
                wrapped(column, context, OFFLINE, icon="ERROR")
        column.prop(settings, "resolution")
        column.prop(settings, "foreground_ratio")
        column.prop(settings, "remove_background")
        column.prop(settings, "collection", placeholder=f"New: {settings.image_name() or 'image name'}")

        if lacking := setup_missing(context):
            draw_setup(layout.box(), context, lacking)
        job = session.tracker.get(session.current)
        if job is not None and not job.state.finished:
            waiting = job.state is JobState.READY and context.mode != "OBJECT"
            text = "Switch to Object Mode to import" if waiting else job.progress_text()
            layout.progress(factor=job.overall, type="BAR", text=text)
            layout.operator("triposr.cancel", icon="CANCEL")
        else:
            row = layout.row()
            row.scale_y = 1.5
            row.operator("triposr.generate", icon="MESH_MONKEY")
            draw_estimate(layout.column(align=True), context, "image")
        if job is not None and job.state.finished:
            draw_outcome(layout.box(), context, job)


def draw_setup(layout: bpy.types.UILayout, context: bpy.types.Context, lacking: list[Missing]) -> None:
    """What to set before the first model, each with a button to the add-on's preferences."""
    layout.label(text="Before the first model", icon="PREFERENCES")
    for item in lacking:
        wrapped(layout, context, item.sentence, icon="ERROR")
        if item.installable:
            draw_install(layout, context)
        button = layout.operator("preferences.addon_show", text=f"Set {item.preference}…", icon="PREFERENCES")
        button.module = TRIPOSR_AddonPreferences.bl_idname


def draw_install(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """Install the Sidecar, or how far it has come, and why it last stopped."""
    if installer.running:
        factor, text = installer.progress()
        layout.progress(factor=factor, type="BAR", text=text)
        layout.operator("triposr.cancel_install", icon="CANCEL")
        return
    if installer.failure:
        wrapped(layout, context, installer.failure, icon="ERROR")
    layout.operator("triposr.install_sidecar", icon="IMPORT")


def draw_estimate(layout: bpy.types.UILayout, context: bpy.types.Context, subject: str) -> None:
    """How long the job (or the batch) would take here and on Replicate, and whether it fits in memory."""
    estimate = session.estimates.get(subject) if session.connected else None
    if estimate is None:
        return
    if "error" in estimate:
        wrapped(layout, context, f"No estimate: {estimate['error']}", icon="INFO")
        return
    if policy := estimate_text.policy_summary(estimate):
        wrapped(layout, context, policy, icon="TIME")
    wrapped(layout, context, estimate_text.summary(estimate), icon="NONE" if policy else "TIME")
    if estimate["local"]["basis"] == "default":
        layout.label(text="Typical figures until this computer has run a job like it")
    if warning := estimate_text.memory_warning(estimate):
        wrapped(layout, context, warning, icon="ERROR")


def draw_outcome(layout: bpy.types.UILayout, context: bpy.types.Context, job: Job) -> None:
    if job.state is JobState.DONE:
        layout.label(text=f"{job.name}: done", icon="CHECKMARK")
        for line in job.summary():
            layout.label(text=line)
    elif job.state is JobState.FAILED:
        wrapped(layout, context, f"{job.name}: {job.error}", icon="ERROR")
    elif job.state is JobState.KEPT:
        wrapped(layout, context, job.outcome(), icon="FILE_BLEND")
    else:
        layout.label(text=f"{job.name}: cancelled", icon="X")


class TRIPOSR_PT_output(SidebarPanel):
    """What the sidecar hands back: colours, face count, clean-up and placement, for one model or a batch."""

    bl_label = "Output"
    bl_parent_id = "TRIPOSR_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        settings = scene_settings(context)

        layout.row().prop(settings, "colour", expand=True)
        row = layout.row()
        row.active = settings.colour == "TEXTURE"
        row.prop(settings, "texture_size", expand=True)
        # The presets one click away, in two rows beside one label, split as use_property_split splits a
        # property from its value: a single row of six does not fit the sidebar.
        split = layout.split(factor=0.4)
        label = split.row()
        label.alignment = "RIGHT"
        label.label(text="Faces")
        presets = split.grid_flow(row_major=True, columns=3, even_columns=True, align=True)
        presets.use_property_split = False
        presets.prop(settings, "faces", expand=True)
        if settings.faces == "CUSTOM":
            layout.prop(settings, "custom_faces")
        layout.column(heading="Clean Up").prop(settings, "cleanup", text="Floating Pieces")
        layout.prop(settings, "ground")
        layout.prop(settings, "height")


class TRIPOSR_PT_sidecar(SidebarPanel):
    bl_label = "Sidecar"
    bl_parent_id = "TRIPOSR_PT_main"

    def draw_header(self, context: bpy.types.Context) -> None:
        self.layout.label(icon="LINKED" if session.connected else "UNLINKED")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        info = session.info
        column = layout.column(align=True)
        if info is not None:
            column.label(text=f"Connected to {session.endpoint}", icon="CHECKMARK")
            column.label(text=f"Device: {info.device or 'unknown'} · version {info.version}")
            if info.weights == "loaded":
                column.label(text="Model loaded", icon="CHECKMARK")
            elif info.weights == "loading":
                column.label(text="Loading the model…", icon="SORTTIME")
            else:
                wrapped(column, context, f"The model could not be loaded: {info.weights_error}", icon="ERROR")
            if info.queue_length:
                column.label(text=f"{info.queue_length} job(s) waiting")
            if not session.owned:
                wrapped(column, context, "Started outside this Blender, which can use it but not stop it")
            if info.replicate_problem and get_preferences(context).replicate_token:
                wrapped(column, context, f"No Replicate: {info.replicate_problem}", icon="INFO")
        elif session.starting:
            elapsed = time.monotonic() - (session.starting_since or time.monotonic())
            column.label(text=f"Starting… {elapsed:.0f} s", icon="SORTTIME")
        else:
            column.label(
                text=f"Not connected ({session.endpoint or get_preferences(context).endpoint})", icon="X"
            )
            current = session.tracker.get(session.current)
            if session.problem and not (current and current.error == session.problem):  # said above already
                wrapped(column, context, session.problem)
        if changed := session.restart_needed:
            column = layout.column()
            wrapped(column, context, f"{changed} changed: restart the sidecar to use them", icon="INFO")
            column.operator("triposr.restart_sidecar", icon="FILE_REFRESH")

        row = layout.row(align=True)
        row.operator("triposr.start_sidecar", icon="PLAY")
        row.operator("triposr.stop_sidecar", icon="PAUSE")
        row.operator("triposr.check_sidecar", text="", icon="FILE_REFRESH")
        column = layout.column()
        column.operator("triposr.open_log", icon="TEXT")
        wrapped(column, context, str(sidecar_log_path()), wrap=path_lines)


class TRIPOSR_PT_batch(SidebarPanel):
    bl_label = "Batch"
    bl_parent_id = "TRIPOSR_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = scene_settings(context)
        layout.prop(settings, "batch_folder", text="")
        row = layout.row(align=True)
        row.operator_context = "EXEC_DEFAULT"  # the folder above, no file browser
        row.operator("triposr.generate_batch", text="Generate Folder", icon="PLAY")
        row = layout.row(align=True)  # these open a file browser, starting in the folder above
        row.operator("triposr.generate_batch", text="Pick Images…", icon="FILEBROWSER")
        row.operator("triposr.import_glb_folder", text="Import GLBs…", icon="IMPORT")
        draw_estimate(layout.column(align=True), context, "batch")

        batch = session.batch
        if batch is None:
            return
        box = layout.box()
        done = batch.finished / batch.total if batch.total else 1.0
        box.progress(factor=done, type="BAR", text=f"{batch.name}: {batch.progress_text()}")
        if batch.running:
            box.operator("triposr.cancel_batch", icon="CANCEL")
        if cost := session.batch_cost():
            box.label(text=f"Cost so far ${cost:.2f}")
        column = box.column(align=True)
        for item in batch.items:
            job = session.tracker.get(item.job)
            state = item.state.value if item.state else "Waiting"
            if job is not None and not job.state.finished:
                state = job.progress_text()
            where = f" · {placed}" if job is not None and (placed := job.placement()) else ""
            text = f"{item.name}: {item.message or state}{where}"
            wrapped(column, context, text, icon=STATE_ICONS[item.state])


class TRIPOSR_PT_results(SidebarPanel):
    bl_label = "Recent Results"
    bl_parent_id = "TRIPOSR_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.operator("triposr.refresh_results", icon="FILE_REFRESH")
        if session.total_cost:
            layout.label(text=f"Spent on Replicate: ${session.total_cost:.2f}")
        column = layout.column(align=True)
        for record in session.recent:
            name = (record.get("filename") or record["job"][:8]).rsplit(".", 1)[0]
            row = column.row(align=True)
            texture = (record.get("params") or {}).get("texture")
            textured = f" · {texture} px" if texture else ""
            row.label(text=f"{name} · {record.get('faces') or 0:,} faces{textured}")
            button = row.operator("triposr.import_result", text="", icon="IMPORT")
            button.job, button.name = record["job"], name
