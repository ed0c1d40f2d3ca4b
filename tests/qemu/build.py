"""Build the tiny COLO guest and the BQL shim (tools/qemu) into a directory.

    python tests/qemu/build.py OUTDIR     -> OUTDIR/guest.elf, OUTDIR/bqlshim.so

The guest needs only binutils (`as --32`, `ld -m elf_i386`); the shim needs gcc.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "qemu"


class BuildError(RuntimeError):
    pass


def missing_tools() -> str | None:
    """Why the build cannot run here, or None."""
    for tool in ("as", "ld", "gcc"):
        if shutil.which(tool) is None:
            return f"{tool} not found (run .ci/qemu-setup.sh)"
    return None


def _run(cmd: list[str]) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed: {res.stderr.strip()[-500:]}")


def build(outdir) -> dict[str, Path]:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    why = missing_tools()
    if why:
        raise BuildError(why)
    _run(["as", "--32", str(TOOLS / "guest.S"), "-o", str(out / "guest.o")])
    _run(["ld", "-m", "elf_i386", "--no-warn-rwx-segments", "-T", str(TOOLS / "linker.ld"),
          "-o", str(out / "guest.elf"), str(out / "guest.o")])
    _run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-o", str(out / "bqlshim.so"),
          str(TOOLS / "bqlshim.c"), "-ldl"])
    return {"guest": out / "guest.elf", "shim": out / "bqlshim.so"}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: build.py OUTDIR")
    try:
        print(build(sys.argv[1]))
    except BuildError as exc:
        sys.exit(f"build failed: {exc}")
