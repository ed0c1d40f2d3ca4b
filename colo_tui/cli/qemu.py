"""`colo import`, `colo respond`, `colo proxy`: the testbed against real QEMU bytes.

    colo import run1/ -o run1.colo.jsonl [--json]
    colo respond --role secondary --dialect qemu run1/primary_to_secondary.bin \
        -o out.bin --heartbeat-after 20
    colo respond --role primary secondary_to_primary.bin -o fwd.bin [--json]
    colo proxy --listen 127.0.0.1:47102 --connect 127.0.0.1:47101 [--fault SPEC]...

Exit codes: 0 ok; 1 a bad capture / input the endpoint rejects; 2 usage.
Errors are one line on stderr, never a traceback.
"""
from __future__ import annotations

import json
import sys

from colo_tui.session.argtypes import (
    checkpoint_delay_ms,
    host_port,
    int_in,
    nonempty_path,
)
from colo_tui.session.words import plural

#: --idle-ticks above this is refused (each tick is a timer the primary may fire)
MAX_IDLE_TICKS = 1_000_000

CHUNK = 65536


def _fail(msg: str, code: int = 1) -> int:
    print(f"colo: error: {msg}", file=sys.stderr)
    return code


def add_parsers(subparsers) -> None:
    imp = subparsers.add_parser("import", help="turn a real QEMU COLO capture into a recording")
    imp.add_argument("capture", type=nonempty_path, metavar="CAPTURE",
                     help=".pcap/.pcapng, a run directory, or primary_to_secondary.bin")
    imp.add_argument("-o", "--output", type=nonempty_path, required=True,
                     metavar="FILE.colo.jsonl",
                     help="never the capture itself; an existing file only with --force")
    imp.add_argument("--force", action="store_true", help="overwrite an existing FILE")
    imp.add_argument("--json", action="store_true", help="print the decoded summary as JSON")
    imp.set_defaults(func=cmd_import)

    rsp = subparsers.add_parser("respond", help="feed one direction of a capture to the "
                                "testbed's own endpoint and write what it answers",
                                description="Feed one direction of a capture to the "
                                "testbed's own endpoint and write what it answers. Input the "
                                "endpoint rejects (bad bytes, an unexpected message, a cut "
                                "stream) is named with its byte offset on stderr, exit 1; "
                                "OUTPUT then holds what the endpoint answered before it "
                                "(a real peer would have sent that much too), and the "
                                "summary line says it stops there.")
    rsp.add_argument("input", type=nonempty_path, metavar="INPUT.bin")
    rsp.add_argument("-o", "--output", type=nonempty_path, required=True, metavar="OUTPUT.bin",
                     help="what the endpoint answered (up to an error in the input, if "
                          "any); never INPUT; an existing file only with --force")
    rsp.add_argument("--force", action="store_true", help="overwrite an existing OUTPUT")
    rsp.add_argument("--role", choices=("secondary", "primary"), required=True)
    rsp.add_argument("--dialect", choices=("qemu", "v11", "prototype"), default="qemu")
    rsp.add_argument("--heartbeat-after", type=int_in(1), metavar="N",
                     help="x-colo-lost-heartbeat right after checkpoint N (1 or more) is "
                          "committed")
    rsp.add_argument("--checkpoint-delay", type=checkpoint_delay_ms, default=1000, metavar="MS",
                     help="primary: x-checkpoint-delay (default 1000, as in run1)")
    rsp.add_argument("--idle-ticks", type=int_in(0, MAX_IDLE_TICKS), default=1, metavar="K",
                     help="primary: checkpoint timers that fire after the input ends "
                     "(default 1: run1's final lone checkpoint-request; at most "
                     f"{MAX_IDLE_TICKS:,}; they stop early once the primary waits for "
                     "an answer the input no longer holds)")
    rsp.add_argument("--json", action="store_true", help="print the messages sent as JSON")
    rsp.set_defaults(func=cmd_respond)

    prx = subparsers.add_parser("proxy", help="a decoding, fault-injecting TCP proxy between "
                                "a real COLO primary and secondary")
    prx.add_argument("--listen", type=host_port, required=True, metavar="HOST:PORT",
                     help="where the primary migrates to")
    prx.add_argument("--connect", type=host_port, required=True, metavar="HOST:PORT",
                     help="the secondary's migrate-incoming address")
    prx.add_argument("--dialect", choices=("qemu", "v11", "prototype"), default="qemu",
                     help="the wire dialect the two peers speak (default qemu); the "
                          "v11 dialect's RAM parts decode only when the proxy sees the "
                          "initial stream")
    prx.add_argument("--fault", action="append", default=[], metavar="SPEC",
                     help="KIND[=ARG]@POINT[#N] (repeatable); wire faults only")
    prx.add_argument("--record", type=nonempty_path, metavar="FILE",
                     help="write a colo-proxy-log (JSON Lines)")
    prx.add_argument("--force", action="store_true", help="overwrite an existing --record FILE")
    prx.add_argument("--json-events", action="store_true", help="events as JSON lines")
    prx.add_argument("--once", action="store_true",
                     help="exit when the first COLO connection has closed")
    prx.set_defaults(func=cmd_proxy)


