"""Find provider adapters through the ``bibev.providers`` entry-point group.

bibev's own adapters and third-party ones are registered the same way, in their package's
``pyproject.toml``::

    [project.entry-points."bibev.providers"]
    example-logger = "bibev_provider_example.adapter:ExampleLoggerAdapter"

Discovery is lazy (nothing is imported until a registry is first asked) and happens once per
registry. Loading a plugin can never break the caller: any failure (an import error, a syntax
error, an object that is not an ``Adapter`` subclass, a name that does not match the entry
point) turns that plugin into a *broken* entry and a ``PluginWarning``; every other plugin still
loads. An allow-list (``BIBEV_PLUGINS``) marks every other plugin *disabled*, and a disabled
plugin is never imported.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
import types
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretBytes, SecretStr, ValidationError

from bibev.errors import ConfigError
from bibev.providers.base import Adapter, ProviderOptions, SignalMap

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "bibev.providers"

Status = Literal["ok", "broken", "disabled"]


class PluginWarning(UserWarning):
    """A provider plugin could not be loaded; it is listed as broken and the rest carry on."""


@dataclass(frozen=True)
class ProviderEntry:
    """One provider as the registry sees it, whether it loaded or not."""

    name: str
    value: str
    package: str | None
    version: str | None
    status: Status
    error: str | None = None
    adapter: type[Adapter] | None = None
    formats: tuple[str, ...] = ()
    description: str = ""
    can_fetch: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the adapter class itself is left out)."""
        return {
            "name": self.name,
            "status": self.status,
            "package": self.package,
            "version": self.version,
            "entry_point": self.value,
            "formats": list(self.formats),
            "description": self.description,
            "can_fetch": self.can_fetch,
            "error": self.error,
        }


def check_adapter_class(obj: object, expected_name: str | None = None) -> type[Adapter]:
    """Return ``obj`` if it honours the adapter contract, else raise ``TypeError`` saying why."""
    if not (isinstance(obj, type) and issubclass(obj, Adapter)):
        raise TypeError(f"{_describe(obj)} is not an Adapter subclass")
    if not obj.name:
        raise TypeError(f"{obj.__qualname__} has no name")
    if expected_name is not None and obj.name != expected_name:
        raise TypeError(
            f"entry point name {expected_name!r} does not match "
            f"{obj.__qualname__}.name {obj.name!r}"
        )
    if not (isinstance(obj.Options, type) and issubclass(obj.Options, ProviderOptions)):
        raise TypeError(f"{obj.__qualname__}.Options is not a ProviderOptions subclass")
    if isinstance(obj.formats, str) or not all(isinstance(f, str) for f in obj.formats):
        raise TypeError(f"{obj.__qualname__}.formats must be a tuple of strings")
    _check_mapping(obj)
    return obj


def _check_mapping(cls: type[Adapter]) -> None:
    # Imported here: the schema pulls in polars, which listing plugins must not pay for.
    from bibev.schema import CHARGER_KINDS, CHARGING_STATES, GEARS, SIGNAL_COLUMNS

    vocabularies = {"charging_state": CHARGING_STATES, "charger_kind": CHARGER_KINDS, "gear": GEARS}
    for item in cls.mapping:
        if not isinstance(item, SignalMap):
            raise TypeError(f"{cls.__qualname__}.mapping holds {_describe(item)}, not a SignalMap")
        if item.column not in SIGNAL_COLUMNS:
            raise TypeError(
                f"{cls.__qualname__}.mapping maps {item.key!r} to unknown column {item.column!r}"
            )
        words = vocabularies.get(item.column)
        unknown = sorted(set((item.enum or {}).values()) - set(words or ()))
        if words and unknown:
            raise TypeError(
                f"{cls.__qualname__}.mapping maps {item.key!r} to {unknown} "
                f"outside the {item.column} vocabulary {list(words)}"
            )


def _describe(obj: object) -> str:
    kind = type(obj).__name__
    name = getattr(obj, "__qualname__", None)
    return f"{name} ({kind})" if name else f"a {kind}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _entry_from_class(
    cls: type[Adapter], *, value: str, package: str | None, version: str | None
) -> ProviderEntry:
    return ProviderEntry(
        name=cls.name,
        value=value,
        package=package,
        version=version,
        status="ok",
        adapter=cls,
        formats=tuple(cls.formats),
        description=_description(cls),
        can_fetch=cls.fetch is not Adapter.fetch,
    )


