"""Ask each plugin binary a conf dir names which spec versions it supports."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ...core.version import PluginInfo
from ...errors import CNIError
from .model import PluginStatus

__all__ = ["probe_versions"]


def probe_versions(
    statuses: Mapping[str, PluginStatus],
    version_info: Callable[[str], PluginInfo],
    *,
    workers: int = 8,
) -> dict[str, PluginStatus]:
    """Ask every found plugin VERSION, each distinct binary once, a few at a time.

    Args:
        statuses: from :func:`resolve_plugins`.
        version_info: runs the probe (``CNI(...).version_info``).
        workers: probes run at once.

    Returns:
        The statuses with ``info`` or ``probe_error`` filled in.
    """
    by_binary: dict[str, list[str]] = {}
    for status in statuses.values():
        if status.path:
            by_binary.setdefault(status.path, []).append(status.type)
    if not by_binary:
        return dict(statuses)

    def ask(plugin_type: str) -> tuple[PluginInfo | None, str]:
        try:
            return version_info(plugin_type), ""
        except CNIError as exc:
            return None, exc.one_line()

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(by_binary)))) as pool:
        answers = dict(zip(by_binary, pool.map(ask, [types[0] for types in by_binary.values()]), strict=True))
    out = dict(statuses)
    for binary, types in by_binary.items():
        info, error = answers[binary]
        for plugin_type in types:
            out[plugin_type] = out[plugin_type].replace(info=info, probe_error=error, probed=True)
    return out
