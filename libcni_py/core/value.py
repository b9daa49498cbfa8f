"""Immutable value objects, declared once, without importing :mod:`dataclasses`.

The one-shot CLI must start fast: ``dataclasses`` (which pulls in ``inspect``)
and ``typing`` together cost about 30 ms per process on the project's
machines, more than the work of a whole CNI call.  The package's value types
therefore derive from :class:`Value`, which does the part of a frozen,
slotted, keyword-only dataclass the package needs, at a fraction of the cost.

A value class states each field once, as an annotation, with its default if
it has one::

    class Route(Value):
        dst: str
        gw: str | None = None
        hops: tuple[str, ...] = ()
        extra: dict[str, Any] = fresh(dict)

From that, the class gets ``__slots__``, a keyword-only ``__init__`` (checked:
a missing or unknown field raises :class:`TypeError`), equality, hashing,
``repr``, :meth:`Value.replace`, and immutability (assignment after
construction raises, like a frozen dataclass).  Type checkers see the same
``__init__``: the metaclass is marked with :func:`typing.dataclass_transform`
(only while type checking, so that ``typing`` stays off the CLI's path).

Conversions, by the field's declared type, so that a value always holds what
it says: a ``tuple[...]`` field given another iterable (a list, a generator)
stores ``tuple(it)``; a ``dict[...]`` field stores a copy of what it is given
(so a caller's later changes do not show through).  Anything else a class
must check or derive goes in a ``_post_init(self)`` method, which runs after
the fields are set and may call :meth:`Value._set`.  ``fresh(factory)`` is a
default made anew for each value (only a ``dict`` default needs it).

A class may still spell ``__slots__`` and ``__init__`` by hand (calling
``self._set(...)``); the metaclass then leaves both alone.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar, Self, TypeVar, dataclass_transform

    _T = TypeVar("_T")
else:

    def dataclass_transform(**_: object) -> object:
        return lambda cls: cls


__all__ = ["Value", "fresh"]


class _Fresh:
    """A default made anew for each value (see :func:`fresh`)."""

    __slots__ = ("factory",)

    def __init__(self, factory: Callable[[], object]) -> None:
        self.factory = factory


def fresh(factory: Callable[[], _T]) -> _T:
    """A field default made by calling ``factory`` for each new value."""
    return _Fresh(factory)  # type: ignore[return-value]


def _is_classvar(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar", "Final", "typing.Final"))


def _container(annotation: object) -> type | None:
    """``tuple`` or ``dict`` when ``annotation`` is ``tuple[...]`` or
    ``dict[...]`` as a whole (not in a union), else None.  Runs for every
    field of every value class at import, so the common case (neither)
    costs one ``startswith``."""
    if not isinstance(annotation, str):
        origin = getattr(annotation, "__origin__", annotation)
        return origin if origin is tuple or origin is dict else None
    if not annotation.startswith(("tuple[", "dict[")) or not annotation.endswith("]"):
        return None
    kind = tuple if annotation[0] == "t" else dict
    depth = 0
    for i, char in enumerate(annotation):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return kind if i == len(annotation) - 1 else None
    return None


@dataclass_transform(kw_only_default=True, frozen_default=True, eq_default=True, field_specifiers=())
class _ValueMeta(type):
    """Derives ``__slots__`` and the field table from a class's annotations."""

    def __new__(mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> _ValueMeta:
        fields: dict[str, None] = {}
        defaults: dict[str, object] = {}
        converts: dict[str, type] = {}
        for base in reversed(bases):
            fields.update(dict.fromkeys(getattr(base, "_value_fields", ())))
            defaults.update(getattr(base, "_value_defaults", {}))
            converts.update(getattr(base, "_value_converts", {}))
        if "__slots__" in namespace:  # spelled by hand: the class sets its fields itself
            fields.update(dict.fromkeys(namespace["__slots__"]))
        else:
            own = [n for n, a in namespace.get("__annotations__", {}).items() if not _is_classvar(a)]
            for field in own:
                if field in namespace:
                    defaults[field] = namespace.pop(field)
                kind = _container(namespace["__annotations__"][field])
                if kind is not None:
                    converts[field] = kind
            namespace["__slots__"] = tuple(f for f in own if f not in fields)
            fields.update(dict.fromkeys(own))
        namespace["_value_fields"] = tuple(fields)
        namespace["_value_defaults"] = defaults
        namespace["_value_converts"] = converts
        return super().__new__(mcls, name, bases, namespace)


class Value(metaclass=_ValueMeta):
    """Base class of frozen, slotted, keyword-initialised records."""

    __slots__ = ()
    _value_fields: ClassVar[tuple[str, ...]]
    _value_defaults: ClassVar[dict[str, object]]
    _value_converts: ClassVar[dict[str, type]]

    def __init__(self, **fields: Any) -> None:
        cls = type(self)
        setattr_ = object.__setattr__
        converts = cls._value_converts
        for name, default in cls._value_defaults.items():
            if name not in fields:
                fields[name] = default.factory() if type(default) is _Fresh else default
        if len(fields) != len(cls._value_fields):
            missing = [n for n in cls._value_fields if n not in fields]
            unknown = sorted(set(fields) - set(cls._value_fields))
            problem = f"missing field(s) {missing}" if missing else f"has no field(s) {unknown}"
            raise TypeError(f"{cls.__name__}: {problem}")
        for name, value in fields.items():
            kind = converts.get(name)
            if kind is dict or (kind is tuple and type(value) is not tuple):
                value = kind(value)  # noqa: PLW2901 -- the conversion the module docstring describes
            setattr_(self, name, value)
        post_init = getattr(self, "_post_init", None)
        if post_init is not None:
            post_init()

    def _set(self, **fields: Any) -> None:
        """Set fields; call this only while the value is being made."""
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable (tried to set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable (tried to delete {name!r})")

    @classmethod
    def _fields(cls) -> tuple[str, ...]:
        return cls._value_fields

    def _astuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._value_fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._astuple() == other._astuple()

    def __hash__(self) -> int:
        return hash((type(self).__name__, *(_hashable(v) for v in self._astuple())))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._value_fields)
        return f"{type(self).__name__}({inner})"

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (like ``dataclasses.replace``)."""
        values = {name: getattr(self, name) for name in self._value_fields}
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {sorted(unknown)}")
        values.update(changes)
        return type(self)(**values)


def _hashable(value: object) -> object:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value
