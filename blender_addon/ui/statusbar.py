"""Blender's status bar: the job or batch under way, and how the last one ended, for an artist whose sidebar
is closed or on another tab."""

from __future__ import annotations

import bpy

from ..runtime import session


def draw_status(self: bpy.types.Header, context: bpy.types.Context) -> None:
    text, factor = session.status_line()
    if not text:
        return
    row = self.layout.row()
    if factor is None:
        row.label(text=text, icon="INFO")
    else:
        row.progress(factor=factor, type="BAR", text=text)


def register() -> None:
    bpy.types.STATUSBAR_HT_header.append(draw_status)


def unregister() -> None:
    bpy.types.STATUSBAR_HT_header.remove(draw_status)
