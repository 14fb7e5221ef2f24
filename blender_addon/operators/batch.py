"""Batches: many images into models on a grid, and a folder of GLBs into the same layout."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import bpy
from bpy.props import BoolProperty, CollectionProperty, StringProperty

from ..batch import Batch, images_in_folder
from ..launcher import LaunchError
from ..placement import import_glb_folder, models_in_file
from ..properties import scene_settings
from ..runtime import session
from ..tick import run_until
from .common import WAIT_DESCRIPTION, cursor_location, ensure_sidecar, should_wait, sidecar_problem

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems


class FolderOperator(bpy.types.Operator):
    """Works on a folder, or files picked in it; with neither, the panel's folder. Not registered itself."""

    directory: StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE"})  # type: ignore[valid-type]
    files: CollectionProperty(  # type: ignore[valid-type]
        type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"}
    )
    filter_folder: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]

    def folder(self, context: bpy.types.Context) -> Path:
        return Path(bpy.path.abspath(self.directory or scene_settings(context).batch_folder))

    def picked(self) -> list[str]:
        return [file.name for file in self.files if file.name]

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        self.directory = self.directory or scene_settings(context).batch_folder  # where the browser opens
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}


class TRIPOSR_OT_generate_batch(FolderOperator):
    """Make a model of every image in a folder (or of those picked), each in its own collection on a grid"""

    bl_idname = "triposr.generate_batch"
    bl_label = "Generate Batch"
    bl_options = {"REGISTER"}

    filter_image: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]
    wait: BoolProperty(name="Wait", description=WAIT_DESCRIPTION, options={"SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        running = session.batch is not None and session.batch.running
        problem = ("A batch is running: cancel it first" if running else "") or sidecar_problem(
            context, scene_settings(context).backend
        )
        if problem:
            cls.poll_message_set(problem)
        return not problem

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        folder = self.folder(context)
        if self.picked():
            paths = [folder / name for name in self.picked()]
        elif folder.is_dir():
            paths = images_in_folder(folder)
        else:
            self.report({"ERROR"}, f"There is no folder {folder}")
            return {"CANCELLED"}
        if not paths:
            self.report({"ERROR"}, f"No images in {folder}")
            return {"CANCELLED"}
        try:
            ensure_sidecar(context)
        except LaunchError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        params = scene_settings(context).params()
        here = models_in_file(paths, params)
        if len(here) == len(paths):
            self.report({"INFO"}, f"The models of all {len(paths)} images are in this file already")
            return {"CANCELLED"}
        wanted = [path for path in paths if path not in here]
        batch = Batch.from_paths(folder.name or "Batch", wanted, params=params)
        batch.origin, batch.skipped = cursor_location(context), len(here)
        if here:
            self.report({"INFO"}, f"Skipping {len(here)} images whose models are in this file already")
        session.start_batch(batch)
        if should_wait(self):  # the tick reports how it ended
            run_until(lambda: not batch.running and not session.tracker.ready())
        return {"FINISHED"}


class TRIPOSR_OT_cancel_batch(bpy.types.Operator):
    """Stop the batch: jobs not finished are cancelled, models already made stay"""

    bl_idname = "triposr.cancel_batch"
    bl_label = "Cancel Batch"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return session.batch is not None and session.batch.running

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        session.stop_batch()
        return {"FINISHED"}


class TRIPOSR_OT_import_glb_folder(FolderOperator):
    """Import every GLB in a folder, each in its own collection on a grid, as a batch lays them out"""

    bl_idname = "triposr.import_glb_folder"
    bl_label = "Import Folder of GLBs"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.glb", options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        folder = self.folder(context)
        if not folder.is_dir():
            self.report({"ERROR"}, f"There is no folder {folder}")
            return {"CANCELLED"}
        batch = import_glb_folder(folder, cursor_location(context), self.picked())
        if not batch.items:
            self.report({"WARNING"}, f"No GLB files in {folder}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Imported {batch.total} models into “{batch.collection}”")
        return {"FINISHED"}
