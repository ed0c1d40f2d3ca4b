"""An in-process asyncio TCP fault proxy between two real COLO nodes.

The primary connects to the proxy; the proxy connects to the secondary.  The
first connection is the COLO connection: both directions are decoded with
`protocol.codec.Decoder` (any dialect) to find the pieces the fault grammar
names (``KIND[=ARG]@POINT[#N]``, `protocol.faults`), with the same meaning as
in the simulator (`protocol.sim.core`):

* link faults act on the piece named by POINT: ``drop`` (never forwarded; the
  connection stays up), ``delay=MS`` (the piece — and, TCP being a stream,
  everything behind it in that direction — is held MS ms), ``corrupt`` (one
  byte of the opcode XORed with a seeded random value), ``truncate`` (half the
  piece, then the connection closes), ``duplicate``, ``close`` (FIN both ways
  just before the piece), ``reset`` (RST both ways via SO_LINGER 0),
  ``unexpected=MSG`` (another message instead), ``value=N`` (the message with
  value N, encoded with a be64 value as the simulator does);
* ``partition=MS`` holds every byte of every connection (the COLO one and the
  heartbeat channels) in both directions for MS ms, starting at the piece;
* process faults (``kill-*``, ``stall-*``, ``heartbeat-*``, ``shutdown``) are
  reported through ``on_process_fault(fault)`` just before the piece is
  forwarded (awaited if it returns an awaitable): the harness sends SIGKILL /
  SIGSTOP or issues x-colo-lost-heartbeat / system_powerdown over QMP.  If the
  killed/stalled side is the piece's sender, the piece and the rest of that
  direction are discarded (the process never wrote them).  ``@load`` fires
  when the secondary's vmstate-received passes (the secondary starts loading
  right after queueing it).

Later connections (the nodes' out-of-band heartbeat channel) are forwarded
raw; partitions hold them, process deaths end them.  toxiproxy's vocabulary
(latency, timeout, reset_peer, slicer) maps onto delay, partition, reset and
truncate.
"""
from __future__ import annotations

import random
import time

from .. import faults as fl
from .. import messages as m
from ..codec import Decoder
from ..errors import DecodeError, FaultSpecError

P2S, S2P = "P>S", "S>P"
SENDER = {P2S: "primary", S2P: "secondary"}
MAX_LOG = 10_000


