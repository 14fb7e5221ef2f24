"""What went wrong with a job, as the protocol says it: an error code and a sentence a person can act on."""

from __future__ import annotations

import errno
import logging

import torch

from .jobs import JobFailed
from .triposr import EmptySurfaceError, ImageError, TripoSRError, WeightsUnavailable

log = logging.getLogger(__name__)

IMAGE_ERROR_CODES = {
    "empty": "image_empty",
    "unrecognized": "image_unrecognized",
    "damaged": "image_damaged",
    "too_large": "image_too_large",
    "no_foreground": "no_foreground",
    "bad_parameter": "bad_parameter",
}
# What writing a file says when the disk (or the file-size limit the process runs under) has no more room.
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """The error code and the sentence for a job or a model load that failed."""
    if isinstance(exc, JobFailed):
        return exc.code, str(exc)
    if isinstance(exc, ImageError):
        return IMAGE_ERROR_CODES.get(exc.reason, "image_damaged"), str(exc)
    if isinstance(exc, EmptySurfaceError):
        return "empty_surface", str(exc)
    if isinstance(exc, WeightsUnavailable):
        return "weights_unavailable", str(exc)
    if isinstance(exc, TripoSRError):  # the checkpoint, config or device
        return "model_unavailable", str(exc)
    if isinstance(exc, OSError) and exc.errno in NO_ROOM:
        return "storage_full", (
            f"The disk is full ({exc.strerror}), so the job's model could not be stored. Free some space on "
            "the disk of the sidecar's data folder, or lower serve --store-max-gb, then submit the job again."
        )
    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)) or "out of memory" in str(exc):
        return "out_of_memory", (
            "The job ran out of memory. Lower the resolution or the chunk size, or close programs that use "
            "the same memory."
        )
    if isinstance(exc, NotImplementedError):  # PyTorch's word for an op the device's backend lacks
        return "unsupported_op", (
            f"The device cannot run an operation the model needs ({exc}). Run the sidecar with "
            "--device cpu, or use the auto or replicate backend."
        )
    log.error("A job failed unexpectedly", exc_info=exc)
    return (
        "internal",
        f"The sidecar failed unexpectedly ({type(exc).__name__}: {exc}); its log has the details.",
    )
