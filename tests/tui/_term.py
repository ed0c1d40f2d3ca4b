"""The real app in a real terminal: a tmux session that keeps its pane after the
app exits, so a traceback and the exit status stay readable."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = [Path(os.environ["COLO_QEMU_RUN1"]).parent] if os.environ.get("COLO_QEMU_RUN1") \
    else [ROOT.parent / "shared" / "qemu-colo", Path("/work/shared/qemu-colo")]


def run1_dir() -> Path | None:
    for base in SHARED:
        if (base / "run1" / "capture.pcap").exists():
            return base / "run1"
    return None


ESC_GAP_S = 0.25


def wait(predicate, timeout: float = 20.0, every: float = 0.1) -> bool:
    """Poll (the screen of a tmux pane: another process, no event to await)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


def tmux_new_session(args: list[str], attempts: int = 5, tmux: tuple = ("tmux",)) -> None:
    """`tmux new-session ARGS`.  Starting one while the previous test's server is
    exiting (its last session just killed) fails with "server exited unexpectedly"
    (seen in CI): that is retried, a few times; any other failure is raised."""
    for k in range(attempts):
        r = subprocess.run([*tmux, "new-session", *args], capture_output=True, text=True)
        if r.returncode == 0:
            return
        if "server exited unexpectedly" not in r.stderr or k == attempts - 1:
            raise subprocess.CalledProcessError(r.returncode, r.args, r.stdout, r.stderr)
        time.sleep(0.2)


class Term:
    """`python -m colo_tui.cli.tui ARGS` in a detached tmux pane of the given size."""

    def __init__(self, args: list[str], *, size=(120, 40), env: dict | None = None,
                 module: str = "colo_tui.cli.tui", own_server: bool = False) -> None:
        """`own_server`: the pane's tmux server is this terminal's alone (its own
        socket), so `hang_up` can kill it like a closed terminal window."""
        self.name = f"colo-test-{uuid.uuid4().hex[:8]}"
        self.tmux = ("tmux", "-L", self.name) if own_server else ("tmux",)
        # tmux starts the app with its server's environment: pass the user-file
        # locations the suite set (tests/conftest.py) explicitly
        env = {**{k: os.environ[k] for k in ("COLO_RECORDINGS_DIR", "COLO_CONFIG")
                  if k in os.environ}, **(env or {})}
        exports = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items())
        cmd = (f"cd {shlex.quote(str(ROOT))} && env TERM=xterm-256color {exports} "
               f"{shlex.quote(sys.executable)} -m {module} "
               + " ".join(shlex.quote(a) for a in args)
               + "; echo \"COLO-EXIT=$?\"; sleep 120")
        tmux_new_session(["-d", "-s", self.name, "-x", str(size[0]), "-y", str(size[1]),
                          cmd], tmux=self.tmux)

    def screen(self) -> str:
        return subprocess.run([*self.tmux, "capture-pane", "-t", self.name, "-p", "-S", "-200"],
                              capture_output=True, text=True).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def escape(self) -> None:
        """Escape alone.  A terminal app reads ESC followed at once by a key as alt+key,
        so a lone escape needs a pause after it (the terminal protocol's ambiguity,
        not a wait for the app)."""
        self.keys("Escape")
        time.sleep(ESC_GAP_S)

    def pid(self) -> int:
        """The app's process (the pane's shell's child)."""
        shell = int(subprocess.run([*self.tmux, "display-message", "-p", "-t", self.name,
                                    "#{pane_pid}"], capture_output=True, text=True,
                                   check=True).stdout)
        out = subprocess.run(["pgrep", "-P", str(shell)], capture_output=True, text=True)
        kids = [int(x) for x in out.stdout.split()]
        for k in kids:
            if "colo_tui" in Path(f"/proc/{k}/cmdline").read_bytes().decode(errors="replace"):
                return k
        raise LookupError(f"no app process under the pane's shell {shell} ({kids})")

    def exit_status(self) -> int | None:
        for line in self.screen().splitlines():
            if line.startswith("COLO-EXIT="):
                return int(line.split("=", 1)[1])
        return None

    def hang_up(self) -> None:
        """Close the terminal under the app: its (own) tmux server dies, the pane's
        pty with it; the kernel sends the app SIGHUP and SIGCONT."""
        assert len(self.tmux) > 1, "hang_up needs Term(own_server=True)"
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-session", "-t", self.name], capture_output=True)
