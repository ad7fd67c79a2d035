"""Settings from a TOML file (`--config FILE`): the fields of a command's frozen config dataclass, nested ones as
tables, e.g. for `searchkit train --config train.toml`:

    epochs = 2
    lr = 3e-5
    [split]
    seed = 7

Options given on the command line win over the file; the file wins over the defaults. A key the config does not have
is refused with the file and the keys it does have."""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from .errors import SearchkitError

T = TypeVar("T")


def read_settings(path: str | Path | None) -> dict[str, Any]:
    """The file's settings as a dict ({} for no file)."""
    if path is None:
        return {}
    try:
        return tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise SearchkitError(f"{path}: unreadable config file ({exc.strerror or exc})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SearchkitError(f"{path}: not a TOML file ({exc})") from exc


def _options(hint: Any) -> tuple[Any, ...]:
    """The types a hint allows: (int,) for int, (Path, NoneType) for Path | None."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def _convert(hint: Any, value: Any, where: str) -> Any:
    for kind in _options(hint):
        if isinstance(kind, type) and dataclasses.is_dataclass(kind) and isinstance(value, dict):
            return kind(**fields_from(kind, value, where))
        if kind is Path and isinstance(value, str):
            return Path(value)
        if typing.get_origin(kind) is tuple and isinstance(value, list):
            return tuple(tuple(v) if isinstance(v, list) else v for v in value)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
    if isinstance(value, dict):
        raise SearchkitError(f"{where}: a table where a single value belongs")
    return value


def fields_from(cls: type, table: dict[str, Any], where: str) -> dict[str, Any]:
    """Keyword arguments of `cls` from a table of settings; unknown keys refused."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(table) - set(names))
    if unknown:
        raise SearchkitError(f"{where}: unknown setting(s) {', '.join(unknown)} for {cls.__name__}; it has "
                             f"{', '.join(names)}")
    return {key: _convert(hints[key], value, f"{where}: {key}") for key, value in table.items()}


def load_config(cls: type[T], path: str | Path | None, **given: Any) -> T:
    """A `cls` from the file at `path` (may be None), with the options given on the command line (those not None)
    over it. A bad value is refused by the config's own checks."""
    settings = fields_from(cls, read_settings(path), str(path or cls.__name__))
    settings.update({k: v for k, v in given.items() if v is not None})
    try:
        return cls(**settings)
    except TypeError as exc:
        raise SearchkitError(f"{path or cls.__name__}: {exc}") from exc
