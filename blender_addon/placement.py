"""Where a finished job's model goes: its collection, and its place at the cursor or on a batch's grid."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import bpy
from mathutils import Vector

from .batch import Batch, BatchItem, cell_for, model_key
from .importer import ensure_in_scene, import_glb, new_collection
from .tracker import Job, JobState

MODEL_KEY = "triposr_model"  # on a batch model's collection: which image and settings made it


@contextmanager
def glb_file(job: Job) -> Iterator[str]:
    """The result as a file the importer can read: the sidecar's own, or the bytes it sent, written out."""
    if job.glb is None:
        yield str(job.result["path"])
        return
    handle, path = tempfile.mkstemp(suffix=".glb", prefix="triposr-")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(job.glb)
        yield path
    finally:
        os.unlink(path)


def import_job(job: Job, batch: Batch | None, item: BatchItem | None) -> list[bpy.types.Object]:
    with glb_file(job) as path:
        if batch is not None and item is not None:
            return import_batch_item(path, batch, item)
        collection = bpy.data.collections.get(job.collection) if job.collection else None
        if collection is None:
            collection = new_collection(job.collection or job.name)
        ensure_in_scene(collection)
        return import_glb(path, job.name, collection, Vector(job.location))


def import_batch_item(path: str, batch: Batch, item: BatchItem) -> list[bpy.types.Object]:
    """Into the item's own collection inside the batch's, on the grid; the artist's selection stays."""
    parent = bpy.data.collections.get(batch.collection) if batch.collection else None
    if parent is None:
        parent = new_collection(batch.name)
        batch.collection = parent.name
    ensure_in_scene(parent)
    collection = new_collection(item.name, parent)
    collection[MODEL_KEY] = model_key(item.path, batch.params)
    item.collection, item.offset = collection.name, batch.offset_of(item)
    objects = import_glb(path, item.name, collection, grid_location(batch, item.offset), select=False)
    bpy.context.view_layer.update()  # the new objects' dimensions, before anything else has drawn them
    size = max((max(obj.dimensions.x, obj.dimensions.y) for obj in objects), default=0.0)
    if cell_for(size) > batch.cell:
        batch.cell = cell_for(size)
        spread(batch)
    return objects


def models_in_file(paths: list[Path], params: dict) -> set[Path]:
    """The images among `paths` whose batch models, made with `params`, are in the scene still."""
    keys = {model_key(str(path), params): path for path in paths}
    in_scene = bpy.context.scene.collection.children_recursive
    return {
        keys[key]
        for collection in in_scene
        if (key := collection.get(MODEL_KEY)) in keys and collection.all_objects
    }


def grid_location(batch: Batch, offset: tuple[float, float]) -> Vector:
    return Vector(batch.origin) + Vector((offset[0], offset[1], 0.0))


def spread(batch: Batch) -> None:
    """Move every placed item to its cell on the (now wider) grid."""
    for item in batch.items:
        collection = bpy.data.collections.get(item.collection) if item.collection else None
        if collection is None:
            continue
        target = batch.offset_of(item)
        shift = Vector((target[0] - item.offset[0], target[1] - item.offset[1], 0.0))
        for obj in collection.objects:
            if obj.parent is None:
                obj.location += shift
        item.offset = target


def import_glb_folder(folder: Path, origin: tuple[float, float, float], names: list[str]) -> Batch:
    """The GLBs picked in a folder (all when none are), laid out like a batch, so earlier results come back
    the way a batch places them."""
    paths = [folder / name for name in names] or sorted(
        path for path in folder.iterdir() if path.suffix.lower() == ".glb" and path.is_file()
    )
    batch = Batch.from_paths(folder.name or "GLBs", paths, origin=origin)
    for item in batch.items:
        import_batch_item(item.path, batch, item)
        item.state = JobState.DONE
    return batch
