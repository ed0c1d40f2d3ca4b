"""Helpers: start real `colo node` processes, talk QMP, read their recordings."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from protocol.drivers.ports import free_ports

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A loopback port for a process to bind later: outside the kernel's ephemeral
    range (`free_ports`), so no outgoing connection of another test, started
    between this pick and that bind, can be given it as its source port."""
    return free_ports(1)[0]


def wait_for(pred, timeout_s: float = 10.0, what: str = "condition", step: float = 0.02):
    """Poll `pred` until true, at most `timeout_s`.  Polling: what it waits for is in
    another process (a file, a recording, a socket); there is no event to await."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def unix_listening(path: Path, pid: int | str = "self") -> bool:
    """Is a unix socket listening at `path`?  Read from /proc/PID/net/unix, the table
    of process PID's network namespace (a node under `ip netns exec` has its own); a
    listening socket has __SO_ACCEPTCON, 0x10000, in its flags.  Not a probe
    connection: the node would see a QMP client come and go."""
    try:
        with open(f"/proc/{pid}/net/unix") as fh:
            rows = [line.split(None, 7) for line in fh.readlines()[1:]]
    except (FileNotFoundError, ProcessLookupError):       # the process is gone
        return False
    return any(len(r) == 8 and r[7].rstrip("\n") == str(path) and int(r[3], 16) & 0x10000
               for r in rows)


class NodeProc:
    def __init__(self, role: str, tmp: Path, addr: str, *args: str, name: str | None = None):
        self.role = role
        self.name = name or role
        self.qmp_path = tmp / f"{self.name}.qmp"
        self.record = tmp / f"{self.name}.jsonl"
        self.logfile = tmp / f"{self.name}.log"
        flag = "--listen" if role == "secondary" else "--connect"
        cmd = [sys.executable, "-m", "colo_tui.cli.node", "node", role, flag, addr,
               "--qmp", f"unix:{self.qmp_path}", "--record", str(self.record), *args]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.log = open(self.logfile, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     cwd=ROOT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Until the node's QMP socket accepts connections.  The file exists from the
        node's bind(), a moment before its listen(): a client connecting in between
        is refused (seen under load), so the file alone is not enough."""
        wait_for(lambda: unix_listening(self.qmp_path, self.proc.pid) or
                 self.proc.poll() is not None,
                 timeout_s, f"{self.name} QMP socket listening")
        assert self.proc.poll() is None, self.output()

    def events(self) -> list[dict]:
        try:
            lines = self.record.read_text().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines[1:]:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def header(self) -> dict:
        return json.loads(self.record.read_text().splitlines()[0])

    def kinds(self, kind: str) -> list[dict]:
        return [e for e in self.events() if e["kind"] == kind]

    def commits(self) -> int:
        return sum(1 for e in self.kinds("checkpoint") if e["data"].get("phase") == "commit")

    def state(self) -> str | None:
        st = self.kinds("state")
        return st[-1]["data"]["to"] if st else None

    def colo_exits(self) -> list[dict]:
        return [e["data"] for e in self.kinds("colo-exit")]

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.logfile.read_text()[-3000:]

    def stop(self, timeout_s: float = 8.0) -> int:
        p = self.proc
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGCONT)
                p.send_signal(signal.SIGTERM)
                return p.wait(timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
                raise AssertionError(f"{self.name} did not exit on SIGTERM:\n{self.output()}") from None
            finally:
                self.log.close()
        self.log.close()
        return p.returncode


def qmp(node: NodeProc, command: str, arguments: dict | None = None, timeout_s: float = 5.0):
    import asyncio

    from protocol.drivers.qmp import qmp_call
    return asyncio.run(qmp_call(f"unix:{node.qmp_path}", command, arguments, timeout_s))
