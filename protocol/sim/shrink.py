"""Shrinking a failing swarm world to a minimal reproducer, with hypothesis.

The search space is built around the failing configuration: every option is
either its simple value or the failing one (hypothesis shrinks toward the
simple value), the session length and each fault's checkpoint are integers
from 1 up to the failing value, and each fault is kept or dropped.
`hypothesis.find` looks for a world in that space that fails the same way
(the same invariant, a hang or a crash) and shrinks it; the result is written
as a recording together with the one-line ``colo run …`` that reproduces it.
"""
from __future__ import annotations

import shlex
from dataclasses import replace

from protocol.core import faults as fl
from protocol.sim.config import SimConfig
from protocol.sim.swarm import failure_of, run_config

#: option -> its simple value (what a shrink moves toward)
SIMPLE = {"mode": "periodic", "guest": "null", "ram_mib": 16, "workload": "toggle",
          "rate": None, "xbzrle": False, "checkpoint_delay_ms": None, "jitter_ms": 0.0,
          "load_ms": 0.0, "save_ms": 0.0, "arbiter": True, "arbiter_ms": 1000.0,
          "client_every_ms": 0.0, "divergence": 0.0, "liveness_checkpoints": 0,
          "latency_ms": SimConfig.latency_ms, "bytes_per_ms": SimConfig.bytes_per_ms}


def strategy(cfg: SimConfig):
    """Worlds no bigger than `cfg`: each option simple or as in `cfg`."""
    from hypothesis import strategies as st
    options = {}
    for name, simple in SIMPLE.items():
        value = getattr(cfg, name)
        options[name] = st.just(value) if value == simple else st.sampled_from((simple, value))
    faults = [fl.parse(s) for s in cfg.faults]

    def one_fault(f):
        n = st.just(1) if f.point == "checkpoint-ready" else st.integers(1, f.checkpoint)
        return st.tuples(st.booleans(), n).map(
            lambda kn, f=f: str(replace(f, checkpoint=kn[1])) if kn[0] else None)

    def build(d):
        plan = [s for s in d.pop("faults") if s is not None]
        return replace(cfg, faults=plan, **d)

    return st.fixed_dictionaries({**options, "checkpoints": st.integers(1, cfg.checkpoints),
                                  "faults": st.tuples(*map(one_fault, faults))
                                  .map(list)}).map(build)


def shrink(cfg: SimConfig, failure: str | None = None, max_examples: int = 150) -> dict:
    """The smallest world found that fails like `cfg` does.  Returns {"config": SimConfig,
    "failure": ..., "shrunk": bool, "tried": n}; "shrunk" is False when no smaller world
    failed the same way (the original is returned)."""
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis.errors import NoSuchExample
    want = failure or failure_of(run_config(cfg))
    if want is None:
        raise ValueError(f"seed {cfg.seed}: this configuration does not fail")
    tried = 0

    def fails(candidate: SimConfig) -> bool:
        nonlocal tried
        tried += 1
        try:
            return failure_of(run_config(candidate)) == want
        except Exception:          # noqa: BLE001 - an invalid candidate is not a repro
            return False

    conf = settings(max_examples=max_examples, derandomize=True, database=None,
                    deadline=None, phases=(Phase.generate, Phase.shrink),
                    suppress_health_check=list(HealthCheck))
    try:
        small = find(strategy(cfg), fails, settings=conf)
        return {"config": small, "failure": want, "shrunk": True, "tried": tried}
    except NoSuchExample:
        return {"config": cfg, "failure": want, "shrunk": False, "tried": tried}


def run_command(cfg: SimConfig) -> str:
    """The one-line `colo run …` that runs `cfg` (the options of `colo run`)."""
    default = SimConfig()
    args = ["colo", "run", "--dialect", cfg.dialect, "--mode", cfg.mode,
            "--seed", str(cfg.seed), "--checkpoints", str(cfg.checkpoints)]
    for spec in cfg.faults:
        args += ["--fault", spec]
    opt = [("--checkpoint-delay", cfg.checkpoint_delay_ms, None),
           ("--load-ms", cfg.load_ms, default.load_ms),
           ("--save-ms", cfg.save_ms, default.save_ms),
           ("--jitter-ms", cfg.jitter_ms, default.jitter_ms),
           ("--guest", cfg.guest, None),          # always: the CLI's default is the model
           ("--ram-mib", cfg.ram_mib, default.ram_mib),
           ("--workload", cfg.workload, default.workload),
           ("--rate", cfg.rate, None),
           ("--arbiter-ms", cfg.arbiter_ms, default.arbiter_ms),
           ("--client-every-ms", cfg.client_every_ms, default.client_every_ms),
           ("--divergence", cfg.divergence, default.divergence),
           ("--liveness-checkpoints", cfg.liveness_checkpoints,
            default.liveness_checkpoints),
           ("--latency-ms", cfg.latency_ms, default.latency_ms),
           ("--bytes-per-ms", cfg.bytes_per_ms, default.bytes_per_ms)]
    for flag, value, skip in opt:
        if value != skip:
            args += [flag, _num(value)]
    if cfg.xbzrle:
        args.append("--xbzrle")
    if not cfg.arbiter:
        args.append("--no-arbiter")
    if not cfg.faithful:
        args.append("--strict")
    return shlex.join(args)


def _num(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def write_repro(cfg: SimConfig, path: str, failure: str) -> dict:
    """Run `cfg` again with its events kept and write it as a recording whose header
    comment holds the reproducing command; returns {"recording", "command", "text"}."""
    from protocol.record import format as rf
    from protocol.sim.core import Simulation
    sim = Simulation(cfg)
    crash = None
    try:
        sim.run()
    except Exception as exc:        # noqa: BLE001 - the crash is what we reproduce
        crash = f"{type(exc).__name__}: {exc}"
    command = run_command(cfg)
    text = crash or "; ".join(v["text"] for v in sim.invariants.violations) or sim.hung or ""
    rf.write(path, rf.make_header(cfg), sim.events, sim.inputs,
             comments=[f"swarm: shrunk reproducer of a {failure}: {text}",
                       f"reproduce: {command}"])
    return {"recording": path, "command": command, "text": text}