# ----------------------------------------------------------------- import
SUMMARY_KEYS = ("index", "complete", "zero_pages", "full_pages", "xbzrle_pages",
                "device_state_size", "device_sections", "t_request", "t_loaded", "messages")


def session_events(sess) -> list[dict]:
    """The imported session as recording events (t in ms, in stream order): typed
    events, written by the one event codec."""
    from protocol.core.events import make
    from protocol.record.eventjson import to_json
    out: list[dict] = []

    def add(t, side, kind, **data):
        last = out[-1]["t"] if out else 0.0
        ms = last if t is None else round(max(t * 1000, last), 3)
        out.append(to_json(make(ms, side, kind, seq=len(out), **data)))

    ini = sess.initial
    add(ini.get("t_end"), "secondary", "recv-initial", bytes=ini.get("bytes"),
        machine=ini.get("machine"), blocks=len(ini.get("blocks", [])),
        zero=ini.get("pages", {}).get("zero"), full=ini.get("pages", {}).get("page"),
        device_sections=len(ini.get("device_sections", [])))
    if sess.ready:
        add(sess.ready["t"], "secondary", "send", dir="S>P", msg="checkpoint-ready",
            value=0, n=1)
    for cp in sess.checkpoints:
        add(cp.t_request, "primary", "checkpoint", n=cp.index, phase="begin")
        for msg in cp.messages:
            side = "primary" if msg["dir"] == "P>S" else "secondary"
            add(msg["t"], side, "send", dir=msg["dir"], msg=msg["msg"],
                value=msg["value"] or 0, n=cp.index)
            if msg["msg"] == "vmstate-send" and cp.ram_bytes is not None:
                add(msg["t"], "primary", "ram", n=cp.index, zero=cp.zero_pages,
                    full=cp.full_pages, xbzrle=cp.xbzrle_pages, bytes=cp.ram_bytes,
                    pages=cp.zero_pages + cp.full_pages + cp.xbzrle_pages)
            elif msg["msg"] == "vmstate-size" and cp.stage == "device-done":
                add(msg["t"], "primary", "device-state", n=cp.index,
                    bytes=cp.device_state_size, sections=cp.device_sections)
        if cp.complete:
            add(cp.t_loaded, "primary", "checkpoint", n=cp.index, phase="commit",
                zero=cp.zero_pages, full=cp.full_pages, xbzrle=cp.xbzrle_pages,
                device_bytes=cp.device_state_size, sections=cp.device_sections)
    end = sess.end
    add(None, "link", "closed", how=end.get("kind"), note=end.get("note"),
        last_checkpoint=end.get("last_checkpoint"))
    return out


def _capture_files(path: str) -> list[str]:
    """The files an import reads: the capture, or the files of a run directory."""
    import os
    if not os.path.isdir(path):
        return [path]
    try:
        with os.scandir(path) as it:
            return [e.path for _, e in zip(range(10_000), it, strict=False)]
    except OSError:
        return []


def _check_output(args, inputs) -> int | None:
    """Refuse -o before any work (exit 2): an input, or an existing file without --force."""
    from protocol.errors import OutputFileError
    from protocol.record.outfile import check_target
    try:
        check_target(args.output, inputs=inputs, force=args.force)
    except OutputFileError as exc:
        return _fail(str(exc), 2)
    return None


