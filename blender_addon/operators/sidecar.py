"""Start, stop and check the sidecar, and open its log."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bpy
from bpy.props import BoolProperty

from ..launcher import LaunchError, endpoint_problem, is_local
from ..preferences import get_preferences, sidecar_log_path
from ..runtime import session
from ..tick import run_until
from .common import WAIT_DESCRIPTION, should_wait

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

# Another Blender may be using it: only the one that started it stops it, and it ends when the last one using
# it quits.
NOT_OURS = "Another Blender or program started this sidecar: only that one can stop it"


class TRIPOSR_OT_start_sidecar(bpy.types.Operator):
    """Start the sidecar on this computer, unless one already answers at the endpoint"""

    bl_idname = "triposr.start_sidecar"
    bl_label = "Start"
    bl_options = {"REGISTER"}

    wait: BoolProperty(name="Wait", description=WAIT_DESCRIPTION, options={"SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if session.starting:
            cls.poll_message_set("The sidecar is starting")
            return False
        endpoint = get_preferences(context).endpoint.strip()
        if problem := endpoint_problem(endpoint):
            cls.poll_message_set(problem)
            return False
        if not is_local(endpoint):
            cls.poll_message_set("The endpoint is on another computer: start the sidecar there")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        preferences = get_preferences(context)
        try:
            message = session.start(preferences.launch_settings(), sidecar_log_path())
        except LaunchError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if should_wait(self):
            run_until(lambda: not session.starting)
            if not session.connected:
                self.report({"ERROR"}, session.problem)
                return {"CANCELLED"}
        self.report({"INFO"}, message)
        return {"FINISHED"}


class TRIPOSR_OT_stop_sidecar(bpy.types.Operator):
    """Shut down the sidecar this Blender started (frees its memory); running jobs stop"""

    bl_idname = "triposr.stop_sidecar"
    bl_label = "Stop"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if session.connected and not session.owned:
            cls.poll_message_set(NOT_OURS)
            return False
        if not (session.starting or session.owned):
            cls.poll_message_set("No sidecar is running")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        for job in session.tracker.active():
            session.cancel(job.id)
        self.report({"INFO"}, session.stop())
        return {"FINISHED"}


class TRIPOSR_OT_restart_sidecar(bpy.types.Operator):
    """Stop the sidecar this Blender started and start it again, with the preferences as they are now"""

    bl_idname = "triposr.restart_sidecar"
    bl_label = "Restart"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not session.owned:
            cls.poll_message_set(NOT_OURS)
            return False
        if session.tracker.active():
            cls.poll_message_set("Models are being made: wait for them, or cancel them first")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        session.stop()
        try:
            self.report(
                {"INFO"}, session.start(get_preferences(context).launch_settings(), sidecar_log_path())
            )
        except LaunchError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class TRIPOSR_OT_check_sidecar(bpy.types.Operator):
    """Ask the sidecar at the endpoint whether it is there, and how it is"""

    bl_idname = "triposr.check_sidecar"
    bl_label = "Check"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        preferences = get_preferences(context)
        session.configure(preferences.endpoint.strip(), preferences.heartbeat_timeout)
        if session.probe(timeout=0.5):
            self.report({"INFO"}, f"The sidecar at {session.endpoint} answers")
        else:
            self.report({"WARNING"}, session.problem)
        return {"FINISHED"}


class TRIPOSR_OT_open_log(bpy.types.Operator):
    """Open the sidecar's log (what it printed the last time this Blender started it)"""

    bl_idname = "triposr.open_log"
    bl_label = "Open Log"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not sidecar_log_path().is_file():
            cls.poll_message_set("There is no log yet: this Blender has not started a sidecar")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        bpy.ops.wm.path_open(filepath=str(sidecar_log_path()))
        return {"FINISHED"}
