"""The lab's relay on the colo-compare chardev channels.

Each channel is a TCP connection between two QEMU chardevs (a client chardev
and a server chardev); the lab points the client at its own port and connects
on to the server, so every frame passes through here.  Frames are decoded
(protocol.net.netfilter, protocol.net.netpacket), recorded with the time they
crossed, put through the channel's faults and re-encoded.  Both directions
are decoded; QEMU sends packets one way only on each channel:

    mirror       primary filter-mirror m0 (mirror0)   -> secondary f1 (red0)
    primary-in   primary redire1 (compare0)           -> colo-compare (compare0-0)
    compare-in   secondary f2 (red1)                  -> colo-compare (compare1)
    compare-out  colo-compare (compare_out0)          -> primary redire0 (compare_out)

A delayed frame holds back the frames after it on the same channel (a byte
stream keeps its order)."""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from protocol.core.faults import Fault
from protocol.errors import LimitError
from protocol.net import netcompare as nc
from protocol.net import netpacket
from protocol.net.netfilter import Frame, FrameDecoder, encode

READ_CHUNK = 1 << 16


@dataclass(slots=True)
class Record:
    channel: str
    n: int
    t: float                 # time.time(), the clock of QEMU's -trace timestamps
    info: netpacket.PacketInfo
    payload: bytes
    fault: str | None = None
    direction: str = ">"     # ">": the way QEMU sends on this channel; "<": back
    copies: int = 1          # 0: a fault dropped it; payload is what was sent on

    def event(self, t0: float = 0.0) -> dict:
        d = {"kind": "packet", "channel": self.channel, "n": self.n,
             "t": round(self.t - t0, 6), **self.info.as_dict()}
        if self.direction != ">":
            d["direction"] = "back"
        if self.payload:
            d["payload_head"] = self.payload[:16].hex()
        if self.fault:
            d["fault"] = self.fault
            d["copies_sent"] = self.copies
        return d


@dataclass
class PacketLog:
    """Everything the relays saw, in arrival order, plus faults and errors."""

    records: list[Record] = field(default_factory=list)
    notes: list[dict] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    on_event: object = None           # called with each packet's event dict

    def add(self, rec: Record) -> None:
        self.records.append(rec)
        if self.on_event is not None:
            self.on_event(rec.event())

    def note(self, **kw) -> None:
        kw.setdefault("t", time.time())
        self.notes.append(kw)

    def data_packets(self) -> list[nc.DataPacket]:
        return [nc.DataPacket(r.channel, r.n, r.t, r.info.flow, r.info.seq, r.payload)
                for r in self.records
                if r.info.kind == "tcp" and r.payload and r.direction == ">" and r.copies]


class ChannelFaults:
    """The faults of one channel, fired on its Nth data packet after `arm()`."""

    def __init__(self, faults: list[Fault], seed: int = 14) -> None:
        self.faults = faults
        self.armed = False
        self.data_seen = 0
        self.rng = random.Random(seed)
        self.fired: list[str] = []

    def arm(self) -> None:
        self.armed, self.data_seen = True, 0

    def apply(self, frame: bytes, info: netpacket.PacketInfo) -> tuple[list[bytes], float,
                                                                      str | None]:
        """(copies to send, delay in s, the faults that fired as text)."""
        if not (self.armed and self.faults and info.kind == "tcp" and info.payload_len):
            return [frame], 0.0, None
        self.data_seen += 1
        here = [f for f in self.faults if f.checkpoint == self.data_seen]
        if not here:
            return [frame], 0.0, None
        copies, delay = [frame], 0.0
        for f in here:
            if f.kind == "drop":
                copies = []
            elif f.kind == "delay":
                delay += int(f.arg) / 1000
            elif f.kind == "corrupt":
                copies = [netpacket.corrupt(c, info, self.rng.randrange(1, 256))
                          for c in copies]
            elif f.kind == "duplicate":
                copies = copies * 2
        text = ",".join(str(f) for f in here)
        self.fired.append(text)
        return copies, delay, text