def _description(cls: type[Adapter]) -> str:
    return cls.description or (cls.__doc__ or "").strip().split("\n")[0]


def _distribution(ep: importlib.metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"] or dist.name, dist.version


class Registry:
    """The provider adapters installed in this environment.

    ``allow`` is the allow-list (``Settings.plugins``): ``None`` loads every plugin, a list loads
    only the named ones and marks the others disabled without importing them.
    """

    def __init__(self, allow: Iterable[str] | None = None, *, group: str = ENTRY_POINT_GROUP):
        self.allow: frozenset[str] | None = None if allow is None else frozenset(allow)
        self.group = group
        self._lock = threading.RLock()
        self._entries: list[ProviderEntry] | None = None
        self._discovering = False

    def _discovered(self) -> list[ProviderEntry]:
        with self._lock:
            if self._entries is None:
                if self._discovering:
                    # a plugin asked the registry for adapters while being imported
                    raise RuntimeError("the provider registry was used while loading plugins")
                self._discovering = True
                try:
                    self._entries = self._discover()
                finally:
                    self._discovering = False
            return self._entries

    def _discover(self) -> list[ProviderEntry]:
        entries: list[ProviderEntry] = []
        owners: dict[str, ProviderEntry] = {}
        for ep in importlib.metadata.entry_points(group=self.group):
            package, version = _distribution(ep)
            if ep.name in owners:
                first = owners[ep.name]
                entry = self._broken(
                    ep.name,
                    ep.value,
                    package,
                    version,
                    f"duplicate provider name {ep.name!r}, already provided by "
                    f"{first.package or first.value}",
                )
            elif self.allow is not None and ep.name not in self.allow:
                entry = ProviderEntry(
                    ep.name, ep.value, package, version, "disabled", "not in BIBEV_PLUGINS"
                )
            else:
                entry = self._load(ep, package, version)
            owners.setdefault(ep.name, entry)
            entries.append(entry)
        for name in sorted((self.allow or frozenset()) - owners.keys()):
            logger.warning("BIBEV_PLUGINS names %r, but no such provider is installed", name)
        logger.debug("discovered %d provider plugin(s) in %r", len(entries), self.group)
        return entries

    def _load(
        self, ep: importlib.metadata.EntryPoint, package: str | None, version: str | None
    ) -> ProviderEntry:
        try:
            cls = check_adapter_class(ep.load(), expected_name=ep.name)
        except (Exception, SystemExit) as exc:  # a plugin must never break the caller
            logger.debug("provider plugin %r failed to load", ep.name, exc_info=True)
            return self._broken(ep.name, ep.value, package, version, _one_line(exc))
        return _entry_from_class(cls, value=ep.value, package=package, version=version)

    @staticmethod
    def _broken(
        name: str, value: str, package: str | None, version: str | None, error: str
    ) -> ProviderEntry:
        source = f"{package} {version}" if package else value
        # Attributed to the entry point, not to this file: that is where the fix belongs.
        warnings.warn_explicit(
            f"provider plugin {name!r} ({source}) is broken: {error}",
            PluginWarning,
            filename=value,
            lineno=0,
            module=__name__,
        )
        return ProviderEntry(name, value, package, version, "broken", error)

    def entries(self) -> list[ProviderEntry]:
        """Every provider found, sorted by name (a broken duplicate follows the one that won)."""
        return sorted(self._discovered(), key=lambda e: e.name)

    def _winner(self, name: str) -> ProviderEntry | None:
        return next((e for e in self._discovered() if e.name == name), None)

    def available(self) -> list[str]:
        """Names of the providers that loaded and can be used."""
        return sorted({e.name for e in self._discovered() if e.status == "ok"})

    def entry(self, name: str) -> ProviderEntry:
        """The entry for ``name``, whatever its status; ``ConfigError`` if there is none."""
        entry = self._winner(name)
        if entry is None:
            available = ", ".join(self.available()) or "none"
            raise ConfigError(f"unknown provider {name!r}; available: {available}")
        return entry

    def get(self, name: str) -> type[Adapter]:
        """The adapter class for ``name``; ``ConfigError`` if it is unknown, broken or disabled."""
        entry = self.entry(name)
        if entry.status == "broken":
            raise ConfigError(f"provider {name!r} is broken: {entry.error}")
        if entry.status == "disabled":
            allowed = ", ".join(sorted(self.allow or ())) or "none"
            raise ConfigError(f"provider {name!r} is disabled: BIBEV_PLUGINS allows only {allowed}")
        assert entry.adapter is not None
        return entry.adapter

    def adapter(self, name: str, options: Mapping[str, Any] | None = None) -> Adapter:
        """An adapter instance with validated options, before any I/O.

        Invalid options raise ``ConfigError`` naming the fields and the problem, never the
        values given (they may be credentials).
        """
        cls = self.get(name)
        try:
            return cls(dict(options or {}))
        except ValidationError as exc:
            raise ConfigError(f"invalid options for provider {name!r}: {_problems(exc)}") from None

    def check_options(self, options: Mapping[str, Mapping[str, Any]]) -> None:
        """``ConfigError`` for the first provider of the settings' ``[providers.NAME]`` tables
        that is not installed, or whose options are invalid (see ``adapter``). A broken or
        disabled provider's options are left alone: the work it would do fails on its own."""
        for name, values in sorted(options.items()):
            try:
                if self.entry(name).status == "ok":
                    self.adapter(name, values)
            except ConfigError as exc:
                raise ConfigError(f"[providers.{name}] in the settings: {exc}") from None

    def register(
        self, adapter_cls: type[Adapter], *, package: str | None = None, version: str | None = None
    ) -> ProviderEntry:
        """Add an adapter class by hand (tests, notebooks). The allow-list does not apply."""
        try:
            cls = check_adapter_class(adapter_cls)
        except TypeError as exc:
            raise ConfigError(f"cannot register {_describe(adapter_cls)}: {exc}") from None
        entry = _entry_from_class(
            cls, value=f"{cls.__module__}:{cls.__qualname__}", package=package, version=version
        )
        with self._lock:
            entries = self._discovered()
            current = self._winner(cls.name)
            if current is not None and current.status == "ok":
                raise ConfigError(f"provider {cls.name!r} is already registered ({current.value})")
            self._entries = [e for e in entries if e.name != cls.name] + [entry]
        return entry

    def unregister(self, name: str) -> None:
        """Forget ``name`` (every entry under that name); unknown names are ignored."""
        with self._lock:
            self._entries = [e for e in self._discovered() if e.name != name]


def _problems(exc: ValidationError) -> str:
    # Only locations and messages: ``str(exc)`` would echo the input, which may be a secret.
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(options)'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)
    )


