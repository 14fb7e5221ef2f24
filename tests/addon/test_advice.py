"""The sidecar's command-line advice, as the add-on shows it: the preference to change, never an option."""

from __future__ import annotations

from triposr_addon.advice import PREFERENCES, in_preference_terms


def test_options_a_preference_sets_become_that_preference():
    offline = (
        "The TripoSR weights are not on this machine: connect to the internet once, or pass --weights with a "
        "folder holding config.yaml and model.ckpt."
    )
    assert in_preference_terms(offline).endswith(
        f"or set Weights in {PREFERENCES} to a folder holding config.yaml and model.ckpt."
    )
    device = "The device cannot run it (x). Run the sidecar with --device cpu, or use the auto backend."
    assert in_preference_terms(device) == (
        f"The device cannot run it (x). Set Device to CPU in {PREFERENCES}, or use the auto backend."
    )


def test_advice_no_preference_can_follow_is_left_out():
    assert in_preference_terms("Submit it again, or allow more time (serve --replicate-job-timeout).") == (
        "Submit it again, or allow more time."
    )
    port = (
        "Another program listens on tcp://127.0.0.1:1. Stop it, or choose a free port with --bind tcp://x:1."
    )
    assert in_preference_terms(port) == "Another program listens on tcp://127.0.0.1:1. Stop it."
    assert in_preference_terms("Lower serve --store-max-gb.") == ""


def test_a_message_without_options_is_kept_as_it_is():
    message = "The image could not be decoded; the file looks damaged (image file is truncated)."
    assert in_preference_terms(message) == message
