"""The protocol the Blender add-on and the sidecar speak, and the client that speaks it.

Standard library and pyzmq only, with relative imports: the add-on vendors this package into its zip.
"""

from .client import Event, SidecarClient, SidecarError, SidecarUnavailable
from .protocol import DEFAULT_ENDPOINT, PROTOCOL_VERSION

__all__ = [
    "DEFAULT_ENDPOINT",
    "PROTOCOL_VERSION",
    "Event",
    "SidecarClient",
    "SidecarError",
    "SidecarUnavailable",
]
