"""Real PostgreSQL and `mlflow server` on 127.0.0.1, started by scripts/services.sh.

One pair of services serves the whole session (starting MLflow on PostgreSQL takes most of a
minute); a finalizer purges them even when tests fail. Ports are free ones picked at start-up,
the data directory is a throw-away folder that the `postgres` user can enter. With
AUDIORECON_SERVICES_DIR set, the services of that folder are reused and left running.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import ROOT

SCRIPT = ROOT / "scripts" / "services.sh"
UP_TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Services:
    """Handle on the running services: URLs, folders and the script's commands."""

    folder: Path
    pg_port: int
    mlflow_port: int
    urls: dict[str, str] = field(default_factory=dict)

    @property
    def script_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "AUDIORECON_SERVICES_DIR": str(self.folder),
            "AUDIORECON_PG_PORT": str(self.pg_port),
            "AUDIORECON_MLFLOW_PORT": str(self.mlflow_port),
            "PYTHON": sys.executable,
        }

    def run(self, command: str, timeout: float = UP_TIMEOUT_S) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(SCRIPT), command], env=self.script_env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def up(self) -> None:
        res = self.run("up")
        if res.returncode != 0:
            raise RuntimeError(f"services.sh up failed ({res.returncode}):\n{res.stderr[-3000:]}")
        self.urls = dict(
            line.removeprefix("export ").split("=", 1) for line in res.stdout.splitlines()
            if line.startswith("export ")
        )
        self.urls = {k: v.strip("'") for k, v in self.urls.items()}

    def ensure_up(self) -> None:
        if self.run("status", timeout=60).returncode != 0:
            self.up()

    @property
    def storage(self) -> str:
        return self.urls["OPTUNA_STORAGE"]

    @property
    def tracking_uri(self) -> str:
        return self.urls["MLFLOW_TRACKING_URI"]

    @property
    def password(self) -> str:
        return (self.folder / "password").read_text().strip()

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for pipeline subprocesses: both URLs, no inherited MLflow state."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OPTUNA_"))}
        env.update(self.urls, MLFLOW_DISABLE_TELEMETRY="true", CI="true", **extra)
        return env


@pytest.fixture(scope="session")
def services_session(request) -> Services:
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) and not os.environ.get("CI"):
        pytest.skip("PostgreSQL is not installed: run `bash scripts/services.sh install`")
    if os.environ.get("AUDIORECON_SERVICES_DIR"):
        # Services you started yourself (scripts/services.sh up with these settings): reused,
        # and left running afterwards.
        svc = Services(Path(os.environ["AUDIORECON_SERVICES_DIR"]),
                       int(os.environ.get("AUDIORECON_PG_PORT", "54329")),
                       int(os.environ.get("AUDIORECON_MLFLOW_PORT", "5055")))
        svc.up()
        return svc
    folder = Path(tempfile.mkdtemp(prefix="audiorecon-services-"))
    folder.chmod(0o755)  # the `postgres` user initialises its data directory inside
    svc = Services(folder, _free_port(), _free_port())

    def purge() -> None:
        res = svc.run("purge", timeout=120)
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)

    request.addfinalizer(purge)
    svc.up()
    return svc


@pytest.fixture
def services(services_session: Services) -> Services:
    """The session's services, restarted first if an earlier test stopped them."""
    services_session.ensure_up()
    return services_session
