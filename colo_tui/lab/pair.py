"""A real QEMU 7.2 COLO pair on loopback, set up as QEMU's docs/COLO-FT.txt
describes ("Startup qemu", steps 1-4):

- primary: filter-mirror (tx -> mirror0), filter-redirector redire0 (rx <-
  compare_out) and redire1 (rx -> compare0), colo-compare comp0 on iothread1,
  a quorum drive colo-disk0 to which the replication(primary) NBD client is
  added with drive_add + x-blockdev-change; started with -S;
- secondary: filter-redirector f1 (tx <- red0) and f2 (rx -> red1),
  filter-rewriter rew0, replication(secondary) on active/hidden qcow2 over
  parent0, the NBD server exporting parent0; -incoming defer.

Differences from the document, all forced by this host: TCG (no KVM), the
LD_PRELOAD BQL shim (tools/qemu/bqlshim.c, see /work/shared/qemu-colo),
user-mode networking with a host port forward instead of a tap bridge, the
lab's packet relay between each compare channel's two chardevs (relay.py), a
virtio-net / virtio-blk guest instead of rtl8139 / IDE, every socket on
127.0.0.1 with free ports, `wait=off` on compare1 (QEMU would otherwise block
before QMP until the secondary connects) and `-incoming defer`.
"""
from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from colo_tui.lab import LabError, procs
from colo_tui.lab.guest import GUEST_PORT, KERNEL_APPEND, RANDOM_PORT, ensure_guest, qemu_img
from protocol.drivers.ports import free_ports

SHIM_SRC = Path(__file__).resolve().parents[2] / "tools" / "qemu" / "bqlshim.c"
CAP = {"capabilities": [{"capability": "x-colo", "state": True}]}
TRACE_EVENTS = ("colo_*",)   # colo-compare, filter-rewriter and the COLO messages
DISK = "64M"
#: 128 MiB + 8 KiB.  Not a multiple of 256 KiB (64 pages, one word of QEMU's
#: dirty bitmap) on purpose: for such a RAM block QEMU 7.2's
#: cpu_physical_memory_sync_dirty_bitmap() takes its per-page path, which
#: re-arms TCG's soft-TLB write trap (tlb_reset_dirty_range_all).  Its fast
#: path for word-aligned blocks clears the migration dirty bits without doing
#: so, and writes through TLB entries made before the sync go unlogged: pages
#: missing from checkpoints on the primary, SVM writes the flush never undoes
#: on the secondary.  With "128M" the secondary's Linux panicked within a few
#: checkpoints (8 panics in a 30 s run); with this size, none in 3 runs
#: (docs/lab-modes.md).  Later QEMU resets the TLB on the fast path too
#: (cpu_physical_memory_dirty_bits_cleared).
RAM = "131080K"


def ensure_shim(cache: Path) -> Path:
    gcc = shutil.which("gcc")
    if not SHIM_SRC.exists():
        raise LabError(f"the BQL shim source {SHIM_SRC} is missing (run from a clone)")
    digest = hashlib.sha256(SHIM_SRC.read_bytes()).hexdigest()[:12]
    out = cache / f"bqlshim-{digest}.so"
    if out.exists():
        return out
    if gcc is None:
        raise LabError("gcc not found: it builds the BQL shim QEMU 7.2's COLO primary "
                       "needs under TCG (run .ci/qemu-setup.sh)")
    tmp = out.with_suffix(".tmp")
    res = subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(SHIM_SRC),
                          "-ldl"], capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise LabError(f"building the BQL shim failed: {res.stderr.strip()[-400:]}")
    tmp.replace(out)
    return out


@dataclass
class Ports:
    mirror: int
    compare1: int
    compare0: int
    compare_out: int
    nbd: int
    migrate: int
    client: int
    random: int
    secondary_client: int   # the secondary's own forward, used after a failover
    # the lab's relay on each colo-compare chardev channel (colo_tui/lab/relay.py):
    # the client chardev connects here, the relay on to the server chardev
    relay_mirror: int
    relay_primary_in: int
    relay_compare_in: int
    relay_compare_out: int

    @classmethod
    def pick(cls) -> Ports:
        return cls(*free_ports(13))

    def relays(self) -> dict[str, tuple[int, int]]:
        """channel -> (relay port, the server chardev's port)."""
        return {"mirror": (self.relay_mirror, self.mirror),
                "primary-in": (self.relay_primary_in, self.compare0),
                "compare-in": (self.relay_compare_in, self.compare1),
                "compare-out": (self.relay_compare_out, self.compare_out)}


