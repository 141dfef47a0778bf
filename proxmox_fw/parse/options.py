"""``[OPTIONS]`` lines: ``key: value`` validated per file kind.

An option is declared once, as a field of its file's ``*Options`` model
(``model/fwfile.py``): the table of keys here is derived from the fields' types, and the
few options with a syntax of their own carry an ``OptionSyntax`` marker.

Keys and booleans ignore case (Perl and Rust each accept a subset). A bad value costs
its line and leaves the default; an unknown key is a warning. Keys that upstream accepts
but this firewall has no use for are taken with a warning (an option without effect is
never silent), never an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple, get_args

from proxmox_fw.data import find_ct_helper
from proxmox_fw.data.ethertypes import lookup_ethertype
from proxmox_fw.diagnostics import Diagnostics, Severity
from proxmox_fw.limits import ascii_uint
from proxmox_fw.model import (
    ClusterOptions,
    GuestOptions,
    HostOptions,
    LogLevel,
    LogRateLimit,
    OptionSyntax,
    Verdict,
    VnetOptions,
)
from proxmox_fw.parse.pve_refusals import option_refusals
from proxmox_fw.parse.values import (
    ValueParseError,
    parse_bool,
    parse_log_level,
    parse_uint,
    parse_verdict,
)

FileKind = Literal["cluster", "host", "guest", "vnet"]

# Perl's "enable: <unix time>" form: enabled only within this many seconds of that time.
ENABLE_TIMESTAMP_WINDOW: Final = 60


@dataclass(frozen=True, slots=True)
class OptionContext:
    """Where an option line is, for diagnostics, and the clock for ``enable`` stamps."""

    file: str
    line: int
    diags: Diagnostics
    now: float


OptionParser = Callable[[str, OptionContext], object]


class OptionSpec(NamedTuple):
    field: str | None  # model field; None: accepted for compatibility, not modelled
    parse: OptionParser
    empty_means_default: bool = False


# Returned by a parser to reset the option to its model default.
DEFAULT: Final = object()


def _bool(value: str, _ctx: OptionContext) -> bool:
    return parse_bool(value)


def _verdict(value: str, _ctx: OptionContext) -> object:
    return parse_verdict(value)


def _log_level(value: str, _ctx: OptionContext) -> object:
    return parse_log_level(value)


def _uint(value: str, _ctx: OptionContext) -> int:
    return parse_uint(value)


def _ignored(_value: str, _ctx: OptionContext) -> object:
    return DEFAULT


def _cluster_enable(value: str, ctx: OptionContext) -> bool:
    """A boolean, or Perl's Unix timestamp meaning "enabled if set just now"."""
    stamp = ascii_uint(value)
    if stamp is None or stamp <= 1:
        return parse_bool(value)
    age = ctx.now - stamp
    if age > ENABLE_TIMESTAMP_WINDOW:
        ctx.diags.add(
            ctx.file,
            ctx.line,
            f"enable is a timestamp {int(age)} s old (over {ENABLE_TIMESTAMP_WINDOW} s); "
            "the firewall stays disabled",
            Severity.INFO,
        )
        return False
    return True


def _conntrack_helpers(value: str, ctx: OptionContext) -> list[str]:
    helpers: list[str] = []
    for item in value.split(","):
        name = item.strip().lower()
        if not name:
            continue
        if find_ct_helper(name) is None:
            ctx.diags.warning(ctx.file, ctx.line, f"unknown conntrack helper '{item.strip()}' "
                              "ignored")
        elif name not in helpers:
            helpers.append(name)
    return helpers


def _ips_queues(value: str, _ctx: OptionContext) -> tuple[int, int]:
    m = re.fullmatch(r"([0-9]+)(?::([0-9]+))?", value)
    if m is None:
        raise ValueParseError(f"'{value}' is not a queue number or range N:M")
    lo = parse_uint(m.group(1), "queue number", 65535)
    hi = parse_uint(m.group(2), "queue number", 65535) if m.group(2) is not None else lo
    if lo > hi:
        raise ValueParseError(f"queue range '{value}' is reversed (start is after end)")
    return lo, hi


