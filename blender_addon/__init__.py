"""TripoSR for Blender: turn an image into a 3D model, made by the TripoSR sidecar process.

Registration only; each concern lives in its own module.
"""

import bpy

from . import files, properties, runtime, tick
from .operators.batch import TRIPOSR_OT_cancel_batch, TRIPOSR_OT_generate_batch, TRIPOSR_OT_import_glb_folder
from .operators.generate import TRIPOSR_OT_cancel, TRIPOSR_OT_generate
from .operators.install import (
    TRIPOSR_OT_cancel_install,
    TRIPOSR_OT_install_sidecar,
    TRIPOSR_OT_remove_sidecar,
)
from .operators.notify import TRIPOSR_OT_notify
from .operators.results import TRIPOSR_OT_import_result, TRIPOSR_OT_refresh_results
from .operators.sidecar import (
    TRIPOSR_OT_check_sidecar,
    TRIPOSR_OT_open_log,
    TRIPOSR_OT_restart_sidecar,
    TRIPOSR_OT_start_sidecar,
    TRIPOSR_OT_stop_sidecar,
)
from .preferences import TRIPOSR_AddonPreferences
from .properties import TRIPOSR_PG_settings
from .ui import statusbar
from .ui.panels import (
    TRIPOSR_PT_batch,
    TRIPOSR_PT_main,
    TRIPOSR_PT_output,
    TRIPOSR_PT_results,
    TRIPOSR_PT_sidecar,
)

# Registered in this order, unregistered in reverse: what others refer to comes first, panels (parents before
# their children) last.
classes = (
    TRIPOSR_AddonPreferences,
    TRIPOSR_PG_settings,
    TRIPOSR_OT_generate,
    TRIPOSR_OT_cancel,
    TRIPOSR_OT_notify,
    TRIPOSR_OT_start_sidecar,
    TRIPOSR_OT_stop_sidecar,
    TRIPOSR_OT_restart_sidecar,
    TRIPOSR_OT_check_sidecar,
    TRIPOSR_OT_open_log,
    TRIPOSR_OT_refresh_results,
    TRIPOSR_OT_import_result,
    TRIPOSR_OT_generate_batch,
    TRIPOSR_OT_cancel_batch,
    TRIPOSR_OT_import_glb_folder,
    TRIPOSR_OT_install_sidecar,
    TRIPOSR_OT_cancel_install,
    TRIPOSR_OT_remove_sidecar,
    TRIPOSR_PT_main,
    TRIPOSR_PT_output,
    TRIPOSR_PT_sidecar,
    TRIPOSR_PT_batch,
    TRIPOSR_PT_results,
)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    properties.register()
    statusbar.register()
    files.register()
    tick.register()


def unregister() -> None:
    runtime.installer.cancel()  # no pip left writing into an environment nobody follows
    tick.unregister()
    files.unregister()
    statusbar.unregister()
    properties.unregister()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
