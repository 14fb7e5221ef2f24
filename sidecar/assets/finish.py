"""The chain from a raw surface to an asset: each stage optional, each timed and reported on its own."""

from __future__ import annotations

from dataclasses import replace

from ..clock import StageClock
from .bake import bake
from .cleanup import drop_small_pieces, smooth
from .decimate import decimate
from .options import AssetOptions
from .placement import place
from .surface import ColourSource, Surface
from .unwrap import unwrap


def finish(surface: Surface, source: ColourSource, options: AssetOptions, clock: StageClock) -> Surface:
    """The surface cleaned, simplified, coloured from `source` and placed, as `options` ask.

    Colours or a texture the surface already has (a cloud model's) are kept while its geometry is: only a
    simplified surface, or one that asks for a texture it lacks, is coloured anew from `source`.
    """
    if options.cleanup or options.smooth:
        with clock.stage("cleanup"):
            if options.cleanup:
                surface = drop_small_pieces(surface, options.min_piece)
            if options.smooth:
                surface = smooth(surface, options.smooth)
    faces = options.target_faces if options.faces or not surface.textured else 0
    if faces and faces < len(surface.faces):
        with clock.stage("decimate"):
            surface = decimate(surface, faces)
    if options.texture and not surface.textured:
        with clock.stage("unwrap"):
            unwrapped = unwrap(surface, options.texture)
        with clock.stage("bake"):
            surface = bake(unwrapped, options.texture, source, clock.reporter("bake"))
    elif surface.colours is None and not surface.textured:
        with clock.stage("colour"):
            surface = replace(surface, colours=source(surface.vertices))
    if options.ground or options.height:
        with clock.stage("place"):
            surface = place(surface, options.ground, options.height)
    return surface
