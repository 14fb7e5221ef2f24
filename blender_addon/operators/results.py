"""The sidecar's recent results: list them, and import one again."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bpy
from bpy.props import BoolProperty, StringProperty

from ..runtime import session
from ..shared.client import SidecarError
from ..tick import run_until
from .common import WAIT_DESCRIPTION, cursor_location, should_wait

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems


class TRIPOSR_OT_refresh_results(bpy.types.Operator):
    """Ask the sidecar for the models it made recently"""

    bl_idname = "triposr.refresh_results"
    bl_label = "Refresh"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not session.connected:
            cls.poll_message_set("The sidecar is not running")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        try:
            session.refresh_recent()
        except SidecarError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class TRIPOSR_OT_import_result(bpy.types.Operator):
    """Import this model from the sidecar's store into a new collection at the 3D cursor"""

    bl_idname = "triposr.import_result"
    bl_label = "Import"
    bl_options = {"REGISTER"}

    job: StringProperty(name="Job", options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]
    name: StringProperty(name="Name", default="TripoSR", options={"SKIP_SAVE"})  # type: ignore[valid-type]
    wait: BoolProperty(name="Wait", description=WAIT_DESCRIPTION, options={"SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return session.connected

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        try:
            job = session.fetch(self.job, self.name)
        except SidecarError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        job.location = cursor_location(context)
        if should_wait(self):
            run_until(lambda: job.state.finished)
            if job.error:
                self.report({"ERROR"}, job.error)
                return {"CANCELLED"}
        return {"FINISHED"}
