"""What the operators share: the sidecar's readiness, and waiting where no timer runs."""

from __future__ import annotations

import bpy

from ..launcher import LaunchError, endpoint_problem, is_local
from ..preferences import get_preferences, sidecar_log_path
from ..readiness import Missing, missing
from ..runtime import session
from ..session import OFFLINE

WAIT_DESCRIPTION = "Block until done. Background mode runs no timers, so there it is the default"


def cursor_location(context: bpy.types.Context) -> tuple[float, float, float]:
    location = context.scene.cursor.location
    return (location.x, location.y, location.z)


def should_wait(operator: bpy.types.Operator) -> bool:
    """The operator's `wait` if it was given; otherwise wait only in background mode, where no tick runs."""
    if operator.properties.is_property_set("wait"):
        return bool(operator.wait)  # type: ignore[attr-defined]
    return bpy.app.background


def sidecar_problem(context: bpy.types.Context, backend: str = "local") -> str:
    """Why a job cannot be sent now, or an empty string."""
    preferences = get_preferences(context)
    if problem := endpoint_problem(preferences.endpoint.strip()):
        return problem
    if lacking := setup_missing(context):
        return f"{lacking[0].sentence} Set {lacking[0].preference} in the preferences"
    if not (session.connected or session.starting or preferences.auto_start):
        problem = session.problem or "The sidecar is not running."
        return (
            f"{problem} Press Start in the Sidecar panel, or turn on Start Automatically in the preferences"
        )
    if session.info is not None and session.info.weights == "failed":
        return f"The sidecar could not load the model: {session.info.weights_error}"
    if backend != "local" and not bpy.app.online_access:  # replicate and auto may send the image away
        return OFFLINE
    return ""


def setup_missing(context: bpy.types.Context) -> list[Missing]:
    """What a sidecar this Blender would start lacks, while none answers; nothing once one does."""
    preferences = get_preferences(context)
    if session.connected or session.starting or not is_local(preferences.endpoint.strip()):
        return []
    return missing(preferences.launch_settings())


def ensure_sidecar(context: bpy.types.Context) -> None:
    """Have a sidecar answer, or one starting (jobs wait for it); raises LaunchError when it cannot start."""
    preferences = get_preferences(context)
    session.configure(preferences.endpoint.strip(), preferences.heartbeat_timeout)
    if session.connected or session.starting or session.probe(timeout=0.3):
        return
    if not preferences.auto_start:
        raise LaunchError(sidecar_problem(context))
    session.start(preferences.launch_settings(), sidecar_log_path())
