"""Sparse extraction gives the dense mesh while evaluating the field only near the surface."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fields import RADIUS, THRESHOLD, ellipsoid_field
from scipy.spatial import cKDTree

from sidecar.triposr import isosurface
from sidecar.triposr.errors import EmptySurfaceError
from sidecar.triposr.grid import density_grid
from sidecar.triposr.isosurface import dense_isosurface, sparse_isosurface


def assert_same_mesh(expected, actual, resolution):
    """Same counts, a one-to-one vertex match within 1e-6 model units, and the same faces."""
    (expected_vertices, expected_faces), (vertices, faces) = expected, actual
    assert len(vertices) == len(expected_vertices) and len(faces) == len(expected_faces)
    distance, match = cKDTree(expected_vertices).query(vertices)
    assert distance.max() * 2 * RADIUS / (resolution - 1) <= 1e-6
    assert len(np.unique(match)) == len(expected_vertices)
    np.testing.assert_array_equal(canonical(match[faces]), canonical(expected_faces))


def canonical(faces: np.ndarray) -> np.ndarray:
    """Faces in a fixed order, each rotated to start at its lowest index (so winding still counts)."""
    turn = np.argmin(faces, axis=1)[:, None]
    rotated = np.take_along_axis(faces, (np.arange(3) + turn) % 3, axis=1)
    return rotated[np.lexsort(rotated.T[::-1])]


class CountingField:
    def __init__(self, field):
        self.field = field
        self.points = 0

    def __call__(self, points: torch.Tensor):
        self.points += len(points)
        return self.field(points)


@pytest.mark.parametrize("resolution", [64, 128])
def test_sparse_equals_dense_on_a_known_surface(resolution):
    dense = dense_isosurface(density_grid(ellipsoid_field, resolution, RADIUS, 50_000), THRESHOLD)
    counting = CountingField(ellipsoid_field)
    sparse = sparse_isosurface(counting, resolution, RADIUS, THRESHOLD, 50_000, coarse_resolution=16)
    assert_same_mesh(dense, sparse, resolution)
    assert counting.points < 0.35 * resolution**3  # only the bricks around the surface


@pytest.mark.parametrize(("resolution", "coarse"), [(64, 16), (128, 32)])
def test_sparse_equals_dense_on_the_tiny_model(tiny_model, golden, resolution, coarse):
    field = tiny_model.field_query(torch.from_numpy(golden["scene_codes"][0]))
    dense = dense_isosurface(density_grid(field, resolution, RADIUS, 50_000), THRESHOLD)
    # Its lattice-like surface runs through most bricks: keep the sparse path from handing over.
    sparse = sparse_isosurface(
        field, resolution, RADIUS, THRESHOLD, 50_000, coarse_resolution=coarse, dense_share=1.0
    )
    assert_same_mesh(dense, sparse, resolution)


def test_a_surface_through_most_bricks_is_extracted_on_the_dense_grid(tiny_model, golden):
    counting = CountingField(tiny_model.field_query(torch.from_numpy(golden["scene_codes"][0])))
    sparse_isosurface(counting, 64, RADIUS, THRESHOLD, 50_000, coarse_resolution=16)
    coarse_points = 17**3  # every 4th point along an axis, and the last: 17 of them
    assert counting.points == coarse_points + 64**3


@pytest.mark.parametrize("resolution", [64, 96, 126])
def test_a_grid_no_coarser_than_the_coarse_one_is_evaluated_once(resolution):
    # Below twice the coarse resolution the coarse grid is the fine one: seeding would evaluate it all.
    dense = dense_isosurface(density_grid(ellipsoid_field, resolution, RADIUS, 50_000), THRESHOLD)
    counting = CountingField(ellipsoid_field)
    sparse = sparse_isosurface(counting, resolution, RADIUS, THRESHOLD, 50_000)
    assert_same_mesh(dense, sparse, resolution)
    assert counting.points == resolution**3


def official_mesh(volume: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The classic table on the whole grid, as the official code's torchmcubes runs it: PyMCubes, an
    independent implementation of the same table, on the grid turned into Bourke's axes (our 2, 0, 1)."""
    import mcubes

    vertices, faces = mcubes.marching_cubes(volume.transpose(2, 0, 1), threshold)
    return vertices[:, [1, 2, 0]], faces.astype(np.int64)


