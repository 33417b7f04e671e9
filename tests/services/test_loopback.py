"""Safety: every socket the services listen on is 127.0.0.1, and no secret reaches their logs
or command lines. Read from /proc, so only the processes scripts/services.sh started count.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
LISTEN = "0A"


def _group(pgid: int) -> set[int]:
    """Pids whose process group is `pgid` (the mlflow server and its uvicorn workers)."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            pids.add(int(stat.parent.name))
    return pids


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _listeners() -> dict[str, str]:
    """inode -> local address (hex, as in /proc/net/tcp*) of every listening TCP socket."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == LISTEN:
                out[cols[9]] = cols[1]
    return out


def test_services_listen_on_loopback_only(services):
    pg_pid = int((services.folder / "pg" / "postmaster.pid").read_text().split()[0])
    mlflow_pgid = int((services.folder / "mlflow.pid").read_text())
    listeners = _listeners()
    found = {}
    for name, pids in (("postgres", {pg_pid}), ("mlflow", _group(mlflow_pgid))):
        for pid in pids:
            for inode in _socket_inodes(pid) & set(listeners):
                found.setdefault(name, set()).add(listeners[inode])
    loopback = {f"0100007F:{services.pg_port:04X}", f"0100007F:{services.mlflow_port:04X}"}
    assert set(found) == {"postgres", "mlflow"}, found
    assert found["postgres"] == {f"0100007F:{services.pg_port:04X}"}
    assert found["mlflow"] == {f"0100007F:{services.mlflow_port:04X}"}
    assert set().union(*found.values()) <= loopback


def test_password_stays_out_of_logs_and_command_lines(services):
    secret = services.password
    for log in services.folder.glob("*.log"):
        assert secret not in log.read_text(errors="replace"), log
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert secret not in cmdline.read_bytes().decode(errors="replace"), cmdline
        except OSError:
            continue
    assert (services.folder / "env").stat().st_mode & 0o077 == 0
    assert (services.folder / "password").stat().st_mode & 0o077 == 0
