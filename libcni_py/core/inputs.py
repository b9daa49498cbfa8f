"""What an operation is given: the attachment (:class:`RuntimeConf`, Go's
``RuntimeConf``) and the runtime-wide settings (:class:`Options`).

Public values, in a module of their own so that every layer can name them
without importing the operations (:mod:`libcni_py.core.operations`).
"""

from __future__ import annotations

from .value import Value, fresh

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Literal, TypeAlias

    from .plugin_input import TraceContext

    #: Which configuration a DEL runs (:attr:`Options.delete_with`).
    DeleteWith: TypeAlias = Literal["recorded", "current"]

__all__ = ["Options", "RuntimeConf"]


class RuntimeConf(Value):
    """The runtime side of one attachment (Go's ``RuntimeConf``).

    Attributes:
        container_id: the container (sandbox) ID.
        netns: path of its network namespace.
        ifname: the interface name inside it.
        args: CNI_ARGS pairs.
        capability_args: capability arguments; each plugin gets those it
            declares, as ``runtimeConfig``.
    """

    container_id: str
    netns: str = ""
    ifname: str = "eth0"
    args: tuple[tuple[str, str], ...] = ()
    capability_args: Mapping[str, Any] = fresh(dict)

    def _post_init(self) -> None:
        self._set(args=tuple((k, v) for k, v in self.args), capability_args=dict(self.capability_args or {}))


class Options(Value):
    """Runtime-wide settings a plan needs.

    Attributes:
        plugin_path: directories searched for plugin binaries, in order.
        base_env: the environment plugins inherit (Go passes the runtime's).
        trace: a W3C trace context for plugins, or None.
        delete_with: which configuration DEL (and GC's DEL of stale
            attachments) runs: ``"recorded"`` -- the one the attachment was
            added with, when its record holds one (the default, see
            :func:`_config_for_delete`) -- or ``"current"``: the one given, as
            Go libcni does (the way past a recorded plugin that can no longer
            DEL).
    """

    plugin_path: tuple[str, ...]
    base_env: Mapping[str, str]
    trace: TraceContext | None = None
    delete_with: DeleteWith = "recorded"

    def _post_init(self) -> None:
        if self.delete_with not in ("recorded", "current"):
            raise ValueError(f"delete_with must be 'recorded' or 'current', not {self.delete_with!r}")
