"""The add-on's preferences: how to run the sidecar (or install it), where it listens, the Replicate token.

The token lives here (saved with Blender's preferences, never in a .blend) and reaches the sidecar only
through its environment when the add-on starts it.
"""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty

from .installer import environment_python, installed
from .launcher import COMMAND, LaunchSettings, find_command
from .runtime import installer, session
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
            (
                "INSTALLED",
                "Installed Sidecar",
                "The sidecar that Install the Sidecar put into this add-on's own Python environment",
            ),
        ),
        default="COMMAND",
    )
    package_source: StringProperty(  # type: ignore[valid-type]
        name="Package Source",
        description="Where Install the Sidecar takes PyTorch and the sidecar's packages from. Empty: "
        "download them (needs Blender's online access). A folder of wheels: install from it, offline",
        subtype="DIR_PATH",
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
        elif self.runner == "PYTHON":
            column.prop(self, "python")
        column.prop(self, "endpoint")
        column.prop(self, "auto_start")
        column.prop(self, "weights")
        column.prop(self, "device")
        column.prop(self, "data_dir")
        column.prop(self, "heartbeat_timeout")

        self.draw_install(layout.column(heading="Install"), context)

        column = layout.column(heading="Replicate")
        column.prop(self, "replicate_token")
        if changed := session.restart_needed:
            column.label(text=f"{changed} changed: restart the sidecar to use them", icon="INFO")
            column.operator("triposr.restart_sidecar", icon="FILE_REFRESH")
        else:
            column.label(
                text="Weights, device, data folder and token apply when the sidecar starts", icon="INFO"
            )

    def draw_install(self, column: bpy.types.UILayout, context: bpy.types.Context) -> None:
        """Install the Sidecar: its button and source, its progress and log, and Remove."""
        environment = sidecar_environment_path()
        marker = installed(environment)
        if installer.running:
            factor, text = installer.progress()
            column.progress(factor=factor, type="BAR", text=text)
            column.operator("triposr.cancel_install", icon="CANCEL")
        else:
            if marker:
                column.operator("triposr.install_sidecar", text="Reinstall", icon="IMPORT")
            else:
                column.operator("triposr.install_sidecar", icon="IMPORT")
            column.prop(self, "package_source")
        if installer.failure:
            column.label(text=installer.failure, icon="ERROR")
        if installer.running or installer.failure:
            for line in installer.log_lines():
                column.label(text=line)
        if marker:
            column.label(
                text=f"Installed: sidecar {marker.get('sidecar')}, PyTorch {marker.get('torch')}, "
                f"in {environment}",
                icon="CHECKMARK",
            )
            if self.runner != "INSTALLED":
                column.label(text="Choose Run With ▸ Installed Sidecar to use it", icon="INFO")
            column.operator("triposr.remove_sidecar", icon="TRASH")

    def launch_settings(self) -> LaunchSettings:
        if self.runner == "INSTALLED":
            executable = installed_python()
        else:
            executable = bpy.path.abspath(self.command if self.runner == "COMMAND" else self.python)
        return LaunchSettings(
            runner=self.runner,
            executable=executable,
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


def install_log_path() -> Path:
    """The log of Install the Sidecar, beside the sidecar's own."""
    return sidecar_log_path().with_name("install.log")


def sidecar_environment_path() -> Path:
    """Where Install the Sidecar puts its Python environment: the add-on's user folder (kept across
    add-on updates)."""
    return Path(bpy.utils.extension_path_user(__package__, path="sidecar-env", create=True))


def installed_python() -> str:
    """The installed sidecar's Python; empty while there is none, or a half-made one."""
    environment = sidecar_environment_path()
    return str(environment_python(environment)) if installed(environment) else ""
