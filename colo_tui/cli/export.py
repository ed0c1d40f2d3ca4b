"""`colo export FILE --to mermaid|pcap|json [-o OUT]`: a recording in other shapes.

* mermaid — a ``sequenceDiagram``: one arrow per control message (name and
  value), RAM parts, device-state blobs and the initial migration as arrows
  too, drawn when they arrive; dropped or lost pieces as ``-x``; faults,
  errors, failover, COLO_EXIT, operator inputs and the outcome as notes.
* pcap — the emulated wire bytes of both directions as one TCP connection
  (SYN, SYN-ACK, ACK; data segments with the right seq/ack numbers; FIN at
  the end) over Ethernet/IPv4 on 127.0.0.1, time = the session's virtual
  time (seconds since 0).  The recording is re-run (it is deterministic and
  verified first) because its events carry only the sizes of RAM parts and
  blobs; every piece the simulator puts on the link is captured with its
  departure time.
* json — the recording as one JSON document {header, events, inputs, comments}.

Exit codes: 0 done; 1 the file cannot be read, is not a recording, or does not
replay; 2 a usage error (e.g. an unknown --to, -o naming the input or an
existing file without --force).
"""
from __future__ import annotations

import argparse
import json
import sys

from colo_tui.session.argtypes import nonempty_path
from colo_tui.session.words import plural
from protocol.errors import ColoError

FORMATS = ("mermaid", "pcap", "json")
PRIMARY_PORT, SECONDARY_PORT = 49152, 9998
PRIMARY_ISN, SECONDARY_ISN = 1000, 500000
MSS = 32768
_NAME = {"primary": "Primary", "secondary": "Secondary"}
_BOTH = "Primary,Secondary"


class ExportError(ColoError):
    """A failure the command reports in one line (exit 1)."""


