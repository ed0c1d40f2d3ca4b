"""What the real-QEMU tests share: the skip marks and a QEMU side driven over QMP
(the fixtures `procs` and `artifacts` live in conftest.py)."""
from __future__ import annotations

import asyncio
import os
import platform
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from protocol.drivers.ports import free_ports
from tests.qemu.build import missing_tools

QEMU = shutil.which("qemu-system-x86_64")
REAL_QEMU = [
    pytest.mark.skipif(platform.machine() != "x86_64",
                       reason=f"real-QEMU COLO test needs an x86_64 host, not "
                              f"{platform.machine()}"),
    pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 not installed "
                       "(run .ci/qemu-setup.sh: Debian package qemu-system-x86)"),
    pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools())),
    pytest.mark.timeout(240),
]
CAP = {"capabilities": [{"capability": "x-colo", "state": True}]}


def free_port() -> int:
    """A port for QEMU to bind later, outside the ephemeral range (`free_ports`)."""
    return free_ports(1)[0]


class Side:
    def __init__(self, name: str, work: Path, art: dict, procs: list, ram: str = "128M") -> None:
        self.name, self.work = name, work
        self.qmp_path = work / f"{name}.qmp"
        cmd = [QEMU, "-name", f"{name},debug-threads=on", "-machine", "pc,accel=tcg",
               "-cpu", "qemu64", "-m", ram, "-smp", "1", "-nodefaults", "-vga", "std",
               "-display", "none", "-nic", "none", "-kernel", str(art["guest"]),
               "-serial", f"file:{work / name}.serial",
               "-qmp", f"unix:{self.qmp_path},server=on,wait=off", "-msg", "timestamp=on"]
        if name == "secondary":
            cmd += ["-incoming", "defer"]
        env = dict(os.environ, LD_PRELOAD=str(art["shim"]))
        self.log = open(work / f"{name}.stderr", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        procs.append(self.proc)
        self.events: list[dict] = []
        self.qmp = None
        self._task = None         # the event collector, once connected

    async def connect(self) -> None:
        from qemu.qmp import EventListener, QMPClient

        from protocol.drivers.qmpwait import QmpNotAccepting, wait_accepting
        # the socket file exists a moment before QEMU listens on it: wait for accept
        try:
            await wait_accepting(f"unix:{self.qmp_path}", 20,
                                 alive=lambda: self.proc.poll() is None)
        except QmpNotAccepting as exc:
            raise AssertionError(f"{self.name}: {exc}; {self._stderr()}") from None
        self.qmp = QMPClient(self.name)
        self._arrived = asyncio.Event()
        listener = EventListener()
        self.qmp.register_listener(listener)
        await asyncio.wait_for(self.qmp.connect(str(self.qmp_path)), 10)

        async def collect():
            async for ev in listener:
                self.events.append({"event": ev["event"], "data": ev.get("data", {}),
                                    "t": time.monotonic()})
                self._arrived.set()
        self._task = asyncio.ensure_future(collect())

    async def ex(self, cmd: str, args: dict | None = None):
        return await asyncio.wait_for(self.qmp.execute(cmd, args), 10)

    async def wait_event(self, name: str, timeout: float) -> dict:
        """The first event `name`; waits (at most `timeout` s) for events to arrive."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events:
                if ev["event"] == name:
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: no {name} within {timeout} s; got "
                                     f"{[e['event'] for e in self.events][-10:]}; "
                                     f"{self._stderr()}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                pass

    async def wait_failed_over(self, timeout: float = 20.0) -> dict:
        """query-colo-status once this side's failover completed.  Polling (every
        0.1 s, bounded): no QMP event says the failover finished."""
        deadline = time.monotonic() + timeout
        while True:
            st = await self.ex("query-colo-status")
            if st["mode"] == "none" and st["reason"] != "processing":
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: failover not done within {timeout} s: {st}")
            await asyncio.sleep(0.1)

    def _stderr(self) -> str:
        try:
            return (self.work / f"{self.name}.stderr").read_text()[-800:]
        except OSError:
            return ""

    async def close(self) -> None:
        if self._task is not None:        # None: connect() never got that far
            self._task.cancel()
        if self.qmp is not None:
            try:
                await asyncio.wait_for(self.qmp.execute("quit"), 2)
            except Exception:  # noqa: BLE001 - quit may race the exit; we SIGKILL anyway
                pass
            try:
                await asyncio.wait_for(self.qmp.disconnect(), 2)
            except Exception:  # noqa: BLE001
                pass


def stall_report(proc: subprocess.Popen) -> str:
    """What a stuck QEMU's threads are doing: name, state and wait channel of each
    (from /proc), plus their backtraces when gdb is installed (30 s at most)."""
    lines = []
    for task in sorted(Path(f"/proc/{proc.pid}/task").glob("*")):
        try:
            name = (task / "comm").read_text().strip()
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
            wchan = (task / "wchan").read_text().strip() or "-"
        except OSError:
            continue
        lines.append(f"{task.name} {name!r} {state} {wchan}")
    gdb = shutil.which("gdb")
    if gdb and proc.poll() is None:
        try:
            out = subprocess.run([gdb, "-batch", "-p", str(proc.pid), "-ex",
                                  "thread apply all bt 12"], capture_output=True, text=True,
                                 timeout=30).stdout
            lines += [ln for ln in out.splitlines() if ln.startswith(("Thread ", "#"))]
        except (OSError, subprocess.TimeoutExpired):
            lines.append("(gdb did not answer in 30 s)")
    return "\n".join(lines) or f"(no /proc entry for pid {proc.pid})"


def kill_leftovers(proc: subprocess.Popen, pids) -> None:
    """A test's cleanup: `proc` (a colo command) and the processes it started (`pids`)
    killed with SIGKILL, whatever the test found."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
