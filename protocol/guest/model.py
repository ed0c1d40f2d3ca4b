"""The full guest model: a `GuestPort` for either COLO role.

A `Guest` owns RAM (with dirty log), a workload, devices, a replicated disk
and the network path of its role:

  primary    RAM dirty log -> collect_dirty_pages; disk forwards every write;
             answers to client requests go through FilterBuffer (periodic) or
             ColoCompare (hybrid, compared with the secondary's answers).
  secondary  RamCache (PVM pages go to the cache only); disk with active and
             hidden layers; its answers go to the primary's ColoCompare
             (hybrid) or nowhere (periodic) until it takes over.

Two guests built from the same seed boot identically; `clone_for_secondary`
mimics the initial migration (every page to RAM and cache, devices, disk),
`Guest.pair` builds and links twins.  Linked twins deliver mirrored client
requests, forwarded disk writes and SVM output to each other at once; unlinked
guests leave them in outboxes (`drain_*`) for a driver to carry.

Time: `advance(now_ms)` runs the guest for the elapsed virtual time (only
while running: guest time stops while the VM is stopped).  GuestPort methods
take no time argument; they act at the last `now_ms` given to `advance`.
Sans-IO and deterministic.
"""
from __future__ import annotations

from collections import deque

from protocol.core import dialects
from protocol.guest.devices import Devices
from protocol.guest.disk import SECTOR_SIZE, PrimaryDisk, SecondaryDisk, diff_sectors
from protocol.guest.net import (
    PRIMARY,
    SECONDARY,
    ClientLog,
    ColoCompare,
    FilterBuffer,
    Packet,
    answer_payload,
    diverged,
    diverges,
)
from protocol.guest.ram import Ram
from protocol.guest.ramcache import RamCache
from protocol.guest.workload import VGA_BLOCK, derive, make_workload, pattern_page
from protocol.migration.pages import PageBatch, PageRecord

MIB = 1 << 20
ROLES = (PRIMARY, SECONDARY)
MODES = ("periodic", "hybrid")
DISK_EVERY_STEPS = 5
DISK_SECTORS = 128
MAX_PENDING_REQUESTS = 4096
#: the guest's COM1 log (`serial_output`) keeps at most about this many latest bytes
SERIAL_LOG_BYTES = 64 << 10


def default_blocks(ram_mib: int) -> list[tuple[str, int]]:
    return [("pc.ram", ram_mib * MIB), (VGA_BLOCK, 16 * MIB)]