# ----------------------------------------------------------------- CLI glue
def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("export", help="export a recording as mermaid, pcap or json",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("file", type=nonempty_path, metavar="FILE", help="a .colo.jsonl recording")
    p.add_argument("--to", required=True, metavar="FORMAT",
                   help="mermaid | pcap | json")
    p.add_argument("-o", "--output", type=nonempty_path, metavar="OUT",
                   help="output file (default: standard output); never the input, and an "
                        "existing file only with --force")
    p.add_argument("--force", action="store_true", help="overwrite an existing OUT")
    p.set_defaults(func=run_export)
    return p


def run_export(args) -> int:
    fmt = (args.to or "").strip().lower()
    if fmt not in FORMATS:
        print(f"colo export: error: unknown --to {args.to!r}; choose one of: "
              f"{', '.join(FORMATS)}", file=sys.stderr)
        return 2
    from protocol.errors import OutputFileError
    from protocol.record import format as rf
    from protocol.record.outfile import atomic_output, check_target, write_bytes
    try:
        if args.output:           # refused before any work: the input, or an existing file
            check_target(args.output, inputs=[args.file], force=args.force)
        elif fmt == "pcap" and sys.stdout.isatty():
            raise ExportError("a pcap is binary: give -o OUT or redirect the output")
        rec = rf.read(args.file)
        if fmt == "pcap":         # written as it is made (a pcap can be large)
            if args.output:
                with atomic_output(args.output, inputs=[args.file], force=args.force) as fh:
                    write_pcap(rec, fh)
            else:
                write_pcap(rec, sys.stdout.buffer)
                sys.stdout.flush()
        else:
            out = (to_mermaid(rec) if fmt == "mermaid"
                   else json.dumps(to_json(rec), indent=1) + "\n").encode()
            if args.output:
                write_bytes(args.output, out, inputs=[args.file], force=args.force)
            else:
                sys.stdout.buffer.write(out)
                sys.stdout.flush()
        if rec.cut:                   # as colo replay says it: the export is partial too
            print(f"colo export: note: {args.file} is a cut recording ({rec.cut}): "
                  "exported what it holds", file=sys.stderr)
    except OutputFileError as exc:
        print(f"colo export: error: {exc}", file=sys.stderr)
        return 2
    except ColoError as exc:          # ExportError too
        print(f"colo export: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        what = exc.filename or args.output or "the standard output"
        print(f"colo export: error: {what}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------- json
def to_json(rec) -> dict:
    return {"header": rec.header, "events": rec.events, "inputs": rec.inputs,
            "comments": rec.comments}


# ------------------------------------------------------------------ mermaid
def _esc(text) -> str:
    s = str(text).replace("\n", " ").replace(";", ",").replace("#", "#35;")
    return s.replace("<", "&lt;").replace(">", "&gt;")


def _piece_label(ev: dict) -> tuple[str, str] | None:
    """(point, label) of a send event, None if it is not a piece of output."""
    kind, d = ev["kind"], ev.get("data", {})
    if kind == "send":
        return d["msg"], f"{d['msg']} = {d.get('value', 0)}"
    if kind == "send-ram":
        pages = f", {plural(d['pages'], 'page')}" if "pages" in d else ""
        return "ram", f"RAM part {d.get('bytes', 0)} B{pages}"
    if kind == "send-device-state":
        return "device-state", f"device state {d.get('bytes', 0)} B"
    if kind == "send-initial":
        return "initial", f"initial migration {d.get('bytes', 0)} B"
    # an imported real capture names its pieces without the "send-" prefix
    if kind == "ram":
        return "ram", (f"RAM part {d.get('bytes', 0)} B, {d.get('full', 0)} full + "
                       f"{d.get('zero', 0)} zero + {d.get('xbzrle', 0)} xbzrle pages")
    if kind == "device-state":
        return "device-state", (f"device state {d.get('bytes', 0)} B, "
                                + (plural(d['sections'], 'section') if 'sections' in d
                                   else "? sections"))
    if kind == "recv-initial":
        return "initial", f"initial migration {d.get('bytes', 0)} B"
    return None


def _note(ev: dict) -> tuple[str, str] | None:
    """(over, text) for the events that become notes."""
    side, kind, d = ev["side"], ev["kind"], ev.get("data", {})
    over = _NAME.get(side, _BOTH)
    if side in _NAME:
        if kind == "error":
            return over, f"error: {d.get('message', '')}"
        if kind == "colo-exit":
            return over, f"COLO_EXIT({d.get('mode')}, {d.get('reason')})"
        if kind == "failover":
            return over, f"failover {d.get('from')} → {d.get('to')}"
        if kind == "process":
            return over, f"process {d.get('what')}: {d.get('why', '')}"
        if kind in ("default-failover", "deferred"):
            return over, f"{kind}: {d.get('action') or d.get('why', '')}"
        if kind == "checkpoint" and side == "primary" and d.get("phase") == "begin":
            reason = f" ({d['reason']})" if d.get("reason") else ""
            return over, f"checkpoint {d.get('n')}{reason}"
        if kind == "vm" and d.get("run") == "shutdown":
            return over, f"VM shutdown: {d.get('why', '')}"
        return None
    if side == "sim" and kind == "fault":
        return _BOTH, f"fault {d.get('spec')}"
    if side == "sim" and kind == "end":
        return _BOTH, f"end: outcome {d.get('outcome')}"
    if side == "link" and kind in ("closed", "partition"):
        return _BOTH, f"link {kind}: {d.get('why') or d.get('how') or d.get('until', '')}"
    if side == "operator" and kind == "input":
        args = " ".join(f"{k}={v}" for k, v in d.items() if k != "cmd")
        return _BOTH, f"operator: {d.get('cmd')} {args}".rstrip()
    if side == "operator" and kind == "qmp-error":
        return _NAME.get(d.get("side"), _BOTH), f"QMP error: {d.get('error')}"
    if side == "arbiter":
        return _NAME.get(d.get("side"), _BOTH), f"arbiter {kind}: {d.get('why', '')}"
    return None


def to_mermaid(rec) -> str:
    h = rec.header
    lines = ["sequenceDiagram",
             f"    %% {_esc(h.get('scenario', 'recording'))}: dialect {h.get('dialect')}"
             f", mode {h.get('mode')}, seed {h.get('seed')}",
             "    participant Primary", "    participant Secondary"]
    pending: dict[str, list[list[str]]] = {"P>S": [], "S>P": []}
    arrow_of = {"P>S": ("Primary", "Secondary"), "S>P": ("Secondary", "Primary")}

    def take(direction: str, point: str) -> list[str] | None:
        for i, item in enumerate(pending.get(direction, [])):
            if item[0] == point:
                return pending[direction].pop(i)
        return None

    imported = bool(h.get("imported"))
    for ev in rec.events:
        kind, d = ev["kind"], ev.get("data", {})
        piece = _piece_label(ev) if ev["side"] in _NAME else None
        if kind == "recv-initial" and not imported:
            piece = None          # a simulated session shows the primary's send-initial
        if piece is not None:
            direction = "P>S" if ev["side"] == "primary" else "S>P"
            if kind == "recv-initial":
                direction = "P>S"
            if imported:        # a real capture: what was sent is what crossed the wire
                src, dst = arrow_of[direction]
                lines.append(f"    {src}->>{dst}: {_esc(piece[1])}")
                continue
            pending[direction].append([piece[0], piece[1]])
            continue
        if ev["side"] == "link" and kind in ("fault", "deliver", "dropped", "lost"):
            direction = d.get("dir", "P>S")
            src, dst = arrow_of.get(direction, arrow_of["P>S"])
            point = d.get("point", "?")
            if kind == "fault":
                item = next((i for i in pending.get(direction, []) if i[0] == point), None)
                if item is not None:
                    item[1] += f" [{d.get('spec')}]"
                lines.append(f"    Note over {src}: {_esc('fault ' + str(d.get('spec')))}")
                continue
            for part in point.split("+"):       # the link may coalesce adjacent pieces
                item = take(direction, part)
                label = item[1] if item else f"{part} (copy)"
                if kind == "deliver":
                    lines.append(f"    {src}->>{dst}: {_esc(label)}")
                else:
                    why = f"lost: {d.get('why', '')}" if kind == "lost" else "dropped"
                    lines.append(f"    {src}-x{dst}: {_esc(f'{label} ({why})')}")
            continue
        note = _note(ev)
        if note is not None:
            lines.append(f"    Note over {note[0]}: {_esc(note[1])}")
    for direction, items in pending.items():
        src, dst = arrow_of[direction]
        for item in items:
            lines.append(f"    {src}-x{dst}: {_esc(item[1] + ' (never arrived)')}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------- pcap
def capture(rec):
    """Re-run the recording; returns (sim, pieces, close_ms, closer).

    pieces: [(departure_ms, arrival_ms, direction, bytes)] in scheduling order.
    """
    from protocol.core.events import Closed
    from protocol.record.replay import verify
    from protocol.sim.core import Simulation
    res = verify(rec)
    if not res.ok:
        fd = res.first_difference or {}
        raise ExportError(f"the recording does not replay identically (first difference at "
                          f"seq {fd.get('seq')}); cannot rebuild its wire bytes")
    sim = Simulation(rec.config)
    link, pieces = sim.link, []
    original = link.schedule

    def schedule(now, direction, data, *args, **kwargs):
        start = max(now, link._free_at[direction], link.held_until_ms)
        delivery = original(now, direction, data, *args, **kwargs)
        raw = b"".join(data) if type(data) is tuple else bytes(data)   # a burst's pieces
        pieces.append((start, delivery.at_ms, direction, raw))
        return delivery

    link.schedule = schedule
    inputs = sorted(rec.inputs, key=lambda i: i["step"])
    i = 0
    while True:        # the loop of protocol.record.replay.rerun
        while i < len(inputs) and (inputs[i]["step"] <= sim.steps or sim.finished):
            sim.apply_input({k: v for k, v in inputs[i].items() if k != "step"})
            i += 1
        if sim.finished:
            break
        sim.step()
    close_ms, closer = sim.now, "primary"
    for ev in sim.events:
        if ev.side == "link" and type(ev) is Closed:
            close_ms = ev.t_ms
            closer = "secondary" if str(ev.why or "").startswith("secondary") \
                else "primary"
            break
    return sim, pieces, close_ms, closer


def to_pcap(rec) -> bytes:
    """The recording's pcap, as bytes (`write_pcap` into memory)."""
    import io
    buf = io.BytesIO()
    write_pcap(rec, buf)
    return buf.getvalue()


def write_pcap(rec, fh) -> None:
    """Write the recording's pcap to the binary file `fh` packet by packet, in time
    order: beside the re-simulated session's wire bytes it holds one packet at a time
    (a whole pcap built in memory took about 5× its size)."""
    if rec.header.get("imported"):
        raise ExportError("this recording was imported from a real capture: its bytes are in "
                          f"the capture itself ({rec.header.get('capture', 'the original pcap')})"
                          "; a pcap is made by re-simulating a session")
    import bisect
    import heapq
    from itertools import accumulate

    import dpkt

    from protocol.sim.link import P2S, S2P
    sim, pieces, close_ms, closer = capture(rec)
    ip = b"\x7f\x00\x00\x01"
    port = {P2S: (PRIMARY_PORT, SECONDARY_PORT), S2P: (SECONDARY_PORT, PRIMARY_PORT)}
    isn = {P2S: PRIMARY_ISN, S2P: SECONDARY_ISN}

    def packet(direction: str, seq: int, ack: int | None, flags: int,
               payload: bytes = b"") -> bytes:
        sport, dport = port[direction]
        tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq & 0xFFFFFFFF,
                           ack=(ack or 0) & 0xFFFFFFFF,
                           flags=flags | (dpkt.tcp.TH_ACK if ack is not None else 0),
                           win=65535, data=payload)
        pkt = dpkt.ip.IP(src=ip, dst=ip, p=dpkt.ip.IP_PROTO_TCP, ttl=64, data=tcp)
        pkt.len = len(pkt)
        return bytes(dpkt.ethernet.Ethernet(src=b"\x00" * 6, dst=b"\x00" * 6,
                                            type=dpkt.ethernet.ETH_TYPE_IP, data=pkt))

    other = {P2S: S2P, S2P: P2S}
    # per direction, by arrival time: what the peer has received by then (a running
    # maximum of the bytes delivered, for a bisect per packet)
    arrived: dict[str, tuple[list[float], list[int]]] = {}
    sent = {P2S: 0, S2P: 0}
    ends: dict[str, list[tuple[float, int]]] = {P2S: [], S2P: []}
    for _start, at, direction, data in pieces:
        sent[direction] += len(data)
        ends[direction].append((at, sent[direction]))
    for direction, pairs in ends.items():
        pairs.sort(key=lambda p: p[0])
        arrived[direction] = ([at for at, _ in pairs],
                              list(accumulate((end for _, end in pairs), max)))

    def acked(direction: str, ms: float) -> int:
        """What the sender of `direction` has received from its peer by `ms`."""
        times, got = arrived[other[direction]]
        k = bisect.bisect_right(times, ms)
        return isn[other[direction]] + 1 + (got[k - 1] if k else 0)

    rate = sim.link.bytes_per_ms or 1.0
    last = {P2S: 0.0, S2P: 0.0}
    offset = {P2S: 0, S2P: 0}

    def data_packets(direction: str):
        """(ms, piece, chunk, direction, payload position) of one direction, in time
        order (a direction's pieces leave one after the other)."""
        for n, (start, _at, d, data) in enumerate(pieces):
            if d == direction:
                for k, pos in enumerate(range(0, len(data), MSS)):
                    yield start + pos / rate, n, k, d, data, pos

    writer = dpkt.pcap.Writer(fh, linktype=dpkt.pcap.DLT_EN10MB)
    # the handshake first (time 0, before any piece), then both directions merged by
    # time, ties in the order the pieces were scheduled
    writer.writepkt(packet(P2S, isn[P2S], None, dpkt.tcp.TH_SYN), ts=0.0)
    writer.writepkt(packet(S2P, isn[S2P], isn[P2S] + 1, dpkt.tcp.TH_SYN), ts=0.0)
    writer.writepkt(packet(P2S, isn[P2S] + 1, isn[S2P] + 1, 0), ts=0.0)
    for ms, _n, _k, direction, data, pos in heapq.merge(data_packets(P2S), data_packets(S2P),
                                                       key=lambda p: p[:3]):
        chunk = data[pos:pos + MSS]
        writer.writepkt(packet(direction, isn[direction] + 1 + offset[direction],
                               acked(direction, ms), dpkt.tcp.TH_PUSH, chunk), ts=ms / 1000.0)
        offset[direction] += len(chunk)
        last[direction] = ms
    first = P2S if closer == "primary" else S2P
    fin_ms = max(close_ms, last[P2S], last[S2P])
    end = {d: isn[d] + 1 + offset[d] for d in (P2S, S2P)}
    reply_ms = fin_ms + sim.link.latency_ms
    for ms, direction, seq, ack, flags in (
            (fin_ms, first, end[first], end[other[first]], dpkt.tcp.TH_FIN),
            (reply_ms, other[first], end[other[first]], end[first] + 1, dpkt.tcp.TH_FIN),
            (reply_ms + sim.link.latency_ms, first, end[first] + 1, end[other[first]] + 1, 0)):
        writer.writepkt(packet(direction, seq, ack, flags), ts=ms / 1000.0)


# ---------------------------------------------------------------- __main__
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="colo")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    add_parser(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["export"]:
        argv = ["export", *argv]
    args = parser.parse_args(argv)
    return run_export(args)


if __name__ == "__main__":
    sys.exit(main())
