"""An `estimate` reply in words, the same in the add-on's panel and in `submit --estimate`. Standard library
only: Blender's Python runs this."""

from __future__ import annotations

from typing import Any

POLICY_NAMES = {"fastest": "Fastest", "cheapest": "Cheapest in time"}


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"≈ {max(round(seconds), 1)} s"
    if seconds < 90 * 60:
        return f"≈ {round(seconds / 60)} min"
    return f"≈ {seconds / 3600:.1f} h"


def dollars(amount: float) -> str:
    return f"${amount:.2f}" if amount >= 0.1 or amount == 0 else f"${amount:.3f}"


def gigabytes(count: int) -> str:
    return f"{count / 1e9:.1f} GB"


def summary(estimate: dict[str, Any]) -> str:
    """One line: "≈ 40 s here · ≈ 15 s, $0.04 on Replicate", for the whole batch where it has several."""
    count = estimate["count"]
    batch = count > 1
    local = estimate["local"]
    parts = [f"{duration(local['batch_seconds' if batch else 'seconds'])} here"]
    if (remote := estimate.get("replicate")) is not None:
        seconds = remote["batch_seconds" if batch else "seconds"]
        cost = remote["batch_cost" if batch else "cost"]
        parts.append(f"{duration(seconds)}, {dollars(cost)} on Replicate")
    line = " · ".join(parts)
    return f"{count} images: {line}" if batch else line


def policy_summary(estimate: dict[str, Any]) -> str:
    """Where a policy would run the images, how long and for how much: "Fastest: ≈ 2 min, $0.47 (13 here,
    11 on Replicate)"; "" for a job that names its backend."""
    policy = estimate.get("policy")
    if not policy:
        return ""
    places = [f"{count} {_place(lane)}" for lane, count in policy["lanes"].items()]
    if policy["left"]:
        places.append(f"{policy['left']} beyond the budget")
    name = POLICY_NAMES.get(policy["backend"], policy["backend"])
    return f"{name}: {duration(policy['seconds'])}, {dollars(policy['cost'])} ({', '.join(places)})"


def _place(lane: str) -> str:
    return {"local": "here", "replicate": "on Replicate"}.get(lane, lane.replace("peer ", "on ", 1))


def memory_warning(estimate: dict[str, Any]) -> str:
    """A sentence when the local run would not fit in the memory free now, else ""."""
    memory = estimate["local"]["memory"]
    if memory["fits"]:
        return ""
    return (
        f"Not enough free memory here: a run needs about {gigabytes(memory['needed_bytes'])} more and "
        f"{gigabytes(memory['free_bytes'])} is free. Lower the resolution, close other programs, or "
        "use Replicate."
    )


def details(estimate: dict[str, Any]) -> list[str]:
    """Lines that also say how each figure was estimated, and the local run's stages and memory."""
    local = estimate["local"]
    stages = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in local["stage_seconds"].items())
    lines = [
        *filter(None, [policy_summary(estimate)]),
        summary(estimate),
        f"here: {duration(local['seconds'])} a model ({stages}); {local['how']}",
        f"here: peak memory {gigabytes(local['peak_rss_bytes'])}, "
        f"{gigabytes(local['memory']['free_bytes'])} free now",
    ]
    if (remote := estimate.get("replicate")) is not None:
        lines.append(
            f"Replicate: {duration(remote['seconds'])} and {dollars(remote['cost'])} a model, "
            f"{remote['concurrency']} at once; {remote['how']}"
        )
    if warning := memory_warning(estimate):
        lines.append(warning)
    return lines
