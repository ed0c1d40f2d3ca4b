"""`colo lab`: a real QEMU 7.2 COLO pair (network compare, block replication) on
loopback, running a small Linux guest built from Debian packages.

- ``guest``: the kernel + busybox initramfs, cached per kernel version;
- ``pair``: the two QEMU command lines (COLO-FT.txt's setup), QMP, teardown;
- ``cli``: the ``colo lab`` subcommand.
"""
from protocol.errors import ColoError


class LabError(ColoError, RuntimeError):
    """The lab cannot start or run here (a missing package, a QEMU that refused
    an option, a guest that did not come up); the message says which."""
