"""Block replication (PROTOCOL.md §10, docs/block-replication.txt).

Primary: every guest write goes to the local image and is forwarded
("speculative write-through") to the secondary's NBD export; forwarded writes
wait in `outbox` until the driver delivers them (or go straight to a linked
secondary).

Secondary, top to bottom:
  active disk     the SVM's own writes
  hidden disk     copy-on-write of the *original* sectors of the secondary disk
                  that forwarded primary writes overwrote since the last checkpoint
  secondary disk  the NBD target, holding the PVM's writes
The SVM sees active ▷ hidden ▷ secondary disk, i.e. the disk as of the last
checkpoint plus its own writes.  `checkpoint()` empties active and hidden (the
SVM's divergence is discarded; its view becomes the PVM's disk);
`failover_commit()` commits active and hidden into the secondary disk.

Sector-granular dicts; all-zero sectors are the default.  Sans-IO.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping

SECTOR_SIZE = 512
ZERO_SECTOR = bytes(SECTOR_SIZE)


def _check(sector: int, data: bytes) -> None:
    if sector < 0:
        raise ValueError(f"negative sector {sector}")
    if len(data) != SECTOR_SIZE:
        raise ValueError(f"sector {sector}: {len(data)} bytes, expected {SECTOR_SIZE}")


def disk_digest(sectors: Mapping[int, bytes]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for sector in sorted(sectors):
        data = sectors[sector]
        if data != ZERO_SECTOR:
            h.update(sector.to_bytes(8, "big"))
            h.update(data)
    return h.hexdigest()


def diff_sectors(a: Mapping[int, bytes], b: Mapping[int, bytes]) -> list[int]:
    return sorted(s for s in set(a) | set(b)
                  if a.get(s, ZERO_SECTOR) != b.get(s, ZERO_SECTOR))


class PrimaryDisk:
    """The PVM's disk: local image + forwarding to the secondary."""

    def __init__(self, sectors: Mapping[int, bytes] | None = None) -> None:
        self.local: dict[int, bytes] = dict(sectors or {})
        self.outbox: list[tuple[int, bytes]] = []
        self.forward: Callable[[int, bytes], None] | None = None
        self.replicating = True
        self.writes = 0
        self.error: str | None = None

    def write(self, sector: int, data: bytes) -> None:
        _check(sector, data)
        self.local[sector] = bytes(data)
        self.writes += 1
        if not self.replicating:
            return
        if self.forward is not None:
            self.forward(sector, bytes(data))
        else:
            self.outbox.append((sector, bytes(data)))

    def read(self, sector: int) -> bytes:
        return self.local.get(sector, ZERO_SECTOR)

    def drain(self) -> list[tuple[int, bytes]]:
        """Forwarded writes not yet delivered (for a driver that carries them)."""
        out, self.outbox = self.outbox, []
        return out

    def checkpoint(self) -> None:
        """replication_do_checkpoint on the primary: nothing to empty."""
        return None

    def stop_replication(self) -> None:
        """Primary failover: stop forwarding, keep the local image."""
        self.replicating = False
        self.outbox.clear()

    def view(self) -> dict[int, bytes]:
        return dict(self.local)

    def digest(self) -> str:
        return disk_digest(self.local)

    def get_error(self) -> str | None:
        return self.error


class SecondaryDisk:
    """The SVM's disk: active ▷ hidden ▷ secondary disk (NBD target)."""

    def __init__(self, sectors: Mapping[int, bytes] | None = None) -> None:
        self.base: dict[int, bytes] = dict(sectors or {})   # the secondary disk
        self.hidden: dict[int, bytes] = {}
        self.active: dict[int, bytes] = {}
        self.replicating = True
        self.mirrored = 0
        self.error: str | None = None

    # forwarded primary writes (through the NBD server)
    def mirror_write(self, sector: int, data: bytes) -> None:
        _check(sector, data)
        if not self.replicating:
            raise ValueError("mirrored write after failover: replication has stopped")
        if sector not in self.hidden:
            self.hidden[sector] = self.base.get(sector, ZERO_SECTOR)  # backup sync=none COW
        self.base[sector] = bytes(data)
        self.mirrored += 1

    def mirror_writes(self, writes: Iterable[tuple[int, bytes]]) -> None:
        for sector, data in writes:
            self.mirror_write(sector, data)

    # the SVM's own writes
    def write(self, sector: int, data: bytes) -> None:
        _check(sector, data)
        if self.replicating:
            self.active[sector] = bytes(data)
        else:
            self.base[sector] = bytes(data)

    def read(self, sector: int) -> bytes:
        for layer in (self.active, self.hidden, self.base):
            if sector in layer:
                return layer[sector]
        return ZERO_SECTOR

    def view(self) -> dict[int, bytes]:
        """What the SVM sees."""
        merged = dict(self.base)
        merged.update(self.hidden)
        merged.update(self.active)
        return merged

    def checkpoint(self) -> None:
        """replication_do_checkpoint: empty the active and hidden disks."""
        if self.error is not None:
            raise ValueError(f"block replication error: {self.error}")
        self.active.clear()
        self.hidden.clear()

    def get_error(self) -> str | None:
        """replication_get_error_all (checked before the SVM commits a checkpoint)."""
        return self.error

    def inject_error(self, message: str) -> None:
        self.error = message

    def failover_commit(self) -> None:
        """replication_stop_all(failover): commit active + hidden into the secondary disk."""
        self.base.update(self.hidden)
        self.base.update(self.active)
        self.hidden.clear()
        self.active.clear()
        self.replicating = False

    def digest(self) -> str:
        return disk_digest(self.view())
