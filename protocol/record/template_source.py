"""A guest template (`protocol.guest.template`) from a real QEMU 7.2 COLO capture, and
the template file on disk.

The capture is anything `colo import` reads: a .pcap/.pcapng, a run directory
(``primary_to_secondary.bin`` …) or a forward .bin.  The forward stream is decoded
with the importer (so a template is only made from a stream that decodes), then cut:
the initial migration verbatim, and each complete checkpoint's device blob (the N
bytes after its vmstate-size).  A ``cmdlines.txt`` next to the capture (as in
``qemu-colo/run1``) gives the machine options the secondary must be started with.
"""
from __future__ import annotations

import shlex
from pathlib import Path

from protocol.guest.template import GuestTemplate, TemplateError
from protocol.record.pcap import PcapError, read_pcap, scan
from protocol.record.qemu_import import (
    BIN_P2S,
    CaptureError,
    import_streams,
    pick_colo_connection,
)

#: options that name files or sockets of one run, not the machine: dropped
_RUN_OPTIONS = {"-name", "-qmp", "-D", "-trace", "-msg", "-incoming", "-monitor",
                "-pidfile", "-chardev", "-mon"}
#: options whose device the machine needs but whose backend is one run's file: kept,
#: with a backend that writes nowhere (the device section must exist on the secondary)
_NULL_BACKEND = {"-serial": "null", "-parallel": "null"}
#: the machine options of the tests' and run1's guest (tests/qemu/_qemu.py), when the
#: capture has no cmdlines.txt
DEFAULT_ARGS = ["-machine", "pc,accel=tcg", "-cpu", "qemu64", "-m", "128M", "-smp", "1",
                "-nodefaults", "-vga", "std", "-display", "none", "-nic", "none",
                "-serial", "null"]


def forward_stream(path: str | Path) -> bytes:
    """The primary->secondary bytes of a capture (pcap, run directory or .bin)."""
    p = Path(path)
    try:
        if p.is_dir():
            if not (p / BIN_P2S).exists():       # not "cannot read DIR: No such file"
                raise CaptureError(f"{p}: no {BIN_P2S} in this directory (a run directory "
                                   f"holds {BIN_P2S}, the primary's stream); or give a "
                                   ".pcap/.pcapng file or a forward .bin")
            return (p / BIN_P2S).read_bytes()
        with p.open("rb") as fh:
            magic = fh.read(4)
        if magic == b"QEVM":
            return p.read_bytes()
    except OSError as exc:
        raise CaptureError(f"cannot read {p}: {exc.strerror or exc}") from None
    try:
        found = scan(p)
        key = pick_colo_connection(found)
        if key is None:
            raise CaptureError(f"{p.name}: no TCP stream starts with the QEVM magic")
        cap = read_pcap(p, only={frozenset(key)})
    except PcapError as exc:
        raise CaptureError(f"{p.name}: {exc}") from None
    (conn,) = cap.connections
    return (conn.a if conn.a.src == key[0] else conn.b).data


def machine_args(cmdline: str) -> tuple[list[str], str | None]:
    """The machine options of a QEMU command line (without per-run files) and its
    -kernel path (a separate value: the secondary needs the same guest image)."""
    words = [w for w in shlex.split(cmdline) if "=" not in w or w.startswith("-")
             or not w.split("=", 1)[0].isupper()]
    if words and not words[0].startswith("-"):
        words = words[1:]                     # the binary
    out, kernel, i = [], None, 0
    while i < len(words):
        w = words[i]
        val = words[i + 1] if i + 1 < len(words) else None
        if w in _RUN_OPTIONS:
            i += 2
            continue
        if w in _NULL_BACKEND:
            out += [w, _NULL_BACKEND[w]]
            i += 2
            continue
        if w == "-kernel":
            kernel = val
            i += 2
            continue
        out.append(w)
        i += 1
    return out, kernel


def _cmdlines(capture: Path) -> tuple[list[str], str | None] | None:
    d = capture if capture.is_dir() else capture.parent
    f = d / "cmdlines.txt"
    if not f.is_file():
        return None
    lines = f.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "# secondary" and i + 1 < len(lines):
            return machine_args(lines[i + 1])
    return None


def template_from_capture(path: str | Path) -> GuestTemplate:
    """Cut a template out of a real capture (CaptureError if it does not decode or
    has no complete checkpoint)."""
    p = Path(path)
    p2s = forward_stream(p)
    sess = import_streams(p2s, b"")
    s = sess.summary
    blobs = []
    for cp in sess.checkpoints:
        size_msg = next((mm for mm in cp.messages if mm["msg"] == "vmstate-size"), None)
        if size_msg is None or cp.device_state_size is None:
            continue
        at = size_msg["offset"] + 12
        if at + cp.device_state_size <= len(p2s):
            blobs.append(p2s[at:at + cp.device_state_size])
    if not blobs:
        raise CaptureError(f"{p.name}: no complete checkpoint, so no device blob for a "
                           "template")
    found = _cmdlines(p)
    args, kernel = found if found else (list(DEFAULT_ARGS), None)
    if kernel:
        args += ["-kernel", kernel]
    return GuestTemplate(machine=s.machine or "", blocks=[tuple(b) for b in s.blocks],
                         ram_section_id=s.ram_section_id or 0, initial=p2s[:s.bytes],
                         blobs=blobs, qemu_args=args,
                         capabilities={"x-colo": True}, source=str(p))


def default_template_path() -> Path:
    import platformdirs
    return platformdirs.user_data_path("colo-testbed") / "templates" / "guest.colotpl"


def save_template(tpl: GuestTemplate, path: str | Path | None = None) -> Path:
    out = Path(path) if path else default_template_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(tpl.to_bytes())
    tmp.replace(out)
    return out


def load_template(path: str | Path | None = None) -> GuestTemplate:
    p = Path(path) if path else default_template_path()
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise TemplateError(f"no guest template at {p}: make one with `colo template "
                            "CAPTURE`") from None
    except OSError as exc:
        raise TemplateError(f"cannot read {p}: {exc.strerror or exc}") from None
    return GuestTemplate.from_bytes(data)
