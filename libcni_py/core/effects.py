"""The effects a plan yields: the one vocabulary between the pure core and
the drivers.

A plan (:mod:`libcni_py.core.operations`, the runtime layer's pod plans) is a
generator.  It asks for I/O by delegating to an effect --
``paths = yield from Resolve(...)`` -- which yields the effect to the driver
and returns the outcome the driver sends back, typed: each effect is an
:class:`Effect` ``[T]`` whose ``T`` is what performing it returns, so mypy
checks every ``x = yield from Eff(...)`` end to end.  An effect that fails
(a cache file that cannot be read, say) is thrown into the plan at that
point.

Each effect names the driver method that performs it (:func:`handled_by`);
:class:`libcni_py.drivers.handlers.Handlers` declares one abstract method
per effect, so a driver that forgets one cannot be instantiated (mypy says
which).  Effects are values: the tracer and the dry run describe them
(:func:`libcni_py.drivers.describe.describe`), the scripted driver
(:mod:`libcni_py.drivers.scripted`) answers them from a script.

Importing this module costs nothing the one-shot CLI avoids: the generic
base is spelled for mypy under ``TYPE_CHECKING`` and is a plain class at run
time.
"""

from __future__ import annotations

from .value import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable
    from typing import Any, ClassVar, Generic, TypeAlias, TypeVar

    from ..errors import CacheError, PluginNotFoundError
    from . import plugin_call as invoke
    from .record import AttachmentKey

    T = TypeVar("T")
    T_co = TypeVar("T_co", covariant=True)
    E = TypeVar("E", bound="type[Effect[Any]]")

    class Effect(Value, Generic[T_co]):
        """Something a plan asks a driver to do, whose outcome is a ``T_co``."""

        __slots__ = ()
        #: the name of the :class:`~libcni_py.drivers.handlers.Handlers` method that performs it
        handler: ClassVar[str]

        def __iter__(self) -> Generator[Effect[Any], Any, T_co]:
            outcome: T_co = yield self
            return outcome

    #: An operation: yields effects, returns a ``T``.
    Plan: TypeAlias = Generator[Effect[Any], Any, T]
    #: A plugin's binary, or why it cannot be run (see ``_resolve_each`` in
    #: :mod:`libcni_py.core.operations`).
    Found: TypeAlias = "str | PluginNotFoundError"
    #: One file of ``results/``: its name, its bytes, or why they cannot be read.
    Listed: TypeAlias = "tuple[str, bytes | None, CacheError | None]"
else:

    class Effect(Value):
        """Something a plan asks a driver to do (see the module)."""

        __slots__ = ()

        def __class_getitem__(cls, item):
            return cls  # ``Effect[T]`` is for mypy; at run time there is one base

        def __iter__(self):
            return (yield self)


__all__ = [
    "CORE_EFFECTS",
    "Acquire",
    "AcquireGC",
    "Effect",
    "Exec",
    "ListRecords",
    "Notice",
    "ProbeLinks",
    "ProbeNetns",
    "ReadRecord",
    "Release",
    "RemoveRecord",
    "Resolve",
    "Sweep",
    "WriteRecord",
    "handled_by",
]


def handled_by(name: str) -> Callable[[E], E]:
    """Class decorator: the effect is performed by the driver method ``name``
    (an abstract method of :class:`~libcni_py.drivers.handlers.Handlers` or of
    a subclass of it)."""

    def mark(cls: E) -> E:
        cls.handler = name
        return cls

    return mark


@handled_by("resolve")
class Resolve(Effect["tuple[str, ...]"]):
    """Find the binaries of these plugin types -> ``tuple[str, ...]`` of paths.
    Raises :class:`~libcni_py.errors.PluginNotFoundError` for the first missing."""

    __slots__ = ("plugin_types", "plugin_path")
    plugin_types: tuple[str, ...]
    plugin_path: tuple[str, ...]

    def __init__(self, *, plugin_types: Iterable[str], plugin_path: Iterable[str]) -> None:
        self._set(plugin_types=tuple(plugin_types), plugin_path=tuple(plugin_path))


@handled_by("exec")
class Exec(Effect["invoke.ExecOutcome"]):
    """Run one plugin -> :class:`~libcni_py.core.plugin_call.ExecOutcome` (never raises
    for a failing plugin; the plan decides what the outcome means)."""

    __slots__ = ("request",)
    request: invoke.ExecRequest

    def __init__(self, *, request: invoke.ExecRequest) -> None:
        self._set(request=request)


@handled_by("read_record")
class ReadRecord(Effect["bytes | None"]):
    """Read an attachment record -> ``bytes | None``; may raise CacheError."""

    __slots__ = ("key",)
    key: AttachmentKey

    def __init__(self, *, key: AttachmentKey) -> None:
        self._set(key=key)


