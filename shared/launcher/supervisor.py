"""Thin control of supervisord over its XML-RPC unix socket.

supervisord does the process work (restarts with back-off, log files, process groups); Hearth
only renders its config, starts the daemon and asks it to start or stop programs.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from supervisor.xmlrpc import SupervisorTransport

from shared.settings import HearthSettings


class SupervisorError(RuntimeError):
    """supervisord could not be started or reached; the message says why."""


@dataclass(frozen=True)
class ProcessInfo:
    name: str
    state: str  # STOPPED, STARTING, RUNNING, BACKOFF, STOPPING, EXITED, FATAL, UNKNOWN
    pid: int | None
    started_at: float | None
    description: str
    logfile: str

    @property
    def uptime_s(self) -> float | None:
        if self.state != "RUNNING" or not self.started_at:
            return None
        return max(0.0, time.time() - self.started_at)


class Supervisor:
    """One supervisord per ``HEARTH_HOME``."""

    def __init__(self, settings: HearthSettings) -> None:
        self.settings = settings
        self.conf = settings.run_dir / "supervisord.conf"
        self.socket = settings.run_dir / "supervisor.sock"
        self.pidfile = settings.run_dir / "supervisord.pid"

    def _rpc(self) -> Any:
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def daemon_pid(self) -> int | None:
        """The pid of a live supervisord of this state dir, or None."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        if not self.socket.exists():
            return None
        try:
            state = self._rpc().supervisor.getState()
        except (OSError, xmlrpc.client.Fault):
            return None
        return pid if state.get("statename") in ("RUNNING", "RESTARTING") else None

    def start_daemon(self) -> int:
        """Start supervisord (daemonised) with the rendered config and wait for its socket."""
        cmd = [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf)]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SupervisorError(f"supervisord did not start: {(result.stderr or result.stdout).strip()}")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pid = self.daemon_pid()
            if pid:
                return pid
            time.sleep(0.1)
        raise SupervisorError(
            f"supervisord did not answer on {self.socket}; see {self.settings.log_dir}/supervisord.log"
        )

    def reload_config(self) -> None:
        """Make a running supervisord pick up a re-rendered config (programs added/changed)."""
        rpc = self._rpc()
        added, changed, removed = rpc.supervisor.reloadConfig()[0]
        for name in removed:
            rpc.supervisor.stopProcessGroup(name)
            rpc.supervisor.removeProcessGroup(name)
        for name in changed:
            rpc.supervisor.stopProcessGroup(name)
            rpc.supervisor.removeProcessGroup(name)
            rpc.supervisor.addProcessGroup(name)
        for name in added:
            rpc.supervisor.addProcessGroup(name)

    def start(self, name: str) -> None:
        try:
            self._rpc().supervisor.startProcess(name, False)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                raise SupervisorError(f"cannot start {name}: {fault.faultString}") from None

    def stop(self, name: str) -> None:
        try:
            self._rpc().supervisor.stopProcess(name, True)
        except xmlrpc.client.Fault as fault:
            if "NOT_RUNNING" not in fault.faultString:
                raise SupervisorError(f"cannot stop {name}: {fault.faultString}") from None

    def signal(self, name: str, signal: str) -> None:
        """Send ``signal`` (e.g. ``"HUP"``) to a running program."""
        try:
            self._rpc().supervisor.signalProcess(name, signal)
        except xmlrpc.client.Fault as fault:
            raise SupervisorError(f"cannot signal {name}: {fault.faultString}") from None

    def info(self, name: str) -> ProcessInfo:
        return _to_info(self._rpc().supervisor.getProcessInfo(name))

    def all_info(self) -> dict[str, ProcessInfo]:
        return {i["name"]: _to_info(i) for i in self._rpc().supervisor.getAllProcessInfo()}

    def shutdown(self, timeout: float = 60.0) -> None:
        """Stop supervisord (it stops any program still running) and wait for it to exit."""
        pid = self.daemon_pid()
        if pid is None:
            return
        with contextlib.suppress(OSError, xmlrpc.client.Fault):
            self._rpc().supervisor.shutdown()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        raise SupervisorError(f"supervisord (pid {pid}) did not exit within {timeout:.0f}s")


def _to_info(raw: dict[str, Any]) -> ProcessInfo:
    return ProcessInfo(
        name=str(raw["name"]),
        state=str(raw["statename"]),
        pid=cast(int, raw["pid"]) or None,
        started_at=float(raw["start"]) or None,
        description=str(raw.get("description", "")),
        logfile=str(raw.get("stdout_logfile", "")),
    )


def log_path(settings: HearthSettings, name: str) -> Path:
    return settings.log_dir / f"{name}.log"
