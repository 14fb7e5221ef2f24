"""From surface to asset: clean-up, smoothing, simplification, UV atlas, bake, placement and the mesh colour
source, on surfaces whose shape and colours are known."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from fields import RADIUS, THRESHOLD, ellipsoid_field, expected_srgb, gltf_to_model
from scipy import ndimage
from scipy.sparse.csgraph import connected_components

from sidecar.assets.bake import bake, rasterise
from sidecar.assets.cleanup import adjacency, drop_small_pieces, face_areas, smooth
from sidecar.assets.colour import srgb_to_linear
from sidecar.assets.decimate import decimate, without_degenerate_faces
from sidecar.assets.placement import place
from sidecar.assets.sampling import ClosestPoints, mesh_colour_source
from sidecar.assets.surface import Surface
from sidecar.assets.unwrap import GUTTER, unwrap
from sidecar.triposr.mesh import find_surface

TARGET_FACES = 5000
TEXTURE = 1024


def signed_volume(surface: Surface) -> float:
    """Positive for a closed surface wound counter-clockwise seen from outside."""
    corners = surface.vertices.astype(np.float64)[surface.faces]
    return float(np.einsum("fc,fc->", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])) / 6)


def points_on(surface: Surface, count: int, rng: np.random.Generator):
    """Uniform random points on the surface: their faces [N], barycentric weights [N, 3] and positions."""
    areas = face_areas(surface)
    faces = rng.choice(len(areas), size=count, p=areas / areas.sum())
    first, second = rng.random((2, count))
    root = np.sqrt(first)
    weights = np.stack([1 - root, root * (1 - second), root * second], axis=1)
    points = np.einsum("nk,nkc->nc", weights, surface.vertices.astype(np.float64)[surface.faces[faces]])
    return faces, weights, points


def bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """An image [H, W, C] at glTF texture coordinates, filtered bilinearly (clamped at the border)."""
    height, width = image.shape[:2]
    x = np.clip(uv[:, 0] * width - 0.5, 0, width - 1)
    y = np.clip(uv[:, 1] * height - 0.5, 0, height - 1)
    left, top = (
        np.minimum(np.floor(x).astype(int), width - 2),
        np.minimum(np.floor(y).astype(int), height - 2),
    )
    across, down = (x - left)[:, None], (y - top)[:, None]
    upper = image[top, left] * (1 - across) + image[top, left + 1] * across
    lower = image[top + 1, left] * (1 - across) + image[top + 1, left + 1] * across
    return upper * (1 - down) + lower * down


def cross_2d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def sphere(subdivisions: int, radius: float = 1.0, centre=(0.0, 0.0, 0.0)) -> Surface:
    mesh = trimesh.creation.icosphere(subdivisions, radius)
    return Surface((mesh.vertices + centre).astype(np.float32), mesh.faces.astype(np.int64))


def analytic_colours(points: np.ndarray) -> np.ndarray:
    """The ellipsoid field's colour (linear) at points in glTF's frame."""
    return srgb_to_linear(expected_srgb(gltf_to_model(points))).astype(np.float32)


@pytest.fixture(scope="module")
def ellipsoid() -> Surface:
    vertices, faces = find_surface(ellipsoid_field, RADIUS, 128, THRESHOLD, 1 << 20, sparse=False)
    return Surface(vertices, faces)


@pytest.fixture(scope="module")
def decimated(ellipsoid):
    return decimate(ellipsoid, TARGET_FACES)


@pytest.fixture(scope="module")
def unwrapped(decimated):
    return unwrap(decimated, TEXTURE)


@pytest.fixture(scope="module")
def baked(unwrapped):
    reported = []
    surface = bake(unwrapped, TEXTURE, analytic_colours, reported.append)
    return surface, reported


# Clean-up and smoothing


def test_floating_pieces_below_the_share_go_and_the_rest_stays_whole_with_colours_and_coordinates():
    big = sphere(3)
    kept_piece = sphere(1, 0.25, (3.0, 0.0, 0.0))  # 1/16 of the big one's area
    blob = sphere(1, 0.1, (0.0, 3.0, 0.0))  # 1/100 of it
    parts = [big, blob, kept_piece]
    offsets = np.cumsum([0] + [len(part.vertices) for part in parts])
    rng = np.random.default_rng(1)
    vertex_count = offsets[-1]
    whole = Surface(
        np.concatenate([part.vertices for part in parts]),
        np.concatenate([part.faces + offset for part, offset in zip(parts, offsets[:-1], strict=True)]),
        colours=rng.random((vertex_count, 3)).astype(np.float32),
        uv=rng.random((vertex_count, 2)).astype(np.float32),
        texture=np.zeros((4, 4, 3), dtype=np.uint8),
    )

    cleaned = drop_small_pieces(whole, 0.02)

    kept = np.r_[offsets[0] : offsets[1], offsets[2] : offsets[3]]  # the big sphere, then the kept piece
    np.testing.assert_array_equal(cleaned.vertices, whole.vertices[kept])
    np.testing.assert_array_equal(cleaned.colours, whole.colours[kept])
    np.testing.assert_array_equal(cleaned.uv, whole.uv[kept])
    kept_faces = np.concatenate([big.faces, kept_piece.faces + offsets[2]])
    np.testing.assert_array_equal(kept[cleaned.faces], kept_faces)
    assert cleaned.texture is whole.texture
    assert len(drop_small_pieces(whole, 0.001).faces) == len(whole.faces)


def test_taubin_smoothing_damps_noise_and_keeps_the_volume():
    smooth_sphere = sphere(4)
    radius = np.linalg.norm(smooth_sphere.vertices, axis=1, keepdims=True)
    noise = 1 + 0.02 * np.random.default_rng(2).standard_normal(radius.shape)
    colours = np.random.default_rng(3).random((len(radius), 3)).astype(np.float32)
    noisy = Surface(smooth_sphere.vertices * noise.astype(np.float32), smooth_sphere.faces, colours=colours)

    smoothed = smooth(noisy, 10)

    def roughness(surface: Surface) -> float:
        return float(np.linalg.norm(surface.vertices, axis=1).std())

    assert roughness(smoothed) < roughness(noisy) / 2
    assert abs(signed_volume(smoothed) / signed_volume(noisy) - 1) < 0.005
    np.testing.assert_array_equal(smoothed.faces, noisy.faces)
    assert smoothed.colours is noisy.colours


# Simplification


def test_decimation_reaches_the_face_count_and_keeps_shape_and_winding(ellipsoid, decimated):
    assert abs(len(decimated.faces) / TARGET_FACES - 1) <= 0.02
    assert face_areas(decimated).min() > 0
    assert np.array_equal(np.unique(decimated.faces), np.arange(len(decimated.vertices)))
    assert signed_volume(decimated) > 0
    assert abs(signed_volume(decimated) / signed_volume(ellipsoid) - 1) < 0.01


def test_the_decimated_surface_stays_within_half_a_percent_of_the_bounding_box_diagonal(ellipsoid, decimated):
    """Symmetric, sampled: 20,000 random points on each surface, the largest distance to the other.

    The closest points come from the candidate triangles nearest each point: missing the closest triangle
    can only make a distance larger, so the bound is checked conservatively."""
    rng = np.random.default_rng(4)
    diagonal = np.linalg.norm(np.ptp(ellipsoid.vertices, axis=0))
    for sampled, other in ((ellipsoid, decimated), (decimated, ellipsoid)):
        _, _, points = points_on(sampled, 20_000, rng)
        faces, weights = ClosestPoints(other)(points)
        nearest = np.einsum("nk,nkc->nc", weights, other.vertices.astype(np.float64)[faces])
        assert np.linalg.norm(points - nearest, axis=1).max() < 0.005 * diagonal


def test_a_target_at_or_above_the_face_count_keeps_the_surface(decimated):
    assert decimate(decimated, len(decimated.faces)) is decimated


# UV atlas and bake


def test_simplification_leaves_no_triangle_twice_nor_one_without_area():
    """Collapses can leave faces on the same three vertices, which Blender drops on import, and slivers."""
    box = trimesh.creation.box()
    faces = np.vstack([box.faces, box.faces[:2], box.faces[:1, [1, 2, 0]], [[0, 0, 1]]])
    cleaned = without_degenerate_faces(Surface(box.vertices, faces))
    np.testing.assert_array_equal(cleaned.faces, box.faces)


def test_unwrapping_splits_seams_keeps_geometry_and_winding(decimated, unwrapped):
    surface = unwrapped.surface
    assert len(surface.faces) == len(decimated.faces)
    assert unwrapped.uv.shape == (len(surface.vertices), 2) and unwrapped.uv.dtype == np.float32
    assert signed_volume(surface) > 0
    assert signed_volume(surface) == pytest.approx(signed_volume(decimated), rel=1e-6)
    assert not surface.textured and surface.colours is None


def test_every_texel_centre_inside_a_triangle_is_covered_once_and_charts_do_not_overlap(unwrapped):
    """Decided independently of the rasteriser, triangle by triangle, on every texel centre of its box."""
    uv, faces = unwrapped.uv.astype(np.float64), unwrapped.surface.faces
    raster = rasterise(unwrapped.uv, faces, TEXTURE)
    claims = np.zeros((TEXTURE, TEXTURE), dtype=int)
    strictly_inside = np.zeros((TEXTURE, TEXTURE), dtype=bool)
    for corners in uv[faces] * TEXTURE:
        low, high = np.floor(corners.min(axis=0)).astype(int), np.ceil(corners.max(axis=0)).astype(int)
        columns, rows = np.meshgrid(np.arange(low[0], high[0]), np.arange(low[1], high[1]))
        centre = np.stack([columns + 0.5, rows + 0.5], axis=-1)
        # the sign of each edge's cross product with the centre, all alike inside
        edge = np.roll(corners, -1, axis=0) - corners
        side = np.stack([cross_2d(edge[k], centre - corners[k]) for k in range(3)])
        scale = np.abs(cross_2d(edge[0], edge[1])) * 1e-9
        inside = (side > scale).all(axis=0) | (side < -scale).all(axis=0)
        claims[rows[inside], columns[inside]] += 1
        strictly_inside[rows[inside], columns[inside]] = True
    assert claims.max() == 1  # no texel centre lies strictly inside two triangles
    covered = raster.mask()
    assert covered[strictly_inside].all()
    # and each texel the rasteriser covers lies in the triangle it names, at the weights it gives
    assert raster.weights.min() > -1e-5
    row, column = np.divmod(raster.texels, TEXTURE)
    centres = np.einsum("nk,nkc->nc", raster.weights, uv[faces[raster.faces]]) * TEXTURE - 0.5
    np.testing.assert_allclose(centres, np.stack([column, row], axis=1), atol=1e-3)


def test_texel_centres_on_an_edge_two_triangles_share_are_covered():
    # a square over the whole texture, cut along its diagonal, which passes through texel centres
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float32)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    for size in (8, 64, 1000):
        raster = rasterise(uv, faces, size)
        assert raster.mask().all()


def test_charts_keep_a_gutter_from_each_other_and_from_the_border(unwrapped):
    raster = rasterise(unwrapped.uv, unwrapped.surface.faces, TEXTURE)
    _, chart_of_vertex = connected_components(adjacency(unwrapped.surface), directed=False)
    chart = np.full(TEXTURE * TEXTURE, -1)
    chart[raster.texels] = chart_of_vertex[unwrapped.surface.faces[raster.faces, 0]]
    chart = chart.reshape(TEXTURE, TEXTURE)
    # each texel's nearest chart: where neighbours' nearest charts differ, both are at least GUTTER away
    distance, nearest = ndimage.distance_transform_edt(chart < 0, return_indices=True)
    nearest_chart = chart[nearest[0], nearest[1]]
    for axis in (0, 1):
        changes = np.diff(nearest_chart, axis=axis) != 0
        gap = np.minimum(distance.take(range(1, TEXTURE), axis), distance.take(range(TEXTURE - 1), axis))
        assert gap[changes].min() >= GUTTER
    rows, columns = np.nonzero(chart >= 0)
    assert min(rows.min(), columns.min()) >= GUTTER
    assert max(rows.max(), columns.max()) <= TEXTURE - 1 - GUTTER


def test_the_texture_holds_the_analytic_colours_on_the_surface(decimated, unwrapped, baked):
    """10,000 random points on the simplified surface: the texture at their coordinates against the field's
    colour there, within 3/255 for at least 99% of them."""
    surface, _ = baked
    faces, weights, points = points_on(surface, 10_000, np.random.default_rng(5))
    uv = np.einsum("nk,nkc->nc", weights, surface.uv[surface.faces[faces]])
    error = np.abs(bilinear(surface.texture / 255.0, uv) - expected_srgb(gltf_to_model(points))).max(axis=1)
    assert np.mean(error <= 3 / 255) >= 0.99
    assert surface.texture.shape == (TEXTURE, TEXTURE, 3) and surface.texture.dtype == np.uint8
    assert surface.colours is None


def test_the_gutter_carries_each_charts_edge_and_the_rest_takes_the_charts_mean(unwrapped, baked):
    surface, _ = baked
    covered = rasterise(unwrapped.uv, unwrapped.surface.faces, TEXTURE).mask()
    distance, nearest = ndimage.distance_transform_edt(~covered, return_indices=True)
    texture = surface.texture.astype(int)
    gutter = (distance > 0) & (distance <= GUTTER)
    difference = np.abs(texture - texture[nearest[0], nearest[1]]).max(axis=-1)
    assert difference[gutter].max() <= 12  # of a range of 255 across the model; 7 at the time of writing
    beyond = distance > 3 * GUTTER  # no gutter reaches that far: one colour, the charts' mean
    np.testing.assert_allclose(
        texture[beyond], np.broadcast_to(texture[covered].mean(axis=0), (beyond.sum(), 3)), atol=1
    )


def test_the_bake_reports_progress_up_to_the_end(baked):
    _, reported = baked
    assert reported and reported[-1] == 1.0
    assert reported == sorted(reported)


# Placement


def bottom_centre(surface: Surface) -> np.ndarray:
    low, high = surface.vertices.min(axis=0), surface.vertices.max(axis=0)
    return np.array([(low[0] + high[0]) / 2, low[1], (low[2] + high[2]) / 2])


def test_placement_stands_the_model_at_the_origin_at_the_asked_height():
    rng = np.random.default_rng(6)
    surface = Surface(
        (rng.random((50, 3)) * [2, 3, 4] + [5, -6, 7]).astype(np.float32),
        rng.integers(0, 50, (40, 3)),
        uv=rng.random((50, 2)).astype(np.float32),
        texture=np.zeros((2, 2, 3), dtype=np.uint8),
    )
    extent = np.ptp(surface.vertices, axis=0)

    placed = place(surface, ground=True, height=1.8)
    assert bottom_centre(placed) == pytest.approx(np.zeros(3), abs=1e-6)
    assert np.ptp(placed.vertices, axis=0) == pytest.approx(extent * 1.8 / extent[1], rel=1e-5)  # uniformly
    assert placed.uv is surface.uv and placed.texture is surface.texture

    grounded = place(surface, ground=True, height=0)
    assert bottom_centre(grounded) == pytest.approx(np.zeros(3), abs=1e-6)
    assert np.ptp(grounded.vertices, axis=0) == pytest.approx(extent, rel=1e-6)

    scaled = place(surface, ground=False, height=1.8)  # about its bottom centre, which stays
    assert bottom_centre(scaled) == pytest.approx(bottom_centre(surface), abs=1e-5)
    assert np.ptp(scaled.vertices[:, 1]) == pytest.approx(1.8, rel=1e-6)


# The mesh colour source


def test_the_mesh_colour_source_interpolates_vertex_colours_at_points_on_the_mesh():
    mesh = sphere(3)
    colours = np.random.default_rng(7).random((len(mesh.vertices), 3)).astype(np.float32)
    coloured = Surface(mesh.vertices, mesh.faces, colours=colours)
    faces, weights, points = points_on(coloured, 5000, np.random.default_rng(8))
    expected = np.einsum("nk,nkc->nc", weights, colours[coloured.faces[faces]])
    np.testing.assert_allclose(mesh_colour_source(coloured)(points), expected, atol=1e-4)


def test_the_mesh_colour_source_samples_a_texture_at_points_on_and_near_the_mesh():
    # a bumpy sheet mapped to the middle of a random texture
    steps = np.linspace(0, 1, 41)
    x, z = (grid.ravel() for grid in np.meshgrid(steps, steps))
    vertices = np.stack([x, 0.1 * np.sin(3 * x) * np.cos(2 * z), z], axis=1).astype(np.float32)
    corner = (np.arange(40)[:, None] * 41 + np.arange(40)).ravel()
    faces = np.concatenate(
        [np.stack([corner, corner + 41, corner + 1], 1), np.stack([corner + 1, corner + 41, corner + 42], 1)]
    )
    uv = (0.1 + 0.8 * np.stack([x, z], axis=1)).astype(np.float32)
    texture = np.random.default_rng(9).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    sheet = Surface(vertices, faces, uv=uv, texture=texture)
    source = mesh_colour_source(sheet)

    face, weights, points = points_on(sheet, 5000, np.random.default_rng(10))
    point_uv = np.einsum("nk,nkc->nc", weights, uv[faces[face]])
    # filtered in linear light, as a GPU samples an sRGB texture
    expected = bilinear(srgb_to_linear(texture / 255.0), point_uv)
    np.testing.assert_allclose(source(points), expected, atol=1e-5)
    # off the sheet along its normal, a point takes the colour of its foot on the sheet
    normal = np.cross(*(vertices[faces[face, 1:]] - vertices[faces[face, :1]]).transpose(1, 0, 2))
    lifted = points + 0.003 * normal / np.linalg.norm(normal, axis=1, keepdims=True)
    centre = (np.abs(point_uv - 0.5) < 0.3).all(axis=1)  # away from the sheet's border
    np.testing.assert_allclose(source(lifted)[centre], source(points)[centre], atol=0.02)


def test_a_point_on_a_large_triangle_beside_small_ones_takes_the_large_ones_colour():
    # the unit square: its left half in 2 x 20 x 20 small triangles, its right half two large ones, each
    # half with its own vertices and colour
    steps = np.linspace(0, 0.5, 21)
    x, z = (grid.ravel() for grid in np.meshgrid(steps, steps))
    corner = (np.arange(20)[:, None] * 21 + np.arange(20)).ravel()
    small = np.concatenate(
        [np.stack([corner, corner + 21, corner + 1], 1), np.stack([corner + 1, corner + 21, corner + 22], 1)]
    )
    left = np.stack([x, np.zeros_like(x), z], axis=1)
    right = np.array([[0.5, 0, 0], [1, 0, 0], [1, 0, 1], [0.5, 0, 1]])
    large = np.array([[0, 3, 1], [1, 3, 2]]) + len(left)
    vertices = np.concatenate([left, right]).astype(np.float32)
    colours = np.zeros((len(vertices), 3), dtype=np.float32)
    colours[len(left) :] = 1.0
    source = mesh_colour_source(Surface(vertices, np.concatenate([small, large]), colours=colours))
    rng = np.random.default_rng(11)
    points = np.stack([rng.uniform(0.52, 0.6, 1000), np.zeros(1000), rng.uniform(0.1, 0.9, 1000)], axis=1)
    np.testing.assert_allclose(source(points), 1.0, atol=1e-6)


def brute_force_distance(points: np.ndarray, surface: Surface) -> np.ndarray:
    """Each point's distance to the surface, against every triangle by another route than Ericson's: the
    foot on the triangle's plane if it lies inside, else the nearest of the closest points on its edges."""
    corners = surface.vertices.astype(np.float64)[surface.faces]  # [F, 3, 3]
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    height = np.einsum("nfc,fc->nf", points[:, None] - corners[:, 0], normal)
    foot = points[:, None] - height[..., None] * normal
    inside = np.ones(foot.shape[:2], dtype=bool)
    on_edges = []
    for start, end in ((corners[:, k], corners[:, (k + 1) % 3]) for k in range(3)):
        inside &= np.einsum("nfc,fc->nf", np.cross(end - start, foot - start), normal) >= 0
        along = np.einsum("nfc,fc->nf", points[:, None] - start, end - start) / ((end - start) ** 2).sum(1)
        on_edges.append(start + np.clip(along, 0, 1)[..., None] * (end - start))
    distances = np.stack([np.linalg.norm(points[:, None] - p, axis=-1) for p in [foot, *on_edges]])
    distances[0][~inside] = np.inf
    return distances.min(axis=0).min(axis=1)


