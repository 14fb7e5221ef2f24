"""This Blender's session and sidecar install: module state, so none of it is ever saved in a .blend."""

from .installer import Installer
from .session import Session

session = Session()
installer = Installer()
