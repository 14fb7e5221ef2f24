"""Tell the artist that a job or a batch has ended: a report reaches the status bar and the Info log."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bpy
from bpy.props import EnumProperty, StringProperty

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems


class TRIPOSR_OT_notify(bpy.types.Operator):
    """Report how a job ended (the tick calls it: a timer cannot report by itself)"""

    bl_idname = "triposr.notify"
    bl_label = "Report"
    bl_options = {"INTERNAL"}

    level: EnumProperty(  # type: ignore[valid-type]
        items=(("INFO", "Info", ""), ("WARNING", "Warning", ""), ("ERROR", "Error", "")),
        options={"SKIP_SAVE"},
    )
    message: StringProperty(options={"SKIP_SAVE"})  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        self.report({self.level}, self.message)
        return {"FINISHED"}
