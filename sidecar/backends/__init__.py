"""Where jobs run: the local model (`local`), Replicate's servers (`replicate`), and when a job moves from
the first to the second (`auto`). A backend turns a ticket into an `Outcome`; `sidecar.worker` runs them."""
