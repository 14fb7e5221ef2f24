"""What the artist sets in the panel, kept per scene (`scene.triposr`) so it is saved with the file.

Job state is not here: it lives in `session` for as long as Blender runs, never in a .blend.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .runtime import session
from .shared.protocol import POLICIES

# Fixed numbers, so a saved choice keeps its meaning whichever backends the sidecar offers today.
BACKENDS = (
    ("local", "Local", "This computer's GPU or CPU", 0),
    ("replicate", "Replicate", "TripoSR on Replicate's servers: needs a token, costs cents a model", 1),
    ("auto", "Automatic", "Local, and Replicate when the local run cannot work", 2),
    ("fastest", "Fastest", "Wherever the sidecar expects each image to finish soonest, within the budget", 3),
    ("cheapest", "Cheapest in Time", "Free places first, Replicate only where the deadline needs it", 4),
)
# Blender keeps only the strings of enum items Python holds on to: the list lives here, not in the callback.
_offered: list[tuple[str, str, str, int]] = list(BACKENDS)


# Before the sidecar has said which Replicate models it has: its default.
DEFAULT_REPLICATE_MODEL = ("tripo-sr", "TripoSR", "TripoSR on Replicate (camenduru/tripo-sr)", 0)
_models: list[tuple[str, str, str, int]] = [DEFAULT_REPLICATE_MODEL]


def offered_models(_self: object, _context: bpy.types.Context | None) -> list[tuple[str, str, str, int]]:
    names = session.info.replicate_models if session.info else []
    # Numbered by name, so that a saved choice keeps its meaning when the sidecar's list changes; the
    # sidecar's default is 0, what a setting no one has chosen holds.
    _models[:] = [
        (
            name,
            name,
            f"{name} on Replicate, as the sidecar configures it",
            0 if index == 0 else zlib.crc32(name.encode()) >> 1,
        )
        for index, name in enumerate(names)
    ] or [DEFAULT_REPLICATE_MODEL]
    return _models


def offered_backends(_self: object, _context: bpy.types.Context | None) -> list[tuple[str, str, str, int]]:
    names = session.info.backends if session.info else [item[0] for item in BACKENDS]
    if "replicate" in names:  # auto runs locally, and on Replicate when the local run cannot work
        names = [*names, "auto"]
    if session.info and session.info.places > 1:  # a choice of places: the sidecar may choose for each job
        names = [*names, *session.info.policies]
    _offered[:] = [item for item in BACKENDS if item[0] in names] or list(BACKENDS[:1])
    return _offered


# The Output section's choices. Each enum item's number is fixed (a count or a size where there is one), so
# a saved file keeps its meaning.
COLOURS = (
    ("VERTEX", "Per Vertex", "A colour at every vertex: no UVs or images to manage, as fine as the mesh", 0),
    ("TEXTURE", "Texture", "A UV map and a baked image: detail at any face count, as other apps expect", 1),
)
TEXTURE_SIZES = (
    ("512", "512", "512 x 512 pixels: small and quick", 512),
    ("1024", "1K", "1024 x 1024 pixels: enough for most models", 1024),
    ("2048", "2K", "2048 x 2048 pixels: for close-ups", 2048),
    ("4096", "4K", "4096 x 4096 pixels: the bake takes about 16 times as long as at 1K", 4096),
)
FACE_COUNTS = (
    ("FULL", "Full", "Every face the surface has (with a texture, at most 50,000): the heaviest mesh", 0),
    ("50K", "50k", "Simplified to 50,000 triangles", 50_000),
    ("20K", "20k", "Simplified to 20,000 triangles", 20_000),
    ("10K", "10k", "Simplified to 10,000 triangles", 10_000),
    ("5K", "5k", "Simplified to 5,000 triangles", 5_000),
    ("CUSTOM", "Custom", "Simplified to a number of triangles of your own", 1),
)
FACES_OF = {identifier: number for identifier, _name, _description, number in FACE_COUNTS}


class TRIPOSR_PG_settings(bpy.types.PropertyGroup):
    source: EnumProperty(  # type: ignore[valid-type]
        name="Source",
        items=(
            ("FILE", "File", "An image file on disk"),
            ("IMAGE", "Image", "An image already loaded in Blender"),
        ),
        default="FILE",
    )
    filepath: StringProperty(name="Image File", subtype="FILE_PATH")  # type: ignore[valid-type]
    image: PointerProperty(name="Image", type=bpy.types.Image)  # type: ignore[valid-type]
    backend: EnumProperty(name="Backend", items=offered_backends)  # type: ignore[valid-type]
    replicate_model: EnumProperty(  # type: ignore[valid-type]
        name="Replicate Model",
        description="The image-to-3D model a job sent to Replicate runs on",
        items=offered_models,
    )
    resolution: IntProperty(  # type: ignore[valid-type]
        name="Resolution",
        description="Marching-cubes grid per axis: more gives finer detail, more vertices and a longer wait",
        default=256,
        min=16,
        soft_min=64,
        soft_max=512,
        max=1024,
    )
    foreground_ratio: FloatProperty(  # type: ignore[valid-type]
        name="Foreground Ratio",
        description="How much of the image the object fills after cropping",
        default=0.85,
        min=0.5,
        max=1.0,
        subtype="FACTOR",
    )
    remove_background: BoolProperty(  # type: ignore[valid-type]
        name="Remove Background",
        description="Cut the object out of an image without transparency",
        default=True,
    )
    colour: EnumProperty(  # type: ignore[valid-type]
        name="Colour",
        description="How the model carries its colours",
        items=COLOURS,
        default="VERTEX",
    )
    texture_size: EnumProperty(  # type: ignore[valid-type]
        name="Texture Size",
        description="The baked image's width and height",
        items=TEXTURE_SIZES,
        default="1024",
    )
    faces: EnumProperty(  # type: ignore[valid-type]
        name="Faces",
        description="How many triangles the model keeps",
        items=FACE_COUNTS,
        default="FULL",
    )
    custom_faces: IntProperty(  # type: ignore[valid-type]
        name="Face Count",
        description="The number of triangles to simplify to",
        default=30_000,
        min=100,
        soft_max=1_000_000,
        max=10_000_000,
    )
    cleanup: BoolProperty(  # type: ignore[valid-type]
        name="Clean Up",
        description="Drop floating pieces under 2% of the largest one's area: specks of background and noise",
        default=True,
    )
    ground: BoolProperty(  # type: ignore[valid-type]
        name="On the Ground",
        description="Put the model's origin at the middle of its base, so it stands on the 3D cursor; "
        "otherwise the origin is the middle of the space the model was made in",
        default=False,
    )
    # In Blender units, which the glTF importer takes one to one from the GLB's metres: the model comes out
    # as tall as typed here, whatever the scene's unit scale.
    height: FloatProperty(  # type: ignore[valid-type]
        name="Height",
        description="Scale the model to this height; 0 keeps the size it was made at",
        default=0.0,
        min=0.0,
        soft_max=10.0,
        max=1000.0,
        subtype="DISTANCE",
    )
    collection: PointerProperty(  # type: ignore[valid-type]
        name="Collection",
        description="Where the model goes; empty: a new collection named after the image",
        type=bpy.types.Collection,
    )
    budget: FloatProperty(  # type: ignore[valid-type]
        name="Budget",
        description="The most a job, or a whole batch, may spend on Replicate, in US dollars",
        default=1.0,
        min=0.0,
        soft_max=20.0,
        max=10_000.0,
        precision=2,
    )
    deadline: FloatProperty(  # type: ignore[valid-type]
        name="Deadline",
        description="How long a job may take: it runs where it is free unless that would take longer",
        default=600.0,
        min=1.0,
        soft_max=3600.0,
        max=86_400.0,
        subtype="TIME_ABSOLUTE",
        unit="TIME_ABSOLUTE",
    )
    batch_folder: StringProperty(  # type: ignore[valid-type]
        name="Folder",
        description="A folder of images (or of GLBs to import)",
        subtype="DIR_PATH",
    )

    def params(self) -> dict:
        """The job parameters the sidecar takes."""
        params = {
            "backend": self.backend,
            "resolution": self.resolution,
            "foreground_ratio": round(self.foreground_ratio, 4),
            "remove_background": self.remove_background,
            "cleanup": self.cleanup,
            "faces": self.custom_faces if self.faces == "CUSTOM" else FACES_OF[self.faces],
            "texture": int(self.texture_size) if self.colour == "TEXTURE" else 0,
            "ground": self.ground,
            "height": round(self.height, 4),
        }
        # none chosen yet (the sidecar's list numbers its models anew): the sidecar's default
        if self.backend != "local" and self.replicate_model:
            params["replicate_model"] = self.replicate_model
        if self.backend in POLICIES:
            params["budget"] = round(self.budget, 2)
        if self.backend == "cheapest":
            params["deadline"] = round(self.deadline, 1)
        return params

    def image_name(self) -> str:
        """What the model will be called: the image's name without its extension."""
        if self.source == "IMAGE":
            return Path(self.image.name).stem if self.image else ""
        return Path(bpy.path.abspath(self.filepath)).stem if self.filepath else ""


def scene_settings(context: bpy.types.Context) -> TRIPOSR_PG_settings:
    return context.scene.triposr  # registered below, at run time


def register() -> None:
    bpy.types.Scene.triposr = PointerProperty(type=TRIPOSR_PG_settings)  # type: ignore[attr-defined,func-returns-value]


def unregister() -> None:
    del bpy.types.Scene.triposr  # type: ignore[attr-defined]
