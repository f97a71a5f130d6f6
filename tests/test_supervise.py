"""scripts/supervise.sh: the run command's worker comes back when it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import yaml

from tests.workers import ROOT, wait_for

SUPERVISE = str(ROOT / "scripts" / "supervise.sh")


def supervise(command: str, cwd: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SUPERVISE, "sh", "-c", command],
        cwd=cwd,
        env={**os.environ, **env},
        stderr=subprocess.PIPE,
        text=True,
    )


def running(pid: int) -> bool:
    """Alive, and not a zombie left for an init that does not reap (as in containers)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def starts(path: Path) -> list[float]:
    return [float(line) for line in path.read_text().split()] if path.exists() else []


def test_a_command_that_dies_is_started_again_after_a_growing_delay(tmp_path):
    # Each run records when it started, then dies as a killed worker does.
    supervisor = supervise("date +%s.%N >> starts; kill -9 $$", tmp_path)
    try:
        wait_for(lambda: len(starts(tmp_path / "starts")) >= 3, timeout=10, what="three runs")
    finally:
        supervisor.terminate()
        _, stderr = supervisor.communicate(timeout=5)
    first, second, third = starts(tmp_path / "starts")[:3]
    # Lower bounds only: a loaded machine may start a run late, never early; the
    # delays themselves are in what the supervisor says.
    assert second - first > 0.9
    assert third - second > 1.9
    assert "ended with status 137; starting it again in 1 s" in stderr
    assert "starting it again in 2 s" in stderr


def test_the_delay_never_exceeds_the_maximum(tmp_path):
    supervisor = supervise("date +%s.%N >> starts; exit 3", tmp_path, SUPERVISE_MAX_DELAY="1")
    try:
        wait_for(lambda: len(starts(tmp_path / "starts")) >= 4, timeout=10, what="four runs")
    finally:
        supervisor.terminate()
        _, stderr = supervisor.communicate(timeout=5)
    assert stderr.count("starting it again in 1 s") >= 3
    assert "starting it again in 2 s" not in stderr


def test_stopping_the_supervisor_stops_the_command_and_nothing_starts_again(tmp_path):
    supervisor = supervise("echo $$ > pid; exec sleep 300", tmp_path)
    wait_for(lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text(), what="pid")
    command = int((tmp_path / "pid").read_text())
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=5) == 0
    time.sleep(0.2)
    assert not running(command)


def test_what_a_dead_command_leaves_behind_ends_before_it_starts_again(tmp_path):
    # Like a worker killed with its embedded beat still running.
    supervisor = supervise("sleep 300 & echo $! >> orphans; kill -9 $$", tmp_path)
    try:
        wait_for(
            lambda: (
                (tmp_path / "orphans").exists()
                and len((tmp_path / "orphans").read_text().split()) >= 2
            ),
            timeout=10,
            what="two runs",
        )
        first_orphan = int((tmp_path / "orphans").read_text().split()[0])
        assert not running(first_orphan)
    finally:
        supervisor.terminate()
        supervisor.communicate(timeout=5)
        for orphan in (tmp_path / "orphans").read_text().split():
            if running(int(orphan)):
                os.kill(int(orphan), signal.SIGKILL)


def test_compose_restarts_every_long_running_service_and_health_checks_the_worker():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name, service in services.items():
        if name != "migrate":
            assert service["restart"] == "unless-stopped", name
    assert "inspect ping" in " ".join(services["worker"]["healthcheck"]["test"])
