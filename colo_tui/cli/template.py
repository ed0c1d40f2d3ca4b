"""`colo template` and `colo fuzz-secondary`: the model primary against a real QEMU
7.2 secondary.

    colo template /work/shared/qemu-colo/run1 [--out FILE] [--json]
    colo node primary --template [FILE] --guest model --connect HOST:PORT
    colo fuzz-secondary [--template FILE] [--kernel guest.elf] [--case NAME]... [--json]
    colo fuzz-secondary --list
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

from colo_tui.session.argtypes import int_in, nonempty_path, number_in
from colo_tui.session.words import plural

#: a case's checkpoints: its faults land on checkpoint 2; at the runner's 300 ms
#: x-checkpoint-delay the most takes about 50 minutes, within the longest --bound-s
FUZZ_CHECKPOINTS = (2, 10_000)
#: --bound-s: a case's longest run, in seconds (the polling that watches a case ticks every
#: 0.2 s; 0, a negative, nan or inf bound made every case a 'hang' or none end)
FUZZ_BOUND_S = (1.0, 3600.0)


def case_checkpoints(text: str) -> int:
    """An argparse type: fuzz-secondary's --checkpoints, 2 … 10,000."""
    value = _any_int(text)            # not a number: the number grammar's own message
    lo, hi = FUZZ_CHECKPOINTS
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"the value must be between {lo} and {hi}, not "
                                         f"{value} (a case's faults land on checkpoint 2)")
    return value


case_checkpoints.__name__ = "integer"
_any_int = int_in(-(1 << 63), (1 << 63) - 1)


def _fail(msg: str, code: int = 2) -> int:
    print(f"colo: error: {msg}", file=sys.stderr)
    return code


def add_parsers(subparsers) -> None:
    t = subparsers.add_parser("template", help="make a guest template from a real QEMU 7.2 "
                              "COLO capture (for `colo node primary --template`)")
    t.add_argument("capture", type=nonempty_path,
                   help="a .pcap/.pcapng, a run directory or a forward .bin")
    t.add_argument("--out", type=nonempty_path, metavar="FILE",
                   help="where to write it (default: the user's data directory, "
                        "colo-testbed/templates/guest.colotpl)")
    t.add_argument("--force", action="store_true",
                   help="overwrite an existing --out FILE (never the capture itself); the "
                        "default file is the user's one template and is always replaced")
    t.add_argument("--json", action="store_true", help="print what the template holds as JSON")
    t.set_defaults(func=cmd_template)

    f = subparsers.add_parser("fuzz-secondary", help="feed a fresh real QEMU 7.2 secondary "
                              "per case from the model primary, malformed, and report what "
                              "QEMU did")
    f.add_argument("--template", type=nonempty_path, metavar="FILE",
                   help="the guest template (default: the user's, from `colo template`)")
    f.add_argument("--kernel", type=nonempty_path, metavar="FILE",
                   help="the guest kernel the secondary starts with (default: the "
                        "template's -kernel)")
    f.add_argument("--shim", type=nonempty_path, metavar="SO",
                   help="LD_PRELOAD for QEMU (e.g. the BQL shim)")
    f.add_argument("--case", action="append", metavar="NAME", help="run only these cases")
    f.add_argument("--list", action="store_true", help="list the cases and exit")
    f.add_argument("--bound-s", type=number_in(*FUZZ_BOUND_S), default=25.0, metavar="S",
                   help="the longest a case may take, in seconds (1 … 3600, default 25)")
    f.add_argument("--checkpoints", type=case_checkpoints, default=3, metavar="N",
                   help="checkpoints a case asks for (2 … 10,000, default 3; a fault "
                        "lands on #2)")
    f.add_argument("--workdir", type=nonempty_path, metavar="DIR",
                   help="keep each case's logs here")
    f.add_argument("--json", action="store_true", help="print the findings as JSON")
    f.set_defaults(func=cmd_fuzz)


def cmd_template(args) -> int:
    """--out goes through protocol.record.outfile like every one-shot writer: it never
    replaces the capture it reads (the template used to be written over a
    `--out CAPTURE`, a read-only file too, as root) nor an existing file without --force."""
    from colo_tui.cli.qemu import _capture_files
    from protocol.errors import ColoError, OutputFileError
    from protocol.guest.template import TemplateError
    from protocol.record.outfile import check_target, write_bytes
    from protocol.record.template_source import (
        default_template_path,
        template_from_capture,
    )
    out = Path(args.out) if args.out else default_template_path()
    force = args.force or not args.out
    sources = _capture_files(args.capture)
    try:
        check_target(out, inputs=sources, force=force)
    except OutputFileError as exc:
        return _fail(str(exc), 2)
    try:
        tpl = template_from_capture(args.capture)
        if not args.out:        # the user's data directory may not exist yet
            out.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(out, tpl.to_bytes(), inputs=sources, force=force)
        path = out
    except (ColoError, TemplateError) as exc:
        return _fail(str(exc), 1)
    except OSError as exc:
        return _fail(f"cannot write the template: {exc.strerror or exc}", 1)
    info = tpl.summary() | {"path": str(path)}
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        print(f"guest template {path}: {info['machine']}, "
              f"{plural(len(tpl.blocks), 'RAM block')}, initial migration "
              f"{info['initial_bytes']} bytes, {plural(len(tpl.blobs), 'device blob')}; "
              f"start the secondary with: {' '.join(tpl.qemu_args)}")
    return 0


