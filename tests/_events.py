"""Typed events for tests: any kind, its fields filled with a chosen value."""
from __future__ import annotations

import dataclasses

from protocol.core.events import KINDS, Event

_BASE = ("t_ms", "side", "seq")


def payload_fields(cls: type[Event]) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.name not in _BASE]


def sample(kind: str, side: str = "primary", *, fill=None, t_ms: float = 1.5,
           seq: int = 7, **given) -> Event:
    """An event of `kind`: `given` fields as they are; the others `fill` when given,
    else only the required ones, with a plain placeholder of their type."""
    cls = KINDS[kind]
    kw = dict(given)
    for f in payload_fields(cls):
        if f.name in kw:
            continue
        if f.name == "extra":
            if fill is not None:
                kw["extra"] = {"detail": fill}
            continue
        required = f.default is dataclasses.MISSING and \
            f.default_factory is dataclasses.MISSING
        if fill is not None:
            kw[f.name] = fill
        elif required:
            kw[f.name] = {"int": 1, "float": 1.0, "bool": True}.get(
                str(f.type).split(" |")[0], "x")
    return cls(t_ms, side, seq=seq, **kw)
