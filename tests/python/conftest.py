"""Starts the real `wizdata` binary (`serve all`) for clients in other languages."""

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("WIZDATA_BINARY", ROOT / "target" / "debug" / "wizdata"))
BUF = ROOT / "node_modules" / ".bin" / "buf"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def buf_curl(*args, key=None, grpc_web=False, check=True):
    """Calls the mesh with `buf curl`, with an API key when given: native gRPC
    by reflection, or gRPC-Web over HTTP/1.1 with the schema from proto/ (a
    browser's protocol cannot carry reflection's bidirectional stream).
    Returns what it printed; with check=False, the whole finished process."""
    credentials = ["-H", f"authorization: Bearer {key}"] if key else []
    protocol = (["--protocol", "grpcweb", "--schema", str(ROOT / "proto")] if grpc_web
                else ["--protocol", "grpc", "--http2-prior-knowledge"])
    result = subprocess.run(
        [str(BUF), "curl", *protocol, *credentials, *args],
        capture_output=True, text=True, timeout=60,
    )
    if not check:
        return result
    assert result.returncode == 0, result.stderr
    return result.stdout


class MeshProcess:
    """`serve all` on a fresh SQLite directory, or on `database_url`. A restart
    passes the `data_dir` (and admin key) of the process it replaces."""

    def __init__(self, extra_args=(), data_dir=None, database_url=None, admin_key=None):
        self.port = free_port()
        self.gateway_port = free_port()
        self.metrics_port = free_port()
        self.data_dir = data_dir or tempfile.TemporaryDirectory()
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        if database_url:
            env["DATABASE_URL"] = database_url
        env["RUST_LOG"] = "warn"
        if admin_key is None:
            # How an operator gets the first admin key on a fresh mesh (see `make run`).
            created = subprocess.run(
                [str(BINARY), "keys", "create", "--data-dir", self.data_dir.name, "--name", "admin",
                 "--scopes", "all", "--tier", "internal"],
                env=env, capture_output=True, text=True, timeout=60, check=True,
            )
            admin_key = created.stdout.strip()
            assert admin_key.startswith("wiz_") and admin_key not in created.stderr
        self.admin_key = admin_key
        self.env = env
        self.extra_args = list(extra_args)
        self._start()
        self.target = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.target}"
        self.gateway_target = f"127.0.0.1:{self.gateway_port}"
        self.gateway_url = f"http://{self.gateway_target}"
        self._wait_until_serving()

    def _start(self):
        self.process = subprocess.Popen(
            [str(BINARY), "serve", "all", "--grpc-addr", f"127.0.0.1:{self.port}",
             "--gateway-addr", f"127.0.0.1:{self.gateway_port}",
             "--metrics-addr", f"127.0.0.1:{self.metrics_port}",
             "--data-dir", self.data_dir.name, *self.extra_args],
            env=self.env,
        )

    def restart(self):
        """Stops the process cleanly and starts it again on the same ports
        and data, as an operator's restart does."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        self._start()
        self._wait_until_serving()

    def _wait_until_serving(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"wizdata exited early with {self.process.returncode}")
            try:
                with grpc.insecure_channel(self.target) as channel:
                    stub = health_pb2_grpc.HealthStub(channel)
                    answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
        raise RuntimeError("wizdata did not become SERVING")

    def kill(self):
        """SIGKILL: no shutdown, no flush; the data stays for a restart."""
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        self.data_dir.cleanup()


@pytest.fixture(scope="session")
def mesh():
    process = MeshProcess()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def stubs():
    """The Python messages and stubs of the client package (clients/python,
    written by `make generate` from proto/), as any Python client uses them."""
    import sys

    generated = ROOT / "clients" / "python" / "src"
    sys.path.insert(0, str(generated))
    return generated
