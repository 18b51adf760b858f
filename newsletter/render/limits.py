"""Resource limits for untrusted templates: time, output size, big numbers, big strings.

A template is code a marketer wrote, so one message's render must not hang a run, eat the
machine's memory or send megabytes. The limits (documented in ``templates/README.md``):

* ``RENDER_SECONDS``: the time one message (all its parts) may take to render;
* ``MAX_OUTPUT_CHARS``: the size of one rendered part, counted while it is generated;
* ``MAX_STRING_CHARS``: the largest string one operation may build (``'x' * n``,
  ``str.center``, ``|indent``, ``|replace``, ``|join``, ``%``-formatting widths...);
* ``MAX_INT_BITS``: the largest integer ``**`` or ``*`` may produce;
* ``MAX_FILTER_INT``: the largest number a filter takes as an argument (``|batch(n)``, ...);
* lint-time: ``MAX_NESTING`` blocks, ``MAX_EXPRESSION_DEPTH`` brackets, ``MAX_COMPILED_BYTES``
  of compiled HTML (deeper templates crash Python's parser and compiler).

Checks run from the sandbox's hooks (every call, filter, operator and loop step), so a render
past its deadline stops at its next step with `RenderLimitError` (a `SecurityError`, which
the renderer reports as that message's render error).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps
from itertools import islice
from typing import Any

from jinja2.sandbox import SecurityError

RENDER_SECONDS = 2.0
MAX_COMPILED_BYTES = 400_000  # lint: the HTML MJML compiles to, partials expanded
MAX_NESTING = 16  # lint: {% if %} / {% for %} / ... blocks inside one another
MAX_EXPRESSION_DEPTH = 32  # lint: brackets inside one {{ }} or {% %}
_BLOCK_OPENERS = frozenset(
    {"if", "for", "macro", "call", "filter", "with", "block", "autoescape", "raw", "trans"}
)
_TAG_WORDS = re.compile(r"\{%-?\s*(\w+)(.*?)-?%\}", re.DOTALL)
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
MAX_OUTPUT_CHARS = 1_000_000
MAX_STRING_CHARS = 1_000_000
MAX_INT_BITS = 4096
MAX_FILTER_INT = 10_000
MAX_FORMAT_WIDTH = 1_000

_DEADLINE: ContextVar[float | None] = ContextVar("newsletter_render_deadline", default=None)
_FORMAT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
# filters whose numeric arguments are counts or widths (|batch(10**9) builds a huge list)
SIZED_FILTERS = frozenset({"batch", "slice", "center", "indent", "wordwrap", "truncate", "tojson"})


class RenderLimitError(SecurityError):
    """A template went past one of the limits above; the message names the limit."""


@contextmanager
def deadline(seconds: float = RENDER_SECONDS) -> Iterator[None]:
    """Renders inside this block must finish within `seconds` (nested blocks keep the outer)."""
    if _DEADLINE.get() is not None:
        yield
        return
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def check_time() -> None:
    """Raise RenderLimitError when the current render is past its deadline."""
    end = _DEADLINE.get()
    if end is not None and time.monotonic() > end:
        raise RenderLimitError(f"the message took longer than {RENDER_SECONDS:g} s to render")


def _too_long(size: float, what: str) -> None:
    if size > MAX_STRING_CHARS:
        raise RenderLimitError(
            f"{what} would be {size:,.0f} long; the limit is {MAX_STRING_CHARS:,}"
        )


def _bits(value: int) -> int:
    return abs(value).bit_length()


def check_power(base: Any, exponent: Any) -> None:
    """Refuse ``base ** exponent`` when the integer result would exceed MAX_INT_BITS."""
    if not (isinstance(base, int) and isinstance(exponent, int)) or abs(base) < 2 or exponent < 1:
        return
    if exponent * math.log2(abs(base)) > MAX_INT_BITS:
        raise RenderLimitError(f"{base} ** {exponent} is too large (limit {MAX_INT_BITS} bits)")


def check_multiply(left: Any, right: Any) -> None:
    """Refuse repeating a string or list past MAX_STRING_CHARS, or a product past MAX_INT_BITS."""
    for seq, count in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(count, int):
            _too_long(len(seq) * max(count, 0), "the repeated value")
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and _bits(left) + _bits(right) > MAX_INT_BITS
    ):
        raise RenderLimitError(f"the product is too large (limit {MAX_INT_BITS} bits)")


def check_format(template: Any, values: Any = ()) -> None:
    """Refuse ``'%...' % values`` (and ``|format``) with ``*`` or widths over MAX_FORMAT_WIDTH."""
    if not isinstance(template, str):
        return
    for match in _FORMAT_SPEC.finditer(template):
        for group in match.groups():
            if group == "*" or (group is not None and int(group) > MAX_FORMAT_WIDTH):
                raise RenderLimitError(f"format width {group} is over {MAX_FORMAT_WIDTH}")


def _length(items: Iterable[Any]) -> int:
    return sum(len(str(i)) for i in items)


def check_method(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Size checks for the str methods that can build huge strings; returns the args to use
    (``join`` gets its iterable as a tuple, measured first)."""
    owner, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
    if not isinstance(owner, str):
        return args
    if name in _PADDING_METHODS and args and isinstance(args[0], int):
        _too_long(args[0], f"str.{name}()")
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        _too_long(len(owner) + owner.count("\t") * max(int(size), 0), "str.expandtabs()")
    elif name == "replace" and len(args) >= 2:
        _too_long(_replaced_size(owner, str(args[0]), str(args[1])), "str.replace()")
    elif name == "join" and args:
        items = tuple(args[0])
        _too_long(_length(items) + len(owner) * max(len(items) - 1, 0), "str.join()")
        return (items, *args[1:])
    return args