class Guest:
    """A guest VM of one COLO role (implements `protocol.core.guestport.GuestPort`)."""

    def __init__(self, role: str, seed: int, ram_mib: int = 16, workload: str = "toggle",
                 rate: float | None = None, xbzrle: bool = False, mode: str = "periodic",
                 dialect: str = "qemu", blocks: list[tuple[str, int]] | None = None,
                 divergence_rate: float = 0.0, start_ms: int = 0,
                 flush_svm_dirty: bool | None = None) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if not 0.0 <= divergence_rate <= 1.0:
            raise ValueError(f"divergence_rate must be in [0, 1], not {divergence_rate}")
        self.role = role
        self.seed = seed
        self.mode = mode
        self.dialect = dialect
        self.xbzrle = xbzrle
        self.divergence_rate = divergence_rate
        self.params = dict(ram_mib=ram_mib, workload=workload, rate=rate, xbzrle=xbzrle,
                           mode=mode, dialect=dialect, divergence_rate=divergence_rate,
                           flush_svm_dirty=flush_svm_dirty)
        self.ram = Ram(blocks if blocks is not None else default_blocks(ram_mib))
        self.main_block = next(iter(self.ram.blocks))
        from protocol.migration.stream import RamContext
        #: RAM framing state shared with the wire (replaced by the initial migration's)
        self.ram_context = RamContext.from_blocks(self.ram.layout())
        self.workload = make_workload(workload, seed, self.main_block, rate)
        needs = getattr(self.workload, "needs_bytes", 0)
        if self.ram.block(self.main_block).size_bytes < needs:
            raise ValueError(f"workload {workload!r} needs {self.main_block} >= {needs:#x} "
                             f"bytes (ram_mib >= {-(-needs // MIB)})")
        self.devices = Devices()
        self.disk: PrimaryDisk | SecondaryDisk = (PrimaryDisk() if role == PRIMARY
                                                  else SecondaryDisk())
        self.running = False
        self.now_ms = start_ms
        self.failed_over = False
        self.peer: Guest | None = None
        self.client_log = ClientLog()
        self.serial_output = bytearray()
        self.pending_requests: deque[tuple[int, int, bytes]] = deque()
        self.mirror_outbox: list[tuple[int, int, bytes]] = []   # primary -> secondary
        self.svm_outbox: list[Packet] = []                      # secondary -> compare
        self.svm_dropped = 0
        self.output_lost = False     # secondary: its answers never reach colo-compare
        self._seq = 0
        self.filter: FilterBuffer | None = None
        self.compare: ColoCompare | None = None
        if role == PRIMARY:
            if mode == "periodic":
                self.filter = FilterBuffer()
            else:
                self.compare = ColoCompare(start_ms)
        self._boot()
        if flush_svm_dirty is None:
            flush_svm_dirty = (dialects.get(dialect).flushes_svm_dirty_when_paused
                               or mode == "hybrid")
        self.cache: RamCache | None = (RamCache(self.ram, flush_svm_dirty)
                                       if role == SECONDARY else None)

    # -- construction ----------------------------------------------------------
    def _boot(self) -> None:
        """Deterministic boot image: a few kernel pages, a banner, a boot sector."""
        npages = self.ram.block(self.main_block).npages
        for k in range(min(4, npages)):
            self.ram.write(self.main_block, (0x10 + k) * 4096 if npages > 0x20 else k * 4096,
                           pattern_page((self.seed << 8) ^ k ^ 0xB007))
        if VGA_BLOCK in self.ram.blocks:
            banner = b"colo-guest: multiboot guest started"
            self.ram.write(VGA_BLOCK, 160, bytes(b for ch in banner for b in (ch, 0x07)))
        rng = derive(self.seed, 0xB0)
        for sector in range(4):
            self.disk.write(sector, rng.randbytes(SECTOR_SIZE))
        if isinstance(self.disk, PrimaryDisk):
            self.disk.outbox.clear()
        else:
            self.disk.base.update(self.disk.active)
            self.disk.active.clear()
        self.ram.migration_pass()    # the initial migration leaves the dirty log clear

    def clone_for_secondary(self) -> Guest:
        """The secondary as the initial migration leaves it: same RAM (and cache),
        devices and disk as this primary right now."""
        if self.role != PRIMARY:
            raise ValueError("clone_for_secondary is called on the primary")
        twin = Guest(SECONDARY, self.seed, blocks=self.ram.layout(), start_ms=self.now_ms,
                     **{k: v for k, v in self.params.items() if k != "ram_mib"})
        for record in self.ram.migration_pass():
            twin.ram.apply_record(record)
        twin.devices.load_blob(self.save_devices())
        twin.disk = SecondaryDisk(self.disk.view())
        twin.cache = RamCache(twin.ram, twin.cache.include_svm_dirty if twin.cache else True)
        return twin

    @classmethod
    def pair(cls, seed: int, **kwargs) -> tuple[Guest, Guest]:
        """A linked (primary, secondary) pair, as after the initial migration."""
        primary = cls(PRIMARY, seed, **kwargs)
        secondary = primary.clone_for_secondary()
        primary.link(secondary)
        return primary, secondary

    def link(self, secondary: Guest) -> None:
        """Connect twins in memory: mirror, disk forwarding and SVM output are immediate."""
        if self.role != PRIMARY or secondary.role != SECONDARY:
            raise ValueError("link(primary -> secondary)")
        self.peer, secondary.peer = secondary, self
        secondary.client_log = self.client_log
        self.disk.forward = self._forward_disk
        for sector, data in self.disk.drain():
            self._forward_disk(sector, data)
        for item in self.mirror_outbox:
            secondary.receive_mirrored(*item)
        self.mirror_outbox.clear()

    def _forward_disk(self, sector: int, data: bytes) -> None:
        peer = self.peer
        if peer is not None and isinstance(peer.disk, SecondaryDisk) and peer.disk.replicating:
            peer.disk.mirror_write(sector, data)

    # -- running -------------------------------------------------------------
    def advance(self, now_ms: int) -> None:
        """Run the guest up to virtual time `now_ms` (nothing happens while stopped)."""
        if now_ms < self.now_ms:
            raise ValueError(f"time runs backwards: {self.now_ms} -> {now_ms}")
        elapsed = now_ms - self.now_ms
        self.now_ms = now_ms
        if self.running and elapsed:
            start = self.devices.guest_ms
            log = self.serial_output
            for step in self.workload.advance(self.ram, start, start + elapsed):
                line = self.devices.on_step(step)
                if line:
                    log += line
                    if len(log) > 2 * SERIAL_LOG_BYTES:     # bounded: the latest lines
                        del log[:-SERIAL_LOG_BYTES]
                if self.workload.name != "idle" and step % DISK_EVERY_STEPS == 0:
                    sector = (step // DISK_EVERY_STEPS) % DISK_SECTORS
                    data = derive(self.seed, 0xD15C, step).randbytes(SECTOR_SIZE)
                    self.disk.write(sector, data)
            self.devices.run_until(start + elapsed)
        if self.running:
            self._handle_requests()
        if self.compare is not None:
            self.compare.scan(now_ms)

    def checkpoint_requested(self) -> bool:
        """Hybrid primary: colo-compare asked for a checkpoint (consumes the request)."""
        return self.compare.take_checkpoint_request() if self.compare is not None else False

    def next_deadline_ms(self) -> int | None:
        """When the next colo-compare stale scan is due (None without compare)."""
        if self.compare is None or not self.compare.active:
            return None
        return self.compare.next_deadline_ms()

    # -- network -----------------------------------------------------------------
    def client_request(self, req_id: int, payload: bytes, conn: int = 0) -> None:
        """A client request reaches the PVM (filter-mirror copies it to the SVM).

        Request ids must increase; a guest ignores an id it already took in.
        """
        self.receive_mirrored(conn, req_id, payload)
        if self.role == PRIMARY and not self.failed_over:
            if self.peer is not None:
                self.peer.receive_mirrored(conn, req_id, payload)
            else:
                self.mirror_outbox.append((conn, req_id, payload))

    def receive_mirrored(self, conn: int, req_id: int, payload: bytes) -> None:
        if len(self.pending_requests) >= MAX_PENDING_REQUESTS:
            self.pending_requests.popleft()     # a full rx ring drops the oldest
        self.pending_requests.append((conn, req_id, bytes(payload)))
        if self.running:
            self._handle_requests()

    def _handle_requests(self) -> None:
        while self.pending_requests:
            conn, req_id, payload = self.pending_requests.popleft()
            if req_id <= self.devices.last_rx_id:
                continue                        # already in this VM's state
            self.devices.nic_rx(req_id, len(payload))
            answer = answer_payload(req_id, payload, self.devices.rx_packets)
            if self.role == SECONDARY and diverges(self.seed, req_id, self.divergence_rate):
                answer = diverged(answer)
            self.devices.nic_tx(len(answer))
            self._seq += 1
            self._emit(Packet(self.role, self._seq, conn, req_id, answer, self.now_ms))

    def _emit(self, pkt: Packet) -> None:
        now = self.now_ms
        if self.failed_over:
            self.client_log.record([pkt], now, f"{self.role}-direct")
        elif self.role == PRIMARY:
            if self.filter is not None:
                self.client_log.record(self.filter.send(pkt, now), now, "filter-buffer")
            elif self.compare is not None:
                self.client_log.record(self.compare.primary_in(pkt, now), now,
                                       "compare-match")
        elif self.output_lost:
            self.svm_dropped += 1               # the SVM's answers never reach compare
        elif self.mode == "hybrid" and self.peer is None:
            if len(self.svm_outbox) >= MAX_PENDING_REQUESTS:
                self.svm_outbox.pop(0)          # a bounded chardev buffer
                self.svm_dropped += 1
            self.svm_outbox.append(pkt)
        elif self.mode == "hybrid" and not self.peer.failed_over:
            self.peer.svm_packet(pkt)
        else:
            self.svm_dropped += 1               # periodic (or no compare left): nowhere

    def svm_packet(self, pkt: Packet) -> None:
        """The SVM's answer reaches colo-compare's secondary_in (primary side)."""
        if self.compare is not None and not self.failed_over:
            self.client_log.record(self.compare.secondary_in(pkt, self.now_ms),
                                   self.now_ms, "compare-match")

    def drain_mirrored_requests(self) -> list[tuple[int, int, bytes]]:
        out, self.mirror_outbox = self.mirror_outbox, []
        return out

    def drain_svm_output(self) -> list[Packet]:
        out, self.svm_outbox = self.svm_outbox, []
        return out

    def drain_disk_writes(self) -> list[tuple[int, bytes]]:
        return self.disk.drain() if isinstance(self.disk, PrimaryDisk) else []

    # -- GuestPort: both sides ----------------------------------------------------
    def stop(self) -> None:
        self.running = False

    def start(self) -> None:
        self.running = True
        self._handle_requests()

    def replication_checkpoint(self) -> None:
        """replication_do_checkpoint; ValueError if replication reported an error."""
        self.disk.checkpoint()

    def replication_error(self) -> str | None:
        """replication_get_error_all."""
        return self.disk.get_error()

    # -- GuestPort: primary ------------------------------------------------------
    def collect_dirty_pages(self) -> list[PageRecord] | PageBatch:
        """The dirty pages (a PageBatch, a Sequence of PageRecords, without XBZRLE)."""
        if self.xbzrle:
            return self.ram.collect_dirty(xbzrle=True)
        return self.ram.collect_dirty_batch()

    def save_devices(self) -> bytes:
        return self.devices.save_blob()

    def release_output(self) -> int:
        """Release the PVM output the checkpoint covers; returns the count."""
        if self.filter is not None:
            released = self.filter.release(self.now_ms)
            via = "filter-buffer"
        elif self.compare is not None:
            released = self.compare.checkpoint(self.now_ms)
            via = "compare-checkpoint"
        else:
            return 0
        self.client_log.record(released, self.now_ms, via)
        return len(released)

    # -- GuestPort: secondary ----------------------------------------------------
    def _cache(self) -> RamCache:
        if self.cache is None:
            raise ValueError(f"the {self.role} guest has no RAM cache")
        return self.cache

    def cache_pages(self, records: list[PageRecord] | PageBatch) -> None:
        self._cache().receive(records)

    def load_devices(self, blob: bytes) -> None:
        self.devices.load_blob(blob)

    def flush_cache(self) -> int:
        return self._cache().flush()

    def discard_cache(self) -> None:
        self._cache().discard()

    def take_over(self) -> None:
        """Failover: this side becomes the only active VM."""
        now = self.now_ms
        if self.role == PRIMARY:
            if self.filter is not None:
                self.client_log.record(self.filter.disable(now), now, "filter-buffer")
            if self.compare is not None:
                self.client_log.record(self.compare.close(now), now, "compare-close")
            assert isinstance(self.disk, PrimaryDisk)
            self.disk.stop_replication()
        else:
            if self.cache is not None and self.cache.pending():
                self.cache.discard()
            assert isinstance(self.disk, SecondaryDisk)
            self.disk.failover_commit()
        self.failed_over = True
        self.start()

    # -- re-protect after a failover --------------------------------------------------
    def become_primary(self) -> None:
        """Re-protect (docs/COLO-FT.txt, resuming COLO): the survivor of a failover,
        whichever role it had, is the primary of a new pair.  Its RAM, devices, disk,
        pending requests and client history stay; it gets the primary's network path
        (filter-buffer or colo-compare) and a disk that forwards to the new secondary."""
        if not self.failed_over:
            raise ValueError("only the survivor of a failover becomes a new primary")
        self.role = PRIMARY
        self.failed_over = False
        self.peer = None
        self.cache = None
        self.output_lost = False
        self.disk = PrimaryDisk(self.disk.view())
        self.filter = FilterBuffer() if self.mode == "periodic" else None
        self.compare = ColoCompare(self.now_ms) if self.mode == "hybrid" else None
        self.mirror_outbox.clear()
        self.svm_outbox.clear()
        self._seq = self.last_packet_seq()
        # a new migration: RAM framing starts afresh (no "previous block" to CONTINUE
        # from) and the XBZRLE cache is empty, as on the new secondary
        from protocol.migration.stream import RamContext
        self.ram_context = RamContext.from_blocks(self.ram.layout())
        for blk in self.ram.blocks.values():
            blk.xbzrle_cache.clear()

    def last_packet_seq(self) -> int:
        """The highest packet number the client ever saw from any VM (or this one made):
        packets keep unique keys across re-protects (a key is (role, seq))."""
        return max(self._seq, max((r.packet.seq for r in self.client_log.released),
                                  default=0))

    def new_secondary(self, output_lost: bool = False) -> Guest:
        """Re-protect: the new secondary as the fresh initial migration leaves it (a
        clone of this primary now), linked to it."""
        twin = self.clone_for_secondary()
        twin._seq = self.last_packet_seq()
        twin.output_lost = output_lost
        self.link(twin)
        return twin

    # -- the initial migration ---------------------------------------------------------
    def initial_stream(self) -> bytes:
        """The initial migration as QEMU 7.2 sends it (QEVM … VMDESCRIPTION); sets
        `ram_context`, which later checkpoints' RAM parts continue from."""
        from protocol.guest.devices import FIRST_SECTION_ID, VMDESC
        from protocol.migration.stream import encode_initial
        records = self.ram.migration_pass()
        # the same device section ids as every checkpoint's device blob (save_blob)
        data, self.ram_context = encode_initial(
            "pc-i440fx-7.2", self.ram.layout(), records, self.devices.sections(), VMDESC,
            first_device_section_id=FIRST_SECTION_ID)
        return data

    def load_initial(self, summary) -> None:
        """The secondary was built as the initial migration leaves it (clone); check
        that the stream it received describes the same RAM."""
        blocks = [tuple(b) for b in getattr(summary, "blocks", [])]
        if blocks and blocks != [tuple(b) for b in self.ram.layout()]:
            raise ValueError(f"initial migration describes RAM {blocks}, "
                             f"the secondary has {self.ram.layout()}")

    def check_output_invariants(self) -> str | None:
        """Nothing released twice (DESIGN.md §5, invariant 3)."""
        dup = self.client_log.duplicates
        if dup:
            d = dup[0]
            return (f"packet {d.packet.key} answering request {d.packet.req_id} "
                    f"was released twice ({len(dup)} duplicate(s))")
        return None

    # -- invariants ----------------------------------------------------------------
    def digest(self, raw: bool = False) -> dict[str, str]:
        """RAM, devices and disk digests (``raw``: RAM read back, see `Ram.digest`)."""
        return {"ram": self.ram.digest(raw), "devices": self.devices.digest(),
                "disk": self.disk.digest()}

    def first_unheld_answer(self):
        """The first answer the client saw (`client_log`) to a request this VM never
        took in (beyond `devices.last_rx_id`), or None: output its state does not
        account for."""
        held = self.devices.last_rx_id
        return next((r for r in self.client_log.released if r.packet.req_id > held), None)

    def consistency_diff(self, other: Guest) -> dict:
        """What differs from `other` ({} when RAM, devices and visible disk agree).

        Keys present only when they differ: "ram" {block: [page indices]},
        "devices" [device names], "disk" [sectors].
        """
        out: dict = {}
        ram = self.ram.diff_pages(other.ram)
        if ram:
            out["ram"] = ram
        devices = self.devices.diff(other.devices)
        if devices:
            out["devices"] = devices
        disk = diff_sectors(self.disk.view(), other.disk.view())
        if disk:
            out["disk"] = disk
        return out
