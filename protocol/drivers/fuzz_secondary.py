"""Drive a real QEMU 7.2 secondary with the testbed's model primary, and fuzz it.

One case = a fresh real secondary (``qemu-system-x86_64`` with the template's
machine options, ``-incoming defer``, x-colo on, ``migrate-incoming``) fed by
``colo node primary --template`` (its RAM pages from the model, device blobs from
the template), optionally malformed by a `protocol.guest.template` mutation
(``--mutate``) or by the fault grammar through ``colo proxy --fault``.  Every wait
is bounded; the outcome says what QEMU did:

* ``colo``: the secondary reached COLO and took the checkpoints (query-colo-status
  mode secondary, the node's committed checkpoints);
* ``error``: QEMU stayed up but left COLO/migration (its stderr line is kept);
* ``exit``: QEMU exited with a status; ``crash``: it died of a signal;
* ``hang``: no checkpoint progress and no answer on QMP within the bound.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from protocol.drivers.qmpclient import QmpClient, QmpClientError

CAP_XCOLO = {"capabilities": [{"capability": "x-colo", "state": True}]}
#: after its QMP socket breaks, how long QEMU gets to exit before it is a hang
QMP_GONE_GRACE_S = 5.0


@dataclass
class Case:
    name: str
    what: str
    mutate: str | None = None
    fault: str | None = None
    mutate_at: int = 2


@dataclass
class Outcome:
    case: str
    what: str
    outcome: str = ""
    checkpoints: int = 0
    colo_status: dict | None = None
    migrate_status: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    stderr: str = ""
    node: str = ""
    seconds: float = 0.0
    command: str = ""
    extra: dict = field(default_factory=dict)


def _free_port() -> int:
    from protocol.drivers.ports import free_ports
    return free_ports(1)[0]


def cases() -> list[Case]:
    from protocol.guest.template import MUTATIONS
    out = [Case("baseline", "no fault: the model primary's checkpoints", None)]
    out += [Case(k, v, mutate=k) for k, v in MUTATIONS.items()]
    out += [
        Case("size-huge", "vmstate-size says 2^40 (far more than the blob)",
             fault="value=1099511627776@vmstate-size#2"),
        Case("size-zero", "vmstate-size says 0", fault="value=0@vmstate-size#2"),
        Case("size-short", "vmstate-size 16 bytes short of the blob",
             fault="value=14351@vmstate-size#2"),
        Case("truncate-blob", "half the device blob, then the connection closes",
             fault="truncate@device-state#2"),
        Case("corrupt-ram", "the RAM part's first bytes flipped", fault="corrupt@ram#2"),
        Case("truncate-ram", "half the RAM part, then the connection closes",
             fault="truncate@ram#2"),
        Case("bad-opcode", "vmstate-send goes out with id 99", fault="opcode=99@vmstate-send#2"),
        Case("unexpected-msg", "vmstate-size instead of checkpoint-request",
             fault="unexpected=vmstate-size@checkpoint-request#2"),
    ]
    return out


class Runner:
    def __init__(self, template: str | Path, *, workdir: Path, kernel: str | None = None,
                 shim: str | None = None, qemu: str | None = None, python: str | None = None,
                 bound_s: float = 25.0, checkpoints: int = 3, delay_ms: int = 300) -> None:
        from protocol.record.template_source import load_template
        self.template_path = str(template)
        self.tpl = load_template(template)
        self.workdir = workdir
        self.kernel = kernel
        self.shim = shim
        self.qemu = qemu or shutil.which("qemu-system-x86_64")
        if self.qemu is None:
            raise FileNotFoundError("qemu-system-x86_64 not found (Debian: qemu-system-x86)")
        self.python = python or sys.executable
        self.bound_s = bound_s
        self.checkpoints = checkpoints
        self.delay_ms = delay_ms

    def qemu_cmd(self, qmp: Path) -> list[str]:
        args = list(self.tpl.qemu_args)
        if self.kernel:
            if "-kernel" in args:
                args[args.index("-kernel") + 1] = self.kernel
            else:
                args += ["-kernel", self.kernel]
        return [self.qemu, "-name", "secondary", *args, "-qmp",
                f"unix:{qmp},server=on,wait=off", "-incoming", "defer"]

    def node_cmd(self, case: Case, port: int) -> list[str]:
        cmd = [self.python, "-m", "colo_tui", "node", "primary", "--connect",
               f"127.0.0.1:{port}", "--template", self.template_path, "--guest", "model",
               "--checkpoint-delay", str(self.delay_ms), "--checkpoints",
               str(self.checkpoints), "--log-json", "--progress-timeout-ms", "10000"]
        if case.mutate:
            cmd += ["--mutate", case.mutate, "--mutate-at", str(case.mutate_at)]
        return cmd

    def run(self, case: Case) -> Outcome:
        d = self.workdir / case.name
        d.mkdir(parents=True, exist_ok=True)
        qmp_path = d / "secondary.qmp"
        port = _free_port()
        env = dict(os.environ)
        if self.shim:
            env["LD_PRELOAD"] = self.shim
        qcmd = self.qemu_cmd(qmp_path)
        t0 = time.monotonic()
        out = Outcome(case.name, case.what)
        errf = open(d / "secondary.stderr", "w+")  # noqa: SIM115
        qemu = subprocess.Popen(qcmd, env=env, stdin=subprocess.DEVNULL, stdout=errf,  # noqa: PLW1509
                                stderr=subprocess.STDOUT, preexec_fn=_die_with_us)
        procs: list[subprocess.Popen] = []
        q = None
        try:
            q = self._qmp(qemu, qmp_path)
            q.execute("migrate-set-capabilities", CAP_XCOLO)
            q.execute("migrate-incoming", {"uri": f"tcp:127.0.0.1:{port}"})
            target = port
            pcmd = None
            if case.fault:
                target = _free_port()
                pcmd = [self.python, "-m", "colo_tui", "proxy", "--listen",
                        f"127.0.0.1:{target}", "--connect", f"127.0.0.1:{port}",
                        "--fault", case.fault, "--once"]
                procs.append(subprocess.Popen(pcmd, stdout=open(d / "proxy.out", "w"),  # noqa: SIM115, PLW1509
                                              stderr=subprocess.STDOUT, env=os.environ.copy(),
                                              preexec_fn=_die_with_us))
                self._wait_listening(d / "proxy.out", procs[-1])
            ncmd = self.node_cmd(case, target)
            node_log = d / "node.out"
            procs.append(subprocess.Popen(ncmd, stdout=open(node_log, "w"),  # noqa: SIM115, PLW1509
                                          stderr=subprocess.STDOUT, env=os.environ.copy(),
                                          preexec_fn=_die_with_us))
            out.command = self._repro(qcmd, pcmd, ncmd, port, target)
            self._watch(out, qemu, procs[-1], q, node_log, d / "secondary.stderr")
        except QmpClientError as exc:
            out.outcome = out.outcome or "error"
            out.extra["qmp"] = str(exc)
        finally:
            out.seconds = round(time.monotonic() - t0, 2)
            rc = qemu.poll()
            if rc is None and out.outcome == "":
                out.outcome = "hang"
            if q is not None:
                q.close()
            for p in [*procs, qemu]:
                if p.poll() is None:
                    p.kill()
                p.wait(timeout=10)
            if rc is not None:
                out.exit_code = rc if rc >= 0 else None
                out.signal = signal.Signals(-rc).name if rc < 0 else None
                if rc < 0 and rc != -signal.SIGKILL:
                    out.outcome = "crash"
                elif out.outcome in ("", "hang", "error"):
                    out.outcome = "exit"
            errf.seek(0)
            out.stderr = _tail(errf.read())
            errf.close()
            out.checkpoints = max(out.checkpoints, _committed(d / "node.out"))
            if (d / "node.out").exists():
                out.node = _node_summary((d / "node.out").read_text(errors="replace"))
        return out

    def _qmp(self, qemu: subprocess.Popen, path: Path) -> QmpClient:
        deadline = time.monotonic() + 20
        while True:
            if qemu.poll() is not None:
                raise QmpClientError(f"QEMU exited ({qemu.returncode}) before its QMP socket")
            try:
                return QmpClient(f"unix:{path}", timeout=5, name="secondary")
            except (QmpClientError, OSError):
                if time.monotonic() > deadline:
                    raise QmpClientError("no QMP socket within 20 s") from None
                time.sleep(0.05)       # polling: another process's socket

    @staticmethod
    def _wait_listening(log: Path, proc: subprocess.Popen) -> None:
        """Until the proxy says it listens (a probe connection would be taken as the
        COLO connection)."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            if "listening" in log.read_text(errors="replace"):
                return
            time.sleep(0.05)           # polling: another process's log file
        raise QmpClientError(f"the proxy did not listen: {log.read_text()[-300:]}")

    def _watch(self, out: Outcome, qemu, node, q: QmpClient, node_log: Path,
               errlog: Path) -> None:
        """Poll until the node finished its checkpoints, QEMU exited or the bound;
        a stall after an error QEMU printed is "refused", without one "hang"."""
        deadline = time.monotonic() + self.bound_s
        last_progress = time.monotonic()
        seen = -1
        while time.monotonic() < deadline:
            if qemu.poll() is not None:
                return
            try:
                st = q.execute("query-colo-status")
                mig = q.execute("query-migrate")
            except QmpClientError as exc:
                out.extra["qmp"] = str(exc)
                # a QMP socket that breaks is most often QEMU dying: an abort (a
                # refused allocation) closes it before the process can be reaped.
                # Give the exit that moment before calling it a hang.
                try:
                    qemu.wait(timeout=QMP_GONE_GRACE_S)
                except subprocess.TimeoutExpired:
                    out.outcome = "hang"
                return
            out.colo_status = st
            out.migrate_status = mig.get("status")
            n = _committed(node_log)
            if n != seen:
                seen, last_progress = n, time.monotonic()
            out.checkpoints = n
            events = [e.get("event") for e in q.events()]
            out.extra.setdefault("events", []).extend(events)
            if node.poll() is not None:
                # the node ended (its checkpoints done, or COLO failed on its side)
                if st.get("mode") == "secondary" and n >= self.checkpoints:
                    out.outcome = "colo"
                else:
                    out.outcome = "refused" if _errors(errlog) else "error"
                return
            if mig.get("status") == "failed":
                out.outcome = "error"
                return
            # before the first checkpoint (the node's start, the 1.3 MB initial
            # migration on a busy machine) only the case's bound applies
            if n > 0 and time.monotonic() - last_progress > max(5.0, 10 * self.delay_ms / 1000):
                out.outcome = "refused" if _errors(errlog) else "hang"
                out.extra["stalled_s"] = round(time.monotonic() - last_progress, 1)
                return
            time.sleep(0.2)            # polling QMP: no event says a checkpoint loaded
        out.outcome = "hang"

    @staticmethod
    def _repro(qcmd, pcmd, ncmd, port, target) -> str:
        import shlex
        parts = [shlex.join(qcmd) + " &",
                 "# then on its QMP: migrate-set-capabilities x-colo=on; migrate-incoming "
                 f"tcp:127.0.0.1:{port}"]
        if pcmd:
            parts.append(shlex.join(pcmd) + " &")
        parts.append(shlex.join(ncmd))
        return "\n".join(parts)


