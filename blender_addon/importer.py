"""GLB to Blender objects, the same way on Blender 4.2 to 5.2, whose glTF importers differ.

4.2-4.4 put new objects in the Scene Collection and give vertex colours no material; 4.5+ use the active
collection and make a new `DefaultMaterial` on every import. So: note what exists, import, then move what is
new into the target collection, drop the importer's empty parents, name the mesh, and give a vertex-colour
mesh one shared material. A textured mesh keeps the GLB's material and image, named after the model; every
version packs an image embedded in a GLB into the .blend, so it is saved with the file.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable

import bpy
from mathutils import Vector

MATERIAL_NAME = "TripoSR Vertex Colour"
# As the sidecar's textured material has it, so that the vertex-colour and the textured model of one job look
# alike: a surface that is not polished.
ROUGHNESS = 0.8


def import_glb(
    filepath: str,
    name: str,
    collection: bpy.types.Collection,
    location: Vector,
    select: bool = True,
) -> list[bpy.types.Object]:
    """Import a GLB into `collection`, its origin at `location`; the objects it made.

    `select`: select them and make the mesh active, as any import does. A batch arriving in the background
    passes False, and the artist's selection stays as it was.
    """
    view_layer = bpy.context.view_layer
    selected = [obj.name for obj in bpy.context.selected_objects]
    active = view_layer.objects.active.name if view_layer.objects.active else ""
    objects_before = set(bpy.data.objects)
    materials_before = set(bpy.data.materials)
    images_before = set(bpy.data.images)

    # Smooth shading from Blender's own normals: what the stored ones say for these meshes, at half the
    # import time of custom split normals, which also get in the way of sculpting and remeshing. A texture's
    # UV seams split a GLB's vertices: merged again (the UVs stay apart, per face corner) the mesh is whole,
    # shades smoothly across the seams, and does not tear when sculpted or subdivided.
    bpy.ops.import_scene.gltf(
        filepath=filepath, import_shading="SMOOTH", merge_vertices=has_texture_coordinates(filepath)
    )

    new = [obj for obj in bpy.data.objects if obj not in objects_before]
    kept = drop_empty_parents(new)
    for obj in kept:
        for owner in list(obj.users_collection):
            owner.objects.unlink(obj)
        collection.objects.link(obj)
        if obj.parent is None:
            obj.location += location
    made = set(bpy.data.materials) - materials_before
    meshes = [obj for obj in kept if obj.type == "MESH"]
    for obj in meshes:
        obj.name = obj.data.name = name
        if obj.data.color_attributes and all(made_by_importer(m, made) for m in obj.data.materials):
            obj.data.materials.clear()
            obj.data.materials.append(shared_material())
        else:
            name_after_model(obj, made, set(bpy.data.images) - images_before, name)
    remove_unused(made)

    if select:
        for obj in bpy.context.selected_objects:
            obj.select_set(False)
        for obj in kept:
            obj.select_set(True)
        view_layer.objects.active = meshes[0] if meshes else (kept[0] if kept else None)
    else:
        restore_selection(selected, active)
    return kept


def has_texture_coordinates(filepath: str) -> bool:
    """Whether a GLB's meshes have UVs, as its JSON chunk (after the 12-byte header and the chunk's own 8)
    lists their attributes."""
    with open(filepath, "rb") as stream:
        header = stream.read(20)
        if len(header) < 20 or header[:4] != b"glTF":
            return False  # not a GLB: the importer says what is wrong with it
        tree = json.loads(stream.read(struct.unpack_from("<I", header, 12)[0]))
    primitives = [primitive for mesh in tree.get("meshes", []) for primitive in mesh.get("primitives", [])]
    return any("TEXCOORD_0" in primitive.get("attributes", {}) for primitive in primitives)


def name_after_model(
    obj: bpy.types.Object, made: set[bpy.types.Material], images: set[bpy.types.Image], name: str
) -> None:
    """The GLB's material and its images called after the model, as the mesh is: a result served from the
    sidecar's store carries the name of the image it was first made from. A GLB from elsewhere with several
    materials keeps the names it came with."""
    own = [material for material in obj.data.materials if material in made]
    if len(own) != 1:
        return
    material = own[0]
    material.name = name
    for node in material.node_tree.nodes:
        if isinstance(node, bpy.types.ShaderNodeTexImage) and node.image in images:
            node.image.name = name


def drop_empty_parents(objects: list[bpy.types.Object]) -> list[bpy.types.Object]:
    """Remove the importer's empties (such as trimesh's "world" node); their children keep their place."""
    empties = [obj for obj in objects if obj.type == "EMPTY"]
    for empty in empties:
        for child in empty.children:
            world = child.matrix_world.copy()
            child.parent = None
            child.matrix_world = world
    for empty in empties:
        bpy.data.objects.remove(empty)
    return [obj for obj in objects if obj not in empties]


def made_by_importer(material: bpy.types.Material | None, made: set[bpy.types.Material]) -> bool:
    """An empty slot, or the importer's stand-in material; a GLB's own materials are kept."""
    return material is None or (material in made and material.name.startswith("DefaultMaterial"))


def shared_material() -> bpy.types.Material:
    """One material for every model: the mesh's colour attribute into the Principled BSDF's base colour."""
    material = bpy.data.materials.get(MATERIAL_NAME)
    if material is not None:
        return material
    material = bpy.data.materials.new(MATERIAL_NAME)
    if material.node_tree is None:  # Blender 4.x; 5.0 gives new materials nodes and deprecates use_nodes
        material.use_nodes = True
    tree = material.node_tree
    bsdf = next(node for node in tree.nodes if node.bl_idname == "ShaderNodeBsdfPrincipled")
    bsdf.inputs["Roughness"].default_value = ROUGHNESS
    colour = tree.nodes.new("ShaderNodeVertexColor")  # no layer name: the mesh's render colour attribute
    colour.location = (bsdf.location.x - 300, bsdf.location.y)
    tree.links.new(colour.outputs["Color"], bsdf.inputs["Base Color"])
    return material


def remove_unused(materials: Iterable[bpy.types.Material]) -> None:
    """Delete the importer's materials (4.5+'s `DefaultMaterial`) once nothing uses them."""
    for material in materials:
        if material.name != MATERIAL_NAME and material.users == 0:
            bpy.data.materials.remove(material)


def restore_selection(selected: list[str], active: str) -> None:
    view_layer = bpy.context.view_layer
    for obj in bpy.context.selected_objects:
        obj.select_set(False)
    for name in selected:
        found = bpy.data.objects.get(name)
        if found is not None and found.name in view_layer.objects:
            found.select_set(True)
    view_layer.objects.active = bpy.data.objects.get(active) if active else None


def new_collection(name: str, parent: bpy.types.Collection | None = None) -> bpy.types.Collection:
    """A new collection called `name` (Blender adds .001 when taken), under `parent` or the scene's."""
    collection = bpy.data.collections.new(name)
    (parent or bpy.context.scene.collection).children.link(collection)
    return collection


def ensure_in_scene(collection: bpy.types.Collection) -> None:
    """Link a collection the artist picked into the scene if it is not there, so its models are seen."""
    root = bpy.context.scene.collection
    if collection != root and collection not in root.children_recursive:
        root.children.link(collection)
