"""The add-on's preferences: how to run the sidecar, where it listens, and the Replicate token.

The token lives here (saved with Blender's preferences, never in a .blend) and reaches the sidecar only
through its environment when the add-on starts it.
"""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty

from .launcher import COMMAND, LaunchSettings, find_command
from .runtime import session
from .shared.protocol import DEFAULT_ENDPOINT

DEVICES = (
    ("auto", "Automatic", "CUDA if there is an NVIDIA GPU, else Apple's Metal (MPS), else the CPU"),
    ("cuda", "CUDA", "An NVIDIA GPU"),
    ("mps", "Metal", "The GPU of an Apple silicon Mac"),
    ("cpu", "CPU", "Slow but always there"),
)


class TRIPOSR_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    runner: EnumProperty(  # type: ignore[valid-type]
        name="Run With",
        items=(
            (
                "COMMAND",
                "Sidecar Command",
                f"The {COMMAND} program that the sidecar's install put on the PATH",
            ),
            (
                "PYTHON",
                "Python Interpreter",
                "A Python with the sidecar installed, run as `python -m sidecar`",
            ),
        ),
        default="COMMAND",
    )
    command: StringProperty(  # type: ignore[valid-type]
        name="Command",
        description=f"Full path of {COMMAND}; empty: look it up on the PATH",
        subtype="FILE_PATH",
    )
    python: StringProperty(  # type: ignore[valid-type]
        name="Python",
        description="The Python interpreter of the environment the sidecar is installed in",
        subtype="FILE_PATH",
    )
    endpoint: StringProperty(  # type: ignore[valid-type]
        name="Endpoint",
        description="Where the sidecar listens, as a ZeroMQ address",
        default=DEFAULT_ENDPOINT,
    )
    auto_start: BoolProperty(  # type: ignore[valid-type]
        name="Start Automatically",
        description="Start the sidecar when Generate is pressed and none is running",
        default=True,
    )
    weights: StringProperty(  # type: ignore[valid-type]
        name="Weights",
        description="A folder holding config.yaml and model.ckpt, or a Hugging Face repo id",
        default="stabilityai/TripoSR",
    )
    device: EnumProperty(name="Device", items=DEVICES, default="auto")  # type: ignore[valid-type]
    data_dir: StringProperty(  # type: ignore[valid-type]
        name="Data Folder",
        description="Where the sidecar keeps its results; empty: its default user data folder",
        subtype="DIR_PATH",
    )
    heartbeat_timeout: FloatProperty(  # type: ignore[valid-type]
        name="Heartbeat Timeout",
        description="A job the sidecar says nothing about for this long is reported lost",
        default=15.0,
        min=2.0,
        max=600.0,
        unit="TIME_ABSOLUTE",
    )
    replicate_token: StringProperty(  # type: ignore[valid-type]
        name="Replicate Token",
        description="For the Replicate backend. Handed to the sidecar when the add-on starts it; never saved "
        "in a .blend file",
        subtype="PASSWORD",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False

        column = layout.column(heading="Sidecar")
        column.prop(self, "runner")
        if self.runner == "COMMAND":
            column.prop(self, "command")
            if not self.command:
                found = find_command()
                column.label(text=f"Found: {found}" if found else f"{COMMAND} is not on PATH", icon="INFO")
        else:
            column.prop(self, "python")
        column.prop(self, "endpoint")
        column.prop(self, "auto_start")
        column.prop(self, "weights")
        column.prop(self, "device")
        column.prop(self, "data_dir")
        column.prop(self, "heartbeat_timeout")

        column = layout.column(heading="Replicate")
        column.prop(self, "replicate_token")
        if changed := session.restart_needed:
            column.label(text=f"{changed} changed: restart the sidecar to use them", icon="INFO")
            column.operator("triposr.restart_sidecar", icon="FILE_REFRESH")
        else:
            column.label(
                text="Weights, device, data folder and token apply when the sidecar starts", icon="INFO"
            )

    def launch_settings(self) -> LaunchSettings:
        return LaunchSettings(
            runner=self.runner,
            executable=bpy.path.abspath(self.command if self.runner == "COMMAND" else self.python),
            endpoint=self.endpoint.strip(),
            weights=self.weights.strip(),
            device=self.device,
            data_dir=bpy.path.abspath(self.data_dir),
            token=self.replicate_token.strip(),
        )


def get_preferences(context: bpy.types.Context | None = None) -> TRIPOSR_AddonPreferences:
    preferences = (context or bpy.context).preferences.addons[__package__].preferences
    assert isinstance(preferences, TRIPOSR_AddonPreferences)
    return preferences


def sidecar_log_path() -> Path:
    """The sidecar's log, in the add-on's own user folder (kept across add-on updates)."""
    return Path(bpy.utils.extension_path_user(__package__, path="logs", create=True)) / "sidecar.log"