#: what 7.2 prints when the primary goes away: not a sign that it refused a stream
_BENIGN = ("Can't receive COLO message",)


def _errors(errlog: Path) -> list[str]:
    try:
        text = errlog.read_text(errors="replace")
    except OSError:
        return []
    return [ln for ln in text.splitlines() if ln.strip() and not any(b in ln for b in _BENIGN)]


def _committed(node_log: Path) -> int:
    n = 0
    try:
        text = node_log.read_text(errors="replace")
    except OSError:
        return 0
    for line in text.splitlines():
        if '"checkpoint"' in line and '"commit"' in line:
            n += 1
    return n


def _node_summary(text: str) -> str:
    errs = [ln for ln in text.splitlines() if '"error"' in ln or "colo: error" in ln]
    return _tail(errs[-1] if errs else text.splitlines()[-1] if text.strip() else "", 300)


def _die_with_us() -> None:     # runs in the child between fork and exec
    """PR_SET_PDEATHSIG: a case's QEMU, proxy and node die with the fuzzer, however it
    ends (a SIGTERM or SIGKILL of `colo fuzz-secondary` left the QEMU running); not
    on Linux, the finally of Runner.run only."""
    from protocol.sim.pdeath import die_with_parent
    die_with_parent()


def _tail(text: str, n: int = 600) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join(lines[-6:])[-n:]


