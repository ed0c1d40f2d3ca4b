"""COLO protocol core: dialects, codec, role machines, failover, simulator.

The public API; importing it loads no UI toolkit, no event loop and no asyncio.
"""
from .dialects import DIALECTS, PROTOTYPE, QEMU, V11, Dialect
from .endpoint import Endpoint, make_endpoint
from .errors import (
                     ColoError,
                     DecodeError,
                     FaultSpecError,
                     LocalProtocolError,
                     ProtocolError,
                     QmpCommandError,
                     RecordingError,
                     RemoteProtocolError,
)
from .events import Event

__version__ = "0.1.0"
__all__ = ["DIALECTS", "PROTOTYPE", "QEMU", "V11", "Dialect", "Endpoint", "make_endpoint",
           "ColoError", "DecodeError", "FaultSpecError", "LocalProtocolError", "ProtocolError",
           "QmpCommandError", "RecordingError", "RemoteProtocolError", "Event", "__version__"]
