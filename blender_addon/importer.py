"""GLB to Blender objects, the same way on Blender 4.2 to 5.2, whose glTF importers differ.

4.2-4.4 put new objects in the Scene Collection and give vertex colours no material; 4.5+ use the active
collection and make a new `DefaultMaterial` on every import. So: note what exists, import, then move what is
new into the target collection, drop the importer's empty parents, name the mesh, and give it one shared
material.
"""

from __future__ import annotations

from collections.abc import Iterable

import bpy
from mathutils import Vector

MATERIAL_NAME = "TripoSR Vertex Colour"


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

    # Smooth shading from Blender's own normals: what the stored ones say for these meshes, at half the
    # import time of custom split normals, which also get in the way of sculpting and remeshing.
    bpy.ops.import_scene.gltf(filepath=filepath, import_shading="SMOOTH")

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