def cmd_import(args) -> int:
    from protocol.errors import OutputFileError
    from protocol.record import format as rf
    from protocol.record.qemu_import import CaptureError, import_capture, to_json
    sources = _capture_files(args.capture)
    refused = _check_output(args, sources)
    if refused is not None:
        return refused
    try:
        sess = import_capture(args.capture)
    except CaptureError as exc:
        return _fail(str(exc))
    full = to_json(sess)
    header = {"format": rf.FORMAT, "version": rf.VERSION, "tool": rf.TOOL, "dialect": "qemu",
              "mode": "periodic", "seed": 0, "faults": [], "params": {}, "source": "import",
              "imported": True, "capture": str(args.capture), "initial": sess.initial,
              "end": sess.end, "warnings": sess.warnings, "stalls": sess.stalls,
              "checkpoint_delay": sess.checkpoint_delay}
    cc = sess.compare_channels
    if cc is not None:     # the header keeps the channels' summary, not their packets
        header["compare_channels"] = {
            "streams": [{k: st[k] for k in ("stream", "channel", "frames", "data_packets")}
                        for st in cc["streams"]],
            **{k: cc[k] for k in ("verdicts", "forced_checkpoints") if k in cc}}
    try:
        rf.write(args.output, header, session_events(sess),
                 comments=[f"imported from {args.capture}: a real QEMU 7.2 COLO session; "
                           "it cannot be re-simulated (header: imported=true)"]
                 + [f"warning: {w}" for w in sess.warnings],
                 force=args.force, sources=sources)
    except OutputFileError as exc:
        return _fail(str(exc), 2)
    except OSError as exc:
        return _fail(f"cannot write {args.output}: {exc.strerror or exc}")
    summary = {"initial": full["initial"],
               "checkpoints": [{k: c[k] for k in SUMMARY_KEYS} for c in full["checkpoints"]],
               "end": full["end"], "warnings": full["warnings"], "stalls": full["stalls"],
               "checkpoint_delay": full["checkpoint_delay"]}
    if cc is not None:
        summary["compare_channels"] = cc
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        done = sum(1 for c in sess.checkpoints if c.complete)
        print(f"{args.output}: initial migration {sess.initial.get('bytes')} bytes, "
              f"{plural(len(sess.checkpoints), 'checkpoint')} ({done} complete), end: "
              f"{sess.end.get('kind')}")
        if cc is not None:
            print("compare channels: " + ", ".join(
                f"{st['channel']} {st['frames']} frames" for st in cc["streams"])
                + (f"; verdicts {cc['verdicts']}, checkpoints forced by a mismatch "
                   f"{cc['forced_checkpoints']}" if "verdicts" in cc else ""))
        for w in sess.warnings:
            print(f"warning: {w}")
    return 0


# ---------------------------------------------------------------- respond
def _read(path: str) -> bytes | None:
    import os
    import stat

    from protocol.record.infile import STREAM_FILE, input_refusal
    if why := input_refusal(path, STREAM_FILE):     # a FIFO would block open() itself
        _fail(why)
        return None
    try:
        with open(path, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):   # replaced meanwhile
                _fail(f"{path}: not a regular file (give {STREAM_FILE})")
                return None
            return fh.read()
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror or exc}")
        return None


def _secondary_cut(data: bytes, n: int) -> int:
    """Forward offset of checkpoint n+1's request (where a failover after n stops)."""
    from protocol.record.qemu_import import CaptureError, import_streams
    try:
        cps = import_streams(data, b"").checkpoints
    except CaptureError:
        return len(data)
    return cps[n].offset if n < len(cps) else len(data)