_registries: dict[tuple[str, ...] | None, Registry] = {}
_registries_lock = threading.Lock()


def get_registry(allow: Iterable[str] | None = None) -> Registry:
    """The shared registry for this allow-list (one per distinct allow-list, per process)."""
    key = None if allow is None else tuple(sorted(set(allow)))
    with _registries_lock:
        if key not in _registries:
            _registries[key] = Registry(key)
        return _registries[key]


def describe_adapter(cls: type[Adapter]) -> dict[str, Any]:
    """Formats, options schema and mapping of an adapter class, JSON-ready."""
    return {
        "name": cls.name,
        "description": _description(cls),
        "formats": list(cls.formats),
        "can_fetch": cls.fetch is not Adapter.fetch,
        "options": describe_options(cls.Options),
        "mapping": [
            {
                "key": m.key,
                "column": m.column,
                "scale": m.scale,
                "offset": m.offset,
                "enum": dict(m.enum) if m.enum else None,
                "cast": m.cast,
                "note": m.note,
            }
            for m in cls.mapping
        ],
    }


def describe_options(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One dict per option field: name, type, required, default, secret, description.

    A secret field's default is never shown, only whether it has one.
    """
    fields = []
    for name, field in model.model_fields.items():
        secret = _is_secret(field.annotation)
        required = field.is_required()
        if required:
            default: Any = None
        elif field.default_factory is not None:
            default = "(computed)"
        elif secret and field.default is not None:
            default = "(set)"
        else:
            default = _json_ready(field.default)
        fields.append(
            {
                "name": name,
                "type": _type_name(field.annotation),
                "required": required,
                "default": default,
                "secret": secret,
                "description": field.description or "",
            }
        )
    return fields


def _is_secret(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, SecretStr | SecretBytes):
        return True
    return any(_is_secret(arg) for arg in get_args(annotation))


def _type_name(annotation: Any) -> str:
    if annotation is None or annotation is type(None):
        return "None"
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in args)
    if origin is Literal:
        return " | ".join(repr(arg) for arg in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_type_name(arg) for arg in args)}]" if args else name
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _json_ready(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    return str(value)
