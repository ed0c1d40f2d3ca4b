"""The lab's own network for `--net tap` (root only): a network namespace
holding a bridge, the client's address on it, and both QEMUs' tap devices.

COLO-FT.txt puts each QEMU's tap on a host bridge, so the client's TCP
connection ends in the guest, not in a QEMU process: when the primary dies its
tap goes away, the bridge floods the guest's MAC to the secondary's tap, and
the secondary's guest (the same TCP state) carries the connection on.

Nothing is added to the host's own network: QEMU creates each tap (non-
persistent) in the host namespace, the lab moves it into its namespace at
once and enslaves it to the bridge there; the namespace, its bridge and any
tap left in it go when the lab deletes the namespace (at close, at exit, on
SIGTERM).  The client's sockets are made inside the namespace by the calling
thread (setns is per thread), so the rest of the lab stays on the host's
loopback.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from colo_tui.lab import LabError

CLONE_NEWNET = 0x40000000
CLIENT_IP = "10.0.2.2"          # the guest's gateway address (guest.py), on the bridge
_libc = ctypes.CDLL(None, use_errno=True)


def unavailable() -> str | None:
    """Why `--net tap` cannot run here, or None."""
    if os.geteuid() != 0:
        return "tap networking needs root (a network namespace, a bridge, tap devices)"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is missing"
    return None


def _ip(*args: str, timeout: float = 10) -> None:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {res.stderr.strip()}")


class LabNet:
    def __init__(self, tag: str | None = None) -> None:
        tag = tag or f"{os.getpid()}-{time.monotonic_ns() % 100000}"
        self.name = f"colo-lab-{tag}"
        short = tag.replace("-", "")[-9:]
        self.taps = {"primary": f"clp{short}", "secondary": f"cls{short}"}
        self.path = Path("/run/netns") / self.name
        self.created = False

    def create(self) -> None:
        why = unavailable()
        if why:
            raise LabError(why)
        reap_stale()
        _ip("netns", "add", self.name)
        self.created = True
        atexit.register(self.destroy)
        _ip("-n", self.name, "link", "set", "lo", "up")
        _ip("-n", self.name, "link", "add", "br0", "type", "bridge", "forward_delay", "0")
        _ip("-n", self.name, "addr", "add", f"{CLIENT_IP}/24", "dev", "br0")
        _ip("-n", self.name, "link", "set", "br0", "up")

    def adopt(self, side: str, alive, timeout: float = 20) -> str:
        """Move the tap QEMU made for `side` into the namespace, onto the bridge.
        `alive()` is False once that QEMU has exited (then waiting is pointless)."""
        tap = self.taps[side]
        deadline = time.monotonic() + timeout
        while not Path(f"/sys/class/net/{tap}").exists():
            if not alive() or time.monotonic() > deadline:
                raise LabError(f"QEMU's tap {tap} for the {side} did not appear")
            time.sleep(0.02)   # polling the kernel for the device, bounded above
        _ip("link", "set", tap, "netns", self.name)
        _ip("-n", self.name, "link", "set", tap, "master", "br0")
        _ip("-n", self.name, "link", "set", tap, "up")
        return tap

    def socket(self) -> socket.socket:
        """A TCP socket that lives in the lab's namespace (made by this thread)."""
        here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        there = os.open(self.path, os.O_RDONLY)
        try:
            if _libc.setns(there, CLONE_NEWNET) != 0:
                raise LabError(f"setns {self.name}: {os.strerror(ctypes.get_errno())}")
            try:
                return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            finally:
                if _libc.setns(here, CLONE_NEWNET) != 0:   # never leave a thread there
                    raise LabError("setns back to the host namespace failed")
        finally:
            os.close(here)
            os.close(there)

    def destroy(self) -> None:
        if self.created:
            self.created = False
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True,
                           timeout=10)


def reap_stale(root: Path = Path("/run/netns")) -> list[str]:
    """Delete the namespaces of labs whose process is gone (a lab killed with
    SIGKILL cannot delete its own; its QEMUs and their taps died with it)."""
    gone = []
    for ns in root.glob("colo-lab-*"):
        pid = ns.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, timeout=10)
            gone.append(ns.name)
    return gone