def _chardev(cid: str, port: int, server: bool) -> list[str]:
    opt = f"socket,id={cid},host=127.0.0.1,port={port}"
    opt += ",server=on,wait=off" if server else ",reconnect=1"
    return ["-chardev", opt]


def common_args(name: str, work: Path, guest: dict) -> list[str]:
    return ["-name", f"{name},debug-threads=on", "-machine", "pc,accel=tcg",
            "-cpu", "qemu64", "-m", RAM, "-smp", "1", "-nodefaults", "-display", "none",
            "-kernel", str(guest["kernel"]), "-initrd", str(guest["initrd"]),
            "-append", KERNEL_APPEND, "-serial", f"file:{work / name}.serial",
            "-qmp", f"unix:{work / name}.qmp,server=on,wait=off", "-msg", "timestamp=on",
            "-D", str(work / f"{name}.trace.log"),
            *[a for ev in TRACE_EVENTS for a in ("-trace", ev)]]


def netdev(side: str, p: Ports, net=None) -> list[str]:
    """The guest's network: a tap the lab moves onto its bridge (`net`, a
    netns.LabNet), or user-mode networking with host port forwards."""
    if net is not None:
        return ["-netdev", f"tap,id=hn0,ifname={net.taps[side]},script=no,downscript=no,"
                           f"vnet_hdr={'on' if VNET_HDR else 'off'}"]
    fwd = (f"hostfwd=tcp:127.0.0.1:{p.client}-:{GUEST_PORT},"
           f"hostfwd=tcp:127.0.0.1:{p.random}-:{RANDOM_PORT}" if side == "primary"
           else f"hostfwd=tcp:127.0.0.1:{p.secondary_client}-:{GUEST_PORT}")
    return ["-netdev", f"user,id=hn0,{fwd}"]


#: a tap under virtio-net would carry a virtio-net header before each frame
#: (vnet_hdr_len 12), and every filter and colo-compare would need
#: vnet_hdr_support=on: without it colo-compare parses the header as Ethernet,
#: compares nothing and lets every packet through (seen: no colo_compare_tcp_info);
#: with it, the secondary's guest hit a BUG in __skb_to_sgvec and sent nothing on
#: compare-in (7.2, TCG).  The lab turns the tap's vnet header off instead.
VNET_HDR = False


def _vnet(net) -> str:
    return ",vnet_hdr_support=on" if net is not None and VNET_HDR else ""


def primary_args(work: Path, guest: dict, p: Ports, net=None) -> list[str]:
    vh = _vnet(net)
    return [*common_args("primary", work, guest), *netdev("primary", p, net),
            "-device", "virtio-net-pci,id=e0,netdev=hn0,romfile=",
            *_chardev("mirror0", p.mirror, True),
            *_chardev("compare1", p.compare1, True),
            *_chardev("compare0", p.compare0, True),
            "-chardev", f"socket,id=compare0-0,host=127.0.0.1,port={p.relay_primary_in}",
            *_chardev("compare_out", p.compare_out, True),
            "-chardev", f"socket,id=compare_out0,host=127.0.0.1,port={p.relay_compare_out}",
            "-object", f"filter-mirror,id=m0,netdev=hn0,queue=tx,outdev=mirror0{vh}",
            "-object", f"filter-redirector,netdev=hn0,id=redire0,queue=rx,indev=compare_out{vh}",
            "-object", f"filter-redirector,netdev=hn0,id=redire1,queue=rx,outdev=compare0{vh}",
            "-object", "iothread,id=iothread1",
            "-object", "colo-compare,id=comp0,primary_in=compare0-0,secondary_in=compare1,"
                       f"outdev=compare_out0,iothread=iothread1{vh}",
            "-drive", "if=none,id=colo-disk0,driver=quorum,read-pattern=fifo,"
                      f"vote-threshold=1,children.0.file.filename={work / 'primary.img'},"
                      "children.0.driver=raw",
            "-device", "virtio-blk-pci,drive=colo-disk0", "-S"]


