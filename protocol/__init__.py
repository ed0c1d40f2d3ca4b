"""COLO protocol core: dialects, codec, role machines, failover, simulator.

The public API; importing it loads no UI toolkit, no event loop and no asyncio.
The names load on first use (PEP 562), so `import protocol.errors` (every
command-line start) does not import the codec, the machines and the endpoint.
Importing it installs `protocol.compiled.CoreFinder`, which picks each core
module's compiled build or its .py.
"""
from __future__ import annotations

import importlib

from protocol import compiled as _compiled

_compiled.install()     # the compiled core's .so, or its .py (COLO_NO_EXTENSIONS=1, stale build)

#: the one version string: the package metadata (pyproject), `colo --version` and every
#: file header the tool writes (recordings, proxy and node logs) read it from here
__version__ = "0.2.0"
TOOL = f"colo-testbed {__version__}"

_WHERE = {
    "DIALECTS": "dialects", "PROTOTYPE": "dialects", "QEMU": "dialects", "V11": "dialects",
    "Dialect": "dialects", "Endpoint": "endpoint", "make_endpoint": "endpoint",
    "ColoError": "errors", "DecodeError": "errors", "FaultSpecError": "errors",
    "LocalProtocolError": "errors", "ProtocolError": "errors", "QmpCommandError": "errors",
    "RecordingError": "errors", "RemoteProtocolError": "errors", "Event": "events",
}
__all__ = [*_WHERE, "TOOL", "__version__"]


def __getattr__(name: str):
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'protocol' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{where}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
