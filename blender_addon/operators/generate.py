"""Generate one model from the panel's image, and cancel it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import bpy
from bpy.props import BoolProperty

from ..launcher import LaunchError
from ..properties import TRIPOSR_PG_settings, scene_settings
from ..runtime import session
from ..tick import run_until
from .common import WAIT_DESCRIPTION, cursor_location, ensure_sidecar, should_wait, sidecar_problem

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems


def image_problem(settings: TRIPOSR_PG_settings) -> str:
    if settings.source == "FILE":
        if not settings.filepath:
            return "Choose an image file"
        path = bpy.path.abspath(settings.filepath)
        return "" if Path(path).is_file() else f"There is no image file at {path}"
    image = settings.image
    if image is None:
        return "Choose an image"
    if (
        image.packed_file is None
        and not Path(bpy.path.abspath(image.filepath, library=image.library)).is_file()
    ):
        return f"“{image.name}” has no file on disk: save or pack it first"
    return ""


def read_image(settings: TRIPOSR_PG_settings) -> tuple[bytes, str]:
    """The image file's bytes, and its file name."""
    if settings.source == "IMAGE" and settings.image.packed_file is not None:
        image = settings.image
        return bytes(image.packed_file.data), Path(image.filepath).name or image.name
    if settings.source == "IMAGE":
        path = Path(bpy.path.abspath(settings.image.filepath, library=settings.image.library))
    else:
        path = Path(bpy.path.abspath(settings.filepath))
    return path.read_bytes(), path.name


class TRIPOSR_OT_generate(bpy.types.Operator):
    """Make a 3D model from the image; it lands at the 3D cursor when done"""

    bl_idname = "triposr.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}  # the import that follows is its own undo step

    wait: BoolProperty(name="Wait", description=WAIT_DESCRIPTION, options={"SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        settings = scene_settings(context)
        current = session.tracker.get(session.current)
        problem = (
            ("A model is being made: cancel it first" if current and not current.state.finished else "")
            or image_problem(settings)
            or sidecar_problem(context, settings.backend)
        )
        if problem:
            cls.poll_message_set(problem)
        return not problem

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        settings = scene_settings(context)
        try:
            image, filename = read_image(settings)
            ensure_sidecar(context)
        except (OSError, LaunchError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        collection = settings.collection.name if settings.collection else ""
        job = session.submit(image, settings.params(), settings.image_name(), filename, collection=collection)
        job.location = cursor_location(context)
        session.current = job.id
        if not should_wait(self):
            self.report({"INFO"}, f"Making a model of {job.name}")
            return {"FINISHED"}
        run_until(lambda: job.state.finished)
        if job.error:
            self.report({"ERROR"}, job.error)
            return {"CANCELLED"}
        return {"FINISHED"}


class TRIPOSR_OT_cancel(bpy.types.Operator):
    """Stop making the model; nothing is added to the scene"""

    bl_idname = "triposr.cancel"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        job = session.tracker.get(session.current)
        return job is not None and not job.state.finished

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        session.cancel(session.current)
        return {"FINISHED"}