def secondary_args(work: Path, guest: dict, p: Ports, net=None) -> list[str]:
    vh = _vnet(net)
    return [*common_args("secondary", work, guest), *netdev("secondary", p, net),
            "-device", "virtio-net-pci,id=e0,netdev=hn0,romfile=",
            *_chardev("red0", p.relay_mirror, False),
            *_chardev("red1", p.relay_compare_in, False),
            "-object", f"filter-redirector,id=f1,netdev=hn0,queue=tx,indev=red0{vh}",
            "-object", f"filter-redirector,id=f2,netdev=hn0,queue=rx,outdev=red1{vh}",
            "-object", f"filter-rewriter,id=rew0,netdev=hn0,queue=all{vh}",
            "-drive", f"if=none,id=parent0,file.filename={work / 'secondary.img'},driver=raw",
            "-drive", "if=none,id=childs0,driver=replication,mode=secondary,file.driver=qcow2,"
                      f"top-id=colo-disk0,file.file.filename={work / 'active.qcow2'},"
                      "file.backing.driver=qcow2,"
                      f"file.backing.file.filename={work / 'hidden.qcow2'},"
                      "file.backing.backing=parent0",
            "-drive", "if=none,id=colo-disk0,driver=quorum,read-pattern=fifo,"
                      "vote-threshold=1,children.0=childs0",
            "-device", "virtio-blk-pci,drive=colo-disk0", "-incoming", "defer"]


def make_images(work: Path) -> None:
    img = qemu_img()
    for args in (["-f", "raw", str(work / "primary.img"), DISK],
                 ["-f", "qcow2", str(work / "active.qcow2"), DISK],
                 ["-f", "qcow2", str(work / "hidden.qcow2"), DISK]):
        res = subprocess.run([img, "create", "-q", *args], capture_output=True, text=True,
                             timeout=60)
        if res.returncode != 0:
            raise LabError(f"qemu-img create {args[1]} failed: {res.stderr.strip()}")
    # COLO-FT.txt: the primary's image is copied to the secondary host first
    shutil.copyfile(work / "primary.img", work / "secondary.img")


@dataclass
class Side:
    name: str
    work: Path
    proc: subprocess.Popen
    events: list = field(default_factory=list)
    qmp: object = None
    _task: object = None

    @property
    def log_path(self) -> Path:
        return self.work / f"{self.name}.stderr"

    def stderr_tail(self, n: int = 600) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:].strip()
        except OSError:
            return ""

    async def connect(self, timeout: float = 30) -> None:
        from qemu.qmp import EventListener, QMPClient
        path = self.work / f"{self.name}.qmp"
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            if self.proc.poll() is not None:
                raise LabError(f"{self.name} QEMU exited ({self.proc.returncode}): "
                               f"{self.stderr_tail()}")
            if time.monotonic() > deadline:
                raise LabError(f"{self.name}: QMP did not answer in {timeout:.0f} s ({last})")
            if path.exists():
                client = QMPClient(self.name)
                try:
                    await asyncio.wait_for(client.connect(str(path)), 5)
                    break
                except Exception as exc:  # noqa: BLE001 - the socket may not listen yet
                    last = exc
            await asyncio.sleep(0.05)
        self.qmp = client
        listener = EventListener()
        client.register_listener(listener)

        async def collect():
            async for ev in listener:
                self.events.append({"event": ev["event"], "data": ev.get("data", {}),
                                    "t": time.monotonic(), "wall": time.time()})
        self._task = asyncio.ensure_future(collect())

    async def ex(self, cmd: str, args: dict | None = None, timeout: float = 15):
        from qemu.qmp import ExecuteError
        try:
            return await asyncio.wait_for(self.qmp.execute(cmd, args), timeout)
        except ExecuteError as exc:
            raise LabError(f"{self.name}: QMP {cmd} {args or ''} failed: {exc}") from None
        except TimeoutError:
            raise LabError(f"{self.name}: QMP {cmd} got no answer in {timeout:.0f} s") from None

    async def hmp(self, line: str) -> str:
        out = await self.ex("human-monitor-command", {"command-line": line})
        if out.strip():
            raise LabError(f"{self.name}: HMP {line!r}: {out.strip()}")
        return out

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.qmp is not None:
            try:
                await asyncio.wait_for(self.qmp.execute("quit"), 2)
            except Exception:  # noqa: BLE001 - quit races the exit; reap() kills anyway
                pass
            try:
                await asyncio.wait_for(self.qmp.disconnect(), 2)
            except Exception:  # noqa: BLE001
                pass
        await asyncio.to_thread(procs.reap, self.proc)


