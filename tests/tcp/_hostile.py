"""A hostile COLO primary over a real socket: a valid initial migration, then a
RAM part that repeats one 4 KiB page, and the peak RSS of whatever reads it.

The tests use it small; as a script it measures (before/after tables):

    python -m tests.tcp._hostile node-mirror --guest-mib 128 --send-mib 4096
    python -m tests.tcp._hostile proxy --root /work/main      # the old code

`--root` runs `colo` from another checkout; a target is stopped when its RSS
passes --stop-mib, or after --timeout-s.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = 4096
SID = 2                                   # encode_initial's ram section id
_RECORD_PAGE, _CONTINUE, _EOS = 0x08, 0x20, 0x10


def initial_stream(ram_bytes: int) -> bytes:
    """A valid QEMU 7.2 initial migration of one `pc.ram` block and no page."""
    sys.path.insert(0, str(ROOT))
    from protocol.migration.stream import encode_initial
    data, _ctx = encode_initial("pc-i440fx-7.2", [("pc.ram", ram_bytes)], [], [],
                                {"page_size": PAGE, "devices": []})
    return data


def msg(name: str, value: int = 0) -> bytes:
    """A qemu-dialect control message."""
    sys.path.insert(0, str(ROOT))
    from protocol.core import dialects
    return dialects.get("qemu").encode(name, value)


def ram_records(n: int, *, first: bool = True, page_index: int = 0) -> bytes:
    """`n` PAGE records of the same page (the first one names its block)."""
    data = bytes(range(256)) * (PAGE // 256)
    cont = struct.pack(">Q", page_index * PAGE | _RECORD_PAGE | _CONTINUE) + data
    if not first:
        return cont * n
    head = struct.pack(">Q", page_index * PAGE | _RECORD_PAGE) + b"\x06pc.ram" + data
    return head + cont * (n - 1)


RAM_HEAD = struct.pack(">BI", 0x03, SID)
RAM_TAIL = struct.pack(">QBIB", _EOS, 0x7E, SID, 0x00)


class Attacker:
    """The primary's side of one COLO connection, driven by hand."""

    def __init__(self, host: str, port: int, timeout_s: float = 20.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)

    def recv_exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError(f"peer closed after {len(out)} of {n} bytes")
            out += chunk
        return out

    def start_checkpoint(self, ram_bytes: int) -> None:
        """Initial migration, checkpoint-ready, request/reply, vmstate-send, RAM head."""
        self.sock.sendall(initial_stream(ram_bytes))
        ready, reply = msg("checkpoint-ready"), msg("checkpoint-reply")
        assert self.recv_exact(len(ready)) == ready
        self.sock.sendall(msg("checkpoint-request"))
        assert self.recv_exact(len(reply)) == reply
        self.sock.sendall(msg("vmstate-send") + RAM_HEAD)

    def send_pages(self, n: int, *, first: bool = True, batch: int = 256,
                   stop=None) -> int:
        """Send `n` repeated page records; returns how many went (stop() may end it)."""
        sent = 0
        while sent < n:
            k = min(batch, n - sent)
            try:
                self.sock.sendall(ram_records(k, first=first and sent == 0))
            except OSError:
                break
            sent += k
            if stop is not None and stop():
                break
        return sent

    def close(self) -> None:
        self.sock.close()


def _stop(procs) -> None:
    """SIGTERM each process still running, then wait (10 s each, then SIGKILL)."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def status_kib(pid: int, field: str = "VmHWM") -> int:
    """A /proc/PID/status field in KiB (VmRSS now, VmHWM the peak); 0 once gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def free_port() -> int:
    """As tests.tcp._nodes.free_port (this file also runs as a script)."""
    sys.path.insert(0, str(ROOT))
    from protocol.drivers.ports import free_ports
    return free_ports(1)[0]


def colo_cmd(root: Path, *args: str) -> tuple[list[str], dict]:
    exe = root / ".venv/bin/python" if (root / ".venv/bin/python").exists() else sys.executable
    env = dict(os.environ, PYTHONPATH=str(root))
    return [str(exe), "-m", "colo_tui", *args], env


