"""This Blender's one session: module state, so that none of it is ever saved in a .blend."""

from .session import Session

session = Session()