def cmd_fuzz(args) -> int:
    from protocol.drivers import fuzz_secondary as fz
    from protocol.guest.template import TemplateError
    if args.list:
        for c in fz.cases():
            how = f"--mutate {c.mutate}" if c.mutate else (f"--fault {c.fault}" if c.fault
                                                           else "")
            print(f"{c.name:22} {c.what}  [{how}]" if how else f"{c.name:22} {c.what}")
        return 0
    made = not args.workdir
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="colo-fuzz-"))
    code = 1
    with _stoppable() as stopped:
        code = _fuzz(args, fz, TemplateError, work, made)
    if stopped:
        if work.is_dir() and any(work.iterdir()):
            print(f"colo fuzz-secondary: stopped; the logs of the cases so far are in {work}",
                  file=sys.stderr)
        return stopped[0]
    return code


@contextlib.contextmanager
def _stoppable():
    """ctrl+c, SIGTERM and SIGHUP end the run through the cases' finally blocks (their
    QEMUs are killed and waited for); yields a list that gets 128 + the signal."""
    import signal

    def to_exit(signum, _frame):
        raise SystemExit(128 + signum)

    got: list[int] = []
    before = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        before[sig] = signal.signal(sig, to_exit)
    try:
        yield got
    except KeyboardInterrupt:
        got.append(128 + signal.SIGINT)
    except SystemExit as exc:
        if not isinstance(exc.code, int) or exc.code <= 128:
            raise
        got.append(exc.code)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _fuzz(args, fz, TemplateError, work: Path, made: bool) -> int:  # noqa: N803
    # a file it cannot use (the template, a kernel, QEMU itself) is a failure, exit 1,
    # as a missing input is for every command (decode, replay, import, repl -f …);
    # only what does not follow the grammar (an unknown --case) is a usage error, 2
    ran = False
    try:
        if args.kernel and (why := _not_a_file(args.kernel)):
            return _fail(f"cannot read the guest kernel {args.kernel} (--kernel): {why}", 1)
        runner = fz.Runner(args.template, workdir=work, kernel=args.kernel, shim=args.shim,
                           bound_s=args.bound_s, checkpoints=args.checkpoints)
        kernel = runner.kernel or _template_kernel(runner.tpl.qemu_args)
        if kernel and (why := _not_a_file(kernel)):
            return _fail(f"the guest kernel {kernel} (the template's -kernel) cannot be "
                         f"read here: {why}: give --kernel FILE (python tests/qemu/build.py "
                         "DIR builds guest.elf)", 1)
        outcomes = fz.run_cases(runner, args.case)
        ran = True
    except (TemplateError, FileNotFoundError) as exc:
        return _fail(str(exc), 1)
    except ValueError as exc:           # an unknown --case NAME
        return _fail(str(exc))
    finally:
        if made and not ran:          # refused before any case: no empty temp directory
            with contextlib.suppress(OSError):        # (one a case wrote to stays)
                work.rmdir()
    if args.json:
        print(fz.dumps(outcomes))
    else:
        for o in outcomes:
            first = o.stderr.splitlines()[0] if o.stderr else ""
            print(f"{o.case:22} {o.outcome:8} ckpts={o.checkpoints} "
                  f"{o.signal or ''} {first}")
        print(f"(logs in {work})")
    return 0


def _not_a_file(path: str) -> str | None:
    """Why ``path`` is no file to read ('No such file or directory', 'Is a directory'), or
    None when it is one."""
    import errno
    import os
    p = Path(path)
    if p.is_file():
        return None
    return os.strerror(errno.EISDIR if p.is_dir() else errno.ENOENT)


def _template_kernel(args: list[str]) -> str | None:
    return args[args.index("-kernel") + 1] if "-kernel" in args[:-1] else None


def main(argv=None) -> int:     # pragma: no cover - `colo` is the entry point
    p = argparse.ArgumentParser(prog="colo")
    add_parsers(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    return args.func(args)
