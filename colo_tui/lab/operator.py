"""What an operator does to the lab's real pair: SIGKILL or SIGSTOP a QEMU,
x-colo-lost-heartbeat, and docs/COLO-FT.txt's failover sequences.

Each step reports what it did through `say(side, command, args)` (a QMP command
or a signal), so the event stream shows every command the pair was given."""
from __future__ import annotations

import asyncio
import os
import signal

from colo_tui.lab import LabError

#: docs/COLO-FT.txt "Secondary Failover": the primary died, the secondary takes over
SECONDARY_FAILOVER = (("nbd-server-stop", None), ("x-colo-lost-heartbeat", None),
                      ("object-del", {"id": "f2"}), ("object-del", {"id": "f1"}),
                      ("chardev-remove", {"id": "red1"}), ("chardev-remove", {"id": "red0"}))
#: docs/COLO-FT.txt "Primary Failover": the secondary died, the primary goes on alone
PRIMARY_FAILOVER = (("x-blockdev-change", {"parent": "colo-disk0", "child": "children.1"}),
                    ("human-monitor-command", {"command-line": "drive_del replication0"}),
                    ("object-del", {"id": "comp0"}), ("object-del", {"id": "iothread1"}),
                    ("object-del", {"id": "m0"}), ("object-del", {"id": "redire0"}),
                    ("object-del", {"id": "redire1"}), ("x-colo-lost-heartbeat", None))


def running_side(pair, name: str):
    """The named side of the pair with its QEMU running; LabError if it has not
    started or has exited."""
    side = pair.primary if name == "primary" else pair.secondary
    if side is None:
        raise LabError(f"the {name} QEMU has not started yet")
    if side.proc.poll() is not None:
        raise LabError(f"the {name} QEMU is not running (it exited with "
                       f"{side.proc.returncode})")
    return side


async def kill(pair, name: str) -> None:
    side = running_side(pair, name)
    side.proc.kill()
    await asyncio.to_thread(side.proc.wait, 10)


def stall(pair, name: str) -> None:
    os.kill(running_side(pair, name).proc.pid, signal.SIGSTOP)


def resume(pair, name: str) -> None:
    """SIGCONT a stalled QEMU (before the lab stops it, so it can quit)."""
    side = pair.primary if name == "primary" else pair.secondary
    if side is not None and side.proc.poll() is None:
        os.kill(side.proc.pid, signal.SIGCONT)


async def lost_heartbeat(pair, name: str, say) -> None:
    side = running_side(pair, name)
    say(name, "x-colo-lost-heartbeat", None)
    await side.ex("x-colo-lost-heartbeat")


async def failover(pair, survivor: str, say) -> None:
    """COLO-FT.txt's failover onto `survivor`; the first refusal stops it (LabError)."""
    side = running_side(pair, survivor)
    for cmd, args in (SECONDARY_FAILOVER if survivor == "secondary" else PRIMARY_FAILOVER):
        say(survivor, cmd, args)
        if cmd == "human-monitor-command":
            await side.hmp(args["command-line"])
        else:
            await side.ex(cmd, args)
