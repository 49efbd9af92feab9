"""The connector registry: which connectors exist, by name, and where each one is declared.

Names come from two places, neither of which imports a connector:
- every public module of this package (`simpul/connectors/<name>.py`); adding a built-in
  connector is adding that one file;
- the `simpul.connectors` entry-point group, for connectors shipped in another package
  (`[project.entry-points."simpul.connectors"] toy = "my_pkg.toy"`).
A module is imported the first time its spec is asked for. Building the channel models asks for
all of them, so a connector module keeps its top level light (pydantic, simpul's lower layers)
and imports an optional heavy library (zeep, pydicom, aio-pika) inside its factory or
`connect()`: that library then loads only when a channel uses the connector.
"""
from __future__ import annotations

import difflib
import functools
import importlib
import pkgutil
from importlib.metadata import entry_points
from pathlib import Path

from simpul.connectors.base import Connector, ConnectorSpec
from simpul.errors import ConfigError

ENTRY_POINT_GROUP = "simpul.connectors"
_PACKAGE = "simpul.connectors"
_NOT_CONNECTORS = {"base", "registry", "cloudevents", "bpjs"}   # cloudevents: the envelope, shared; bpjs: service clients


@functools.cache
def _table() -> dict[str, str]:
    """name -> module path; built-ins first, sorted, then plug-ins sorted."""
    table = {info.name: f"{_PACKAGE}.{info.name}"
             for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda i: i.name)
             if not info.name.startswith("_") and info.name not in _NOT_CONNECTORS}
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        if point.name in table:
            raise ConfigError(f"connector plug-in '{point.name}' ({point.value}) clashes with the built-in "
                              f"connector of that name")
        table[point.name] = point.value
    return table


def refresh() -> None:
    """Forget what was found (after installing a plug-in into a running interpreter, e.g. in tests)."""
    _table.cache_clear()
    spec.cache_clear()


def names() -> list[str]:
    return list(_table())


def module_path(name: str) -> str:
    try:
        return _table()[name]
    except KeyError:
        raise unknown(name) from None


def unknown(name: str) -> ConfigError:
    close = difflib.get_close_matches(name, _table(), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"unknown connector '{name}'{hint}")


@functools.cache
def spec(name: str) -> ConnectorSpec:
    module = importlib.import_module(module_path(name))
    declared = getattr(module, "CONNECTOR", None)
    if not isinstance(declared, ConnectorSpec):
        raise ConfigError(f"connector module {module.__name__} declares no CONNECTOR = ConnectorSpec(...)")
    if declared.name != name:
        raise ConfigError(f"connector module {module.__name__} is registered as '{name}' "
                          f"but declares '{declared.name}'")
    return declared


def specs() -> list[ConnectorSpec]:
    return [spec(name) for name in names()]


def sources() -> list[ConnectorSpec]:
    return [item for item in specs() if item.source is not None]


def destinations() -> list[ConnectorSpec]:
    return [item for item in specs() if item.destination is not None]


def create_destination(name: str, config: object) -> Connector:
    declared = spec(name)
    if declared.create_destination is None:
        raise ConfigError(f"connector '{name}' cannot be a destination")
    return declared.create_destination(config)
