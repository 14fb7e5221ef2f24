"""The failures a user can act on, each with a message written for them."""


class TripoSRError(Exception):
    """Base class: the message says what went wrong and what to do about it."""


class ConfigError(TripoSRError, ValueError):
    """The model's config cannot be read or asks for something this implementation lacks."""


class WeightsUnavailable(TripoSRError):
    """The model's files are not on this machine and cannot be fetched."""


class ModelLoadError(TripoSRError):
    """The checkpoint cannot be read or does not fit the config."""


class DeviceError(TripoSRError):
    """The requested device is not usable on this machine."""


class ImageError(TripoSRError, ValueError):
    """The image cannot be used: undecodable, too large, or with nothing in the foreground.

    `reason` tells the cases apart for programs: empty, missing, unrecognized, damaged, too_large,
    no_foreground, bad_parameter.
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class EmptySurfaceError(TripoSRError):
    """The density field never crosses the threshold, so there is no surface to extract."""