class ChannelRelay:
    """Listens on 127.0.0.1:`listen`, connects each client to 127.0.0.1:`upstream`."""

    def __init__(self, name: str, listen: int, upstream: int, log: PacketLog,
                 faults: ChannelFaults | None = None, vnet_hdr: bool = False) -> None:
        self.name, self.listen, self.upstream = name, listen, upstream
        self.vnet_hdr = vnet_hdr      # the filters' vnet_hdr_support
        self.log = log
        self.faults = faults or ChannelFaults([])
        self.n = 0
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._writers: list[asyncio.StreamWriter] = []
        #: cleared while a partition cuts this channel: frames wait (TCP keeps them)
        self.open = asyncio.Event()
        self.open.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.listen)

    async def _accept(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter):
        try:
            up_r, up_w = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.upstream), 10)
        except (OSError, TimeoutError) as exc:
            self.log.note(kind="relay-error", channel=self.name,
                          error=f"connect to :{self.upstream}: {exc}")
            down_w.close()
            return
        self.connections += 1
        self.log.note(kind="relay-connected", channel=self.name,
                      connection=self.connections)
        self._writers += [down_w, up_w]
        # the client chardev is the sender on compare-in / compare-out, the server on
        # mirror / primary-in: decode both ways and name the way by who sends
        client_sends = self.name in (nc.COMPARE_IN, nc.COMPARE_OUT)
        for r, w, d in ((down_r, up_w, ">" if client_sends else "<"),
                        (up_r, down_w, "<" if client_sends else ">")):
            task = asyncio.ensure_future(self._pump(r, w, d))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, d: str):
        dec = FrameDecoder(vnet_hdr=self.vnet_hdr)
        try:
            while True:
                data = await r.read(READ_CHUNK)
                if not data:
                    break
                try:
                    frames = dec.feed(data)
                except LimitError as exc:
                    self.log.note(kind="relay-error", channel=self.name, error=str(exc))
                    break
                if not self.open.is_set():
                    await self.open.wait()          # a partition: nothing crosses
                for fr in frames:
                    await self._forward(fr, w, d)
                await w.drain()
        except (ConnectionError, OSError) as exc:
            self.log.note(kind="relay-closed", channel=self.name, error=str(exc))
        finally:
            w.close()

    async def _forward(self, fr: Frame, w: asyncio.StreamWriter, d: str) -> None:
        """One frame: record it, apply the channel's faults to its Ethernet frame
        (after the vnet header, which is passed on untouched), send it on."""
        self.n += 1
        hdr, frame = fr.packet[:fr.vnet_hdr_len or 0], fr.ethernet
        info = netpacket.parse(frame)
        copies, delay, fired = self.faults.apply(frame, info) if d == ">" \
            else ([frame], 0.0, None)
        sent = copies[0] if copies else frame     # a corrupted packet's new payload
        self.log.add(Record(self.name, self.n, time.time(), info,
                            netpacket.payload(sent, info), fired, d, len(copies)))
        if delay:
            await w.drain()
            await asyncio.sleep(delay)     # the fault itself: hold this frame back
        for c in copies:
            w.write(encode(hdr + c, fr.vnet_hdr_len))

    def arm(self) -> None:
        self.faults.arm()

    async def close(self) -> None:
        await close_relay(self._server, self._writers, self._tasks)


async def close_relay(server, writers, tasks: set) -> None:
    """Stop a relay: no new connections, every connection closed, its pumps ended
    (bounded)."""
    if server is not None:
        server.close()
    for w in writers:
        w.close()
    for t in list(tasks):
        t.cancel()
    if tasks:
        await asyncio.wait(list(tasks), timeout=2)


def split_faults(faults: list[Fault]) -> dict[str, list[Fault]]:
    out: dict[str, list[Fault]] = {c: [] for c in nc.CHANNELS}
    for f in faults:
        out[f.point].append(f)
    return out