def test_the_dense_mesh_is_the_official_one_whether_marched_whole_or_in_slabs(monkeypatch):
    volume = density_grid(ellipsoid_field, 96, RADIUS, 50_000)
    official = official_mesh(volume, THRESHOLD)
    assert_same_mesh(official, dense_isosurface(volume, THRESHOLD), 96)
    monkeypatch.setattr(isosurface, "DENSE_BLOCK_POINTS", 20 * 96**2)  # slabs of 19 cells
    assert_same_mesh(official, dense_isosurface(volume, THRESHOLD), 96)


def test_the_mesh_of_the_golden_volume_is_the_official_one(golden):
    """The official code marches `mc_level` (density - 25) at 0 with the classic table."""
    level = golden["mc_level"]
    official = official_mesh(level, 0.0)
    assert (len(official[0]), len(official[1])) == (20706, 41034)
    assert_same_mesh(official, dense_isosurface(level, 0.0), 32)


def test_a_blob_no_coarse_point_comes_near_is_missed_and_a_finer_coarse_grid_finds_it():
    """The documented limit: a piece is found only if some coarse cell around it comes within the margin."""

    def two_blobs(points: torch.Tensor):
        big = torch.exp(-((points - torch.tensor([-0.3, 0.0, 0.0])) ** 2).sum(1) / 0.05)
        small = torch.exp(-((points - torch.tensor([0.4, 0.05, 0.05])) ** 2).sum(1) / 0.0036)
        return 2 * THRESHOLD * (big + small), torch.zeros(len(points), 3)

    dense = dense_isosurface(density_grid(two_blobs, 129, RADIUS, 50_000), THRESHOLD)
    coarse = sparse_isosurface(two_blobs, 129, RADIUS, THRESHOLD, 50_000, coarse_resolution=9)
    fine = sparse_isosurface(two_blobs, 129, RADIUS, THRESHOLD, 50_000, coarse_resolution=33)
    assert len(coarse[0]) < len(dense[0])
    assert_same_mesh(dense, fine, 129)


def test_on_a_random_lattice_the_sparse_path_misses_no_piece_the_dense_one_finds(tiny_model, golden):
    """The tiny model's field is a random lattice of pieces. With a coarse spacing of 8 cells, the crossing
    test alone loses one of its 84 pieces; the margin finds them all."""
    field = tiny_model.field_query(torch.from_numpy(golden["scene_codes"][0]))
    dense = dense_isosurface(density_grid(field, 128, RADIUS, 50_000), THRESHOLD)

    def sparse(margin: float):
        return sparse_isosurface(
            field, 128, RADIUS, THRESHOLD, 50_000, coarse_resolution=16, dense_share=1.0, seed_margin=margin
        )

    assert len(pieces(*dense)) == 84
    assert len(pieces(*sparse(1.0))) == 83
    assert_same_mesh(dense, sparse(isosurface.SEED_MARGIN), 128)


def pieces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The connected pieces' labels, one per piece."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = coo_matrix(
        (np.ones(faces.size), (faces.ravel(), np.roll(faces, 1, 1).ravel())), (len(vertices),) * 2
    )
    return np.unique(connected_components(edges, directed=False)[1])


def test_no_surface_on_the_coarse_grid_is_a_clear_error():
    def empty(points: torch.Tensor):
        return torch.zeros(len(points)), torch.zeros(len(points), 3)

    with pytest.raises(EmptySurfaceError, match="never crosses the threshold"):
        sparse_isosurface(empty, 64, RADIUS, THRESHOLD, 50_000)