def listening(port: int) -> bool:
    """Something listens on 127.0.0.1:port (read from /proc: no connection made,
    which a COLO node would take for its peer)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def wait_listening(port: int, proc, timeout_s: float = 20.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and proc.poll() is None:
        if listening(port):
            return
        time.sleep(0.05)              # polling: another process's socket
    raise RuntimeError(f"nothing listens on {port} (exit {proc.poll()})")


# ------------------------------------------------------------------- measuring
def _measure_socket(target: str, root: Path, guest_mib: int, send_mib: int, stop_mib: int,
                    timeout_s: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="hostile-"))
    port = free_port()
    procs = []
    guest = "mirror" if target == "node-mirror" else "null"
    cmd, env = colo_cmd(root, "node", "secondary", "--listen", f"127.0.0.1:{port}",
                        "--guest", guest)
    log = open(tmp / "node.log", "w")  # noqa: SIM115
    node = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    procs.append(node)
    watched, connect = node, port
    if target == "proxy":
        pport = free_port()
        cmd, env = colo_cmd(root, "proxy", "--listen", f"127.0.0.1:{pport}",
                            "--connect", f"127.0.0.1:{port}")
        plog = open(tmp / "proxy.log", "w")  # noqa: SIM115
        proxy = subprocess.Popen(cmd, env=env, stdout=plog, stderr=subprocess.STDOUT, cwd=root)
        procs.append(proxy)
        wait_listening(port, node)
        watched, connect = proxy, pport
    wait_listening(connect, watched)
    peak = 0
    t0 = time.monotonic()
    try:
        atk = Attacker("127.0.0.1", connect)
        atk.start_checkpoint(guest_mib << 20)
        base = status_kib(watched.pid, "VmRSS")

        def stop() -> bool:
            nonlocal peak
            peak = max(peak, status_kib(watched.pid, "VmRSS"))
            return (peak >> 10) >= stop_mib or time.monotonic() - t0 > timeout_s \
                or watched.poll() is not None

        sent = atk.send_pages((send_mib << 20) // PAGE, stop=stop)
        peak = max(peak, status_kib(watched.pid, "VmHWM"))
        atk.close()
    finally:
        _stop(procs)
    return {"target": target, "guest_mib": guest_mib, "sent_mib": sent * (PAGE + 8) >> 20,
            "rss_before_mib": base >> 10, "peak_rss_mib": peak >> 10,
            "seconds": round(time.monotonic() - t0, 1),
            "log_tail": (tmp / "node.log").read_text()[-400:]}


def _measure_decode(root: Path, guest_mib: int, send_mib: int, stop_mib: int,
                    timeout_s: float) -> dict:
    cmd, env = colo_cmd(root, "decode", "--initial", "--from", "primary", "-")
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=root)
    peak, sent, t0 = 0, 0, time.monotonic()
    chunk = ram_records(256, first=False)

    def feed() -> None:
        nonlocal sent
        try:
            proc.stdin.write(initial_stream(guest_mib << 20) + msg("checkpoint-request")
                             + msg("vmstate-send") + RAM_HEAD + ram_records(1))
            while sent < (send_mib << 20) // PAGE:
                proc.stdin.write(chunk)
                sent += 256
            proc.stdin.close()
        except (OSError, ValueError):
            pass

    th = threading.Thread(target=feed, daemon=True)
    th.start()
    usage = None
    while th.is_alive():
        peak = max(peak, status_kib(proc.pid, "VmRSS"))
        if (peak >> 10) >= stop_mib or time.monotonic() - t0 > timeout_s:
            break
        time.sleep(0.05)              # the RSS sampling interval
    peak = max(peak, status_kib(proc.pid, "VmHWM"))
    pid, _st, usage = os.wait4(proc.pid, os.WNOHANG)
    if not pid:
        proc.kill()
        _pid, _st, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    th.join(10)
    err = proc.stderr.read().decode(errors="replace")[-400:]
    return {"target": "decode", "guest_mib": guest_mib, "sent_mib": sent * (PAGE + 8) >> 20,
            "peak_rss_mib": max(peak, usage.ru_maxrss) >> 10,
            "seconds": round(time.monotonic() - t0, 1), "stderr": err}


def _measure_qmp_flood(root: Path, clients: int, stop_mib: int, timeout_s: float) -> dict:
    """A busy primary (checkpoint delay 0) with `clients` QMP clients that never read."""
    tmp = Path(tempfile.mkdtemp(prefix="hostile-qmp-"))
    port = free_port()
    procs = []
    for role, flag in (("secondary", "--listen"), ("primary", "--connect")):
        cmd, env = colo_cmd(root, "node", role, flag, f"127.0.0.1:{port}", "--qmp",
                            f"unix:{tmp / role}.qmp", "--checkpoint-delay", "0")
        log = open(tmp / f"{role}.log", "w")  # noqa: SIM115
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      cwd=root))
        if role == "secondary":
            wait_listening(port, procs[0])
    primary = procs[1]
    qmp_path = tmp / "primary.qmp"
    end = time.monotonic() + 20
    while not qmp_path.exists() and time.monotonic() < end:
        time.sleep(0.05)              # polling: another process's socket file
    base = status_kib(primary.pid, "VmRSS")
    socks = []
    for _ in range(clients):
        c = socket.socket(socket.AF_UNIX)
        c.connect(str(qmp_path))
        c.sendall(b'{"execute": "qmp_capabilities"}')
        socks.append(c)
    peak, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < timeout_s and primary.poll() is None:
        peak = max(peak, status_kib(primary.pid, "VmRSS"))
        if peak >> 10 >= stop_mib:
            break
        time.sleep(0.25)              # the RSS sampling interval
    peak = max(peak, status_kib(primary.pid, "VmHWM"))
    for c in socks:
        c.close()
    _stop(procs)
    dropped = (tmp / "primary.log").read_text().count("client-dropped")
    return {"target": "qmp-flood", "clients": clients, "rss_before_mib": base >> 10,
            "peak_rss_mib": peak >> 10, "seconds": round(time.monotonic() - t0, 1),
            "dropped": dropped}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.tcp._hostile")
    ap.add_argument("target", choices=("node-mirror", "node-null", "proxy", "decode",
                                       "qmp-flood"))
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--root", type=Path, default=ROOT, help="checkout whose colo runs")
    ap.add_argument("--guest-mib", type=int, default=128)
    ap.add_argument("--send-mib", type=int, default=4096)
    ap.add_argument("--stop-mib", type=int, default=1536)
    ap.add_argument("--timeout-s", type=float, default=120.0)
    a = ap.parse_args(argv)
    if a.target == "qmp-flood":
        res = _measure_qmp_flood(a.root, a.clients, a.stop_mib, a.timeout_s)
    elif a.target == "decode":
        res = _measure_decode(a.root, a.guest_mib, a.send_mib, a.stop_mib, a.timeout_s)
    else:
        res = _measure_socket(a.target, a.root, a.guest_mib, a.send_mib, a.stop_mib,
                              a.timeout_s)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
