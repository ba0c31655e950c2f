"""Provider adapters: the contract (``Adapter`` and friends) and the registry that finds them.

Importing this package imports no adapter: adapters are loaded through their entry points, on
first use, by ``get_registry()``.
"""

from bibev.providers.base import Adapter, FetchBatch, FlatRow, ProviderOptions, SignalMap
from bibev.providers.registry import get_registry

__all__ = ["Adapter", "FetchBatch", "FlatRow", "ProviderOptions", "SignalMap", "get_registry"]
