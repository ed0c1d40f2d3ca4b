"""Guest devices whose state changes as the guest runs, and their device blob.

Four devices, saved in QEMU 7.2's COLO shape (`qemu_save_device_state`): one
SECTION_FULL per device (header, body, footer), then QEMU_VM_EOF; no file
header, no VMDESCRIPTION.  Every body has a fixed layout of big-endian fields,
described by `VMDESC` (QEMU's VMDESCRIPTION JSON shape) so the blob decoder
can split the sections exactly.

  timer  v2   cpu_ticks_offset, dummy, cpu_clock_offset (ns)   24 bytes
  cpu    v12  rip rsp rax rbx rcx rdx rflags cr0                64 bytes
  serial v3   bytes printed, tail length, last 64 bytes printed  73 bytes
  e1000  v2   rx/tx packets, rx/tx bytes, last request id seen   40 bytes

Sans-IO: no clock, no randomness.
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from protocol.migration import stream

TICK_MS = 10                 # the run1 guest programs the PIT at 100 Hz
SERIAL_TAIL_BYTES = 64
CPU_REGS = ("rip", "rsp", "rax", "rbx", "rcx", "rdx", "rflags", "cr0")

_TIMER = struct.Struct(">QQQ")
_CPU = struct.Struct(">" + "Q" * len(CPU_REGS))
_SERIAL = struct.Struct(f">QB{SERIAL_TAIL_BYTES}s")
_NIC = struct.Struct(">QQQQQ")

# (idstr, instance, version, body struct, vmdesc fields)
_LAYOUT: tuple[tuple[str, int, int, struct.Struct, list[tuple[str, int]]], ...] = (
    ("timer", 0, 2, _TIMER,
     [("cpu_ticks_offset", 8), ("dummy", 8), ("cpu_clock_offset", 8)]),
    ("cpu", 0, 12, _CPU, [(name, 8) for name in CPU_REGS]),
    ("serial", 0, 3, _SERIAL,
     [("printed", 8), ("tail_len", 1), ("tail", SERIAL_TAIL_BYTES)]),
    ("e1000", 0, 2, _NIC,
     [("rx_packets", 8), ("tx_packets", 8), ("rx_bytes", 8), ("tx_bytes", 8),
      ("last_rx_id", 8)]),
)
DEVICE_NAMES = tuple(entry[0] for entry in _LAYOUT)
#: the same ids as the initial migration's device sections (timer 3, cpu 4, serial 5,
#: e1000 6; ram is 2): QEMU keeps a section's id for the whole migration
FIRST_SECTION_ID = 3

#: the device part of a VMDESCRIPTION for these sections (QEMU's JSON shape)
VMDESC: dict = {
    "page_size": 4096,
    "devices": [
        {
            "name": idstr, "instance_id": instance, "vmsd_name": idstr,
            "version": version,
            "fields": [{"name": name, "type": "uint64" if size == 8 else (
                "uint8" if size == 1 else "buffer"), "size": size}
                for name, size in fields],
        }
        for idstr, instance, version, _s, fields in _LAYOUT
    ],
}


@dataclass
class Devices:
    """Timer, CPU registers, serial port and NIC of one VM."""

    guest_ms: int = 0
    ticks: int = 0
    regs: list[int] = field(default_factory=lambda: [0x100000, 0x300000, 0, 0, 0, 0, 0x2, 0x11])
    serial_printed: int = 0
    serial_tail: bytes = b""
    rx_packets: int = 0
    tx_packets: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    last_rx_id: int = 0   # highest client request id the guest has taken in

    # -- the guest running ---------------------------------------------------
    def run_until(self, guest_ms: int) -> None:
        """Advance the guest clock; the PIT ticks every 10 ms of guest time."""
        if guest_ms < self.guest_ms:
            raise ValueError(f"guest clock runs backwards: {self.guest_ms} -> {guest_ms}")
        self.guest_ms = guest_ms
        self.ticks = guest_ms // TICK_MS

    def on_step(self, step: int) -> bytes:
        """A workload step ran: registers change; every 10th step prints a line.

        Returns the bytes printed on COM1 (b"" most steps).
        """
        mask = (1 << 64) - 1
        self.regs[0] = 0x100000 + 0x40 * (step % 16)                 # rip
        self.regs[1] = 0x2FFFF0 - 0x10 * (step % 4)                  # rsp
        self.regs[2] = step & mask                                   # rax
        self.regs[3] = (self.regs[3] * 6364136223846793005 + step) & mask
        self.regs[4] = (step * 10) & mask                            # rcx: ticks
        self.regs[5] = (self.regs[5] ^ (step << 7)) & mask
        if step % 10 == 0:
            line = f"step {step:08x}\n".encode()
            self.print_serial(line)
            return line
        return b""

    def print_serial(self, data: bytes) -> None:
        self.serial_printed += len(data)
        self.serial_tail = (self.serial_tail + data)[-SERIAL_TAIL_BYTES:]

    def nic_rx(self, req_id: int, nbytes: int) -> None:
        self.rx_packets += 1
        self.rx_bytes += nbytes
        self.last_rx_id = max(self.last_rx_id, req_id)

    def nic_tx(self, nbytes: int) -> None:
        self.tx_packets += 1
        self.tx_bytes += nbytes

    # -- state -----------------------------------------------------------------
    def bodies(self) -> list[bytes]:
        return [
            _TIMER.pack(self.ticks, 0, self.guest_ms * 1_000_000),
            _CPU.pack(*self.regs),
            _SERIAL.pack(self.serial_printed, len(self.serial_tail),
                         self.serial_tail.ljust(SERIAL_TAIL_BYTES, b"\0")),
            _NIC.pack(self.rx_packets, self.tx_packets, self.rx_bytes, self.tx_bytes,
                      self.last_rx_id),
        ]

    def sections(self) -> list[tuple[str, int, int, bytes]]:
        return [(idstr, instance, version, body)
                for (idstr, instance, version, _s, _f), body in zip(_LAYOUT, self.bodies(),
                                                                    strict=True)]

    def save_blob(self) -> bytes:
        """SECTION_FULL per device (with footer), then QEMU_VM_EOF."""
        return stream.encode_device_blob(self.sections(), FIRST_SECTION_ID,
                                         ram_section_id=stream.DEFAULT_RAM_SECTION_ID)

    def state(self) -> dict[str, tuple]:
        return {
            "timer": (self.ticks, self.guest_ms),
            "cpu": tuple(self.regs),
            "serial": (self.serial_printed, self.serial_tail),
            "e1000": (self.rx_packets, self.tx_packets, self.rx_bytes, self.tx_bytes,
                      self.last_rx_id),
        }

    def diff(self, other: Devices) -> list[str]:
        """Names of the devices whose state differs."""
        mine, theirs = self.state(), other.state()
        return [name for name in DEVICE_NAMES if mine[name] != theirs[name]]

    def digest(self) -> str:
        return hashlib.blake2b(b"".join(self.bodies()), digest_size=16).hexdigest()

    def copy(self) -> Devices:
        return Devices(self.guest_ms, self.ticks, list(self.regs), self.serial_printed,
                       self.serial_tail, self.rx_packets, self.tx_packets,
                       self.rx_bytes, self.tx_bytes, self.last_rx_id)

    def load_blob(self, blob: bytes) -> None:
        """Apply a device blob (all or nothing); ValueError naming the problem."""
        loaded = parse_blob(blob)
        self.__dict__.update(loaded.__dict__)


def _sections_of(blob: bytes) -> list[tuple[str, int, int, bytes]]:
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise ValueError(f"device blob must be bytes, not {type(blob).__name__}")
    blob = bytes(blob)
    if not blob:
        raise ValueError("device blob is empty (not even QEMU_VM_EOF)")
    try:
        decoded = stream.decode_device_blob(blob, VMDESC)
    except ValueError as exc:
        raise ValueError(f"malformed device blob: {exc}") from exc
    except (IndexError, KeyError, struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed device blob: {type(exc).__name__}: {exc}") from exc
    sections = decoded.sections if hasattr(decoded, "sections") else decoded
    out = []
    for section in sections:
        if isinstance(section, tuple):
            out.append(tuple(section[:4]))
        else:
            out.append((section.idstr, section.instance_id, section.version_id,
                        bytes(section.body)))
    return out


def parse_blob(blob: bytes) -> Devices:
    """Decode a device blob into a new `Devices`; ValueError naming the problem."""
    sections = _sections_of(blob)
    seen: dict[str, bytes] = {}
    expected = {idstr: (instance, version, body_struct)
                for idstr, instance, version, body_struct, _f in _LAYOUT}
    for idstr, instance, version, body in sections:
        if idstr not in expected:
            raise ValueError(f"device blob: unknown device section {idstr!r}")
        want_instance, want_version, body_struct = expected[idstr]
        if instance != want_instance:
            raise ValueError(f"device blob: section {idstr!r} has instance {instance}, "
                             f"expected {want_instance}")
        if version > want_version:
            raise ValueError(f"device blob: section {idstr!r} version {version} is newer "
                             f"than supported {want_version}")
        if len(body) != body_struct.size:
            raise ValueError(f"device blob: section {idstr!r} body is {len(body)} bytes, "
                             f"expected {body_struct.size}")
        if idstr in seen:
            raise ValueError(f"device blob: section {idstr!r} appears twice")
        seen[idstr] = body
    missing = [name for name in DEVICE_NAMES if name not in seen]
    if missing:
        raise ValueError(f"device blob: missing device section(s) {', '.join(missing)}")
    ticks, _dummy, clock_ns = _TIMER.unpack(seen["timer"])
    regs = list(_CPU.unpack(seen["cpu"]))
    printed, tail_len, tail = _SERIAL.unpack(seen["serial"])
    if tail_len > SERIAL_TAIL_BYTES:
        raise ValueError(f"device blob: serial tail length {tail_len} > {SERIAL_TAIL_BYTES}")
    rx_p, tx_p, rx_b, tx_b, last_rx = _NIC.unpack(seen["e1000"])
    return Devices(clock_ns // 1_000_000, ticks, regs, printed, tail[:tail_len],
                   rx_p, tx_p, rx_b, tx_b, last_rx)
