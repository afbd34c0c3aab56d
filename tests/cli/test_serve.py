"""``keyrack serve`` as a real process: secrets generated, schema migrated, HTTP answering."""

import os
import signal
import socket
import stat
import subprocess
import sys
import time

import httpx
import pytest

STARTUP_TIMEOUT = 20.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server_env(tmp_path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("KEYRACK_")}
    env["KEYRACK_DATABASE_URL"] = f"sqlite:///{tmp_path / 'keyrack.db'}"
    env["KEYRACK_SECRETS_FILE"] = "keyrack.secrets"  # relative: the server resolves it
    return env


def _wait_for_health(process: subprocess.Popen[bytes], url: str) -> httpx.Response:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"keyrack serve exited early with code {process.returncode}")
        try:
            response = httpx.get(url, timeout=1.0)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        if 200 == response.status_code:
            return response
    pytest.fail(f"keyrack serve did not answer {url} within {STARTUP_TIMEOUT} s")


class TestServe:
    def test_starts_on_a_bare_machine_and_answers_health(self, tmp_path, server_env):
        port = _free_port()
        with (
            (tmp_path / "stdout.log").open("wb") as out,
            (tmp_path / "stderr.log").open("wb") as err,
        ):
            process = subprocess.Popen(  # noqa: S603  # our own interpreter, fixed arguments
                [sys.executable, "-m", "keyrack", "serve", "--port", str(port)],
                cwd=tmp_path,
                env=server_env,
                stdout=out,
                stderr=err,
            )
            try:
                health = _wait_for_health(process, f"http://127.0.0.1:{port}/healthz")
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5.0)
            finally:
                process.terminate()
                process.wait(timeout=15)

        assert {"status": "ok"} == health.json()
        assert 200 == ready.status_code
        assert 0o600 == stat.S_IMODE((tmp_path / "keyrack.secrets").stat().st_mode)
        stderr = (tmp_path / "stderr.log").read_text()
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells it.
        assert process.returncode in (0, -signal.SIGTERM)
        assert "Application shutdown complete." in stderr
        assert "generated keyrack.secrets" in stderr
        assert "secrets.from_file" in stderr
        assert "KEYRACK_PEPPERS=" not in stderr

    def test_workers_each_own_a_reuseport_socket_and_stop_gracefully(self, tmp_path, server_env):
        port = _free_port()
        with (
            (tmp_path / "stdout.log").open("wb") as out,
            (tmp_path / "stderr.log").open("wb") as err,
        ):
            process = subprocess.Popen(  # noqa: S603  # our own interpreter, fixed arguments
                [sys.executable, "-m", "keyrack", "serve", "--port", str(port), "--workers", "2"],
                cwd=tmp_path,
                env=server_env,
                stdout=out,
                stderr=err,
            )
            try:
                _wait_for_health(process, f"http://127.0.0.1:{port}/healthz")
                # Fresh connections: the kernel spreads them over both workers' sockets.
                answers = [
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5.0).status_code
                    for _ in range(20)
                ]
            finally:
                process.terminate()
                process.wait(timeout=30)

        assert [200] * 20 == answers
        assert 0 == process.returncode
        stderr = (tmp_path / "stderr.log").read_text()
        # Both workers started and both shut down through their lifespan (usage flushed).
        assert 2 == stderr.count("Application startup complete.")
        assert 2 == stderr.count("Application shutdown complete.")
