"""A small stand-in for the parts of ``dataclasses`` the thin client's records use.

``import dataclasses`` costs ~6 ms (it imports inspect, ast, dis, tokenize) and each class it
makes costs ~1 ms more (it compiles __init__/__eq__ with exec): a third of what `basin ps`
may take in all. Modules the one-shot commands load write::

    if TYPE_CHECKING:
        from dataclasses import asdict, dataclass, field
    else:
        from basin.plainclass import asdict, dataclass, field

so mypy checks them as real dataclasses, while at run time the fields come from the class's
annotations in order, with the same constructor, ==, repr, frozen and asdict behaviour for
the classes that use them (no InitVar, ClassVar, slots, kw_only or ordering). The functions
of ``dataclasses`` (asdict, fields, replace) do not work on them: use this module's asdict.
"""

from __future__ import annotations

from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")

_MISSING = object()


class _Field:
    __slots__ = ("factory",)

    def __init__(self, factory: Callable[[], object]) -> None:
        self.factory = factory


def field(*, default_factory: Callable[[], Any]) -> Any:
    return _Field(default_factory)


def _fields_of(cls: type) -> dict[str, object]:
    """Field name -> default (_MISSING, a value, or a _Field), base classes' fields first."""
    fields: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        # the class's own annotations, not inherited ones (inspect would cost its import)
        for name in klass.__dict__.get("__annotations__", {}):  # noqa: RUF063
            fields[name] = klass.__dict__.get(name, _MISSING)
    return fields


def _init(self: object, *args: object, **kwargs: object) -> None:
    fields: dict[str, object] = type(self).__dataclass_fields__  # type: ignore[attr-defined]
    if len(args) > len(fields):
        raise TypeError(f"{type(self).__name__}() takes {len(fields)} arguments, got {len(args)}")
    values = dict(zip(fields, args, strict=False))
    for name, value in kwargs.items():
        if name not in fields:
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {name!r}")
        if name in values:
            raise TypeError(f"{type(self).__name__}() got multiple values for argument {name!r}")
        values[name] = value
    for name, default in fields.items():
        if name not in values:
            if default is _MISSING:
                raise TypeError(f"{type(self).__name__}() missing argument {name!r}")
            values[name] = default.factory() if isinstance(default, _Field) else default
        object.__setattr__(self, name, values[name])


def _astuple(self: object) -> tuple[object, ...]:
    return tuple(getattr(self, name) for name in type(self).__dataclass_fields__)  # type: ignore[attr-defined]


def _eq(self: object, other: object) -> object:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _astuple(self) == _astuple(other)


def _repr(self: object) -> str:
    inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in type(self).__dataclass_fields__)  # type: ignore[attr-defined]
    return f"{type(self).__qualname__}({inner})"


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _hash(self: object) -> int:
    return hash(_astuple(self))


def _make(cls: type[T], frozen: bool) -> type[T]:
    fields = _fields_of(cls)
    cls.__dataclass_fields__ = fields  # type: ignore[attr-defined]
    for name, default in fields.items():
        if isinstance(default, _Field):
            delattr(cls, name)  # an instance without the value must not see the marker
    setattr(cls, "__init__", _init)  # noqa: B010
    setattr(cls, "__eq__", _eq)  # noqa: B010
    if "__repr__" not in cls.__dict__:
        setattr(cls, "__repr__", _repr)  # noqa: B010
    if frozen:
        setattr(cls, "__setattr__", _frozen_setattr)  # noqa: B010
        setattr(cls, "__hash__", _hash)  # noqa: B010
    else:
        setattr(cls, "__hash__", None)  # noqa: B010  (as dataclasses: mutable, eq -> unhashable)
    return cls


def dataclass(cls: type[T] | None = None, *, frozen: bool = False) -> Any:
    if cls is None:
        return lambda c: _make(c, frozen)
    return _make(cls, frozen)


def _copy(value: Any) -> Any:
    """A deep copy of JSON-like values (what records hold); records of this kind as dicts."""
    if hasattr(type(value), "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_copy(v) for v in value)
    return value


def asdict(obj: object) -> dict[str, Any]:
    """Fields to a dict, values deep-copied, as dataclasses.asdict does."""
    return {n: _copy(getattr(obj, n)) for n in type(obj).__dataclass_fields__}  # type: ignore[attr-defined]
