"""Turn a real QEMU 7.2 COLO capture into a structured session summary.

Input: a .pcap/.pcapng (`import_capture`), a directory holding
``primary_to_secondary.bin`` / ``secondary_to_primary.bin`` [+
``stream_offsets.json``], or raw bytes (`import_streams`).

Forward stream: initial migration (InitialReader), then per checkpoint be32
checkpoint-request(1), vmstate-send(3), the live RAM part (RamPartReader),
vmstate-size(4) + be64 N, N bytes of device blob. Reverse stream: be32 ids,
checkpoint-ready(0) once, then checkpoint-reply(2), vmstate-received(5),
vmstate-loaded(6) per checkpoint. Times are seconds after t0 (first packet).

`end.kind` is "lone-request" (the forward stream stops right after a
checkpoint-request), "eof-mid-checkpoint" (it stops anywhere else inside a
checkpoint, or the last checkpoint never got vmstate-loaded), otherwise
"rst" / "fin" when TCP saw one (RST wins), else "clean".
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path

from protocol.errors import ColoError
from protocol.migration.pages import KIND_PAGE, KIND_XBZRLE, KIND_ZERO
from protocol.migration.stream import (
    InitialReader,
    InitialSummary,
    RamPartReader,
    StreamError,
    decode_device_blob,
)
from protocol.record.capture_params import checkpoint_delay_ms
from protocol.record.infile import STREAM_FILE, input_refusal
from protocol.record.pcap import PcapError, Scan, TcpDirection, read_pcap, scan

MSG_NAMES = {0: "checkpoint-ready", 1: "checkpoint-request", 2: "checkpoint-reply",
             3: "vmstate-send", 4: "vmstate-size", 5: "vmstate-received", 6: "vmstate-loaded"}
_ORDER = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5}
_KIND_LETTER = {KIND_ZERO: "Z", KIND_PAGE: "P", KIND_XBZRLE: "X"}
MAX_VMSTATE_SIZE = 1 << 30
BIN_P2S, BIN_S2P, OFFSETS_JSON = ("primary_to_secondary.bin", "secondary_to_primary.bin",
                                  "stream_offsets.json")


class CaptureError(ColoError):
    """The capture is not a (decodable) QEMU 7.2 COLO session; one-line message."""


@dataclass
class Checkpoint:
    index: int
    offset: int                       # forward offset of the checkpoint-request
    complete: bool = False
    zero_pages: int = 0
    full_pages: int = 0
    xbzrle_pages: int = 0
    pages_by_block: dict[str, dict[str, int]] = field(default_factory=dict)
    pages: list[tuple[str, int, str]] = field(default_factory=list)
    ram_bytes: int | None = None
    device_state_size: int | None = None
    device_sections: int = 0
    device_layout: list[tuple[int, str, int, int, int]] = field(default_factory=list)
    forward_bytes: int = 0
    t_request: float | None = None
    t_loaded: float | None = None
    messages: list[dict] = field(default_factory=list)
    stage: str = "requested"          # requested / ram / ram-done / device-done

    @property
    def page_list(self) -> str:
        return " ".join(f"{b}:{o:#x}:{_KIND_LETTER[k]}" for b, o, k in self.pages)


@dataclass
class ImportedSession:
    initial: dict
    checkpoints: list[Checkpoint]
    end: dict
    tcp: dict
    ready: dict | None = None
    summary: InitialSummary | None = None
    vmdesc: dict | None = None
    warnings: list[str] = field(default_factory=list)
    compare_channels: dict | None = None    # protocol/net/netfilter_capture.py
    stalls: list[dict] = field(default_factory=list)     # find_stalls
    checkpoint_delay: dict | None = None    # {"ms", "from"}: the run directory's


class _Clock:
    def __init__(self, times: list[tuple[int, float]] | None, t0: float) -> None:
        self.times = sorted((int(o), float(t)) for o, t in times or [])
        self.starts = [o for o, _ in self.times]
        self.t0 = t0
        self._latest: list[float] | None = None

    def at(self, offset: int) -> float | None:
        i = bisect.bisect_right(self.starts, offset) - 1
        return None if i < 0 else self.times[i][1] - self.t0

    def arrived_by(self, t: float) -> int | None:
        """How many stream bytes had surely arrived by time t (relative): the offset of
        the first segment that came later; None if every segment came by then."""
        if self._latest is None:
            latest, out = float("-inf"), []
            for _, when in self.times:
                latest = max(latest, when - self.t0)
                out.append(latest)
            self._latest = out
        i = bisect.bisect_right(self._latest, t)
        return self.starts[i] if i < len(self.starts) else None


def _received_times(s2p: bytes, clock: _Clock) -> list[float | None]:
    """When the secondary sent its k-th vmstate-received (checkpoint k+1's)."""
    return [clock.at(pos) for pos in range(0, len(s2p) - 3, 4)
            if int.from_bytes(s2p[pos:pos + 4], "big") == 5]


def _msg(direction: str, mid: int, offset: int, clock: _Clock, value: int | None = None) -> dict:
    return {"dir": direction, "msg": MSG_NAMES[mid], "id": mid, "value": value,
            "t": clock.at(offset), "offset": offset}


def _decode_forward(p2s: bytes, clock: _Clock, sess: ImportedSession,
                    received: list[float | None] = ()) -> str | None:
    """Decode the forward stream into sess; returns a truncation note or None.
    ``received``: the times of the reverse stream's vmstate-received, in order, that
    each checkpoint's device state must have arrived by."""
    if not p2s:
        raise CaptureError("empty capture: the forward direction carries no bytes")
    if p2s[:4] != b"QEVM"[:len(p2s[:4])]:
        raise CaptureError(f"not a QEMU migration: no QEVM magic at the start of the "
                           f"forward stream (found {p2s[:8].hex(' ')})")
    mv = memoryview(p2s)
    ir = InitialReader()
    try:
        n = ir.feed(mv)
    except StreamError as exc:
        raise CaptureError(f"garbled initial migration: {exc}") from None
    if not ir.done:
        raise CaptureError(f"truncated capture: it ends inside the initial migration "
                           f"({len(p2s)} bytes, no complete VMDESCRIPTION)")
    s = sess.summary = ir.summary
    if not s.enable_colo:
        raise CaptureError("not a COLO session: the migration has no MIG_CMD_ENABLE_COLO")
    sess.vmdesc = s.vmdesc
    sess.initial = _initial_dict(s, clock, len(p2s))
    ctx, pos, cps = ir.ctx, n, sess.checkpoints
    while pos < len(p2s):
        cur = cps[-1] if cps else None
        if len(p2s) - pos < 4:
            return f"{len(p2s) - pos} trailing bytes (a partial COLO message) at {pos}"
        mid = int.from_bytes(p2s[pos:pos + 4], "big")
        stage = cur.stage if cur else "device-done"
        if mid == 1 and stage == "device-done":
            cur = Checkpoint(len(cps) + 1, pos, t_request=clock.at(pos))
            cps.append(cur)
            cur.messages.append(_msg("P>S", 1, pos, clock))
            pos += 4
        elif mid == 3 and stage == "requested":
            cur.messages.append(_msg("P>S", 3, pos, clock))
            pos += 4
            cur.stage = "ram"
            rr = RamPartReader(ctx, base_offset=pos)
            try:
                k = rr.feed(mv[pos:])
            except StreamError as exc:
                raise CaptureError(f"garbled RAM part in checkpoint {cur.index}: {exc}") \
                    from None
            _count_pages(cur, rr.records)
            pos += k
            if not rr.done:
                return f"forward stream ends inside checkpoint {cur.index}'s RAM part"
            cur.ram_bytes = k
            cur.stage = "ram-done"
        elif mid == 4 and stage == "ram-done":
            if len(p2s) - pos < 12:
                return f"forward stream ends inside checkpoint {cur.index}'s vmstate-size"
            size = int.from_bytes(p2s[pos + 4:pos + 12], "big")
            if size > MAX_VMSTATE_SIZE:
                raise CaptureError(f"garbled vmstate-size {size} at forward offset {pos}")
            _check_size_against_reverse(cur.index, pos, size, clock, received)
            cur.messages.append(_msg("P>S", 4, pos, clock, size))
            cur.device_state_size = size
            pos += 12
            if len(p2s) - pos < size:
                return f"forward stream ends inside checkpoint {cur.index}'s device state"
            try:
                secs = decode_device_blob(mv[pos:pos + size], sess.vmdesc, base_offset=pos)
            except StreamError as exc:
                raise CaptureError(f"garbled device state in checkpoint {cur.index}: {exc}") \
                    from None
            cur.device_sections = len(secs)
            cur.device_layout = [(d.section_id, d.idstr, d.instance_id, d.version_id,
                                  d.length) for d in secs]
            pos += size
            cur.stage = "device-done"
            cur.forward_bytes = pos - cur.offset
        else:
            want = {"device-done": "checkpoint-request(1)", "requested": "vmstate-send(3)",
                    "ram-done": "vmstate-size(4)"}[stage]
            found = f"{mid} ({MSG_NAMES[mid]})" if mid in MSG_NAMES else f"{mid:#010x}"
            raise CaptureError(f"garbled forward stream at offset {pos}: expected {want}, "
                               f"found {found}")
    return None


def _check_size_against_reverse(index: int, pos: int, size: int, clock: _Clock,
                                received) -> None:
    """The secondary sends vmstate-received only once the whole device state is in: a
    size whose bytes had not all arrived by then is garbled (it would swallow the rest
    of the capture as device state)."""
    t = received[index - 1] if index - 1 < len(received) else None
    if t is None:
        return
    arrived = clock.arrived_by(t)
    if arrived is not None and pos + 12 + size > arrived:
        raise CaptureError(
            f"garbled vmstate-size {size} at forward offset {pos}: the secondary sent "
            f"vmstate-received for checkpoint {index} at t={t:.6f} s, when only "
            f"{max(0, arrived - pos - 12)} bytes of device state had arrived")


def _count_pages(cp: Checkpoint, records) -> None:
    for r in records:
        if r.kind == KIND_ZERO:
            cp.zero_pages += 1
        elif r.kind == KIND_PAGE:
            cp.full_pages += 1
        else:
            cp.xbzrle_pages += 1
        bb = cp.pages_by_block.setdefault(r.block, {KIND_ZERO: 0, KIND_PAGE: 0,
                                                    KIND_XBZRLE: 0})
        bb[r.kind] += 1
        cp.pages.append((r.block, r.offset, r.kind))


def _initial_dict(s: InitialSummary, clock: _Clock, total: int) -> dict:
    return {
        "bytes": s.bytes, "magic": f"{s.magic:#010x}", "version": s.version,
        "machine": s.machine, "enable_colo": s.enable_colo,
        "commands": [{"cmd": c, "len": len(d)} for c, d in s.commands],
        "ram_section_id": s.ram_section_id, "mem_size": s.mem_size,
        "blocks": [{"idstr": b, "used_length": u} for b, u in s.blocks],
        "ram_sections": [{k: v for k, v in d.items()} for d in s.ram_sections],
        "pages": {k: s.pages_by_kind.get(k, 0) for k in (KIND_ZERO, KIND_PAGE, KIND_XBZRLE)},
        "pages_by_block": s.pages_by_block,
        "device_sections": [{"section_id": d.section_id, "idstr": d.idstr,
                             "instance_id": d.instance_id, "version_id": d.version_id,
                             "length": d.length, "method": d.method}
                            for d in s.device_sections],
        "eof_offset": s.eof_offset, "vmdesc_len": s.vmdesc_len,
        "t_start": clock.at(0), "t_end": clock.at(max(0, min(s.bytes, total) - 1)),
    }


def _decode_reverse(s2p: bytes, clock: _Clock, sess: ImportedSession) -> None:
    cps = sess.checkpoints
    nxt = {2: 0, 5: 0, 6: 0}      # index of the next checkpoint expecting each id
    prev = {2: None, 5: 2, 6: 5}
    for pos in range(0, len(s2p) - len(s2p) % 4, 4):
        mid = int.from_bytes(s2p[pos:pos + 4], "big")
        if mid == 0 and pos == 0:
            sess.ready = _msg("S>P", 0, pos, clock)
            continue
        if mid not in nxt:
            found = f"{mid} ({MSG_NAMES[mid]})" if mid in MSG_NAMES else f"{mid:#010x}"
            raise CaptureError(f"garbled reverse stream at offset {pos}: expected "
                               f"checkpoint-reply/vmstate-received/vmstate-loaded, found {found}")
        i = nxt[mid]
        if i >= len(cps) or (prev[mid] is not None and nxt[prev[mid]] <= i):
            sess.warnings.append(f"reverse {MSG_NAMES[mid]} at offset {pos} matches no "
                                 "checkpoint")
            continue
        nxt[mid] += 1
        m = _msg("S>P", mid, pos, clock)
        cps[i].messages.append(m)
        if mid == 6:
            cps[i].t_loaded = m["t"]
    if len(s2p) % 4:
        sess.warnings.append(f"{len(s2p) % 4} trailing bytes in the reverse stream")
    for cp in cps:
        got = {m["id"] for m in cp.messages}
        cp.complete = cp.stage == "device-done" and {1, 2, 3, 4, 5, 6} <= got
        timed = all(m["t"] is not None for m in cp.messages)
        cp.messages.sort(key=lambda m: (m["t"], _ORDER[m["id"]]) if timed
                         else (_ORDER[m["id"]], 0))


def _dir_info(d: TcpDirection | None, t0: float) -> dict | None:
    if d is None:
        return None

    def rel(t: float | None) -> float | None:
        return None if t is None else t - t0

    return {"src": d.src, "dst": d.dst, "bytes": len(d.data), "segments": d.segments,
            "retransmitted": d.retransmitted, "gaps": [list(g) for g in d.gaps],
            "bytes_after_gap": d.bytes_after_gap, "fin_time": rel(d.fin_time),
            "rst_time": rel(d.rst_time)}


def import_streams(p2s: bytes, s2p: bytes, p2s_times: list | None = None,
                   s2p_times: list | None = None, *, t0: float = 0.0,
                   tcp: dict | None = None, t_end: float | None = None,
                   delay: tuple[int, str] | None = None) -> ImportedSession:
    """Decode raw forward/reverse bytes; times are (offset, time) lists, shown as t - t0;
    t_end: when the capture ends (absolute), to see checkpoints that stopped; delay:
    (x-checkpoint-delay ms, where it was read) when the run directory gives it."""
    sess = ImportedSession(initial={}, checkpoints=[], end={}, tcp=tcp or {})
    fwd_clock, rev_clock = _Clock(p2s_times, t0), _Clock(s2p_times, t0)
    s2p = bytes(s2p)
    note = _decode_forward(bytes(p2s), fwd_clock, sess, _received_times(s2p, rev_clock))
    _decode_reverse(bytes(s2p), rev_clock, sess)
    last = sess.checkpoints[-1] if sess.checkpoints else None
    fins = [{"side": side, "t": info["fin_time"]} for side, info in
            (("primary", sess.tcp.get("p2s")), ("secondary", sess.tcp.get("s2p")))
            if info and info.get("fin_time") is not None]
    rsts = [{"side": side, "t": info["rst_time"]} for side, info in
            (("primary", sess.tcp.get("p2s")), ("secondary", sess.tcp.get("s2p")))
            if info and info.get("rst_time") is not None]
    if last is not None and last.stage == "requested" and note is None \
            and len(last.messages) <= 2:
        kind = "lone-request"
    elif note is not None or (last is not None and not last.complete):
        kind = "eof-mid-checkpoint"
    else:
        kind = "rst" if rsts else "fin" if fins else "clean"
    sess.end = {"kind": kind, "fin": fins, "rst": rsts, "note": note,
                "last_checkpoint": last.index if last else None,
                "forward_bytes": len(p2s), "reverse_bytes": len(s2p)}
    if note:
        sess.warnings.append(note)
    sess.stalls = find_stalls(sess.checkpoints, None if t_end is None else t_end - t0,
                              *(delay or (None, None)))
    sess.checkpoint_delay = ({"ms": delay[0], "from": delay[1]} if delay else None)
    sess.warnings.extend(stall_text(st) for st in sess.stalls)
    return sess


#: a gap between checkpoint requests is a stall when it is this many times the expected
#: interval (x-checkpoint-delay when the capture's run directory gives it, else the
#: median gap) and at least STALL_MIN_S longer
STALL_FACTOR, STALL_MIN_S = 5.0, 2.0


def find_stalls(cps: list[Checkpoint], t_end: float | None,
                delay_ms: int | None = None, delay_from: str | None = None) -> list[dict]:
    """Where checkpoints stop: gaps between checkpoint requests (or from the last
    one to `t_end`, relative) above the bound.  Each: gap_s, after_checkpoint,
    before_checkpoint (None: the capture ended), t (the last request before the
    gap), expected_s, expected_from ("x-checkpoint-delay (FILE)" or "median gap"),
    bound_s.  7.2 paces requests start to start, exactly x-checkpoint-delay apart."""
    times = [(getattr(c, "index", k + 1), c.t_request) for k, c in enumerate(cps)
             if c.t_request is not None]
    gaps = [b[1] - a[1] for a, b in zip(times, times[1:], strict=False)]
    if delay_ms is not None and delay_ms > 0 and times:
        expected, source = delay_ms / 1000.0, "x-checkpoint-delay" + (
            f" ({delay_from})" if delay_from else "")
    elif len(gaps) >= 2:
        expected, source = sorted(gaps)[len(gaps) // 2], "median gap"
    else:
        return []
    bound = max(STALL_FACTOR * expected, expected + STALL_MIN_S)
    out = []

    def stall(gap, after, before, t):
        out.append({"gap_s": round(gap, 6), "after_checkpoint": after,
                    "before_checkpoint": before, "t": t, "expected_s": expected,
                    "expected_from": source, "bound_s": bound})
    for (i, t), (j, _), gap in zip(times, times[1:], gaps, strict=False):
        if gap > bound:
            stall(gap, i, j, t)
    if t_end is not None and t_end - times[-1][1] > bound:
        stall(t_end - times[-1][1], times[-1][0], None, times[-1][1])
    return out


def stall_text(st: dict) -> str:
    exp = f"expected every {st['expected_s']:.3f} s ({st['expected_from']})"
    if st["before_checkpoint"] is None:
        return (f"checkpoints stopped: no checkpoint in the last {st['gap_s']:.1f} s of the "
                f"capture (the last one, {st['after_checkpoint']}, at t={st['t']:.3f} s; "
                f"{exp}): the primary or the link stalled")
    return (f"checkpoints stop for {st['gap_s']:.1f} s between checkpoint "
            f"{st['after_checkpoint']} (t={st['t']:.3f} s) and {st['before_checkpoint']}, "
            f"{exp}: the primary or the link stalled")


def stall_warnings(cps: list[Checkpoint], t_end: float | None,
                   delay_ms: int | None = None) -> list[str]:
    """`find_stalls` as warning sentences (a primary hung for 22 s with a 1 s delay)."""
    return [stall_text(st) for st in find_stalls(cps, t_end, delay_ms)]


def import_capture(path: str | Path) -> ImportedSession:
    """Import a .pcap/.pcapng, a run directory of .bin files, or a forward .bin."""
    p = Path(path)
    try:
        if p.is_dir():
            if not (p / BIN_P2S).exists():
                raise CaptureError(
                    f"{p}: no {BIN_P2S} in this directory (a run directory holds "
                    f"{BIN_P2S}, the primary's stream; {BIN_S2P} and {OFFSETS_JSON} "
                    "beside it are optional); or give a .pcap/.pcapng file")
            return _import_bins(p / BIN_P2S, p / BIN_S2P, p / OFFSETS_JSON)
        if why := input_refusal(p, "a .pcap/.pcapng file or a run directory: a capture "
                                   "is read twice, once to find the COLO connection, "
                                   "once to reassemble it"):
            raise CaptureError(why)
        with p.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise CaptureError(f"cannot read {p}: {exc.strerror or exc}") from None
    if magic == b"QEVM":
        return _import_bins(p, p.with_name(BIN_S2P), p.with_name(OFFSETS_JSON))
    try:
        found = scan(p)
        if not found.stats.packets:
            raise CaptureError(f"{p.name}: empty capture (no packets)")
        if not found.stats.tcp_packets:
            raise CaptureError(f"{p.name}: no TCP packets, so no migration stream")
        key = pick_colo_connection(found)
        if key is None:
            more = (f" among the first {len(found.connections):,} TCP connections (the "
                    f"capture has more; {found.untracked:,} were not examined)"
                    if found.untracked else "")
            raise CaptureError(f"{p.name}: no TCP stream starts with the QEVM magic{more}, "
                               "so this is not a QEMU migration capture")
        fwd_src = key[0]
        cap = read_pcap(p, only={frozenset(key)})
    except PcapError as exc:
        raise CaptureError(f"{p.name}: {exc}") from None
    if len(cap.connections) != 1:
        raise CaptureError(f"{p.name}: the capture changed while it was read")
    (conn,) = cap.connections
    fwd, rev = (conn.a, conn.b) if conn.a.src == fwd_src else (conn.b, conn.a)
    # checkpoints that stop are measured to the COLO connection's last packet (a hung
    # primary's connection ends with the failover's RST), not to the capture's end
    t_end = max((t for t in (fwd.last_time, rev.last_time) if t is not None), default=None)
    t0 = cap.t0 or 0.0
    tcp = {"p2s": _dir_info(fwd, t0), "s2p": _dir_info(rev, t0), "packets": cap.packets,
           "link_type": cap.link_type, "connections": len(found.connections),
           "t0": cap.t0}
    try:
        sess = import_streams(fwd.data, rev.data, fwd.offsets, rev.offsets, t0=t0, tcp=tcp,
                              t_end=t_end, delay=checkpoint_delay_ms(p.parent))
    except CaptureError as exc:
        if fwd.gaps and str(exc).startswith("truncated capture"):
            # the stream stops short because the capture lost packets: say so
            raise CaptureError(f"{exc}; {_gap_text('primary->secondary', fwd)}") from None
        raise
    for name, d in (("forward", fwd), ("reverse", rev)):
        if d.gaps:
            sess.warnings.append(f"{name} stream has TCP gaps {d.gaps}: decoded up to the "
                                 f"first one ({len(d.data)} bytes)")
    _import_compare_channels(p, found, t0, sess)
    return sess


def _import_compare_channels(p: Path, found: Scan, t0: float, sess: ImportedSession) -> None:
    """The colo-compare chardev streams beside the COLO connection, if any."""
    from protocol.net import netfilter_capture as nfc
    want = nfc.find_streams(found)
    if not want:
        return
    try:
        cap = read_pcap(p, only={frozenset((a, b)) for a, b, _ in want})
    except PcapError as exc:
        sess.warnings.append(f"compare channels not read: {exc}")
        return
    dirs = {(d.src, d.dst): d for c in cap.connections for d in (c.a, c.b)}
    streams = {}
    for src, dst, vnet in want:
        d = dirs.get((src, dst))
        if d is not None:
            streams[f"{src}>{dst}"] = nfc.decode_stream(d.data, d.offsets, t0, vnet)
    times = [c.t_request for c in sess.checkpoints if c.t_request is not None]
    sess.compare_channels = nfc.summarize(streams, times)


def _is_colo_control(head: bytes) -> bool:
    """The start of a COLO secondary's reverse stream: checkpoint-ready(0), then only
    be32 ids of the messages a secondary sends (checkpoint-reply, vmstate-received,
    vmstate-loaded)."""
    if len(head) < 4 or head[:4] != b"\0\0\0\0":
        return False
    words = [int.from_bytes(head[i:i + 4], "big") for i in range(4, len(head) - 3, 4)]
    return all(w in (2, 5, 6) for w in words)


def pick_colo_connection(found: Scan) -> tuple[str, str] | None:
    """(forward src, reverse src) of the COLO connection, chosen by protocol, not by
    length: a forward direction that starts with QEVM whose reverse direction carries
    COLO control messages; failing that, the first stream that starts with QEVM (a
    capture that stops before checkpoint-ready, or a plain migration, which the
    decoder then names)."""
    qevm = [(fwd, rev) for c in found.connections for fwd, rev in ((c.a, c.b), (c.b, c.a))
            if fwd.head[:4] == b"QEVM"]
    if not qevm:
        return None
    colo = [pair for pair in qevm if _is_colo_control(pair[1].head)]
    fwd, rev = (colo or qevm)[0]
    return fwd.src, rev.src


def _gap_text(name: str, d) -> str:
    at, size = d.gaps[0]
    more = f" ({len(d.gaps)} holes in all)" if len(d.gaps) > 1 else ""
    return (f"the capture has a hole in the {name} stream: bytes {at}..{at + size - 1} "
            f"({size} bytes) were never captured{more}, though {d.bytes_after_gap} bytes "
            "after it were: the capturing tool dropped packets (give it a bigger buffer, "
            "e.g. dumpcap -B 64 or tcpdump -B 65536)")


#: stream_offsets.json is an index, a few KB for a real run; a bigger one is refused
MAX_OFFSETS_JSON_BYTES = 64 << 20


def read_offsets(path: Path) -> dict:
    """stream_offsets.json, checked against its schema: {"t0": number,
    "primary_to_secondary": [[offset, time], ...], "secondary_to_primary": [...]} (every
    key optional). CaptureError names what is wrong and where."""
    import msgspec

    from protocol.record.offsets_schema import StreamOffsets
    if not path.is_file():
        raise CaptureError(f"{path.name}: not a regular file")
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_OFFSETS_JSON_BYTES + 1)
    except OSError as exc:
        raise CaptureError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_OFFSETS_JSON_BYTES:
        raise CaptureError(f"{path.name}: larger than {MAX_OFFSETS_JSON_BYTES >> 20} MiB; "
                           "it is an index of segment offsets and times, not data")
    try:
        offs = msgspec.json.decode(raw, type=StreamOffsets)
    except msgspec.ValidationError as exc:
        raise CaptureError(f"{path.name}: {exc} (expected {StreamOffsets.SHAPE})") from None
    except msgspec.DecodeError as exc:
        raise CaptureError(f"{path.name}: not JSON ({exc})") from None
    return {"t0": offs.t0, "primary_to_secondary": offs.primary_to_secondary,
            "secondary_to_primary": offs.secondary_to_primary}


def _read_stream_file(path: Path) -> bytes:
    """A stream file's bytes: a regular file only (a device such as /dev/zero or a pipe
    never ends, so it is refused rather than read until memory runs out)."""
    if why := input_refusal(path, STREAM_FILE):
        raise CaptureError(why)
    return path.read_bytes()


def _import_bins(p2s_path: Path, s2p_path: Path, offsets_path: Path) -> ImportedSession:
    try:
        p2s = _read_stream_file(p2s_path)
        s2p = _read_stream_file(s2p_path) if s2p_path.exists() else b""
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise CaptureError(f"cannot read the stream files{where}: "
                           f"{exc.strerror or exc}") from None
    offs = read_offsets(offsets_path) if offsets_path.exists() else {}
    t0 = float(offs.get("t0") or 0.0)
    return import_streams(p2s, s2p, offs.get("primary_to_secondary"),
                          offs.get("secondary_to_primary"), t0=t0,
                          tcp={"p2s": {"bytes": len(p2s)}, "s2p": {"bytes": len(s2p)}},
                          delay=checkpoint_delay_ms(p2s_path.parent))


def to_json(session: ImportedSession) -> dict:
    """A JSON-ready dict with keys initial, checkpoints, end, tcp (+ ready, warnings)."""
    cps = []
    for c in session.checkpoints:
        cps.append({
            "index": c.index, "complete": c.complete, "offset": c.offset,
            "zero_pages": c.zero_pages, "full_pages": c.full_pages,
            "xbzrle_pages": c.xbzrle_pages, "pages_by_block": c.pages_by_block,
            "device_state_size": c.device_state_size, "device_sections": c.device_sections,
            "t_request": c.t_request, "t_loaded": c.t_loaded,
            "messages": [{k: m[k] for k in ("dir", "msg", "value", "t")}
                         for m in c.messages],
            "ram_bytes": c.ram_bytes, "forward_bytes": c.forward_bytes,
            "page_list": c.page_list,
        })
    out = {"initial": session.initial, "checkpoints": cps, "end": session.end,
           "tcp": session.tcp, "ready": session.ready, "warnings": session.warnings,
           "stalls": session.stalls, "checkpoint_delay": session.checkpoint_delay}
    if session.compare_channels is not None:
        out["compare_channels"] = session.compare_channels
    return out
