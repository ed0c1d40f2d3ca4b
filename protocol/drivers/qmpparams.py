"""`migrate-set-parameters` checked as QEMU 7.2 checks it (types, then ranges).

Every message below is QEMU 7.2's, read off a real ``qemu-system-x86_64`` 7.2
(QMP over a unix socket) and its ``migration/migration.c``:

* the QAPI input visitor first, member by member in schema order: an unsigned
  integer that is not an integer in int64/uint64 range gives "Parameter 'X'
  expects uint64"; a negative one wraps (QEMU takes negatives "for backward
  compatibility"), so -1 for a uint8 gives "Parameter 'X' expects uint8_t" and
  -1 for a size is 2^64-1; booleans and strings give "Invalid parameter type
  for 'X', expected: boolean|string|StrOrNull"; an enum value it does not know
  gives "Parameter 'X' does not accept value 'V'"; then "Parameter 'K' is
  unexpected" for a member it does not know;
* then ``migrate_params_check`` on the current parameters with the new ones
  applied (so max-cpu-throttle is checked against cpu-throttle-initial), with
  QEMU's underscore names: "Parameter 'compress_level' expects a value between
  0 and 9" …  Like 7.2, the multifd zlib/zstd levels are not range-checked
  (``migrate_params_test_apply`` does not copy them).
"""
from __future__ import annotations

from protocol.errors import QmpCommandError

U8, U32, U64, SIZE, BOOL, STR_OR_NULL, ENUM = (
    "uint8_t", "uint32_t", "uint64", "size", "boolean", "StrOrNull", "enum")

#: MigrateSetParameters members, in QAPI schema order: (name, type)
MEMBERS = (
    ("announce-initial", SIZE), ("announce-max", SIZE), ("announce-rounds", SIZE),
    ("announce-step", SIZE), ("compress-level", U8), ("compress-threads", U8),
    ("compress-wait-thread", BOOL), ("decompress-threads", U8),
    ("throttle-trigger-threshold", U8), ("cpu-throttle-initial", U8),
    ("cpu-throttle-increment", U8), ("cpu-throttle-tailslow", BOOL),
    ("tls-creds", STR_OR_NULL), ("tls-hostname", STR_OR_NULL), ("tls-authz", STR_OR_NULL),
    ("max-bandwidth", SIZE), ("downtime-limit", U64), ("x-checkpoint-delay", U32),
    ("block-incremental", BOOL), ("multifd-channels", U8), ("xbzrle-cache-size", SIZE),
    ("max-postcopy-bandwidth", SIZE), ("max-cpu-throttle", U8),
    ("multifd-compression", ENUM), ("multifd-zlib-level", U8), ("multifd-zstd-level", U8),
    ("block-bitmap-mapping", "array"),
)
MULTIFD_COMPRESSION = ("none", "zlib", "zstd")
_MAX = {U8: 0xFF, U32: 0xFFFFFFFF, U64: (1 << 64) - 1, SIZE: (1 << 64) - 1}
PAGE_SIZE = 4096


def _err(desc: str) -> QmpCommandError:
    return QmpCommandError(desc, "GenericError")


def _visit(name: str, kind: str, value):
    """One member through QEMU's QObject input visitor: the value QEMU stores."""
    if kind in _MAX:
        if not isinstance(value, int) or isinstance(value, bool) \
                or not -(1 << 63) <= value < 1 << 64:
            raise _err(f"Parameter '{name}' expects uint64")
        value &= (1 << 64) - 1           # negatives wrap, as qnum_get_try_int → uint64
        if value > _MAX[kind]:
            raise _err(f"Parameter '{name}' expects {kind}")
        return value
    if kind == BOOL:
        if not isinstance(value, bool):
            raise _err(f"Invalid parameter type for '{name}', expected: boolean")
        return value
    if kind == STR_OR_NULL:
        if value is None:
            return ""                    # 7.2: "TODO Rewrite "" to null instead"
        if not isinstance(value, str):
            raise _err(f"Invalid parameter type for '{name}', expected: StrOrNull")
        return value
    if kind == "array":        # kept as given; its aliases are not checked
        if not isinstance(value, list):
            raise _err(f"Invalid parameter type for '{name}', expected: array")
        return value
    if not isinstance(value, str):
        raise _err(f"Invalid parameter type for '{name}', expected: string")
    if value not in MULTIFD_COMPRESSION:
        raise _err(f"Parameter '{name}' does not accept value '{value}'")
    return value


def _range(name: str, ok: bool, text: str) -> None:
    if not ok:
        raise _err(f"Parameter '{name}' expects {text}")


def _check(p: dict) -> None:
    """migrate_params_check of 7.2, in its order, on the merged parameters."""
    _range("compress_level", p["compress-level"] <= 9, "a value between 0 and 9")
    _range("compress_threads", p["compress-threads"] >= 1, "a value between 1 and 255")
    _range("decompress_threads", p["decompress-threads"] >= 1, "a value between 1 and 255")
    _range("throttle_trigger_threshold", 1 <= p["throttle-trigger-threshold"] <= 100,
           "an integer in the range of 1 to 100")
    _range("cpu_throttle_initial", 1 <= p["cpu-throttle-initial"] <= 99,
           "an integer in the range of 1 to 99")
    _range("cpu_throttle_increment", 1 <= p["cpu-throttle-increment"] <= 99,
           "an integer in the range of 1 to 99")
    _range("downtime_limit", p["downtime-limit"] <= 2000 * 1000,
           "an integer in the range of 0 to (2000 * 1000) ms")
    _range("multifd_channels", p["multifd-channels"] >= 1, "a value between 1 and 255")
    size = p["xbzrle-cache-size"]
    _range("xbzrle_cache_size", size >= PAGE_SIZE and not size & (size - 1),
           "a power of two no less than the target page size")
    _range("max_cpu_throttle", p["cpu-throttle-initial"] <= p["max-cpu-throttle"] <= 99,
           "an integer in the range of cpu_throttle_initial to 99")
    _range("announce_initial", p["announce-initial"] <= 100000, "a value between 0 and 100000")
    _range("announce_max", p["announce-max"] <= 100000, "a value between 0 and 100000")
    _range("announce_rounds", p["announce-rounds"] <= 1000, "a value between 0 and 1000")
    _range("announce_step", 1 <= p["announce-step"] <= 10000, "a value between 0 and 10000")


_NOT_CHECKED = ("multifd-zlib-level", "multifd-zstd-level", "multifd-compression",
                "block-bitmap-mapping")


def set_parameters(current: dict, args: dict) -> dict:
    """The new values to apply, or QmpCommandError with QEMU's message."""
    new = {}
    for name, kind in MEMBERS:
        if name in args:
            new[name] = _visit(name, kind, args[name])
    for key in args:
        if key not in new:
            raise _err(f"Parameter '{key}' is unexpected")
    merged = dict(current)
    merged.update({k: v for k, v in new.items() if k not in _NOT_CHECKED})
    _check(merged)
    return new
