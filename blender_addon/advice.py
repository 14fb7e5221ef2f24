"""What the add-on tells the artist to do: the preference to change, never a command-line option. No bpy.

The sidecar's sentences are written for its command line ("pass --weights ..."); those the add-on shows are
turned into the names of its preferences, and advice no preference can follow is left out.
"""

from __future__ import annotations

import re

PREFERENCES = "Edit > Preferences > Add-ons > TripoSR for Blender"

# The sidecar's options that a preference sets, as its messages phrase them.
REPHRASED = (
    (re.compile(r"pass --weights with"), f"set Weights in {PREFERENCES} to"),
    (re.compile(r"Pass a folder holding"), f"Set Weights in {PREFERENCES} to a folder holding"),
    (re.compile(r"Run the sidecar with --device cpu"), f"Set Device to CPU in {PREFERENCES}"),
    (
        re.compile(r"give this one its own folder with --data-dir"),
        f"give it another Data Folder in {PREFERENCES}",
    ),
)
OPTION = re.compile(r"(^|\s)--[a-z]")
OPTION_IN_BRACKETS = re.compile(r"\s*\([^()]*--[a-z][^()]*\)")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def in_preference_terms(message: str) -> str:
    """The message with the sidecar's command-line advice said as preferences, or dropped."""
    for option, preference in REPHRASED:
        message = option.sub(preference, message)
    message = OPTION_IN_BRACKETS.sub("", message)
    return " ".join(filter(None, map(without_options, SENTENCE_END.split(message))))


def without_options(sentence: str) -> str:
    """The sentence without its alternatives ("..., or ...") that name an option; empty if none is left."""
    if not OPTION.search(sentence):
        return sentence
    kept = [part for part in sentence.rstrip(".").split(", or ") if not OPTION.search(part)]
    return ", or ".join(kept) + "." if kept else ""