def _ethertypes(value: str, ctx: OptionContext) -> list[int]:
    """Names or numbers as ebtables ``-p`` takes them. An unknown one is left out with a
    warning, so its frames are dropped: a typo narrows the filter, never opens it."""
    numbers: list[int] = []
    for item in value.split(","):
        name = item.strip()
        if not name:
            continue
        number = lookup_ethertype(name)
        if number is None:
            ctx.diags.warning(ctx.file, ctx.line, f"layer2_protocols: unknown Ethernet protocol "
                              f"'{name}'; the guest's frames of it are dropped")
        elif number not in numbers:
            numbers.append(number)
    return numbers


_RATE_RE: Final = re.compile(r"([0-9]+)(?:/(second|minute|hour|day))?")
# The kernel's limit statement (nft_limit_init) refuses a rate of 0 and a rate/burst whose
# token count (nanoseconds per unit / rate * burst, burst 0 meaning 5) overflows 64 bits;
# burst is 32 bits. One such rule makes nft refuse the whole ruleset, so these are option
# errors instead.
MAX_LIMIT_VALUE: Final = 2**32 - 1
_UNIT_NS: Final = {"second": 10**9, "minute": 60 * 10**9, "hour": 3600 * 10**9,
                   "day": 86400 * 10**9}


def check_limit(rate: int, per: str, burst: int, what: str) -> None:
    """Raise ValueParseError unless the kernel accepts ``limit rate rate/per burst burst``."""
    if rate < 1:
        raise ValueParseError(f"{what} rate must be at least 1")
    if rate > MAX_LIMIT_VALUE or burst > MAX_LIMIT_VALUE:
        raise ValueParseError(f"{what} rate and burst must be at most {MAX_LIMIT_VALUE}")
    if _UNIT_NS[per] // rate * (burst or 5) >= 2**64:
        raise ValueParseError(f"{what} burst {burst} is too large for rate {rate}/{per}")


def _limit_rate(value: str, _ctx: OptionContext) -> int:
    rate = parse_uint(value)
    check_limit(rate, "second", 0, "synflood")
    return rate


def _limit_burst(value: str, _ctx: OptionContext) -> int:
    burst = parse_uint(value)
    check_limit(1, "second", burst, "synflood")
    return burst


def parse_log_ratelimit(value: str) -> LogRateLimit:
    """``[enable,]rate=N[/unit],burst=N,enable=B`` in any order (both upstream grammars)."""
    fields: dict[str, object] = {}
    for index, item in enumerate(value.split(",")):
        item = item.strip()
        if not item:
            raise ValueParseError(f"empty element in log_ratelimit '{value}'")
        key, eq, text = item.partition("=")
        if not eq:
            if index != 0:
                raise ValueParseError(
                    f"'{item}' in log_ratelimit needs a key (enable=, rate= or burst=)"
                )
            key, text = "enable", item
        key = key.strip()
        text = text.strip()
        if key in fields:
            raise ValueParseError(f"'{key}' is given more than once in log_ratelimit")
        if key == "enable":
            fields["enable"] = parse_bool(text)
        elif key == "rate":
            m = _RATE_RE.fullmatch(text)
            if m is None:
                raise ValueParseError(
                    f"log_ratelimit rate '{text}' is not N or N/second|minute|hour|day"
                )
            fields["rate"] = parse_uint(m.group(1), "log_ratelimit rate")
            fields["per"] = m.group(2) or "second"
        elif key == "burst":
            fields["burst"] = parse_uint(text, "log_ratelimit burst")
        else:
            raise ValueParseError(f"unknown key '{key}' in log_ratelimit")
    limit = LogRateLimit.model_validate(fields)
    check_limit(limit.rate, limit.per, limit.burst, "log_ratelimit")
    return limit


def _log_ratelimit(value: str, _ctx: OptionContext) -> LogRateLimit:
    return parse_log_ratelimit(value)