class Pair:
    """Start with `await Pair.start(work)`; `await pair.close()` stops both."""

    def __init__(self, work: Path, checkpoint_delay: int, faults=(), net: str = "user") -> None:
        from colo_tui.lab.relay import ChannelFaults, ChannelRelay, PacketLog, split_faults
        self.work, self.delay = work, checkpoint_delay
        self.net = None
        if net == "tap":
            from colo_tui.lab.netns import LabNet
            self.net = LabNet()
        self.ports = Ports.pick()
        from colo_tui.lab.traffic import Hangup
        #: set by close(): the client sockets made through addr() are cut
        self.hangup = Hangup()
        self.primary: Side | None = None
        self.secondary: Side | None = None
        self.t_colo: float | None = None
        #: where the primary migrates to when not straight to the secondary (the TUI's
        #: decoding proxy on the migration channel, colo_tui/lab/feed.py)
        self.migrate_via: int | None = None
        self.packets = PacketLog()
        by_channel = split_faults(list(faults))
        self.relays = {name: ChannelRelay(name, port, upstream, self.packets,
                                          ChannelFaults(by_channel[name]),
                                          vnet_hdr=bool(_vnet(self.net)))
                       for name, (port, upstream) in self.ports.relays().items()}

    def addr(self, service: str):
        """Where the client reaches the guest's `service` ("echo", "random", or
        "secondary-echo": the secondary's own forward after a failover; with tap
        it is the same guest address as "echo")."""
        from colo_tui.lab.guest import GUEST_IP
        from colo_tui.lab.traffic import Addr
        if self.net is not None:
            return Addr(RANDOM_PORT if service == "random" else GUEST_PORT, GUEST_IP, self.net,
                        self.hangup)
        return Addr({"echo": self.ports.client, "random": self.ports.random,
                     "secondary-echo": self.ports.secondary_client}[service],
                    hangup=self.hangup)

    def arm_faults(self) -> None:
        """Compare-channel faults count data packets from here on."""
        for r in self.relays.values():
            r.arm()

    def _spawn(self, name: str, args: list[str], shim: Path) -> Side:
        import os
        qemu = shutil.which("qemu-system-x86_64")
        if qemu is None:
            raise LabError("qemu-system-x86_64 not found (Debian package qemu-system-x86; "
                           "run .ci/qemu-setup.sh)")
        log = open(self.work / f"{name}.stderr", "w")  # noqa: SIM115
        try:
            proc = procs.spawn([qemu, *args], stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT,
                               env=dict(os.environ, LD_PRELOAD=str(shim)))
        finally:
            log.close()
        return Side(name, self.work, proc)

    async def start(self, timeout: float = 60) -> None:
        guest = ensure_guest()
        shim = ensure_shim(guest["dir"].parent)
        make_images(self.work)
        p = self.ports
        for relay in self.relays.values():     # before the client chardevs connect
            await relay.start()
        if self.net is not None:
            await asyncio.to_thread(self.net.create)
        self.primary = self._spawn("primary", primary_args(self.work, guest, p, self.net),
                                   shim)
        await self._adopt_tap(self.primary)
        await self.primary.connect()
        self.secondary = self._spawn("secondary",
                                     secondary_args(self.work, guest, p, self.net), shim)
        await self._adopt_tap(self.secondary)
        await self.secondary.connect()
        pri, sec = self.primary, self.secondary
        await self._wait_chardevs(timeout)
        # COLO-FT.txt step 3 (secondary), then step 4 (primary)
        await sec.ex("migrate-set-capabilities", CAP)
        await sec.ex("nbd-server-start", {"addr": {"type": "inet", "data": {
            "host": "127.0.0.1", "port": str(p.nbd)}}})
        await sec.ex("nbd-server-add", {"device": "parent0", "writable": True})
        await sec.ex("migrate-incoming", {"uri": f"tcp:127.0.0.1:{p.migrate}"})
        await pri.hmp("drive_add -n buddy driver=replication,mode=primary,file.driver=nbd,"
                      f"file.host=127.0.0.1,file.port={p.nbd},file.export=parent0,"
                      "node-name=replication0")
        await pri.ex("x-blockdev-change", {"parent": "colo-disk0", "node": "replication0"})
        await pri.ex("migrate-set-capabilities", CAP)
        await pri.ex("migrate-set-parameters", {"x-checkpoint-delay": self.delay})
        await pri.ex("migrate", {"uri": f"tcp:127.0.0.1:{self.migrate_via or p.migrate}"})
        deadline = time.monotonic() + timeout
        while True:
            st = [(await s.ex("query-colo-status"))["mode"] for s in (pri, sec)]
            if st == ["primary", "secondary"]:
                break
            mig = (await pri.ex("query-migrate")).get("status")
            if mig == "failed" or time.monotonic() > deadline:
                raise LabError(f"the pair did not reach COLO (colo modes {st}, primary "
                               f"migration {mig}): {pri.stderr_tail()} {sec.stderr_tail()}")
            await asyncio.sleep(0.1)
        self.t_colo = time.monotonic()

    async def _adopt_tap(self, side: Side) -> None:
        if self.net is not None:
            try:
                await asyncio.to_thread(self.net.adopt, side.name,
                                        lambda: side.proc.poll() is None)
            except LabError as exc:
                raise LabError(f"{exc}: {side.stderr_tail()}") from None

    async def _wait_chardevs(self, timeout: float) -> None:
        """The secondary's red0/red1 connect (reconnect=1) through the relays to
        the primary's mirror0/compare1; migrate only once every relayed channel
        is connected."""
        deadline = time.monotonic() + timeout
        while True:
            devs = {c["label"]: c["filename"] for c in await self.secondary.ex("query-chardev")}
            relayed = {n: r.connections for n, r in self.relays.items()}
            if all("<->" in devs.get(c, "") for c in ("red0", "red1")) \
                    and all(relayed.values()):
                return
            if time.monotonic() > deadline:
                raise LabError(f"the compare channels did not connect: secondary chardevs "
                               f"{devs}, relay connections {relayed}, relay notes "
                               f"{self.packets.notes[-4:]}")
            await asyncio.sleep(0.1)

    def checkpoints(self) -> int:
        """Checkpoint requests the primary sent (its colo_send_message trace)."""
        return _count(self.work / "primary.trace.log", "colo_send_message",
                      "checkpoint-request")

    def miscompares(self) -> dict[str, int]:
        """Evidence of colo-compare disagreements in the primary's trace: the
        compare events by name, plus ip_info lines whose sizes differ."""
        counts: dict[str, int] = {}
        try:
            text = (self.work / "primary.trace.log").read_text(errors="replace")
        except OSError:
            return counts
        for ln in text.splitlines():
            name = ln.split(":", 1)[-1].split(" ", 1)[0]
            if name.startswith(("colo_compare", "colo_old_packet")):
                counts[name] = counts.get(name, 0) + 1
            if name == "colo_compare_ip_info":
                m = _SIZES.search(ln)
                if m and m.group(1) != m.group(2):
                    counts["ip_info_size_differs"] = counts.get("ip_info_size_differs", 0) + 1
        return counts

    async def status(self) -> dict:
        out = {}
        for s in (self.primary, self.secondary):
            if s is None or s.proc.poll() is not None:
                out[s.name if s else "?"] = {"alive": False}
                continue
            out[s.name] = {"alive": True, "pid": s.proc.pid,
                           "colo": await s.ex("query-colo-status"),
                           "status": (await s.ex("query-status"))["status"],
                           "migrate": (await s.ex("query-migrate")).get("status")}
        return out

    async def close(self) -> None:
        self.hangup.set()       # a client thread waiting on the guest returns now
        for s in (self.primary, self.secondary):
            if s is not None:
                await s.close()
        for relay in self.relays.values():
            await relay.close()
        if self.net is not None:
            await asyncio.to_thread(self.net.destroy)


_SIZES = re.compile(r"ppkt size = (\d+),.*spkt size = (\d+),")


def _count(path: Path, event: str, needle: str = "") -> int:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return 0
    return sum(1 for ln in text.splitlines() if f":{event} " in ln and needle in ln)
