"""`colo lab --capture FILE`: dumpcap on loopback, filtered to the lab's own
ports (the migration connection and both legs of every relayed compare
channel), so that `colo import FILE` sees the session as QEMU sent it."""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from colo_tui.lab import LabError, procs


def lab_ports(ports) -> list[int]:
    """The migration port and, per compare channel, the server chardev's port
    and the relay's."""
    out = [ports.migrate]
    for relay, server in ports.relays().values():
        out += [relay, server]
    return out


class Capture:
    def __init__(self, path: Path, ports: list[int]) -> None:
        self.path, self.ports = Path(path), ports
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10) -> None:
        dumpcap = shutil.which("dumpcap")
        if dumpcap is None:
            raise LabError("--capture needs dumpcap (Debian package tshark)")
        bpf = " or ".join(f"tcp port {p}" for p in self.ports)
        # -B 256: a 256 MiB kernel buffer (the initial migration's burst on loopback)
        self.proc = procs.spawn([dumpcap, "-q", "-i", "lo", "-f", bpf, "-s", "0", "-B", "256",
                                 "-P", "-w", str(self.path)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        while not self.path.exists() or self.path.stat().st_size == 0:
            if self.proc.poll() is not None:
                raise LabError(f"dumpcap cannot capture here: "
                               f"{self.proc.stderr.read().strip()[:300]}")
            if time.monotonic() > deadline:
                self.stop()
                raise LabError(f"dumpcap wrote no pcap header within {timeout:.0f} s")
            time.sleep(0.05)     # polling for the file dumpcap creates, bounded above

    def _drain(self, timeout: float) -> bool:
        """dumpcap reads the kernel's ring in blocks and a SIGINT loses the block
        not yet handed over (seen: the last compare-out packets missing).  A
        sentinel connection to a captured port, then wait for the file to grow:
        the block holding the session's last packets has been written."""
        try:
            before = self.path.stat().st_size
        except OSError:
            return False
        with socket.socket() as s:   # the port is closed by now: SYN, RST, both captured
            s.settimeout(1)
            try:
                s.connect(("127.0.0.1", self.ports[0]))
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.path.stat().st_size > before:
                return True
            time.sleep(0.05)     # polling the file dumpcap appends to, bounded above
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._drain(3.0)
            self.proc.send_signal(signal.SIGINT)    # dumpcap flushes and closes the file
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                procs.reap(self.proc, 0)