# Parsers by field type, and by the OptionSyntax a field is annotated with. Each entry:
# (parser, whether an empty value resets the option to its default).
_BY_TYPE: Final[Mapping[object, tuple[OptionParser, bool]]] = {
    bool: (_bool, False),
    int: (_uint, False),
    Verdict: (_verdict, False),
    LogLevel: (_log_level, True),
    LogRateLimit: (_log_ratelimit, False),
}
_BY_SYNTAX: Final[Mapping[OptionSyntax, tuple[OptionParser, bool]]] = {
    OptionSyntax.ENABLE_OR_TIMESTAMP: (_cluster_enable, False),
    OptionSyntax.CONNTRACK_HELPERS: (_conntrack_helpers, True),
    OptionSyntax.LIMIT_RATE: (_limit_rate, False),
    OptionSyntax.LIMIT_BURST: (_limit_burst, False),
    OptionSyntax.QUEUE_RANGE: (_ips_queues, False),
    OptionSyntax.ETHERTYPES: (_ethertypes, True),
}
OptionModel = type[ClusterOptions] | type[HostOptions] | type[GuestOptions] | type[VnetOptions]
OPTION_MODELS: Final[Mapping[FileKind, OptionModel]] = {
    "cluster": ClusterOptions,
    "host": HostOptions,
    "guest": GuestOptions,
    "vnet": VnetOptions,
}


def _field_parser(model: OptionModel, name: str) -> tuple[OptionParser, bool]:
    info = model.model_fields[name]
    syntax = [m for m in info.metadata if isinstance(m, OptionSyntax)]
    if syntax:
        return _BY_SYNTAX[syntax[0]]
    plain = [a for a in get_args(info.annotation) if a is not type(None)] or [info.annotation]
    if len(plain) == 1 and plain[0] in _BY_TYPE:
        return _BY_TYPE[plain[0]]
    raise TypeError(f"{model.__name__}.{name}: no option parser for {info.annotation}; "
                    "annotate it with an OptionSyntax")


def option_table(model: OptionModel) -> dict[str, OptionSpec]:
    """The ``[OPTIONS]`` keys of one file kind, derived from its model: every field is an
    option of the same name, parsed by its type or its ``OptionSyntax``."""
    table = {name: OptionSpec(name, *_field_parser(model, name)) for name in model.model_fields}
    table.update({name: OptionSpec(None, _ignored) for name in model.WITHOUT_EFFECT})
    return table


OPTIONS_BY_KIND: Final[Mapping[FileKind, Mapping[str, OptionSpec]]] = {
    kind: option_table(model) for kind, model in OPTION_MODELS.items()
}

_LINE_RE: Final = re.compile(r"([A-Za-z0-9_-]+)\s*:\s*(.*)")
_TRAILING_COMMENT_RE: Final = re.compile(r"\s+#.*$|^#.*$")


@dataclass(slots=True)
class OptionCollector:
    """Accumulates the option values of one file; the last line for a key wins."""

    kind: FileKind
    values: dict[str, object]
    seen: dict[str, int]

    @classmethod
    def new(cls, kind: FileKind) -> OptionCollector:
        return cls(kind, {}, {})

    def add_line(self, text: str, ctx: OptionContext) -> None:
        m = _LINE_RE.fullmatch(text)
        if m is None:
            ctx.diags.error(ctx.file, ctx.line, f"expected 'name: value' in [OPTIONS], got "
                            f"'{text}'")
            return
        key = m.group(1).lower()
        value = _TRAILING_COMMENT_RE.sub("", m.group(2)).strip()
        spec = OPTIONS_BY_KIND[self.kind].get(key)
        if spec is None:
            ctx.diags.warning(ctx.file, ctx.line, f"unknown option '{m.group(1)}' ignored")
            return
        if spec.field is None:
            ctx.diags.warning(ctx.file, ctx.line,
                              f"option '{key}' is accepted for compatibility but has no "
                              "effect in this firewall")
            return
        if not value and not spec.empty_means_default:
            ctx.diags.error(ctx.file, ctx.line, f"option '{key}' has no value")
            return
        try:
            parsed = spec.parse(value, ctx) if value else DEFAULT
        except ValueParseError as err:
            ctx.diags.error(ctx.file, ctx.line, f"bad value for option '{key}': {err}")
            return
        option_refusals(self.kind, key, m.group(2), value, parsed, ctx.file, ctx.line,
                        ctx.diags)
        if key in self.seen:
            ctx.diags.warning(ctx.file, ctx.line, f"option '{key}' already set on line "
                              f"{self.seen[key]}; this later value is used")
        self.seen[key] = ctx.line
        if parsed is DEFAULT:
            self.values.pop(spec.field, None)
        else:
            self.values[spec.field] = parsed
