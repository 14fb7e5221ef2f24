"""Ours against the official TripoSR pipeline on the same work, stage by stage, runs alternating, on this CPU.

The official stages are re-created from the public TripoSR code's facts (not its code, which needs packages
that do not install here): the model built with its random init and then filled from the checkpoint; the
whole grid's points made at once and queried 8192 at a time, each chunk's three planes sampled with
grid_sample and the features concatenated into the MLP; marching cubes with the classic table (PyMCubes, the
same table as the official torchmcubes) on the same density volume; colours queried at the vertices 8192 at a
time; trimesh's GLB export of the same mesh with 8-bit vertex colours. Ours are the sidecar's own functions
with their defaults. Both use the same full-size network with seeded random weights, the same image and
float32, unless `--precision` says otherwise for ours.

Per resolution, on the random network's own field (a lattice of surface: the most work for every stage),
then the whole warm job (image to GLB bytes) on the object-like field of `bench/extraction.py` at 256,
where ours extracts sparsely. Medians of --repeats runs, each stage's official and ours run back to back in
alternating order.

    pip install pymcubes    # the official-equivalent marching cubes
    python bench/official_speed.py [--resolutions 128,256] [--repeats 3] [--precision auto]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import mcubes
import numpy as np
import torch
import torch.nn.functional as F
import trimesh
from extraction import object_like_field

from sidecar.assets.finish import finish
from sidecar.assets.options import AssetOptions
from sidecar.assets.surface import Surface
from sidecar.benchmark import bench_image, write_random_weights
from sidecar.clock import StageClock
from sidecar.glb import surface_to_glb
from sidecar.heap import avoid_huge_page_stalls
from sidecar.pipeline import field_colour_source
from sidecar.triposr import TripoSR, load_model
from sidecar.triposr.config import load_config
from sidecar.triposr.grid import FieldQuery, density_grid
from sidecar.triposr.isosurface import dense_isosurface
from sidecar.triposr.loading import build_model
from sidecar.triposr.mesh import find_surface, grid_to_gltf
from sidecar.triposr.model import DEFAULT_THRESHOLD

OFFICIAL_CHUNK = 8192


def official_load(folder: Path) -> TripoSR:
    """As the official `from_pretrained`: the model with its random init, then the checkpoint copied in."""
    model = build_model(load_config(folder / "config.yaml"), device="cpu")
    model.load_state_dict(torch.load(folder / "model.ckpt", map_location="cpu", weights_only=True))
    return model


def official_query(model: TripoSR, scene_code: torch.Tensor) -> FieldQuery:
    """The official renderer's chunk query: scaled coordinates, three plane samples, concatenation, MLP."""
    radius = model.radius

    def query(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        unit = (points - (-radius)) / (radius - (-radius)) * 2 - 1
        planes = torch.stack((unit[..., [0, 1]], unit[..., [0, 2]], unit[..., [1, 2]]), dim=-3)
        sampled = F.grid_sample(scene_code, planes.unsqueeze(1), align_corners=False, mode="bilinear")
        features = sampled.squeeze(2).permute(2, 0, 1).reshape(points.shape[0], -1)
        out = model.decoder(features)
        return torch.exp(out[..., 0] + model.field.density_bias), torch.sigmoid(out[..., 1:4])

    return query


def official_grid(model: TripoSR, query: FieldQuery, resolution: int) -> np.ndarray:
    """The whole grid's points at once, then 8192 at a time through the query."""
    axis = torch.linspace(0, 1, resolution)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    points = points * 2 * model.radius - model.radius
    with torch.no_grad():
        density = torch.cat(
            [query(points[i : i + OFFICIAL_CHUNK])[0] for i in range(0, len(points), OFFICIAL_CHUNK)]
        )
    return density.numpy().reshape(resolution, resolution, resolution)


def official_marching_cubes(
    volume: np.ndarray, resolution: int, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    vertices, faces = mcubes.marching_cubes(volume.transpose(2, 0, 1), DEFAULT_THRESHOLD)
    return vertices[:, [1, 2, 0]] / (resolution - 1) * 2 * radius - radius, faces


def official_colours(query: FieldQuery, vertices: np.ndarray) -> np.ndarray:
    points = torch.from_numpy(vertices.astype(np.float32))
    with torch.no_grad():
        colours = [query(points[i : i + OFFICIAL_CHUNK])[1] for i in range(0, len(points), OFFICIAL_CHUNK)]
    return torch.cat(colours).numpy()


def official_export(vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray) -> bytes:
    mesh = trimesh.Trimesh(
        vertices, faces, vertex_colors=np.round(colours * 255).astype(np.uint8), process=False
    )
    return mesh.export(file_type="glb")


def ours_marching_cubes(volume: np.ndarray, resolution: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """As the pipeline's dense path: the mesh in glTF's frame, float32 vertices and int32 faces."""
    vertices, faces = dense_isosurface(volume, DEFAULT_THRESHOLD)
    return grid_to_gltf(vertices, resolution, radius), faces


def ours_colours(query: FieldQuery, vertices: np.ndarray, chunk_size: int) -> np.ndarray:
    """As the pipeline's colour stage: linear colours, for a GLB that stores them so."""
    return field_colour_source(query, chunk_size)(vertices)


def ours_export(vertices: np.ndarray, faces: np.ndarray, linear_colours: np.ndarray) -> bytes:
    return surface_to_glb(Surface(vertices, faces, colours=linear_colours))


class Race:
    """Pairs of (official, ours) timed back to back, the order alternating between repeats."""

    def __init__(self) -> None:
        self.times: dict[str, tuple[list[float], list[float]]] = {}

    def run(self, stage: str, repeat: int, official: Callable, ours: Callable) -> tuple:
        pair = [(0, official), (1, ours)]
        results: list = [None, None]
        for side, work in pair if repeat % 2 == 0 else pair[::-1]:
            started = time.perf_counter()
            results[side] = work()
            self.times.setdefault(stage, ([], []))[side].append(time.perf_counter() - started)
        return tuple(results)

    def print(self, title: str) -> None:
        print(f"\n{title}")
        print(f"  {'stage':<16}{'official':>10}{'ours':>10}{'ratio':>8}")
        for stage, (official, ours) in self.times.items():
            a, b = statistics.median(official), statistics.median(ours)
            print(f"  {stage:<16}{a:>9.2f}s{b:>9.2f}s{b / a:>8.2f}")


def per_stage(folder: Path, resolution: int, repeats: int) -> None:
    race = Race()
    vertices = 0
    for repeat in range(repeats):
        vertices = race_once(race, repeat, folder, resolution)
    race.print(f"resolution {resolution}, the random network's lattice ({vertices:,} vertices), float32")


def race_once(race: Race, repeat: int, folder: Path, resolution: int) -> int:
    """One repeat of every stage; the mesh's vertex count."""
    official, ours = race.run(
        "load", repeat, lambda: official_load(folder), lambda: load_model(str(folder), "cpu")
    )
    pixels = ours.preprocess(bench_image())
    with torch.no_grad():
        code, _ = race.run(
            "encode", repeat, lambda: official.encode(pixels)[0], lambda: ours.encode(pixels)[0]
        )
    theirs_query, our_query = official_query(official, code), ours.field_query(code)
    volume, ours_volume = race.run(
        "density grid",
        repeat,
        lambda: official_grid(official, theirs_query, resolution),
        lambda: density_grid(our_query, resolution, ours.radius, ours.chunk_size),
    )
    # each side goes on with its own mesh (the same one: tests/test_sparse.py), in the types it makes
    (vertices, faces), (our_vertices, our_faces) = race.run(
        "marching cubes",
        repeat,
        lambda: official_marching_cubes(volume, resolution, official.radius),
        lambda: ours_marching_cubes(ours_volume, resolution, ours.radius),
    )
    colours, linear_colours = race.run(
        "vertex colours",
        repeat,
        lambda: official_colours(theirs_query, vertices),
        lambda: ours_colours(our_query, our_vertices, ours.chunk_size),
    )
    race.run(
        "GLB export",
        repeat,
        lambda: official_export(vertices, faces, colours),
        lambda: ours_export(our_vertices, our_faces, linear_colours),
    )
    return len(vertices)


def whole_job(folder: Path, repeats: int, precision: str) -> None:
    """Warm: both models loaded; image to GLB bytes on the object-like field at 256."""
    race = Race()
    image = bench_image()
    official, ours = official_load(folder), load_model(str(folder), "cpu", precision=precision)

    def official_job() -> bytes:
        with torch.no_grad():
            code = official.encode(official.preprocess(image))[0]
        query, _ = object_like_field(official, code)
        volume = official_grid(official, query, 256)
        vertices, faces = official_marching_cubes(volume, 256, official.radius)
        return official_export(vertices, faces, official_colours(query, vertices))

    def our_job() -> bytes:
        with torch.no_grad():
            code = ours.encode(ours.preprocess(image))[0]
        query, _ = object_like_field(ours, code)
        vertices, faces = find_surface(query, ours.radius, 256, DEFAULT_THRESHOLD, ours.chunk_size)
        surface = finish(
            Surface(vertices, faces),
            field_colour_source(query, ours.chunk_size),
            AssetOptions(),
            StageClock(None),
        )
        return surface_to_glb(surface)

    for repeat in range(repeats):
        race.run("whole job", repeat, official_job, our_job)
    race.print(
        f"the whole warm job on the object-like field at 256: official dense float32, ours with {precision}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resolutions", default="128,256")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="auto", help="ours in the whole job (default: auto)")
    parser.add_argument("--threads", type=int, help="torch's threads for both (default: torch's own)")
    args = parser.parse_args()
    avoid_huge_page_stalls()  # for both sides, as the sidecar's command line does for its process
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads; full-size network, seeded random weights")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        write_random_weights(folder)
        for resolution in map(int, args.resolutions.split(",")):
            per_stage(folder, resolution, args.repeats)
        whole_job(folder, args.repeats, "float32")
        if args.precision != "float32":
            whole_job(folder, args.repeats, args.precision)


if __name__ == "__main__":
    main()
