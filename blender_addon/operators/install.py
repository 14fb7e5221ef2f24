"""Install the sidecar into the add-on's own Python environment, cancel that, and remove it again."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import bpy
from bpy.props import BoolProperty

from ..installer import bundled_wheel, install_steps, installed, refusal, remove, this_machines_torch_index
from ..preferences import get_preferences, install_log_path, sidecar_environment_path
from ..runtime import installer, session
from ..tick import run_until
from .common import WAIT_DESCRIPTION, should_wait

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems


class TRIPOSR_OT_install_sidecar(bpy.types.Operator):
    """Install the sidecar and PyTorch for this computer into a Python environment of the add-on's own
    (several GB). Blender stays usable meanwhile"""

    bl_idname = "triposr.install_sidecar"
    bl_label = "Install the Sidecar"
    bl_options = {"REGISTER"}

    wait: BoolProperty(name="Wait", description=WAIT_DESCRIPTION, options={"SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if installer.running:
            cls.poll_message_set("The sidecar is being installed")
            return False
        if session.owned and session.launcher.settings and session.launcher.settings.runner == "INSTALLED":
            cls.poll_message_set("The installed sidecar is running: stop it first")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        source = bpy.path.abspath(get_preferences(context).package_source.strip())
        wheel = bundled_wheel()
        if problem := refusal(source, bpy.app.online_access, wheel):
            self.report({"ERROR"}, problem)
            return {"CANCELLED"}
        assert wheel is not None
        environment = sidecar_environment_path()
        index = None if source else this_machines_torch_index()
        # Blender's own Python (in a bpy-wheel build, the Python that runs it) makes the environment.
        steps = install_steps(sys.executable, environment, wheel, source, index)
        installer.start(steps, environment, install_log_path())
        if should_wait(self):
            run_until(lambda: not installer.running)
            if installer.failure:
                self.report({"ERROR"}, installer.failure)
                return {"CANCELLED"}
        self.report({"INFO"}, f"Installing the sidecar into {environment}")
        return {"FINISHED"}


class TRIPOSR_OT_cancel_install(bpy.types.Operator):
    """Stop installing the sidecar; what was installed so far is not used"""

    bl_idname = "triposr.cancel_install"
    bl_label = "Cancel Install"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return installer.running

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        installer.cancel()
        session.changed = True
        self.report({"INFO"}, installer.failure)
        return {"FINISHED"}


class TRIPOSR_OT_remove_sidecar(bpy.types.Operator):
    """Delete the sidecar's environment that Install the Sidecar made (stops the sidecar if this Blender runs
    it from there)"""

    bl_idname = "triposr.remove_sidecar"
    bl_label = "Remove"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if installer.running:
            cls.poll_message_set("The sidecar is being installed: cancel that first")
            return False
        if session.tracker.active():
            cls.poll_message_set("Models are being made: wait for them, or cancel them first")
            return False
        if not installed(sidecar_environment_path()):
            cls.poll_message_set("The sidecar is not installed")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        environment = sidecar_environment_path()
        started = session.launcher.settings
        if session.owned and started and started.runner == "INSTALLED":
            session.stop()
        try:
            remove(environment)
        except OSError as exc:
            self.report({"ERROR"}, f"Could not delete {environment}: {exc.strerror or exc}")
            return {"CANCELLED"}
        session.changed = True
        self.report({"INFO"}, f"Removed the installed sidecar from {environment}")
        return {"FINISHED"}
