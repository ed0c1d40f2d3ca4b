"""argparse types shared by every subcommand: a bad value is a one-line usage error.

Whole numbers follow one grammar (protocol.core.grammar): ASCII decimal digits, in
range; ``0x10``, ``1_000`` and ``٣`` are refused rather than read as numbers.
"""
from __future__ import annotations

import argparse

from protocol.argtypes import int_in, number_in
from protocol.core.grammar import SEED_MAX
from protocol.errors import UsageError


def add_guest_argument(p: argparse.ArgumentParser) -> None:
    """`--guest` of the two interactive UIs: the guest model unless told otherwise."""
    p.add_argument("--guest", default="model", choices=("model", "null"),
                   help="model (default): RAM, devices, disk and packets, so the heat map, "
                        "the buffered packets and `show ram|packets|disk` have something to "
                        "show; null: the control protocol alone")


class _Workloads:
    """The workload names as argparse choices, read from the guest model (which needs
    numpy) only when a value is checked or a subcommand's help is shown: `colo
    --version`, `decode` and `run --guest null` never import numpy."""

    def _names(self) -> list[str]:
        from protocol.guest.workload import WORKLOADS
        return sorted(WORKLOADS)

    def __contains__(self, name) -> bool:
        return name in self._names()

    def __iter__(self):
        return iter(self._names())


def workloads() -> _Workloads:
    """`--workload`'s choices (every guest's: a bad name is refused whatever --guest)."""
    return _Workloads()


nonneg_int = int_in(0)
positive_int = int_in(1)
#: seeds: what random.Random and the recordings' header carry (protocol.core.grammar)
seed_int = int_in(0, SEED_MAX)


#: milliseconds and the like: up to about 24.8 days, as the fault grammar's MS
nonneg_float = number_in(0.0, float((1 << 31) - 1))
fraction = number_in(0.0, 1.0)


#: x-checkpoint-delay in ms: a uint32 in QEMU (protocol.sim.config.MAX_CHECKPOINT_DELAY_MS;
#: `colo run` and the UIs check theirs with check_checkpoint_delay, the guest model's
#: bound too); what a real QEMU or a node's QMP refuses is refused up front
checkpoint_delay_ms = int_in(0, 0xFFFFFFFF)
#: … where 0 (checkpoint back to back) is no periodic interval
positive_checkpoint_delay_ms = int_in(1, 0xFFFFFFFF)

# session settings a recording's header carries, in the ranges its reader takes
# (protocol.record.schema.Params; not imported here: it loads msgspec): beyond them
# `colo run --record` and the UIs' recordings wrote files `colo replay` refused
#: --arbiter-ms: how long the arbiter takes to act (--no-arbiter: none at all)
arbiter_ms = number_in(1.0, 1e9)
#: --rate: the workload's rate
workload_rate = number_in(0.0, 1e6)
#: --ram-mib: the guest model's RAM (64 GiB at most)
ram_mib = int_in(1, 65536)
#: --liveness-checkpoints: the checkpoints that must commit after the last fault
liveness_checkpoints = int_in(0, 10_000)
#: --latency-ms / --bytes-per-ms: the simulated migration link
link_latency_ms = number_in(0.0, 1e9)
link_bytes_per_ms = number_in(1.0, 1e15)


def client_every_ms(text: str) -> float:
    """An argparse type: how often the guest model's client asks, in ms: 0 (never) or
    at least 1 (as a recording's header allows: more often floods the simulation)."""
    value = nonneg_float(text)
    if 0 < value < 1:
        raise argparse.ArgumentTypeError(f"a client request every {text} ms is too often "
                                         "(0 for none, or at least 1)")
    return value


client_every_ms.__name__ = "number"


def path_of(what: str):
    """An argparse type: a path, `what` naming it in the refusal of an empty one (''
    would read as the option not given, or as the current directory) or of one with
    a NUL byte (no file can have that name: open() raised ValueError, a traceback and
    exit 1 where a bad path is a usage error, 2)."""
    def parse(text: str) -> str:
        if not text:
            raise argparse.ArgumentTypeError(f"an empty path (give {what})")
        if "\0" in text:
            raise argparse.ArgumentTypeError(
                f"{text!r} has a NUL byte, which no file name can hold (give {what})")
        return text
    parse.__name__ = "path"
    return parse


#: a file or directory name
nonempty_path = path_of("a file or directory name")


def fault_spec(text: str) -> str:
    """A fault spec (KIND[=ARG]@POINT[#N]), checked against the grammar at parse time."""
    from protocol.core import faults
    try:
        faults.parse(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def host_port(text: str) -> str:
    """HOST:PORT (an ASCII host name or address, a decimal port 0 … 65535)."""
    from protocol.drivers.node import parse_hostport
    if not text.isascii():
        raise argparse.ArgumentTypeError(f"bad address {text!r}: use HOST:PORT in ASCII")
    try:
        parse_hostport(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def qmp_address(text: str) -> str:
    """A QMP socket to attach to: unix:PATH, tcp:HOST:PORT or HOST:PORT, as the QMP
    client reads it (protocol.drivers.qmpclient.parse_client_address)."""
    from protocol.drivers.qmpclient import parse_client_address
    try:
        parse_client_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


qmp_address.__name__ = "address"


def _qmp_socket(text: str) -> tuple:
    """The socket a QMP address names, for comparing two spellings of it: a unix
    path resolved, a tcp host in lower case (``:4444`` is ``tcp:127.0.0.1:4444``)."""
    import os

    from protocol.drivers.qmpclient import parse_client_address
    kind, target = parse_client_address(text)
    if kind == "unix":
        return kind, os.path.realpath(target)
    host, port = target
    return kind, host.lower(), port


class QmpPair(argparse.Action):
    """`--attach QMP_PRIMARY QMP_SECONDARY` (each a `qmp_address`): two sockets, not one
    named twice (the one process behind it cannot be both sides)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        primary, secondary = values
        if _qmp_socket(primary) == _qmp_socket(secondary):
            raise argparse.ArgumentError(
                self, f"{primary!r} and {secondary!r} are the same QMP socket: give the "
                      "primary's, then the secondary's")
        setattr(namespace, self.dest, values)


def retype(p: argparse.ArgumentParser, option: str, type_) -> None:
    """Give an option another module added (e.g. the shared live options) a type."""
    action = p._option_string_actions.get(option)       # noqa: SLF001 - argparse's table
    if action is not None:
        action.type = type_


def record_target_refused(args) -> int | None:
    """`--record FILE` of a long-running command, checked before it starts: an existing
    file without --force is a usage error (2, said on stderr); None when it may go on."""
    if not getattr(args, "record", None):
        return None
    import sys

    from protocol.errors import ColoError
    from protocol.record.outfile import check_target
    try:
        check_target(args.record, force=getattr(args, "force", False))
    except ColoError as exc:
        print(f"colo: error: --record: {exc}", file=sys.stderr)
        return 2
    return None
