"""Settings from one TOML file, validated against dataclasses: every key has a default and a type.

Each module owns the dataclass for its section (`MqttSettings` in sinks/mqtt.py, ...); this module
turns TOML tables into them, naming the bad key and the allowed values when something is wrong.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from .checks import mask_url
from .errors import ConfigError, PiposerError

SYSTEM_CONFIG = Path("/etc/piposer/config.toml")


def build(cls: type, data: Any, where: str):
    """Make dataclass `cls` from a TOML table, checking keys and value types; `where` names the table."""
    if not isinstance(data, dict):
        raise ConfigError(f"config: [{where}] must be a table")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"config: unknown key '{_join(where, unknown[0])}' (allowed: {', '.join(fields)})")
    values = {name: _convert(hints[name], value, _join(where, name)) for name, value in data.items()}
    try:
        return cls(**values)
    except ValueError as exc:  # a dataclass __post_init__ names the key itself
        raise ConfigError(f"config: {exc}") from None


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise ConfigError(f"config: {key} = {value!r} is not allowed (allowed: {', '.join(map(repr, allowed))})")
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"config: {key} = {value!r} has the wrong type")
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"config: {key} must be a list, not {value!r}")
        args = get_args(hint)
        item = args[0] if args else Any
        items = [_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config: {key} must be a table")
        return dict(value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config: {key} must be a finite number, not {value!r}")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(f"config: {key} must be {hint.__name__}, not {value!r}")
    return value


def read_text(path: Path) -> str:
    """The config file's text; missing, unreadable or not UTF-8 is a ConfigError naming it."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (bad byte at offset {exc.start})") from None


def parse_toml(text: str, path: Path) -> dict:
    """`text` (the contents of `path`) as a dict; TOML that cannot be parsed is a ConfigError naming the file."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {_one_line(exc)}") from None
    except RecursionError:
        raise ConfigError(f"config file {path} is nested too deeply") from None
    except (ValueError, TypeError, MemoryError) as exc:  # whatever else the parser may raise on odd input
        raise ConfigError(f"config file {path} cannot be parsed: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def config_file(explicit: str | None) -> Path | None:
    """`--config` if given, else $PIPOSER_CONFIG, else /etc/piposer/config.toml if it exists."""
    if explicit:
        return Path(explicit)
    if os.environ.get("PIPOSER_CONFIG"):
        return Path(os.environ["PIPOSER_CONFIG"])
    return SYSTEM_CONFIG if SYSTEM_CONFIG.is_file() else None


def as_dict(obj: Any, secret_keys: tuple[str, ...] = ("password",)) -> Any:
    """A settings dataclass as plain data, for `config show`; secret values and URL passwords are masked."""
    if dataclasses.is_dataclass(obj):
        return {
            f.name: ("***" if f.name in secret_keys and getattr(obj, f.name) else as_dict(getattr(obj, f.name), secret_keys))
            for f in dataclasses.fields(obj) if f.init
        }
    if isinstance(obj, (list, tuple)):
        return [as_dict(v, secret_keys) for v in obj]
    if isinstance(obj, dict):
        return {k: as_dict(v, secret_keys) for k, v in obj.items()}
    return mask_url(obj)


# The top-level config: one field per [section]. Each section's dataclass lives in its module.
from .estimators.settings import (  # noqa: E402
    BlazePoseSettings, HandsSettings, ModelSettings, MoveNetSettings, PoseNetSettings)
from .sources.settings import SourceSettings  # noqa: E402
from .tracking.settings import TrackingSettings  # noqa: E402
from .runtime.settings import LoopSettings  # noqa: E402
from .sinks.mqtt_settings import MqttSettings  # noqa: E402
from .sinks.osc_settings import OscSettings  # noqa: E402
from .sinks.web_settings import WebSettings  # noqa: E402
from .rules.settings import RuleSettings  # noqa: E402
from .rules.wiring import ButtonSettings, OutputSettings, check_wiring  # noqa: E402
from .rules.library import PoseSettings, check_taught  # noqa: E402


@dataclass
class Config:
    """The whole config file; every section optional, every key defaulted."""

    model: ModelSettings = field(default_factory=ModelSettings)
    posenet: PoseNetSettings = field(default_factory=PoseNetSettings)
    movenet: MoveNetSettings = field(default_factory=MoveNetSettings)
    source: SourceSettings = field(default_factory=SourceSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    loop: LoopSettings = field(default_factory=LoopSettings)
    blazepose: BlazePoseSettings = field(default_factory=BlazePoseSettings)
    hands: HandsSettings = field(default_factory=HandsSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    osc: list[OscSettings] = field(default_factory=list)
    web: WebSettings = field(default_factory=WebSettings)
    rules: list[RuleSettings] = field(default_factory=list)
    outputs: list[OutputSettings] = field(default_factory=list)
    button: ButtonSettings | None = None
    poses: PoseSettings = field(default_factory=PoseSettings)
    path: Path | None = field(default=None, init=False, compare=False)  # the file it was read from


def load(path: Path | None, *, check_files: bool = True, text: str | None = None) -> Config:
    """Read and validate a config file (None: all defaults): types, ranges, the rules' references to outputs
    and (`check_files`) that the files it names can be read. Every problem is a one-line ConfigError.
    `text` checks those contents as if they were the file's (the web console's edit, before it is saved)."""
    if text is None and path:
        text = read_text(path)
    data = parse_toml(text, path) if path else {}
    where = f"config {path}" if path else "config"
    try:
        config = build(Config, data, "")
        check_wiring(config.rules, config.outputs, config.button)
        config.poses.resolve(path)
        config.web.resolve(path)
        if check_files:
            _check_files(config)
            check_taught(config.rules, config.poses)
    except PiposerError as exc:  # gpio/rules checks raise the general kind; every one names the file
        raise ConfigError(f"{where}: {str(exc).removeprefix('config: ')}") from None
    except RecursionError:
        raise ConfigError(f"{where}: a value is nested too deeply") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # a check that did not expect this value
        raise ConfigError(f"{where}: {_one_line(exc)}") from None
    config.path = path
    return config


def _check_files(config: Config) -> None:
    """The files `run` will open, checked now so `config check` finds them missing."""
    mqtt, web = config.mqtt, config.web
    if mqtt.enabled and mqtt.password_file:
        try:
            mqtt.resolve_password()
        except PiposerError as exc:
            raise ConfigError(f"config: {exc}") from None
    files = [f"mqtt.{key}" for key in ("tls_ca", "tls_cert", "tls_key") if mqtt.enabled]
    files += [f"web.{key}" for key in ("password_file", "tls_cert", "tls_key") if web.enabled]
    for key in files:
        section, name = key.split(".")
        file = getattr(getattr(config, section), name)
        if file and not (Path(file).expanduser().is_file() and os.access(Path(file).expanduser(), os.R_OK)):
            raise ConfigError(f"config: {key}: cannot read {file}")
