"""Snapshot builders: the one place that reads endpoints and guests for the UIs.

`side_status` reads one endpoint, `guest_view` / `guest_report` read the guest
models; each returns a frozen value from protocol.core.session.  They run on the
thread that owns the objects (the simulator's, or a live source's own), so the
UIs never touch an endpoint or a guest.
"""
from __future__ import annotations

from protocol.core.session import (
    DiskReport,
    GuestReport,
    GuestSideReport,
    GuestView,
    MirrorReport,
    PacketsReport,
    RamCacheReport,
    RamReport,
    SideStatus,
)

HEAT_BUCKETS = 40


def side_status(ep, *, alive: bool = True, stalled: bool = False) -> SideStatus:
    """One endpoint (protocol.core.endpoint.Endpoint), as of now."""
    st = ep.status()
    cs = st["colo_status"]
    fo = ep.failover
    return SideStatus(
        role=st["role"], state=st["state"], run_state=st["run_state"],
        migration=st["migration"], colo_mode=cs["mode"], last_mode=cs["last-mode"],
        reason=cs["reason"], failover=fo.state, failover_state=st["failover_state"],
        failover_history=tuple((a, b) for a, b in fo.history),
        checkpoint=st["checkpoint"], in_flight=st["in_flight"], error=st["error"],
        checkpoint_delay_ms=st["checkpoint_delay_ms"], alive=alive, stalled=stalled)


def _kind(guest) -> str:
    if guest is None or getattr(guest, "ram", None) is None and \
            not hasattr(guest, "heat_view"):
        return "null"
    return "mirror" if hasattr(guest, "heat_view") else "model"


def guest_view(guest, role: str) -> GuestView:
    """The side panel's view of a guest: RAM heat map, packets, disk layers."""
    kind = _kind(guest)
    if kind == "null":
        return GuestView()
    if kind == "mirror":
        return _mirror_view(guest)
    ram = guest.ram
    block = getattr(guest, "main_block", None) or next(iter(ram.blocks))
    npages = ram.blocks[block].npages
    if role == "secondary" and getattr(guest, "cache", None) is not None:
        bitmap, label = guest.cache.bitmaps[block], "RAM cache pending"
    else:
        bitmap, label = ram.blocks[block].dirty, "RAM dirty (epoch)"
    heat, count = _heat(bitmap, npages)
    filt, comp = getattr(guest, "filter", None), getattr(guest, "compare", None)
    if filt is not None:
        packets = f"{len(filt)} held, {filt.released_total} out"
    elif comp is not None:
        p, s = comp.queued()
        packets = f"compare: {p} P / {s} S queued"
    else:
        packets = f"{getattr(guest, 'svm_dropped', 0)} dropped"
    disk = guest.disk
    if hasattr(disk, "active"):
        disk_text = f"active {len(disk.active)} hidden {len(disk.hidden)} base {len(disk.base)}"
    else:
        disk_text = f"local {len(disk.local)} fwd {len(disk.outbox)}"
    return GuestView("model", heat, count, label, packets, disk_text)


def _heat(bitmap, npages: int) -> tuple[tuple[float, ...], int]:
    counts = [0] * HEAT_BUCKETS
    per = max(1, -(-npages // HEAT_BUCKETS))
    for index in bitmap.indices():
        counts[min(HEAT_BUCKETS - 1, index // per)] += 1
    return tuple(c / per for c in counts), bitmap.count


def _mirror_view(guest) -> GuestView:
    """The mirror of a real guest: pages the last checkpoint flushed, its VGA text."""
    if guest.ram is None:
        return GuestView("mirror")            # nothing to show before the initial migration
    block = getattr(guest, "main_block", None) or next(iter(guest.ram.blocks))
    heat, count = _heat(guest.heat_view(block), guest.ram.blocks[block].npages)
    return GuestView("mirror", heat, count, f"{block}: flushed by ckpt #{guest.checkpoints}",
                     "— (a real guest: not modelled)", "—", guest.screen_line() or "—")


def guest_report(guests: dict) -> GuestReport:
    """Both guests in depth and their differences (RAM pages, disk sectors)."""
    sides = {s: _side_report(guests.get(s)) for s in ("primary", "secondary")}
    ram_diff: tuple = ()
    disk_diff: tuple = ()
    if all(r.kind == "model" for r in sides.values()):
        p, s = guests["primary"], guests["secondary"]
        diff = s.ram.diff_pages(p.ram)
        ram_diff = tuple((b, tuple(v)) for b, v in diff.items() if len(v))
        from protocol.guest.disk import diff_sectors
        disk_diff = tuple(diff_sectors(p.disk.view(), s.disk.view()))
    return GuestReport(sides["primary"], sides["secondary"], ram_diff, disk_diff)


def _side_report(guest) -> GuestSideReport:
    kind = _kind(guest)
    if kind == "null":
        return GuestSideReport()
    if kind == "mirror":
        g = guest
        return GuestSideReport("mirror", mirror=MirrorReport(
            has_ram=g.ram is not None, machine=str(g.machine), blocks=tuple(g.blocks()),
            initial_pages=g.initial_pages, checkpoints=g.checkpoints,
            pages_flushed_total=g.pages_flushed_total,
            flushed_counts=tuple(g.flushed_counts().items()), devices=len(g.devices),
            screen_lines=tuple(g.screen_lines()) if g.ram is not None else (),
            took_over=bool(g.took_over)))
    ram = guest.ram
    cache = getattr(guest, "cache", None)
    ram_r = RamReport(ram.size_bytes, tuple(ram.layout()), ram.dirty_count(), ram.digest(),
                      None if cache is None else RamCacheReport(
                          cache.pending(), cache.last_flush_pages, cache.flushes,
                          cache.discards))
    filt, comp = guest.filter, guest.compare
    packets = PacketsReport(
        client_received=len(guest.client_log),
        filter_held=None if filt is None else len(filt),
        filter_released=0 if filt is None else filt.released_total,
        compare_queued=None if comp is None else tuple(comp.queued()),
        compare_matched=0 if comp is None else comp.matched,
        compare_drops=0 if comp is None else comp.drops,
        compare_notifications=() if comp is None else tuple(
            r for _t, r in comp.notifications),
        svm_outbox=len(guest.svm_outbox), svm_dropped=guest.svm_dropped)
    disk = DiskReport(len(guest.disk.view()), guest.disk.digest())
    return GuestSideReport("model", ram_r, packets, disk)
