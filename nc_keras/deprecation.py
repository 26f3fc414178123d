"""Old names that keep working for one release, each with a DeprecationWarning.

When an argument, attribute or value is renamed, the old spelling still
works until the next release; every use warns and names the new spelling,
so a user's code keeps running while it shows what to change. Passing the
old and the new name together is a `TypeError` (which one was meant?).
"""

import functools
import warnings

__all__ = ["renamed_arguments", "renamed_attribute", "renamed_value", "warn"]


def warn(old, new, stacklevel=3):
    """Warns that `old` is deprecated in favour of `new` (`stacklevel` as
    `warnings.warn`'s, counted from this function: 3 is its caller's caller)."""
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def _owner_name(function):
    # "NeuralCollapse.__init__" -> "NeuralCollapse": the user calls the class.
    name = function.__qualname__
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def renamed_arguments(**renames):
    """Decorator: keyword arguments renamed `old="new"`, the old ones still accepted.

    Example:

        @renamed_arguments(lr="learning_rate")
        def solve(..., learning_rate=None): ...

        solve(lr=0.1)  # DeprecationWarning: solve(lr=) ... use learning_rate=
    """

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            where = _owner_name(wrapper)  # at call time: a builder may be renamed
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(
                            f"{where}() got both {old}= (its deprecated name) and {new}=; "
                            f"pass {new}= only")
                    warn(f"{where}({old}=)", f"{new}=")
                    kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return wrapper

    return decorate


def renamed_value(value, renames, argument, where, stacklevel=2):
    """`value`, or its new spelling (with a warning) if it is an old one in `renames`.

    `stacklevel`: the frame the warning points at, 1 being this function's
    caller (2, the default: the caller's caller, the user's line).
    """
    if isinstance(value, str) and value in renames:
        warn(f"{where}({argument}={value!r})", f"{argument}={renames[value]!r}",
             stacklevel=stacklevel + 2)
        return renames[value]
    return value


def renamed_attribute(new):
    """A property under an old attribute name that reads and writes `new`, with a warning.

    Example, in a class body: `every = renamed_attribute("freq")`.
    """

    class _Renamed:
        def __set_name__(self, owner, name):
            self.old = f"{owner.__name__}.{name}"

        def __get__(self, instance, owner=None):
            if instance is None:
                return self
            warn(self.old, f"{owner.__name__}.{new}")
            return getattr(instance, new)

        def __set__(self, instance, value):
            warn(self.old, f"{type(instance).__name__}.{new}")
            setattr(instance, new, value)

    return _Renamed()


def keyword_only(old_order, positional=1):
    """Decorator: arguments after the first `positional` are keyword-only; a call
    that passes more positionally, in the order `old_order` of the old
    signature, still works with a warning.

    Example: `mlp(num_classes=10, *, width=1024, ...)`, formerly
    `mlp(width=1024, depth=4, num_classes=10, ...)`:

        @keyword_only(("width", "depth", "num_classes", ...))
        def mlp(num_classes=10, *, width=1024, depth=4, ...): ...

        mlp(10)            # num_classes=10
        mlp(512, 2, 10)    # DeprecationWarning; width=512, depth=2, num_classes=10
    """

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if len(args) <= positional:
                return function(*args, **kwargs)
            where = _owner_name(wrapper)  # at call time: a builder may be renamed
            if len(args) > len(old_order):
                raise TypeError(f"{where}() takes at most {positional} positional argument(s)")
            named = dict(zip(old_order, args))
            both = sorted(set(named) & set(kwargs))
            if both:
                raise TypeError(f"{where}() got multiple values for {', '.join(both)}")
            warn(f"passing {', '.join(named)} to {where}() by position",
                 f"keywords: {where}({', '.join(f'{name}=...' for name in named)})")
            return function(**named, **kwargs)

        return wrapper

    return decorate
