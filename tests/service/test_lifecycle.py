"""Starting, stopping and dying: SIGKILL and restart, the parent process and the clients' processes it stays
up for, shutdown, a taken port or folder."""

from __future__ import annotations

import signal
import socket
import time

from service_harness import LONG, QUICK, EventLog, run_job, unique_png
from sidecar_process import Sidecar, free_port

HEARTBEAT_TIMEOUT = 3.0


def test_a_killed_sidecar_is_noticed_and_a_restarted_one_still_has_the_finished_results(launcher, image):
    sidecar = launcher.start()
    with sidecar.client(heartbeat_timeout=HEARTBEAT_TIMEOUT) as client:
        finished = run_job(client, unique_png(image))[-1]
        log = EventLog(client)
        running = client.submit(unique_png(image), LONG)
        log.until_stage(running, "density")
        sidecar.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        log.until_done(running, timeout=HEARTBEAT_TIMEOUT + 5)
        lost = log.terminal(running)
        assert (lost.event.type, lost.event.header["code"]) == ("error", "sidecar_lost")
        assert lost.at - killed < HEARTBEAT_TIMEOUT + 1.5
        assert client.active_jobs == set()
        assert client.poll() == []  # reported once

        # Same folder, same address: the client's socket reconnects by itself.
        launcher.start(data_dir=sidecar.data_dir, endpoint=sidecar.endpoint)
        statuses = {entry["job"]: entry for entry in client.list_results()}
        assert statuses[finished.job]["status"] == "done"
        assert (statuses[running]["status"], statuses[running]["error_code"]) == ("failed", "interrupted")
        client.fetch(finished.job)
        log.until_done(finished.job)
        fetched = log.terminal(finished.job).event
        assert fetched.payload == finished.payload
        assert fetched.header["from_store"] is True


def test_the_sidecar_exits_when_its_parent_process_has_gone(launcher, stand_in):
    parent = stand_in()
    sidecar = launcher.start("--parent-pid", str(parent.pid))
    parent.kill()
    parent.wait()
    assert sidecar.process.wait(timeout=15) == 0
    assert "parent process" in sidecar.log()


def test_the_sidecar_stays_up_while_a_client_that_named_its_process_runs(launcher, stand_in, image):
    # Two Blenders share a sidecar: the one that started it quits, the other goes on using it.
    starter, other = stand_in(), stand_in()
    sidecar = launcher.start("--parent-pid", str(starter.pid))
    with sidecar.client(client_pid=other.pid) as client:
        client.hello()
        assert f"Staying up while process {other.pid} runs too" in sidecar.log()
        starter.kill()
        starter.wait()
        until_logged(sidecar, f"Process {starter.pid} has exited; staying up for [{other.pid}]")
        assert client.hello()["protocol"] == 1
        assert run_job(client, unique_png(image))[-1].type == "result"
    other.kill()
    other.wait()
    assert sidecar.process.wait(timeout=30) == 0, "it stops by itself once the last one has gone"
    assert f"the client processes {other.pid} have exited" in sidecar.log()


def until_logged(sidecar: Sidecar, text: str, timeout: float = 30.0) -> None:
    """Wait until the sidecar's log says `text`; fail at once if it exits instead."""
    deadline = time.monotonic() + timeout
    while text not in sidecar.log():
        assert sidecar.process.poll() is None, f"the sidecar exited:\n{sidecar.log()}"
        assert time.monotonic() < deadline, f"the log did not say {text!r} within {timeout} s"
        time.sleep(0.05)


def test_a_shutdown_message_ends_the_running_job_and_stops_the_sidecar(launcher, image):
    sidecar = launcher.start()
    with sidecar.client() as client:
        log = EventLog(client)
        job = client.submit(unique_png(image), LONG)
        log.until_stage(job, "density")
        client.shutdown()
        log.until_done(job)
    error = log.terminal(job).event
    assert (error.type, error.header["code"], error.header["retryable"]) == ("error", "shutting_down", True)
    assert sidecar.process.wait(timeout=15) == 0
    assert not (sidecar.data_dir / "sidecar.pid").exists()


def test_a_taken_port_is_refused_with_a_sentence(launcher):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        sidecar = launcher.spawn(endpoint=f"tcp://127.0.0.1:{taken.getsockname()[1]}")
        assert sidecar.process.wait(timeout=60) == 2
    assert "already listening on" in sidecar.log()
    assert "Traceback" not in sidecar.log()


def test_a_data_folder_in_use_by_another_sidecar_is_refused(launcher):
    first = launcher.start()
    second = launcher.spawn(data_dir=first.data_dir, endpoint=f"tcp://127.0.0.1:{free_port()}")
    assert second.process.wait(timeout=60) == 2
    assert f"process {first.process.pid}" in second.log()
    assert first.wait_ready()["weights"] in ("loading", "loaded")


def test_missing_weights_are_reported_by_hello_and_fail_each_job_with_the_reason(launcher, tmp_path, image):
    sidecar = launcher.spawn("--weights", str(tmp_path / "no-weights"))
    sidecar.wait_ready()
    with sidecar.client() as client:
        log = EventLog(client)
        job = client.submit(image, QUICK)
        log.until_done(job)
        hello = client.hello()
    error = log.terminal(job).event.header
    assert (error["code"], error["retryable"]) == ("weights_unavailable", False)
    assert "no-weights" in error["message"]
    assert (hello["weights"], hello["weights_error"]) == ("failed", error["message"])