def run_cases(runner: Runner, names: list[str] | None = None) -> list[Outcome]:
    chosen = [c for c in cases() if not names or c.name in names]
    unknown = set(names or ()) - {c.name for c in chosen}
    if unknown:
        raise ValueError(f"unknown case(s) {sorted(unknown)}; see --list")
    return [runner.run(c) for c in chosen]


def to_json(outcomes: list[Outcome]) -> dict:
    return {"format": "colo-fuzz-secondary", "version": 1,
            "cases": [asdict(o) for o in outcomes]}


def dumps(outcomes: list[Outcome]) -> str:
    return json.dumps(to_json(outcomes), indent=1)


def markdown(outcomes: list[Outcome], template: str = "TEMPLATE",
             kernel: str = "guest.elf") -> str:
    """The findings table (docs/fuzz-secondary.md): one row per case, with the
    command that reproduces it."""
    rows = ["| case | what the primary sent | QEMU 7.2 secondary did | outcome | "
            "checkpoints loaded | reproduce |", "|---|---|---|---|---|---|"]
    for o in outcomes:
        said = "; ".join(ln.replace("qemu-system-x86_64: ", "").replace("|", "/")
                         for ln in o.stderr.splitlines()[-3:]) or "(nothing)"
        if o.signal:
            said += f" — killed by {o.signal}"
        rows.append(f"| `{o.case}` | {o.what} | {said} | **{o.outcome}** | "
                    f"{o.checkpoints} | `colo fuzz-secondary --template {template} "
                    f"--kernel {kernel} --case {o.case}` |")
    return "\n".join(rows) + "\n"