@handled_by("write_record")
class WriteRecord(Effect[None]):
    """Replace an attachment record atomically -> None.

    ``durable=False`` marks a checkpoint that need not survive a power loss
    (the record it replaces did, and says as much): the store skips its
    ``fsync`` calls.  Replacing is atomic either way.
    """

    __slots__ = ("key", "data", "durable")
    key: AttachmentKey
    data: bytes
    durable: bool

    def __init__(self, *, key: AttachmentKey, data: bytes, durable: bool = True) -> None:
        self._set(key=key, data=data, durable=durable)


@handled_by("remove_record")
class RemoveRecord(Effect[bool]):
    """Remove an attachment record -> ``bool`` (whether there was one)."""

    __slots__ = ("key",)
    key: AttachmentKey

    def __init__(self, *, key: AttachmentKey) -> None:
        self._set(key=key)


@handled_by("list_records")
class ListRecords(Effect["list[Listed]"]):
    """List ``results/`` -> ``list[tuple[name, bytes | None, CacheError | None]]``."""

    __slots__ = ("container_id",)
    container_id: str

    def __init__(self, *, container_id: str = "") -> None:
        self._set(container_id=container_id)


@handled_by("acquire")
class Acquire(Effect[None]):
    """Take the attachment's cross-process lock -> None (waits); with it,
    the cache dir's GC lock shared (see :class:`AcquireGC`), held until
    the plan ends."""

    __slots__ = ("key",)
    key: AttachmentKey

    def __init__(self, *, key: AttachmentKey) -> None:
        self._set(key=key)


@handled_by("acquire_gc")
class AcquireGC(Effect[None]):
    """Take the cache directory's GC lock exclusively -> None: no ADD, CHECK
    or DEL on this cache dir runs meanwhile, in any process (each takes it
    shared along with its attachment's lock, see :class:`Acquire`); the
    spec: "The runtime must exclusively execute either gc or add and
    delete".  Waits until the operation's timeout, then raises
    :class:`~libcni_py.errors.LockTimeoutError` naming the holder.  Held
    until the plan ends.

    Raises:
        LockUnavailableError: the lock file cannot be created (a read-only
            cache dir): GC then goes on without it.
    """

    __slots__ = ()

    def __init__(self) -> None:
        self._set()


@handled_by("release")
class Release(Effect[None]):
    """Release the attachment's lock -> None; ``forget`` also removes the lock
    file (after a successful DEL).  Drivers release every lock a plan still
    holds when it ends, however it ends."""

    __slots__ = ("key", "forget")
    key: AttachmentKey
    forget: bool

    def __init__(self, *, key: AttachmentKey, forget: bool = False) -> None:
        self._set(key=key, forget=forget)


@handled_by("sweep")
class Sweep(Effect["tuple[int, int]"]):
    """Remove what crashed writers left in the cache directory for this
    network -> ``tuple[int, int]`` (temporary files, lock files removed):
    temporary files older than ``older_than`` seconds, and lock files of
    attachments that have no record and that nobody holds."""

    __slots__ = ("network", "older_than")
    network: str
    older_than: float

    def __init__(self, *, network: str, older_than: float = 600.0) -> None:
        self._set(network=network, older_than=older_than)


@handled_by("probe_netns")
class ProbeNetns(Effect[str]):
    """Is the namespace at ``path`` alive -> ``str``: one of
    :func:`libcni_py.netns.state`'s answers (``alive``, ``gone``, ``stale``,
    ``unknown``).  Never raises; a dry run answers ``unknown``."""

    __slots__ = ("path",)
    path: str

    def __init__(self, *, path: str) -> None:
        self._set(path=path)


@handled_by("probe_links")
class ProbeLinks(Effect["tuple[str, ...] | None"]):
    """Which of the interfaces ``names`` exist in the namespace at ``path``
    -> ``tuple[str, ...]``, or None when that cannot be told (the namespace
    cannot be entered: gone, or not root).  Never raises; a dry run answers
    None."""

    __slots__ = ("path", "names")
    path: str
    names: tuple[str, ...]

    def __init__(self, *, path: str, names: Iterable[str]) -> None:
        self._set(path=path, names=tuple(names))


@handled_by("notice")
class Notice(Effect[None]):
    """Something a person should know (a damaged cache file was found, say)
    -> None.  Drivers hand it to the caller's notice callback."""

    __slots__ = ("text",)
    text: str

    def __init__(self, *, text: str) -> None:
        self._set(text=text)


#: Every effect of the core, in the order :class:`~libcni_py.drivers.handlers.Handlers` declares them.
CORE_EFFECTS = (
    Resolve,
    Exec,
    ReadRecord,
    WriteRecord,
    RemoveRecord,
    ListRecords,
    Acquire,
    AcquireGC,
    Release,
    Sweep,
    ProbeNetns,
    ProbeLinks,
    Notice,
)
