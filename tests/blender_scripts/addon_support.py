"""For the add-on's scripts in Blender: install the zip as a user does, drive the tick, draw the panels."""

import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from types import SimpleNamespace

import bpy

PACKAGE = "bl_ext.user_default.triposr"


def config() -> dict:
    """The test's settings, passed as a JSON file: the only argument of every add-on script."""
    with open(sys.argv[1], encoding="utf-8") as stream:
        return json.load(stream)


def install(zip_path: str, **preferences) -> None:
    """Install and enable the extension from its zip (Blender installs its wheels), then set preferences."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    install_zip = bpy.ops.extensions.package_install_files
    result = install_zip(filepath=zip_path, repo="user_default", enable_on_install=True)
    assert result == {"FINISHED"}, result
    set_preferences(**preferences)


def install_to_start_sidecars(settings: dict, **preferences) -> None:
    """Install with preferences that let the add-on start sidecars itself: the project's Python, the tiny
    weights, the CPU, the test's endpoint and data folder."""
    defaults = {
        "endpoint": settings["endpoint"],
        "runner": "PYTHON",
        "python": settings["python"],
        "weights": settings["weights"],
        "device": "cpu",
        "data_dir": settings["data_dir"],
    }
    install(settings["zip"], **(defaults | preferences))


def generate(image: str, resolution: int):
    """Press Generate for an image file; the job it sent."""
    settings = bpy.context.scene.triposr
    settings.source, settings.filepath, settings.resolution = "FILE", image, resolution
    assert bpy.ops.triposr.generate(wait=False) == {"FINISHED"}
    return session().tracker.get(session().current)


def set_preferences(**values) -> None:
    preferences = bpy.context.preferences.addons[PACKAGE].preferences
    for name, value in values.items():
        setattr(preferences, name, value)


def module(name: str):
    return sys.modules[f"{PACKAGE}.{name}"]


def session():
    return module("runtime").session


def tick_until(done, timeout: float = 60.0, durations: list | None = None) -> None:
    """Call the add-on's timer function, as Blender would, until `done()`; its durations go to `durations`."""
    tick = module("tick").tick
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not done after {timeout} s"
        started = time.perf_counter()
        interval = tick()
        if durations is not None:
            durations.append(time.perf_counter() - started)
        time.sleep(min(interval, 0.05))


def tick_for(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    tick_until(lambda: time.monotonic() > deadline, timeout=seconds + 5)


def sidecar_processes(endpoint: str) -> list[int]:
    """Pids of the processes serving `endpoint` (read from /proc, so Linux only)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as stream:
                arguments = stream.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "serve" in arguments and endpoint in arguments:
            pids.append(int(pid))
    return pids


def panels() -> list:
    """Every panel the add-on registers."""
    return [cls for cls in sys.modules[PACKAGE].classes if issubclass(cls, bpy.types.Panel)]


def draw_panels(state: str, drawn: dict) -> None:
    """Draw every panel with a real UILayout; record Blender's complaints (a missing property, say).

    Background mode draws no regions, but a popup menu's layout is a real one: `popmenu_begin__internal`
    gives it. Ending the popup would open it, which crashes without a display, so it is left open.
    """
    with captured_output() as output:
        for panel in panels():
            menu = bpy.context.window_manager.popmenu_begin__internal(panel.__name__, icon="NONE")
            stand_in = SimpleNamespace(layout=menu.layout)
            if hasattr(panel, "draw_header"):
                panel.draw_header(stand_in, bpy.context)
            panel.draw(stand_in, bpy.context)
    drawn[state] = [line for line in output if "rna_ui" in line or "not found" in line or "rror" in line]


class LayoutReader:
    """A real UILayout that also notes the text of each item drawn in it, which Blender keeps to itself, and
    "[name]" for a property drawn with its own name."""

    def __init__(self, layout, texts: list):
        object.__setattr__(self, "_layout", layout)
        object.__setattr__(self, "texts", texts)

    def __getattr__(self, name: str):
        attribute = getattr(self._layout, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            if kwargs.get("text"):
                self.texts.append(kwargs["text"])
            elif name == "prop" and len(args) > 1:  # a property drawn under its own name
                self.texts.append(f"[{args[1]}]")
            result = attribute(*args, **kwargs)
            return LayoutReader(result, self.texts) if isinstance(result, bpy.types.UILayout) else result

        return call

    def __setattr__(self, name: str, value) -> None:
        setattr(self._layout, name, value)


def panel_text(panel) -> list:
    """The texts a panel draws now, drawn with a real UILayout (see draw_panels)."""
    texts: list = []
    menu = bpy.context.window_manager.popmenu_begin__internal(panel.__name__, icon="NONE")
    panel.draw(SimpleNamespace(layout=LayoutReader(menu.layout, texts)), bpy.context)
    return texts


@contextmanager
def captured_output():
    """The lines Blender's C code prints to file descriptors 1 and 2 meanwhile, once the block ends."""
    lines: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as file:
        os.dup2(file.fileno(), 1)
        os.dup2(file.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, original in zip((1, 2), saved, strict=True):
                os.dup2(original, fd)
                os.close(original)
            file.seek(0)
            lines += file.read().decode("utf-8", "replace").splitlines()


def scene_state() -> dict:
    """What an import could change: objects, collections, materials, meshes."""
    return {
        "objects": sorted(obj.name for obj in bpy.data.objects),
        "collections": sorted(collection.name for collection in bpy.data.collections),
        "materials": sorted(material.name for material in bpy.data.materials),
        "meshes": sorted(mesh.name for mesh in bpy.data.meshes),
    }


def describe(obj) -> dict:
    """An imported model as the artist finds it."""
    material = obj.data.materials[0] if obj.data.materials else None
    return {
        "name": obj.name,
        "mesh": obj.data.name,
        "type": obj.type,
        "parent": obj.parent.name if obj.parent else None,
        "collections": [collection.name for collection in obj.users_collection],
        "location": [round(value, 5) for value in obj.location],
        "material": material.name if material else None,
        "material_slots": len(obj.data.materials),
        "nodes": sorted(node.bl_idname for node in material.node_tree.nodes) if material else [],
        "color_attributes": [(a.name, a.domain, a.data_type) for a in obj.data.color_attributes],
        "vertices": len(obj.data.vertices),
        "selected": obj.select_get(),
        "active": bpy.context.view_layer.objects.active == obj,
    }
