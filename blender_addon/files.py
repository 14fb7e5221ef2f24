"""Which .blend is open, so that a model lands only in the file it was made for."""

from __future__ import annotations

import bpy

from .runtime import session


@bpy.app.handlers.persistent
def file_loaded(*_args: object) -> None:
    """After File > New, Open or Revert: jobs sent before belong to the file that was open then."""
    session.file_changed()


def register() -> None:
    bpy.app.handlers.load_post.append(file_loaded)


def unregister() -> None:
    if file_loaded in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(file_loaded)