def cmd_respond(args) -> int:
    from protocol.core import dialects
    from protocol.core.endpoint import make_endpoint
    from protocol.errors import OutputFileError, QmpCommandError
    from protocol.record.outfile import write_bytes
    refused = _check_output(args, [args.input])
    if refused is not None:
        return refused
    data = _read(args.input)
    if data is None:
        return 1
    dialect = dialects.get(args.dialect)
    from protocol.core.events import Send
    ep = make_endpoint(args.role, dialect, initial_stream=dialect.initial_migration,
                       checkpoint_delay_ms=args.checkpoint_delay)
    out, sent, now = bytearray(), [], 0.0
    item_start = _track_item_starts(ep.decoder)
    rejected_at: int | None = None       # the input's byte where the endpoint failed

    def collect() -> None:
        nonlocal rejected_at
        out.extend(ep.data_to_send())
        sent.extend(e.msg for e in ep.take_events() if type(e) is Send)
        if rejected_at is None and ep.state == "ERROR":
            rejected_at = item_start[0]

    hb = args.heartbeat_after
    ep.start(now)
    collect()
    if args.role == "secondary":
        end = _secondary_cut(data, hb) if hb is not None and dialect.real_qemu else len(data)
        for pos in range(0, end, CHUNK):
            now += 1.0
            ep.receive_data(data[pos:min(pos + CHUNK, end)], now)
            collect()
            if hb is not None and ep.checkpoint >= hb:
                break
    else:
        width = dialect.opcode_bytes + (8 if dialect.value_on_every_message else 0)
        for pos in range(0, len(data), width):          # (a cut last message too)
            now = _fire_timer(ep, now)
            ep.receive_data(data[pos:pos + width], now)
            collect()
            if hb is not None and ep.checkpoint >= hb:
                break
        if hb is None:
            for _ in range(args.idle_ticks):
                if ep.state != "IDLE" or ep.next_deadline() is None:
                    break          # no timer to fire: no later tick can change anything
                now = _fire_timer(ep, now)
                collect()
    if hb is not None and ep.state not in ("ERROR", "DONE"):
        try:
            ep.lost_heartbeat(now)
        except QmpCommandError as exc:
            print(f"colo: x-colo-lost-heartbeat: {exc}", file=sys.stderr)
        collect()
    cut = None          # the whole input was read (no --heartbeat-after cut it short)...
    if hb is None and ep.state not in ("ERROR", "DONE"):
        from colo_tui.cli.core import stream_end_error
        cut = stream_end_error(ep.decoder)      # ...and ends inside a message: say where
    try:
        write_bytes(args.output, bytes(out), inputs=[args.input], force=args.force)
    except OutputFileError as exc:
        return _fail(str(exc), 2)
    except OSError as exc:
        return _fail(f"cannot write {args.output}: {exc.strerror or exc}")
    rejected = bool(ep.error and (hb is None or ep.state == "ERROR"))
    at = f"at byte {rejected_at}: " if rejected and rejected_at is not None else ""
    if args.json:
        print(json.dumps({"role": args.role, "bytes": len(out), "messages": sent,
                          "checkpoints": ep.checkpoint, "state": ep.state,
                          "error": ep.error, "error_offset": rejected_at if rejected else None,
                          "complete": not rejected and not cut}))
    else:
        stop = ""
        if rejected or cut:     # the file is not a whole answer: say so beside its size
            why = f"rejected the input {at}".rstrip(": ") if rejected else \
                "found the input cut"
            stop = f" (only what the {args.role} sent before it {why})"
        print(f"{args.output}: {plural(len(out), 'byte')}, {plural(len(sent), 'message')}, "
              f"{plural(ep.checkpoint, 'checkpoint')} committed, final state "
              f"{ep.state}{stop}")
    if rejected:
        return _fail(f"{args.input}: {at}the {args.role} endpoint rejected the input: "
                     f"{ep.error}")
    if cut:
        return _fail(f"{args.input}: {cut}")
    return 0


def _track_item_starts(dec) -> list[int]:
    """[the input offset where the item the decoder reads now begins]: kept up to date
    as the endpoint reads, so a rejection names the bytes it rejected (a bad id, the
    unexpected message, the part that failed) rather than how far the reading got."""
    where = [0]
    inner = dec._next_item      # what the endpoint's read loop calls, once per item

    def next_item():
        where[0] = dec.bytes_consumed
        return inner()
    dec._next_item = next_item
    return where


def _fire_timer(ep, now: float) -> float:
    """Advance the clock to the endpoint's next deadline if it is idle-waiting on it."""
    if ep.state == "IDLE" and ep.next_deadline() is not None:
        now = max(now, ep.next_deadline())
        ep.handle_timer(now)
    return now


# ------------------------------------------------------------------ proxy
def cmd_proxy(args) -> int:
    from colo_tui.session.argtypes import record_target_refused
    from protocol.drivers import proxy
    if (refused := record_target_refused(args)) is not None:
        return refused
    return proxy.main(args)
