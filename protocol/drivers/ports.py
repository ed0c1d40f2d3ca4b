"""Loopback ports to hand to a process that binds them later (QEMU's sockets)."""
from __future__ import annotations

import socket
from pathlib import Path

#: where free_ports looks: below the kernel's ephemeral range (see _ephemeral_range)
PORTS_FROM = 10_000


def _ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands to outgoing connections (and to bind(0))."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999           # Linux's default


def free_ports(n: int) -> list[int]:
    """`n` distinct loopback ports free now, outside the ephemeral range: between
    this pick and QEMU's bind, no outgoing connection (QEMU's own NBD or mirror
    client, say) can be given one as its source port, as it could a bind(0) port
    (CI saw QEMU fail: "Failed to find an available port: Address already in use")."""
    import random
    lo, hi = _ephemeral_range()
    span = range(PORTS_FROM, lo) if lo - PORTS_FROM >= 64 * n else range(hi + 1, 65536)
    rng = random.SystemRandom()
    socks: list[socket.socket] = []
    try:
        for _ in range(64 * n):                       # bounded: most ports are free
            if len(socks) == n:
                break
            port = rng.choice(span)
            if any(s.getsockname()[1] == port for s in socks):
                continue
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            socks.append(s)
        while len(socks) < n:                         # (a crowded host: the kernel picks)
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
