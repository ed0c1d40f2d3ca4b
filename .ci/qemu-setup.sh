#!/bin/sh
# Install what tests/qemu/test_real_qemu.py needs: QEMU (x86_64 system
# emulator, TCG), a C compiler for the LD_PRELOAD BQL shim, and binutils
# (`as --32` / `ld -m elf_i386`) for the tiny multiboot guest.  Idempotent:
# does nothing when everything is already there.  Also tshark, so the pcap
# export is read back by Wireshark's own dissector and dumpcap records fresh
# captures (tests/qemu/test_real_captures.py), and gdb, so a stalled QEMU's
# threads are reported with their backtraces.  For `colo lab`
# (tests/qemu/test_lab.py): qemu-img, Debian's cloud kernel (its vmlinuz and
# virtio modules) and a static busybox for the guest's initramfs.
set -eu
need=""
command -v qemu-system-x86_64 >/dev/null 2>&1 || need="$need qemu-system-x86"
command -v gcc >/dev/null 2>&1 || need="$need gcc libc6-dev"
command -v as >/dev/null 2>&1 || need="$need binutils"
command -v ld >/dev/null 2>&1 || case "$need" in *binutils*) ;; *) need="$need binutils";; esac
command -v tshark >/dev/null 2>&1 || need="$need tshark"
command -v gdb >/dev/null 2>&1 || need="$need gdb"
command -v qemu-img >/dev/null 2>&1 || need="$need qemu-utils"
ls /boot/vmlinuz-*-cloud-amd64 >/dev/null 2>&1 || need="$need linux-image-cloud-amd64"
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed" \
    || need="$need busybox-static"
if [ -z "$need" ]; then
    echo "qemu-setup: nothing to install"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
qemu-system-x86_64 --version | head -n 1
