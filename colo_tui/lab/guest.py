"""The lab's guest: Debian's cloud kernel and a busybox initramfs.

The kernel is /boot/vmlinuz-<version> from ``linux-image-cloud-amd64``; the
initramfs holds busybox-static, the virtio PCI/net/blk modules of that kernel
(with their dependencies from modules.dep) and an /init that loads them, gives
eth0 the static address 10.0.2.15/24 (QEMU user-mode network), mounts /dev/vda
when there is one (formatting it ext2 the first time) and serves TCP echo on
port 7 (``nc -ll -e cat``, one process per connection); port 8 answers each
connection with 16 random bytes in hex and closes, an output that differs
between primary and secondary (what makes colo-compare force a checkpoint).  It prints
``COLO-LAB READY`` on the serial console when the service listens.

Built into ``user_cache_path("colo-testbed")/"lab"/<kernel version>/`` and
rebuilt only when missing.  The archive is written here (cpio "newc", gzip) so
no root is needed for /dev/console.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
from pathlib import Path

from colo_tui.lab import LabError

MODULES = ("virtio_pci", "virtio_net", "virtio_blk")
GUEST_IP, GUEST_PORT, RANDOM_PORT = "10.0.2.15", 7, 8
READY = "COLO-LAB READY"
KERNEL_APPEND = "console=ttyS0 panic=-1 loglevel=4 tsc=unstable"

INIT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /mnt /tmp
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /lib/modules/$m.ko || echo "insmod $m failed"; done
n=0
while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 100 ]; do usleep 20000; n=$((n+1)); done
ip link set lo up
ip addr add {GUEST_IP}/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2
n=0
while [ ! -b /dev/vda ] && [ $n -lt 25 ]; do usleep 20000; n=$((n+1)); done
if [ -b /dev/vda ]; then
  mount -t ext2 /dev/vda /mnt 2>/dev/null || {{ mke2fs -q /dev/vda && mount -t ext2 /dev/vda /mnt; }}
  echo "disk: $(cat /proc/mounts | grep /mnt)"
  echo boot >> /mnt/boots
fi
nc -ll -p {GUEST_PORT} -e /bin/cat &
nc -ll -p {RANDOM_PORT} -e /bin/random &
echo "{READY} ip={GUEST_IP} port={GUEST_PORT}"
exec sh -c 'while :; do sleep 3600; done'
"""
RANDOM = """#!/bin/sh
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'
echo
"""


def cache_root() -> Path:
    import platformdirs
    return platformdirs.user_cache_path("colo-testbed") / "lab"


def kernel_version(boot: Path = Path("/boot")) -> str:
    """The newest installed cloud kernel that has its modules, or a LabError."""
    found = []
    for vmlinuz in boot.glob("vmlinuz-*-cloud-amd64"):
        ver = vmlinuz.name.removeprefix("vmlinuz-")
        if (Path("/lib/modules") / ver / "modules.dep").exists():
            found.append(ver)
    if not found:
        raise LabError("no Debian cloud kernel: /boot/vmlinuz-*-cloud-amd64 with "
                       "/lib/modules/<version> is missing (apt-get install "
                       "linux-image-cloud-amd64, or run .ci/qemu-setup.sh)")
    return sorted(found, key=lambda v: [int(x) if x.isdigit() else x
                                        for x in re.split(r"[.-]", v)])[-1]


def busybox() -> Path:
    for cand in ("/bin/busybox", "/usr/bin/busybox"):
        p = Path(cand)
        if p.exists() and _is_static(p):
            return p
    raise LabError("no static busybox (apt-get install busybox-static, or run "
                   ".ci/qemu-setup.sh)")


def _is_static(path: Path) -> bool:
    data = path.read_bytes()[:1 << 16]
    return data[:4] == b"\x7fELF" and b"/lib64/ld-linux" not in data \
        and b"ld-linux-x86-64.so" not in data


def module_closure(moddir: Path, names=MODULES) -> list[str]:
    """Relative module paths (without .ko) for `names` and what they depend on,
    dependencies first (from modules.dep)."""
    deps: dict[str, list[str]] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        if ":" in line:
            mod, rest = line.split(":", 1)
            deps[mod] = rest.split()
    by_name = {Path(m).name.removesuffix(".ko"): m for m in deps}
    order: list[str] = []

    def visit(mod: str, depth: int = 0) -> None:
        if depth > 50:
            raise LabError(f"modules.dep: dependency loop at {mod}")
        if mod in order:
            return
        for d in deps.get(mod, []):
            visit(d, depth + 1)
        order.append(mod)

    for name in names:
        if name not in by_name:
            raise LabError(f"kernel module {name} not in {moddir}/modules.dep "
                           f"(built in, or a kernel without it)")
        visit(by_name[name])
    return [m.removesuffix(".ko") for m in order]


class _Newc:
    """A cpio "newc" archive in memory (what the kernel unpacks as initramfs)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.ino = 1

    def add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)):
        self.ino += 1
        nb = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nb), 0]
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.parts += [hdr, nb, b"\0" * (-(len(hdr) + len(nb)) % 4), data,
                       b"\0" * (-len(data) % 4)]

    def dir(self, name: str) -> None:
        self.add(name, 0o040755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.add(name, 0o100000 | mode, data)

    def finish(self) -> bytes:
        self.add("TRAILER!!!", 0)
        return b"".join(self.parts)


def build_initramfs(version: str, out: Path) -> None:
    moddir = Path("/lib/modules") / version
    mods = module_closure(moddir)
    a = _Newc()
    for d in ("bin", "dev", "proc", "sys", "mnt", "tmp", "lib", "lib/modules"):
        a.dir(d)
    a.add("dev/console", 0o020600, rdev=(5, 1))
    a.file("bin/busybox", busybox().read_bytes(), 0o755)
    a.file("init", INIT.encode(), 0o755)
    a.file("bin/random", RANDOM.encode(), 0o755)
    for m in mods:
        a.file(f"lib/modules/{Path(m).name}.ko", (moddir / f"{m}.ko").read_bytes())
    a.file("modules.order", "\n".join(Path(m).name for m in mods).encode() + b"\n")
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(a.finish(), compresslevel=6, mtime=0))
    os.replace(tmp, out)


def ensure_guest(root: Path | None = None) -> dict[str, Path | str]:
    """The kernel and the initramfs, building the initramfs when it is missing."""
    version = kernel_version()
    kernel = Path("/boot") / f"vmlinuz-{version}"
    if not os.access(kernel, os.R_OK):
        raise LabError(f"{kernel} is not readable")
    d = (root or cache_root()) / version
    d.mkdir(parents=True, exist_ok=True)
    recipe = hashlib.sha256((INIT + RANDOM + " ".join(MODULES)).encode()).hexdigest()[:10]
    initrd = d / f"initramfs-{recipe}.cpio.gz"
    if not initrd.exists():
        build_initramfs(version, initrd)
    return {"version": version, "kernel": kernel, "initrd": initrd, "dir": d}


def qemu_img() -> str:
    path = shutil.which("qemu-img")
    if path is None:
        raise LabError("qemu-img not found (Debian package qemu-utils)")
    return path
