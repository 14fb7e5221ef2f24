"""The Output settings against a real sidecar, as an artist uses them, and what the scene holds after.

A textured model made with Generate keeps its own material and packed image, named after it, and stands on the
cursor at the height asked for; a copy of its image in a batch is served from the store under the copy's name;
Recent Results imports it again the same way; a vertex-colour job with other settings still gets the shared
material. The sidecar's echo of each job's parameters is reported beside what the add-on sent. After saving
and reopening the file, a pair of GLBs made from one surface (vertex colours, texture) is rendered with Cycles
for the test to compare. The panels are drawn in each state on the way.
"""

import math
import os
import shutil

import bpy
import numpy as np
from addon_support import config, describe, draw_panels, install, panels, session, tick_until
from harness import run
from mathutils import Euler, Vector

RENDER_SIZE = 128
AZIMUTHS = (0, 90, 180, 270)  # degrees: all round the model, so no seam hides at the back


def textured(obj) -> dict:
    """What an artist finds of a model's texture: its material, UV maps, and the image the material shows."""
    material = obj.data.materials[0] if obj.data.materials else None
    images = [node.image for node in material.node_tree.nodes if node.bl_idname == "ShaderNodeTexImage"]
    image = images[0] if len(images) == 1 and images[0] is not None else None
    pixels = np.empty(len(image.pixels) if image else 0, dtype=np.float32)
    if image:
        image.pixels.foreach_get(pixels)
    bsdf = material.node_tree.nodes.get("Principled BSDF") if material else None
    base_colour = bsdf.inputs["Base Color"].links if bsdf else []
    corners = [obj.matrix_world @ Vector(corner) for corner in obj.bound_box]
    return {
        "material_users": material.users if material else 0,
        "uv_maps": [uv.name for uv in obj.data.uv_layers],
        "faces": len(obj.data.polygons),
        "images": len(images),
        "image": image.name if image else None,
        "packed": bool(image and image.packed_file),
        "size": list(image.size) if image else [],
        "pixels_spread": float(pixels.std()) if image else 0.0,  # 0 for an image with no data
        "base_colour_from": base_colour[0].from_node.bl_idname if base_colour else None,
        "bounds": [
            [min(corner[axis] for corner in corners) for axis in range(3)],
            [max(corner[axis] for corner in corners) for axis in range(3)],
        ],
    }


def model(name: str) -> dict:
    obj = bpy.data.objects[name]
    return describe(obj) | textured(obj)


def generate(image: str, drawn: dict, state: str):
    """Generate from the panel; the job, and the parameters the add-on sent for it."""
    settings = bpy.context.scene.triposr
    settings.source, settings.filepath = "FILE", image
    sent = settings.params()
    assert bpy.ops.triposr.generate(wait=False) == {"FINISHED"}
    job = session().tracker.get(session().current)
    tick_until(lambda: job.state.name == "RUNNING" or job.state.finished)
    draw_panels(state, drawn)
    tick_until(lambda: job.state.finished, timeout=120)
    assert job.state.name == "DONE", job.error
    return job, sent


def echo(job, sent: dict) -> dict:
    """The parameters as the add-on sent them and as the sidecar accepted and ran them."""
    return {"sent": sent, "accepted": job.params, "result": job.result.get("params")}


def direction(from_zenith: float, azimuth: float) -> Vector:
    """A unit vector `from_zenith` degrees down from +Z, turned `azimuth` degrees about it."""
    return Euler((math.radians(from_zenith), 0.0, math.radians(azimuth))).to_matrix() @ Vector((0, 0, 1))


def render_views(name: str, folder: str) -> np.ndarray:
    """The model alone from four sides, [view, row, column, RGBA], lit by a sun and nothing else."""
    scene = bpy.context.scene
    for obj in scene.objects:
        obj.hide_render = obj.type == "MESH" and obj.name != name
    target = bpy.data.objects[name]
    corners = [target.matrix_world @ Vector(corner) for corner in target.bound_box]
    centre = sum(corners, Vector()) / len(corners)
    camera = scene.camera
    camera.data.ortho_scale = max(target.dimensions) * 1.1
    views = []
    for azimuth in AZIMUTHS:
        towards_camera = Euler((math.radians(70), 0.0, math.radians(azimuth))).to_matrix() @ Vector((0, 0, 1))
        camera.location = centre + towards_camera * 3.0
        camera.rotation_euler = (-towards_camera).to_track_quat("-Z", "Y").to_euler()
        # Key light from above and to the left of the camera: every side the camera sees has a lit part.
        towards_sun = Euler((math.radians(40), 0.0, math.radians(azimuth - 35))).to_matrix() @ Vector(
            (0, 0, 1)
        )
        scene.objects["Sun"].rotation_euler = (-towards_sun).to_track_quat("-Z", "Y").to_euler()
        scene.render.filepath = os.path.join(folder, f"{name}-{azimuth}.png")
        bpy.ops.render.render(write_still=True)
        image = bpy.data.images.load(scene.render.filepath)
        pixels = np.empty(len(image.pixels), dtype=np.float32)
        image.pixels.foreach_get(pixels)
        bpy.data.images.remove(image)
        views.append(pixels.reshape(RENDER_SIZE, RENDER_SIZE, 4))
    return np.stack(views)


