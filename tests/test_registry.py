"""The provider registry, against real entry points.

The example package (``examples/bibev-provider-example``) is installed in the environment, so
its entry point is real. Broken, duplicate and counting plugins are real too: each test writes a
small distribution (a ``*.dist-info`` directory with ``entry_points.txt``, plus its modules) into
a temporary directory on ``sys.path``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest
from bibev_provider_example.adapter import ExampleLoggerAdapter
from pydantic import SecretStr

from bibev.errors import ConfigError
from bibev.providers import Adapter, FlatRow, ProviderOptions, SignalMap, get_registry
from bibev.providers.registry import PluginWarning, Registry, describe_adapter, describe_options

EXAMPLE = "example-logger"
VIN = "5YJ3E1EA7KF000001"
MESSAGE = {"device": "FL-7", "vin": VIN, "t": 1740823200, "readings": {"soc": 71.5, "hv_v": 398.2}}

InstallPlugin = Callable[..., str]


def write_plugin(
    site: Path, entry_points: dict[str, str], modules: dict[str, str], *, dist: str
) -> None:
    """Write an installed distribution ``dist`` 0.0.1 with these entry points and modules."""
    info = site / f"{dist.replace('-', '_')}-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[bibev.providers]\n{lines}")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    importlib.invalidate_caches()


@pytest.fixture
def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InstallPlugin]:
    """Install throwaway plugin distributions; returns a fresh module name per call.

    The directory goes at the END of ``sys.path``, so the real example package is seen first.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    created: list[str] = []

    def install(entry_points: dict[str, str], source: str | None = None) -> str:
        """Entry point values may use ``{module}``, the module that ``source`` is written to."""
        module = f"bibev_test_plugin_{uuid.uuid4().hex[:10]}"
        created.append(module)
        write_plugin(
            site,
            {name: value.format(module=module) for name, value in entry_points.items()},
            {module: source} if source is not None else {},
            dist=module.replace("_", "-"),
        )
        return module

    yield install
    for module in created:
        sys.modules.pop(module, None)


def test_example_package_is_a_real_installed_distribution():
    dist = importlib.metadata.distribution("bibev-provider-example")
    eps = {ep.name: ep.value for ep in dist.entry_points if ep.group == "bibev.providers"}
    assert dist.version == "0.1.0"
    assert eps == {EXAMPLE: "bibev_provider_example.adapter:ExampleLoggerAdapter"}


def test_registry_lists_the_example_with_its_package_and_version():
    entry = Registry(allow=[EXAMPLE]).entry(EXAMPLE)
    assert (entry.status, entry.package, entry.version) == ("ok", "bibev-provider-example", "0.1.0")
    assert entry.adapter is ExampleLoggerAdapter
    assert (entry.formats, entry.can_fetch, entry.error) == (("json",), True, None)


def test_flatten_works_through_the_registry():
    adapter = Registry(allow=[EXAMPLE]).adapter(EXAMPLE, {"page_size": 10})
    ts = datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert adapter.options.page_size == 10
    assert adapter.flatten(MESSAGE) == [
        FlatRow(VIN, ts, "device", "FL-7", message_id="FL-7:1740823200"),
        FlatRow(VIN, ts, "soc", 71.5, "%", "FL-7:1740823200"),
        FlatRow(VIN, ts, "hv_v", 398.2, "V", "FL-7:1740823200"),
    ]


@pytest.mark.filterwarnings("ignore::bibev.providers.registry.PluginWarning")
def test_every_declared_builtin_is_listed_whatever_its_state():
    entries = {e.name: e for e in Registry().entries()}
    builtins = {"tesla", "bmw", "high-mobility", "mobilisight", "sim"}
    assert builtins <= entries.keys()
    assert {entries[name].package for name in builtins} == {"bibev"}
    assert all(entries[name].status in ("ok", "broken") for name in builtins)
    assert entries[EXAMPLE].status == "ok"


ADAPTER_SOURCE = """
    from bibev.providers import Adapter, SignalMap

    class GhostAdapter(Adapter):
        name = {name!r}
        mapping = ({mapping})
"""


def adapter_source(name: str = "ghost", mapping: str = "") -> str:
    return ADAPTER_SOURCE.format(name=name, mapping=mapping)