class FaultProxy:
    def __init__(self, upstream: tuple[str, int], dialect, faults=(), *,
                 listen: tuple[str, int] = ("127.0.0.1", 0), on_process_fault=None,
                 on_event=None, seed: int = 1, max_blob_bytes: int = 256 << 20) -> None:
        from .. import dialects
        self.dialect = dialects.get(dialect) if isinstance(dialect, str) else dialect
        self.upstream = upstream
        self.listen = listen
        self.faults = [f if isinstance(f, fl.Fault) else fl.parse(f) for f in faults]
        for f in self.faults:
            if f.kind in fl.STEP_KINDS:
                raise FaultSpecError(f"{f}: a re-protect starts a new secondary, which a "
                                     "proxy between two running peers cannot do (the "
                                     "simulator can: colo run --fault)")
            if f.point not in fl.STAGES and f.point not in self.dialect.ids:
                raise FaultSpecError(f"{f}: the {self.dialect.name} dialect has no {f.point!r}")
            if f.kind == "unexpected" and f.arg not in self.dialect.ids:
                raise FaultSpecError(f"{f}: {f.arg!r} does not exist in the "
                                     f"{self.dialect.name} dialect")
        self.on_process_fault = on_process_fault
        self.on_event = on_event
        self.rng = random.Random(seed)
        self.max_blob_bytes = max_blob_bytes
        self.fired: set[int] = set()
        self.log: list[dict] = []
        self.checkpoint = 0
        self.partition_until = 0.0
        self.server = None
        self.port = None
        self._conns: list = []        # (client_writer, upstream_writer) pairs
        self._colo = None
        self._dead: set[str] = set()   # directions whose sender is gone
        self._tasks: set = set()
        self.t0 = time.monotonic()

    # --------------------------------------------------------------- running
    async def start(self) -> int:
        import asyncio
        self.server = await asyncio.start_server(self._accept, *self.listen)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for pair in self._conns:
            for w in pair:
                w.close()
        for t in list(self._tasks):
            t.cancel()

    @property
    def all_fired(self) -> bool:
        return len(self.fired) == len(self.faults)

    def _emit(self, kind: str, **data) -> None:
        ev = {"t_ms": round((time.monotonic() - self.t0) * 1000, 3), "kind": kind, **data}
        if len(self.log) < MAX_LOG:
            self.log.append(ev)
        if self.on_event is not None:
            self.on_event(ev)

    async def _accept(self, reader, writer) -> None:
        import asyncio
        try:
            up_r, up_w = await asyncio.wait_for(asyncio.open_connection(*self.upstream), 5)
        except (OSError, TimeoutError) as exc:
            self._emit("upstream-failed", error=str(exc))
            writer.close()
            return
        pair = (writer, up_w)
        self._conns.append(pair)
        colo = self._colo is None
        if colo:
            self._colo = pair
        self._emit("connection", colo=colo)
        if colo:
            jobs = (self._pump_colo(reader, up_w, P2S), self._pump_colo(up_r, writer, S2P))
        else:
            jobs = (self._pump_raw(reader, up_w), self._pump_raw(up_r, writer))
        tasks = [asyncio.ensure_future(j) for j in jobs]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)

    async def _hold(self) -> None:
        import asyncio
        while True:
            left = self.partition_until - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(left)

    async def _pump_raw(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                await self._hold()
                writer.write(data)
                await writer.drain()
            await self._hold()
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass

    async def _pump_colo(self, reader, writer, direction: str) -> None:
        d = self.dialect
        dec = Decoder(d, SENDER[direction], max_blob_bytes=self.max_blob_bytes,
                      expect_initial=(direction == P2S and d.name == "qemu"))
        pending = bytearray()
        base = 0
        raw_mode = False
        try:
            while data := await reader.read(65536):
                if raw_mode:
                    await self._write(writer, data, direction)
                    continue
                pending += data
                try:
                    dec.feed(data)
                    for item in dec.items():
                        if isinstance(item, m.RamChunk):
                            continue    # the RAM part is one piece: faults act on it whole
                        end = dec.bytes_consumed
                        piece = bytes(pending[:end - base])
                        del pending[:end - base]
                        base = end
                        if not await self._piece(item, piece, direction, writer):
                            return
                except DecodeError as exc:
                    self._emit("undecodable", dir=direction, error=str(exc))
                    raw_mode = True
                    await self._write(writer, bytes(pending), direction)
                    pending.clear()
            await self._hold()
            self._emit("eof", dir=direction)
            if pending and direction not in self._dead:
                await self._write(writer, bytes(pending), direction)
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()
        except (OSError, RuntimeError) as exc:
            self._emit("connection-error", dir=direction, error=str(exc))
            self._close_colo(reset=False)

    async def _write(self, writer, data: bytes, direction: str) -> None:
        await self._hold()
        if direction in self._dead or writer.is_closing():
            return
        writer.write(data)
        await writer.drain()

    def _classify(self, item, direction: str) -> tuple[str, int]:
        if isinstance(item, m.Message):
            if direction == P2S and item.name == m.CHECKPOINT_REQUEST:
                self.checkpoint += 1
            if item.name == m.CHECKPOINT_READY:
                return item.name, 1
            return item.name, self.checkpoint
        if isinstance(item, m.RamPart):
            return "ram", self.checkpoint
        if isinstance(item, m.StateBlob):
            return "device-state", self.checkpoint
        return "initial", 0

    def _matching(self, point: str, n: int, link: bool) -> list[fl.Fault]:
        out = []
        for i, f in enumerate(self.faults):
            if i not in self.fired and f.point == point and f.checkpoint == max(n, 1) \
                    and f.is_link == link:
                self.fired.add(i)
                out.append(f)
        return out

    async def _process_faults(self, point: str, n: int, direction: str) -> None:
        import asyncio
        import inspect
        for f in self._matching(point, n, link=False):
            self._emit("fault", spec=str(f), dir=direction, point=point, n=n)
            if f.kind == "partition":
                self.partition_until = max(self.partition_until,
                                           time.monotonic() + float(f.arg) / 1000.0)
                continue
            side = f.kind.partition("-")[2]
            if f.kind.startswith(("kill-", "stall-")) and side == SENDER[direction]:
                self._dead.add(direction)
            if self.on_process_fault is not None:
                res = self.on_process_fault(f)
                if inspect.isawaitable(res):
                    try:
                        await asyncio.wait_for(res, 10)
                    except Exception as exc:   # noqa: BLE001 - reported, not fatal
                        self._emit("callback-error", spec=str(f), error=repr(exc))

    async def _piece(self, item, piece: bytes, direction: str, writer) -> bool:
        """Forward one decoded piece with its faults; False: stop this direction."""
        point, n = self._classify(item, direction)
        if direction == S2P and point == m.VMSTATE_RECEIVED:
            await self._process_faults("load", n, direction)
        await self._process_faults(point, n, direction)
        await self._hold()
        if direction in self._dead:
            self._emit("lost", dir=direction, point=point, n=n, bytes=len(piece),
                       why=f"the {SENDER[direction]} is gone before the bytes left")
            return True
        here = self._matching(point, n, link=True)
        for f in here:
            self._emit("fault", spec=str(f), dir=direction, point=point, n=n)
        eff = fl.link_effect(here, piece, self.dialect, point,
                          getattr(item, "value", 0) or 0, self.rng)
        if eff.close_before:
            self._close_colo(reset=eff.close_before == "reset")
            return False
        if eff.extra_delay_ms:
            import asyncio
            await asyncio.sleep(eff.extra_delay_ms / 1000.0)
        for _ in range(eff.copies):
            await self._write(writer, eff.data, direction)
        if eff.close_after:
            self._close_colo(reset=False)
            return False
        return True

    def _close_colo(self, reset: bool) -> None:
        if self._colo is None:
            return
        self._emit("closed", how="reset" if reset else "close")
        from .tcp import abort_transport
        for w in self._colo:
            if reset:
                abort_transport(w.transport, reset=True)
            else:
                w.close()
