"""Helpers for the real-network tier: two network namespaces joined by a veth pair.

Everything happens inside namespaces this module creates: the veth pair is
created *inside* namespace A (its peer moved straight into B), the 10.x
addresses exist only there, and the nodes run under ``ip netns exec``.  The
host's own network namespace is never touched.  Pathname unix sockets (QMP)
and files (recordings) are shared with the test, since ``ip netns exec`` only
changes the network namespace (and remounts /sys).
"""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.tcp._nodes import ROOT, NodeProc

IP_TIMEOUT_S = 10.0
_seq = itertools.count()


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``ip ARGS`` (bounded); raise RuntimeError with its stderr on failure."""
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({r.returncode}): "
                           f"{(r.stderr or r.stdout).strip()}")
    return r


def skip_reason() -> str | None:
    """Why this tier cannot run here, or None when it can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network-namespace tests need root (ip netns add); run as root to enable them"
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is not installed"
    probe = f"colo-t-{os.getpid()}-probe"
    try:
        r = ip("netns", "add", probe, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"'ip netns add' could not run: {exc}"
    if r.returncode != 0:
        return (f"'ip netns add' failed (a container may forbid it): "
                f"{(r.stderr or r.stdout).strip()}")
    try:
        ip("-n", probe, "link", "set", "lo", "up")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return f"cannot configure a fresh network namespace: {exc}"
    finally:
        ip("netns", "del", probe, check=False)
    return None


class NetnsPair:
    """Namespaces A and B, veth ``va`` (in A, 10.a.b.1/30) <-> ``vb`` (in B, .2/30)."""

    VA, VB = "va", "vb"

    def __init__(self) -> None:
        n = next(_seq)
        self.a = f"colo-t-{os.getpid()}-{n}-a"
        self.b = f"colo-t-{os.getpid()}-{n}-b"
        # a /30 in 10.200.0.0/16 that varies per test; it exists only inside A and B
        net = (os.getpid() * 8 + n) % 16384
        base = f"10.200.{net // 64}.{(net % 64) * 4}"
        pre = base.rsplit(".", 1)[0]
        last = int(base.rsplit(".", 1)[1])
        self.addr_a = f"{pre}.{last + 1}"
        self.addr_b = f"{pre}.{last + 2}"
        self.created: list[str] = []

    def setup(self) -> NetnsPair:
        for ns in (self.a, self.b):
            ip("netns", "add", ns)
            self.created.append(ns)
        ip("-n", self.a, "link", "add", self.VA, "type", "veth", "peer", "name", self.VB,
           "netns", self.b)
        for ns, dev, addr in ((self.a, self.VA, self.addr_a), (self.b, self.VB, self.addr_b)):
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
        return self

    def ns_of(self, side: str) -> tuple[str, str]:
        return (self.a, self.VA) if side == "a" else (self.b, self.VB)

    def link(self, side: str, up: bool) -> None:
        ns, dev = self.ns_of(side)
        ip("-n", ns, "link", "set", dev, "up" if up else "down")

    def teardown(self) -> list[str]:
        """Delete the namespaces (the veth pair goes with them); return problems."""
        problems = []
        for ns in reversed(self.created):
            try:
                r = ip("netns", "del", ns, check=False)
                if r.returncode != 0:
                    problems.append(f"ip netns del {ns}: {r.stderr.strip()}")
            except (OSError, subprocess.TimeoutExpired) as exc:
                problems.append(f"ip netns del {ns}: {exc}")
        self.created.clear()
        return problems


# `colo_tui.cli.node`'s own entry point, after importing protocol.migration.stream (and numpy) up
# front: the secondary otherwise imports it lazily when the first COLO bytes arrive,
# ~0.25 s idle and > 0.5 s on a loaded box, long enough for a 500 ms heartbeat on the
# primary (WAIT_READY) to fail over before COLO has started.
PREIMPORT = ("import sys; import protocol.migration.stream; from colo_tui.cli.node import main; "
             "sys.exit(main(sys.argv[1:]))")


class NetnsNode(NodeProc):
    """A NodeProc started under ``ip netns exec NS`` (which execs: pid is the node's)."""

    def __init__(self, ns: str, role: str, tmp: Path, addr: str, *args: str,
                 name: str | None = None, preimport: bool = False):
        self.role = role
        self.ns = ns
        self.name = name or role
        self.qmp_path = tmp / f"{self.name}.qmp"
        self.record = tmp / f"{self.name}.jsonl"
        self.logfile = tmp / f"{self.name}.log"
        flag = "--listen" if role == "secondary" else "--connect"
        entry = ["-c", PREIMPORT] if preimport else ["-m", "colo_tui.cli.node"]
        cmd = ["ip", "netns", "exec", ns, sys.executable, *entry, "node", role, flag, addr, "--qmp", f"unix:{self.qmp_path}", "--record",
               str(self.record), *args]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.log = open(self.logfile, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     cwd=ROOT)

    def kill(self) -> None:
        """Best-effort, bounded: SIGTERM, then SIGKILL."""
        try:
            if self.proc.poll() is None:
                try:
                    self.stop(timeout_s=3.0)
                except AssertionError:
                    pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                try:
                    self.proc.wait(3)
                except subprocess.TimeoutExpired:
                    pass
            if not self.log.closed:
                self.log.close()