def render_setup() -> None:
    """Cycles on the CPU (it needs no GPU context, unlike EEVEE and Workbench), one sample, direct light from
    a sun only: no bounce and no environment to sample, so a render is free of noise and one model's differs
    from another's only where their colours or normals do."""
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 1
    scene.cycles.max_bounces = 0
    scene.cycles.use_denoising = False
    scene.render.resolution_x = scene.render.resolution_y = RENDER_SIZE
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True  # alpha tells the model's pixels
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"  # 8 bits: the values a display shows
    scene.view_settings.view_transform = "Standard"  # colours as they are, no tone curve
    scene.world = None
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy = 3.0
    scene.collection.objects.link(sun)
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.data.type = "ORTHO"
    scene.collection.objects.link(camera)
    scene.camera = camera


def main() -> dict:
    settings = config()
    workdir = settings["workdir"]
    install(settings["zip"], endpoint=settings["endpoint"], auto_start=False, heartbeat_timeout=10.0)
    report: dict = {"drawn": {}, "panels": [panel.__name__ for panel in panels()]}
    drawn = report["drawn"]
    tick_until(lambda: session().connected, timeout=20)
    draw_panels("idle, vertex colours", drawn)

    output = bpy.context.scene.triposr
    output.resolution = 32
    output.colour, output.texture_size, output.faces = "TEXTURE", "1024", "5K"
    output.cleanup, output.ground, output.height = True, True, 1.5
    draw_panels("idle, texture", drawn)
    bpy.context.scene.cursor.location = (1.0, 2.0, 0.5)
    first, second = settings["images"]
    job, sent = generate(first, drawn, "running, texture")
    draw_panels("done, texture", drawn)
    report["textured"] = {"model": model(job.objects[0]), "params": echo(job, sent), "summary": job.summary()}

    # The same image under another name: the batch takes its model from the store, named after the first.
    copies = os.path.join(workdir, "copies")
    os.makedirs(copies)
    shutil.copy(first, os.path.join(copies, "copy.png"))
    shutil.copy(second, os.path.join(copies, "other.png"))
    bpy.context.scene.cursor.location = (10.0, 0.0, 0.0)
    assert bpy.ops.triposr.generate_batch(directory=copies, wait=False) == {"FINISHED"}
    batch = session().batch
    tick_until(
        lambda: any(item.state and item.state.name == "RUNNING" for item in batch.items) or not batch.running
    )
    draw_panels("batch, texture", drawn)
    tick_until(lambda: not batch.running and not session().tracker.ready(), timeout=120)
    report["batch"] = [
        {"name": item.name, "state": item.state.name, "message": item.message}
        | (model(item.name) if item.state.name == "DONE" else {})
        for item in batch.items
    ]

    bpy.ops.triposr.refresh_results()
    report["listed"] = [record["job"] for record in session().recent].count(job.id)
    bpy.context.scene.cursor.location = (0.0, 5.0, 0.0)
    assert bpy.ops.triposr.import_result(job=job.id, name="again", wait=True) == {"FINISHED"}
    report["recent"] = model("again")

    output.colour, output.faces, output.custom_faces = "VERTEX", "CUSTOM", 3000
    output.cleanup, output.ground, output.height = False, False, 0.0
    draw_panels("idle, custom faces", drawn)
    bpy.context.scene.cursor.location = (0.0, -5.0, 0.0)
    job, sent = generate(second, drawn, "running, vertex colours")
    report["vertex_colours"] = {"model": model(job.objects[0]), "params": echo(job, sent)}

    bpy.context.scene.cursor.location = (0.0, 0.0, 0.0)
    assert bpy.ops.triposr.import_glb_folder(directory=settings["pair"]) == {"FINISHED"}
    path = os.path.join(workdir, "textured.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)

    names = [report["textured"]["model"]["name"], *(item["name"] for item in report["batch"]), "again"]
    report["reopened"] = {name: model(name) for name in [*names, "ellipsoid_colours", "ellipsoid_texture"]}
    report["materials"] = sorted(material.name for material in bpy.data.materials)
    report["images"] = sorted(image.name for image in bpy.data.images)
    render_setup()
    renders = os.path.join(workdir, "renders")
    np.savez(
        os.path.join(workdir, "renders.npz"),
        colours=render_views("ellipsoid_colours", renders),
        texture=render_views("ellipsoid_texture", renders),
    )
    return report


run(main)
