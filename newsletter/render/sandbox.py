"""The Jinja environments templates run in: immutable sandbox, no dunder access, no surprises.

Templates are written by marketers, so they are untrusted code. Every template runs in an
``ImmutableSandboxedEnvironment``; HTML autoescapes, text parts do not. An unsafe attribute
access (``''.__class__``, ``cycler.__init__.__globals__``, ``|attr('__class__')``, format-string
tricks) raises ``TemplateSecurityError`` at once instead of quietly rendering an empty string.
Preview uses ``StrictUndefined`` so every misspelt name fails loudly. Every call, filter,
``**`` / ``*`` / ``%`` and loop step is also checked against the limits of
``newsletter.render.limits`` (render time, string and integer sizes).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined, nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from newsletter.render import limits

REMOVED_GLOBALS = ("cycler", "joiner", "lipsum")
_PLAIN_MAPPINGS = (dict, MappingProxyType)
DENIED_ATTRIBUTES = frozenset({"format", "format_map", "mro"})


class RenderError(ValueError):
    """A template failed to render for a message; the message says which template and why."""


class TemplateSecurityError(RenderError):
    """A template tried something the sandbox forbids (dunder access, unsafe calls)."""


def _check_denied(obj: Any, name: str) -> None:
    if name in DENIED_ATTRIBUTES and not (isinstance(obj, Mapping) and name in obj):
        raise SecurityError(f"access to {name!r} of a {type(obj).__name__!r} object is not allowed")


class _Sandbox(ImmutableSandboxedEnvironment):
    """Immutable sandbox that fails loudly on unsafe attribute access and enforces limits."""

    intercepted_binops = frozenset({"**", "*", "%"})
    guarded_iter = staticmethod(limits.guarded_iter)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """``**`` and ``*`` within the size limits; ``%`` formatting without huge widths."""
        limits.check_time()
        if operator == "**":
            limits.check_power(left, right)
        elif operator == "*":
            limits.check_multiply(left, right)
        else:
            limits.check_format(left)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Every call checks the deadline; str methods that build strings check their size."""
        limits.check_time()
        args = limits.check_method(__obj, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def _generate(
        self, source: nodes.Template, name: Any, filename: Any, defer_init: bool = False
    ) -> str:
        """Compile with every ``{% for %}`` iterating through ``limits.guarded_iter``."""
        for loop in source.find_all(nodes.For):
            guard = nodes.EnvironmentAttribute("guarded_iter", lineno=loop.lineno)
            loop.iter = nodes.Call(guard, [loop.iter], [], None, None, lineno=loop.lineno)
        return super()._generate(source, name, filename, defer_init=defer_init)

    def getattr(self, obj: Any, attribute: str) -> Any:
        """Plain-data keys first (fast, and data cannot be unsafe); refuse ``str.format``."""
        if type(obj) in _PLAIN_MAPPINGS and attribute in obj:
            return obj[attribute]
        _check_denied(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        """Same rule for ``obj['format']``, which falls back to attribute access."""
        if isinstance(argument, str):
            _check_denied(obj, argument)
        return super().getitem(obj, argument)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(
            f"access to attribute {attribute!r} of a {type(obj).__name__!r} object is not allowed"
        )


@cache
def environment(
    *, html: bool, strict: bool = False, qp: bool = False
) -> ImmutableSandboxedEnvironment:
    """The shared sandbox for HTML (autoescaped) or text parts; strict = StrictUndefined;
    qp = every output is escaped and quoted-printable encoded (see ``render.qp``)."""
    from newsletter.render.qp import qp_value, tracked

    env = _Sandbox(
        autoescape=html and not qp,  # the QP finalize hook escapes instead
        finalize=qp_value if qp else None,
        newline_sequence="\r\n" if qp else "\n",
        keep_trailing_newline=qp,
        undefined=StrictUndefined if strict else Undefined,
        trim_blocks=not html,
        lstrip_blocks=not html,
        auto_reload=False,
        cache_size=0,
    )
    for name in REMOVED_GLOBALS:
        env.globals.pop(name, None)
    env.filters["tracked"] = tracked
    for name, func in list(env.filters.items()):
        env.filters[name] = limits.guard_filter(name, func)
    return env


def describe_error(exc: BaseException, *, template: str) -> RenderError:
    """Wrap a Jinja failure into a RenderError (or TemplateSecurityError) naming the template."""
    if isinstance(exc, limits.RenderLimitError):
        return RenderError(f"{template}: over a render limit: {exc}")
    if isinstance(exc, RecursionError):
        return RenderError(f"{template}: the template recurses or nests too deeply")
    if isinstance(exc, MemoryError):
        return RenderError(f"{template}: the template needs too much memory")
    if isinstance(exc, SecurityError):
        return TemplateSecurityError(f"template security error in {template}: {exc}")
    line = getattr(exc, "lineno", None)
    where = f"{template}, line {line}" if line else template
    kind = type(exc).__name__ if isinstance(exc, TemplateError) else "error"
    return RenderError(f"{where}: {kind}: {exc}")