def distance_found(closest: ClosestPoints, surface: Surface, points: np.ndarray) -> np.ndarray:
    faces, weights = closest(points)
    assert weights.min() >= -1e-9 and np.allclose(weights.sum(axis=1), 1)
    found = np.einsum("nk,nkc->nc", weights, surface.vertices.astype(np.float64)[faces])
    return np.linalg.norm(points - found, axis=1)


def test_closest_points_on_every_part_of_a_triangle_are_exact():
    """Loose triangles, so each closest point lies on one triangle's face, edge or corner, with no neighbour
    sharing the edge to stand in for it."""
    rng = np.random.default_rng(12)
    corners = rng.random((30, 1, 3)) * 4 + rng.standard_normal((30, 3, 3)) * 0.3
    loose = Surface(corners.reshape(-1, 3).astype(np.float32), np.arange(90).reshape(30, 3))
    points = rng.random((3000, 3)) * 4.6 - 0.3
    found = distance_found(ClosestPoints(loose, candidates=30), loose, points)
    np.testing.assert_allclose(found, brute_force_distance(points, loose), atol=1e-9)


def test_a_few_candidate_triangles_find_the_closest_point_near_a_surface():
    mesh = sphere(3)
    rng = np.random.default_rng(13)
    directions = rng.standard_normal((3000, 3))
    points = (
        directions / np.linalg.norm(directions, axis=1, keepdims=True) * rng.uniform(0.95, 1.05, (3000, 1))
    )
    found = distance_found(ClosestPoints(mesh), mesh, points)
    np.testing.assert_allclose(found, brute_force_distance(points, mesh), atol=1e-9)


def test_a_mesh_colour_source_needs_colours():
    with pytest.raises(ValueError, match="vertex colours or a texture"):
        mesh_colour_source(sphere(1))
