"""The plugin types a configuration names: its chain and the plugins those
run themselves (IPAM, delegates)."""

from __future__ import annotations

from ...core.netconf import PluginConf
from .model import DELEGATE_KEYS, Listing

__all__ = ["chain_types", "delegates"]


def delegates(plugin: PluginConf) -> tuple[str, ...]:
    """Plugin types a plugin object names for running itself (``ipam.type``,
    ``delegate.type``)."""
    found = []
    for key in DELEGATE_KEYS:
        sub = plugin.raw.get(key)
        if isinstance(sub, dict) and isinstance(sub.get("type"), str) and sub["type"]:
            found.append(sub["type"])
    return tuple(found)


def chain_types(listing: Listing) -> list[str]:
    """Every plugin type the loaded files name (chains and delegates), in
    order of first appearance."""
    seen: dict[str, None] = {}
    for entry in listing.files:
        if entry.conflist is None:
            continue
        for plugin in entry.conflist.plugins:
            seen.setdefault(plugin.type)
            for sub in delegates(plugin):
                seen.setdefault(sub)
    return list(seen)
