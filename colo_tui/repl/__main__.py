"""``python -m colo_tui.repl``: the same as ``colo repl``."""
from __future__ import annotations

import argparse
import sys

from colo_tui.repl import add_arguments, run_repl


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="colo repl", description="COLO testbed REPL")
    add_arguments(p)
    return run_repl(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
