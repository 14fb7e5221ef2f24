"""What the add-on lacks before it can start a sidecar, each with the preference that fixes it. No bpy.

Until a sidecar answers, the panel lists these instead of a greyed Generate: what a first run most often
lacks is the sidecar's program or Python, and weights given as a folder that is not there. The add-on's
Install the Sidecar would provide the first: such an item says so, for the panel to offer it there.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .launcher import LaunchError, LaunchSettings, endpoint_problem, program
from .shared.protocol import weights_folder

WEIGHT_FILES = ("config.yaml", "model.ckpt")


@dataclass(frozen=True)
class Missing:
    sentence: str
    preference: str  # the label of the preference that fixes it
    installable: bool = False  # Install the Sidecar would fix it too


def missing(settings: LaunchSettings) -> list[Missing]:
    found = []
    if problem := endpoint_problem(settings.endpoint):
        found.append(Missing(problem, "Endpoint"))
    where = {"COMMAND": "Command", "PYTHON": "Python", "INSTALLED": "Run With"}[settings.runner]
    try:
        executable = program(settings)[0]
    except LaunchError as exc:
        found.append(Missing(str(exc), where, installable=True))
    else:
        if not (Path(executable).is_file() or shutil.which(executable)):
            found.append(Missing(f"There is no program at {executable}.", where, installable=True))
    if settings.weights and weights_folder(settings.weights):
        folder = Path(settings.weights).expanduser()
        lacking = [name for name in WEIGHT_FILES if not (folder / name).is_file()]
        if lacking:
            found.append(Missing(f"The weights folder {folder} has no {' or '.join(lacking)}.", "Weights"))
    return found