@pytest.mark.parametrize(
    ("value", "source", "reason"),
    [
        ("{module}_missing:GhostAdapter", None, "ModuleNotFoundError: No module named"),
        ("{module}:GhostAdapter", "def broken(:\n", "SyntaxError"),
        ("{module}:GhostAdapter", "raise RuntimeError('boom at import')", "RuntimeError: boom at"),
        ("{module}:GhostAdapter", "import sys\nsys.exit(3)", "SystemExit: 3"),
        ("{module}:Missing", adapter_source(), "AttributeError"),
        ("{module}:GhostAdapter", "def GhostAdapter():\n    pass", "is not an Adapter subclass"),
        ("{module}:GhostAdapter", "class GhostAdapter:\n    name = 'ghost'", "not an Adapter"),
        ("{module}:GhostAdapter", adapter_source("spectre"), "does not match GhostAdapter.name"),
        (
            "{module}:GhostAdapter",
            adapter_source(mapping="'soc',"),
            "mapping holds a str, not a SignalMap",
        ),
        (
            "{module}:GhostAdapter",
            adapter_source(mapping="SignalMap('Soc', 'soc_percent'),"),
            "to unknown column 'soc_percent'",
        ),
        (
            "{module}:GhostAdapter",
            adapter_source(mapping="SignalMap('St', 'charging_state', enum={'on': 'live'}),"),
            "maps 'St' to ['live'] outside the charging_state vocabulary",
        ),
    ],
)
def test_a_broken_plugin_warns_and_the_others_still_load(install_plugin, value, source, reason):
    install_plugin({"ghost": value}, source)
    registry = Registry(allow=["ghost", EXAMPLE])
    with pytest.warns(PluginWarning, match=r"provider plugin 'ghost' \(bibev-test-plugin-.*broken"):
        entries = {e.name: e for e in registry.entries()}
    assert entries["ghost"].status == "broken"
    assert reason in entries["ghost"].error
    assert "\n" not in entries["ghost"].error
    assert entries[EXAMPLE].status == "ok"
    with pytest.raises(ConfigError, match="provider 'ghost' is broken: "):
        registry.get("ghost")


def test_a_plugin_using_the_registry_while_it_loads_is_broken(install_plugin):
    name = f"reentrant-{uuid.uuid4().hex[:8]}"
    source = f"from bibev.providers import get_registry\nget_registry([{name!r}]).entries()\n"
    install_plugin({name: "{module}:GhostAdapter"}, source)
    with pytest.warns(PluginWarning, match=name):
        entry = get_registry([name]).entry(name)
    assert entry.status == "broken"
    assert entry.error == "RuntimeError: the provider registry was used while loading plugins"


def test_a_duplicate_name_is_broken_and_never_imported(install_plugin):
    module = install_plugin({EXAMPLE: "{module}:GhostAdapter"}, "raise RuntimeError")
    registry = Registry(allow=[EXAMPLE])
    with pytest.warns(PluginWarning, match="duplicate provider name"):
        first, second = (e for e in registry.entries() if e.name == EXAMPLE)
    assert (first.status, first.package) == ("ok", "bibev-provider-example")
    assert second.status == "broken"
    assert second.error == (
        "duplicate provider name 'example-logger', already provided by bibev-provider-example"
    )
    assert module not in sys.modules
    assert registry.get(EXAMPLE) is ExampleLoggerAdapter


def test_the_allow_list_disables_the_others_without_importing_them(install_plugin):
    module = install_plugin({"canary": "{module}:GhostAdapter"}, adapter_source("canary"))
    only_example = Registry(allow=[EXAMPLE])
    canary = only_example.entry("canary")
    assert (canary.status, canary.error, canary.adapter) == (
        "disabled",
        "not in BIBEV_PLUGINS",
        None,
    )
    assert module not in sys.modules
    with pytest.raises(ConfigError, match="disabled: BIBEV_PLUGINS allows only example-logger"):
        only_example.get("canary")
    # the same plugin loads fine when allowed, so the check above is meaningful
    only_canary = Registry(allow=["canary"])
    assert only_canary.get("canary").__module__ == module
    assert only_canary.entry(EXAMPLE).status == "disabled"


def test_an_allowed_name_that_is_not_installed_is_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="bibev.providers.registry"):
        assert Registry(allow=[EXAMPLE, "no-such-provider"]).available() == [EXAMPLE]
    assert "BIBEV_PLUGINS names 'no-such-provider'" in caplog.text


COUNTING_MODULE = """
    from bibev.providers import Adapter

    class _Counted(Adapter):
        name = "counted"

    LOADS = []

    def __getattr__(attr):
        # every entry-point load looks the class up here, so each load is counted
        if attr == "CountedAdapter":
            LOADS.append(attr)
            return _Counted
        raise AttributeError(attr)
"""


def test_discovery_is_lazy_and_happens_once(install_plugin):
    module = install_plugin({"counted": "{module}:CountedAdapter"}, COUNTING_MODULE)
    registry = Registry(allow=["counted"])
    assert module not in sys.modules
    registry.entries()
    registry.entries()
    registry.get("counted")
    registry.adapter("counted")
    registry.available()
    assert sys.modules[module].LOADS == ["CountedAdapter"]
    Registry(allow=["counted"]).entries()  # a new registry discovers again: the counter works
    assert sys.modules[module].LOADS == ["CountedAdapter"] * 2


