"""The user's configuration file: the theme (remembered when `t` changes it) and
key bindings.

``$COLO_CONFIG``, or ``config.toml`` in the user's config directory
(platformdirs: ``~/.config/colo-testbed/config.toml`` on Linux)::

    theme = "nord"            # any Textual theme name

    [keys]                    # binding id = keys (comma-separated), e.g.
    step = "n,right,j"
    back = "left,k"

A file that cannot be read or has wrong values never stops the app: the app
starts with the defaults and says what was wrong.  Saving the theme keeps the
rest of the file as the user wrote it (comments included; tomlkit), and
replaces the file atomically.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

APP_NAME = "colo-testbed"


def config_path() -> Path:
    env = os.environ.get("COLO_CONFIG")
    if env:
        return Path(env).expanduser()
    import platformdirs
    return platformdirs.user_config_path(APP_NAME) / "config.toml"


@dataclass
class UserConfig:
    theme: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    problems: list[str] = field(default_factory=list)


def load(path: Path | None = None, binding_ids=(), themes=()) -> UserConfig:
    """Read the file; unknown binding ids, unknown themes and bad types are named in
    `problems` and left out."""
    path = path or config_path()
    cfg = UserConfig(path=path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(1 << 20)
    except FileNotFoundError:
        return cfg                      # the usual start: no parser imported at all
    except OSError as exc:
        cfg.problems.append(f"{path}: {exc}; using the defaults")
        return cfg
    import tomllib  # reading only: tomlkit (slower to import) writes
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        cfg.problems.append(f"{path}: {exc}; using the defaults")
        return cfg
    theme = doc.get("theme")
    if theme is not None:
        if not isinstance(theme, str):
            cfg.problems.append(f"{path}: theme {theme!r} must be a theme name in quotes, "
                                'e.g. theme = "nord"')
        elif themes and theme not in themes:
            cfg.problems.append(f"{path}: theme {theme!r} is not one of: {', '.join(themes)}")
        else:
            cfg.theme = theme
    keys = doc.get("keys", {})
    if not isinstance(keys, dict):
        cfg.problems.append(f"{path}: [keys] must be a table of binding = \"keys\"")
        keys = {}
    for name, value in keys.items():
        if binding_ids and name not in binding_ids:
            cfg.problems.append(f"{path}: [keys] {name}: no such binding "
                                f"(one of: {', '.join(sorted(binding_ids))})")
        elif not isinstance(value, str) or not value.strip():
            cfg.problems.append(f"{path}: [keys] {name} must be a string of keys")
        else:
            given = value.replace(" ", "").split(",")
            if "" in given:             # "n,,": an empty key the footer would show as "/"
                cfg.problems.append(f"{path}: [keys] {name}: an empty key in {value!r} is left out")
            if any(given):
                cfg.keys[name] = ",".join(k for k in given if k)
    for name in doc:
        if name not in ("theme", "keys"):
            cfg.problems.append(f"{path}: unknown setting {name!r} (theme, keys)")
    return cfg


def save_theme(theme: str, path: Path | None = None) -> None:
    """Remember the theme; the rest of the file stays as it was."""
    import tomlkit
    path = path or config_path()
    from tomlkit.exceptions import TOMLKitError
    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        doc = tomlkit.document()
    except (OSError, UnicodeDecodeError, TOMLKitError) as exc:
        # the user's file is never replaced by one that drops what they wrote
        raise ValueError(f"theme not saved: {path} cannot be read ({exc})") from None
    doc["theme"] = theme
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(tomlkit.dumps(doc))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:       # the file as it was stays; no half-written temporary
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ValueError(f"theme not saved: {path} cannot be written "
                         f"({exc.strerror or exc})") from None