def _replaced_size(text: str, old: str, new: str) -> int:
    hits = text.count(old) if old else len(text) + 1
    return len(text) + hits * (len(new) - len(old))


def guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter with the limits applied: deadline, numeric arguments, output-size estimates."""
    passes = getattr(func, "jinja_pass_arg", None)
    skip = 1 if passes is not None else 0

    sized = name in SIZED_FILTERS

    @wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        check_time()
        value, rest = (args[skip] if len(args) > skip else None), args[skip + 1 :]
        for arg in (*rest, *kwargs.values()) if sized else ():
            if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_FILTER_INT:
                raise RenderLimitError(f"|{name} argument {arg} is over {MAX_FILTER_INT:,}")
        _filter_estimate(name, value, rest, kwargs)
        return func(*args, **kwargs)

    return guarded


def _filter_estimate(name: str, value: Any, rest: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    text = value if isinstance(value, str) else None
    if name == "replace" and text is not None and len(rest) >= 2:
        _too_long(_replaced_size(text, str(rest[0]), str(rest[1])), "|replace")
    elif name == "indent" and text is not None:
        width = rest[0] if rest else kwargs.get("width", 4)
        prefix = len(width) if isinstance(width, str) else int(width)
        _too_long(len(text) + (text.count("\n") + 1) * prefix, "|indent")
    elif name == "join" and isinstance(value, list | tuple):
        joiner = str(rest[0]) if rest else str(kwargs.get("d", ""))
        _too_long(_length(value) + len(joiner) * max(len(value) - 1, 0), "|join")
    elif name == "format":
        check_format(value)


def guarded_iter(iterable: Any) -> Iterator[Any]:
    """Every ``{% for %}`` step checks the deadline (a loop that outputs nothing still ends)."""
    for count, item in enumerate(iterable):
        if not count & 63:
            check_time()
        yield item


def generate_bounded(chunks: Iterator[str], *, name: str) -> str:
    """Join a template's output chunks, stopping at MAX_OUTPUT_CHARS or the deadline.

    Chunks are taken 64 at a time (each is bounded by the string limits), so the checks cost
    little on the hot path.
    """
    out: list[str] = []
    size = 0
    while pieces := list(islice(chunks, 64)):
        batch = "".join(pieces)
        size += len(batch)
        if size > MAX_OUTPUT_CHARS:
            raise RenderLimitError(f"{name} renders more than {MAX_OUTPUT_CHARS:,} characters")
        check_time()
        out.append(batch)
    return "".join(out)


def nesting_problem(text: str) -> tuple[int, str] | None:
    """(offset, message) of the first block nested deeper than MAX_NESTING or expression with
    brackets deeper than MAX_EXPRESSION_DEPTH; None when the text is within both."""
    depth = 0
    for match in _TAG_WORDS.finditer(text):
        word, rest = match.group(1), match.group(2)
        if word in _BLOCK_OPENERS or (word == "set" and "=" not in rest):
            depth += 1
            if depth > MAX_NESTING:
                return match.start(), f"blocks nest deeper than {MAX_NESTING}"
        elif word.startswith("end"):
            depth -= 1
    for match in _JINJA.finditer(text):
        level = deepest = 0
        for char in _QUOTED.sub("", match.group(0)[2:-2]):
            level += char in "([{"
            level -= char in ")]}"
            deepest = max(deepest, level)
        if deepest > MAX_EXPRESSION_DEPTH:
            return (
                match.start(),
                f"brackets nest deeper than {MAX_EXPRESSION_DEPTH} in one expression",
            )
    return None