def test_get_registry_shares_one_registry_per_allow_list():
    assert get_registry([EXAMPLE, "sim"]) is get_registry(["sim", EXAMPLE, "sim"])
    assert get_registry([EXAMPLE]) is not get_registry(["sim"])
    assert get_registry([EXAMPLE]).allow == frozenset([EXAMPLE])


class FakeOptions(ProviderOptions):
    token: SecretStr
    region: str = "eu"


class FakeAdapter(Adapter):
    name: ClassVar[str] = "fake-test"
    formats: ClassVar[tuple[str, ...]] = ("json",)
    Options = FakeOptions
    mapping: ClassVar = (SignalMap("SoC", "soc_pct"),)

    def flatten(self, payload, *, received_at=None):
        return [FlatRow(payload["vin"], received_at, "SoC", payload["soc"])]


@pytest.fixture
def fake_registry():
    registry = get_registry([EXAMPLE])
    registry.register(FakeAdapter, package="tests", version="9.9")
    yield registry
    registry.unregister("fake-test")


def test_a_registered_fake_adapter_is_listed_and_usable(fake_registry):
    entry = fake_registry.entry("fake-test")
    assert (entry.status, entry.package, entry.version, entry.can_fetch) == (
        "ok",
        "tests",
        "9.9",
        False,
    )
    adapter = fake_registry.adapter("fake-test", {"token": "t0k"})
    ts = datetime(2025, 3, 1, tzinfo=UTC)
    assert adapter.flatten({"vin": VIN, "soc": 50.0}, received_at=ts) == [
        FlatRow(VIN, ts, "SoC", 50.0)
    ]
    assert fake_registry.available() == [EXAMPLE, "fake-test"]


def test_unregister_forgets_the_adapter(fake_registry):
    fake_registry.unregister("fake-test")
    with pytest.raises(
        ConfigError, match="unknown provider 'fake-test'; available: example-logger"
    ):
        fake_registry.get("fake-test")


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        (FakeAdapter, "provider 'fake-test' is already registered"),
        (ExampleLoggerAdapter, "provider 'example-logger' is already registered"),
        (dict, "dict (type) is not an Adapter subclass"),
        (type("Nameless", (Adapter,), {}), "Nameless has no name"),
    ],
)
def test_register_refuses_what_cannot_be_an_adapter(fake_registry, candidate, reason):
    with pytest.raises(ConfigError, match=re.escape(reason)):
        fake_registry.register(candidate)


@pytest.mark.parametrize(
    ("options", "problems"),
    [
        ({}, ["token: Field required"]),
        ({"token": "s3cr3t-value", "regoin": "s3cr3t-typo"}, ["regoin: Extra inputs"]),
        ({"token": 12345678, "region": ["s3cr3t-list"]}, ["token: Input should be", "region"]),
    ],
)
def test_invalid_options_name_the_field_never_the_value(fake_registry, options, problems):
    with pytest.raises(ConfigError) as caught:
        fake_registry.adapter("fake-test", options)
    message = str(caught.value)
    assert message.startswith("invalid options for provider 'fake-test': ")
    assert all(p in message for p in problems)
    assert "s3cr3t" not in message
    assert "12345678" not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ is True


def test_describe_adapter_marks_secrets_and_converts_units():
    info = describe_adapter(ExampleLoggerAdapter)
    options = {o["name"]: o for o in info["options"]}
    odometer = next(m for m in info["mapping"] if m["key"] == "odo_mi")
    assert options["api_key"] == {
        "name": "api_key",
        "type": "SecretStr | None",
        "required": False,
        "default": None,
        "secret": True,
        "description": "API key of the fleet account",
    }
    assert (options["page_size"]["type"], options["page_size"]["default"]) == ("int", 500)
    assert options["base_url"]["secret"] is False
    assert (odometer["column"], odometer["scale"]) == ("odometer_km", 1.609344)
    assert (info["formats"], info["can_fetch"]) == (["json"], True)


def test_a_secret_default_is_never_described():
    class WithDefault(ProviderOptions):
        token: SecretStr = SecretStr("built-in-default-token")

    (token,) = describe_options(WithDefault)
    assert (token["default"], token["secret"], token["required"]) == ("(set)", True, False)


def test_importing_bibev_providers_imports_no_adapter():
    code = (
        "import sys, bibev.providers as p; p.get_registry(); "
        "print(' '.join(sorted(m for m in sys.modules if 'bibev' in m)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == [
        "bibev",
        "bibev.errors",
        "bibev.providers",
        "bibev.providers.base",
        "bibev.providers.registry",
    ]
