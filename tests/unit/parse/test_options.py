"""``[OPTIONS]``: the option table derived from the ``*Options`` models, every option's
values, diagnostics and ranges."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from proxmox_fw.diagnostics import Diagnostics, Severity
from proxmox_fw.model import LogLevel, LogRateLimit, OptionSyntax, Verdict, VnetOptions
from proxmox_fw.parse import parse_cluster_fw
from proxmox_fw.parse.options import OPTION_MODELS, OPTIONS_BY_KIND, FileKind, option_table
from tests.unit.parse.helpers import DEFAULTS, FILES, NOW, errors, messages, parse_file

# --- the table ------------------------------------------------------------------------------

ALL_OPTIONS: list[tuple[FileKind, str]] = [(kind, name) for kind, model in OPTION_MODELS.items()
               for name in model.model_fields]


def syntax_of(kind: FileKind, name: str) -> object:
    """The OptionSyntax marker of a field, else its type without ``| None``."""
    info = OPTION_MODELS[kind].model_fields[name]
    marks = [m for m in info.metadata if isinstance(m, OptionSyntax)]
    if marks:
        return marks[0]
    plain = [a for a in get_args(info.annotation) if a is not type(None)]
    return plain[0] if plain else info.annotation


@pytest.mark.parametrize("kind", list(OPTION_MODELS))
def test_table_is_the_model_fields_plus_options_without_effect(kind: FileKind) -> None:
    model = OPTION_MODELS[kind]
    table = OPTIONS_BY_KIND[kind]
    assert not set(model.model_fields) & model.WITHOUT_EFFECT
    assert set(table) == set(model.model_fields) | model.WITHOUT_EFFECT
    assert all(table[name].field == name for name in model.model_fields)
    assert all(table[name].field is None for name in model.WITHOUT_EFFECT)


def test_a_field_without_a_parser_is_refused_when_the_table_is_built() -> None:
    class Odd(VnetOptions):
        weight: float = 0.5

    with pytest.raises(TypeError, match=r"Odd.weight: no option parser"):
        option_table(Odd)


def test_only_log_levels_and_name_lists_may_be_empty() -> None:
    empty_ok = {(kind, name) for kind, name in ALL_OPTIONS
                if OPTIONS_BY_KIND[kind][name].empty_means_default}
    levels = {(kind, name) for kind, name in ALL_OPTIONS if syntax_of(kind, name) is LogLevel}
    assert empty_ok == levels | {("host", "nf_conntrack_helpers"), ("guest", "layer2_protocols")}
    assert ("guest", "log_level_out") in levels and len(levels) == 8


# A value of each syntax that is not the default, and what it parses to (a boolean gives
# the inverse of its default, see good_value). A new syntax fails test_every_option_parses
# until it is given one here.
GOOD: dict[object, tuple[str, Any]] = {
    bool: ("1", True),
    int: ("7", 7),
    Verdict: ("reject", Verdict.REJECT),
    LogLevel: ("info", LogLevel.INFO),
    LogRateLimit: ("rate=3/minute,burst=9", LogRateLimit(rate=3, per="minute", burst=9)),
    OptionSyntax.ENABLE_OR_TIMESTAMP: ("1", True),
    OptionSyntax.CONNTRACK_HELPERS: ("ftp", ["ftp"]),
    OptionSyntax.LIMIT_RATE: ("7", 7),
    OptionSyntax.LIMIT_BURST: ("7", 7),
    OptionSyntax.QUEUE_RANGE: ("1:3", (1, 3)),
    OptionSyntax.ETHERTYPES: ("ARP,IPX", [0x0806, 0x8137]),
}
# A value of each syntax that is refused, and a piece of its message.
BAD: dict[object, tuple[str, str]] = {
    bool: ("maybe", "is not a boolean"),
    int: ("-1", "is not a non-negative integer"),
    Verdict: ("ALLOW", "is not a verdict"),
    LogLevel: ("loud", "is not a log level"),
    LogRateLimit: ("rate=x", "is not N or N/second|minute|hour|day"),
    OptionSyntax.ENABLE_OR_TIMESTAMP: ("maybe", "is not a boolean"),
    OptionSyntax.LIMIT_RATE: ("0", "rate must be at least 1"),
    OptionSyntax.LIMIT_BURST: ("x", "is not a non-negative integer"),
    OptionSyntax.QUEUE_RANGE: ("3:1", "is reversed"),
}


def good_value(kind: FileKind, name: str) -> tuple[str, Any]:
    text, value = GOOD[syntax_of(kind, name)]
    if syntax_of(kind, name) is bool:
        default = getattr(DEFAULTS[kind], name)
        return ("0" if default else "1"), not default
    return text, value


@pytest.mark.parametrize(("kind", "name"), ALL_OPTIONS)
def test_every_option_parses(kind: FileKind, name: str) -> None:
    text, value = good_value(kind, name)
    assert value != getattr(DEFAULTS[kind], name)
    fw, diags = parse_file(kind, f"[OPTIONS]\n{name}: {text}\n")
    said = [d.message for d in diags]
    if (kind, name) in (("vnet", "policy_forward"), ("cluster", "ebtables")):
        # a vnet's REJECT (pve-firewall refuses it), ebtables: 0 (no effect here)
        assert len(said) == 1 and "pve-firewall" in said[0]
    else:
        assert said == []
    assert getattr(fw.options, name) == value
    assert fw.options == DEFAULTS[kind].model_copy(update={name: value})


@pytest.mark.parametrize(("kind", "name"), [
    (kind, name) for kind, name in ALL_OPTIONS
    # lists of names: an unknown name is a warning and costs only itself (tested below)
    if syntax_of(kind, name) not in (OptionSyntax.CONNTRACK_HELPERS, OptionSyntax.ETHERTYPES)
])
def test_every_bad_value_names_file_and_line_and_costs_only_its_line(kind: FileKind,
                                                                      name: str) -> None:
    bad, fragment = BAD[syntax_of(kind, name)]
    other = next(n for k, n in ALL_OPTIONS if k == kind and n != name)
    other_text, other_value = good_value(kind, other)
    fw, diags = parse_file(kind, f"[OPTIONS]\n# c\n{name}: {bad}\n{other}: {other_text}\n")
    (err,) = errors(diags)
    assert [d for d in diags if d.line != 4] == [err]  # line 4 may be said (a vnet REJECT)
    assert (err.file, err.line) == (FILES[kind], 3)
    assert err.message.startswith(f"bad value for option '{name}': ")
    assert fragment in err.message
    assert getattr(fw.options, name) == getattr(DEFAULTS[kind], name)
    assert getattr(fw.options, other) == other_value


def test_unknown_conntrack_helper_is_a_warning_at_its_line() -> None:
    fw, diags = parse_file("host", "[OPTIONS]\n\nnf_conntrack_helpers: nosuch\n")
    assert fw.options.nf_conntrack_helpers == []
    assert [(d.file, d.line, d.severity) for d in diags] == [
        (FILES["host"], 3, Severity.WARNING)
    ]


# --- ranges ---------------------------------------------------------------------------------

MAX32 = 2**32 - 1
# (kind, option, value, error fragment or None when accepted)
RANGES: list[tuple[str, str, str, str | None]] = [
    ("host", "protection_synflood_rate", "1", None),
    ("host", "protection_synflood_rate", "0", "synflood rate must be at least 1"),
    ("host", "protection_synflood_rate", str(MAX32), None),
    ("host", "protection_synflood_rate", str(MAX32 + 1), f"must be at most {MAX32}"),
    ("host", "protection_synflood_burst", "0", None),
    ("host", "protection_synflood_burst", str(MAX32), None),
    ("host", "protection_synflood_burst", str(MAX32 + 1), f"must be at most {MAX32}"),
    ("guest", "ips_queues", "65535", None),
    ("guest", "ips_queues", "0:65535", None),
    ("guest", "ips_queues", "65536", "queue number 65536 out of range (0-65535)"),
    ("guest", "ips_queues", "0:65536", "queue number 65536 out of range (0-65535)"),
    ("guest", "ips_queues", "-1", "is not a queue number or range"),
    ("cluster", "log_ratelimit", f"rate={MAX32}", None),
    ("cluster", "log_ratelimit", f"rate={MAX32 + 1}", f"must be at most {MAX32}"),
    ("cluster", "log_ratelimit", f"rate=1,burst={MAX32 + 1}", f"must be at most {MAX32}"),
    # a day in nanoseconds times the burst must fit the kernel's 64-bit token count
    ("cluster", "log_ratelimit", "rate=1/day,burst=213503", None),
    ("cluster", "log_ratelimit", "rate=1/day,burst=213504",
     "burst 213504 is too large for rate 1/day"),
    ("cluster", "log_ratelimit", "rate=0/hour", "log_ratelimit rate must be at least 1"),
]


@pytest.mark.parametrize(("kind", "name", "value", "fragment"), RANGES)
def test_ranges(kind: str, name: str, value: str, fragment: str | None) -> None:
    fw, diags = parse_file(kind, f"[OPTIONS]\n{name}: {value}\n")
    if fragment is None:
        assert not diags.items, [str(d) for d in diags]
        assert getattr(fw.options, name) != getattr(DEFAULTS[kind], name)
    else:
        (err,) = diags.items
        assert (err.line, err.severity) == (2, Severity.ERROR)
        assert err.message.startswith(f"bad value for option '{name}': ")
        assert fragment in err.message
        assert getattr(fw.options, name) == getattr(DEFAULTS[kind], name)


# --- values, diagnostics, special forms (per option) ----------------------------------------

OPTION_VALUES: list[tuple[str, str, str, str, Any]] = [
    ("cluster", "enable", "1", "enable", True),
    ("cluster", "enable", "off", "enable", False),
    ("cluster", "policy_in", "accept", "policy_in", Verdict.ACCEPT),
    ("cluster", "policy_out", "DROP", "policy_out", Verdict.DROP),
    ("cluster", "policy_forward", "Reject", "policy_forward", Verdict.REJECT),
    ("cluster", "ebtables", "1", "ebtables", True),  # 0: see test_ebtables_off...
    ("cluster", "log_ratelimit", "0", "log_ratelimit", LogRateLimit(enable=False)),
    ("cluster", "log_ratelimit", "1,rate=10/second,burst=20", "log_ratelimit",
     LogRateLimit(enable=True, rate=10, burst=20)),
    ("cluster", "log_ratelimit", "burst=12,enable=1,rate=2/second", "log_ratelimit",
     LogRateLimit(enable=True, rate=2, burst=12)),
    ("cluster", "log_ratelimit", "rate=3/hour", "log_ratelimit",
     LogRateLimit(rate=3, per="hour")),
    ("cluster", "log_ratelimit", "enable=no,rate=5", "log_ratelimit",
     LogRateLimit(enable=False, rate=5)),
    ("cluster", "log_ratelimit", "burst=0,rate=1/day", "log_ratelimit",
     LogRateLimit(rate=1, per="day", burst=0)),
    ("host", "enable", "0", "enable", False),
    ("host", "nftables", "1", "nftables", True),
    ("host", "log_level_in", "info", "log_level_in", LogLevel.INFO),
    ("host", "log_level_out", "WARN", "log_level_out", LogLevel.WARNING),
    ("host", "log_level_forward", "debug", "log_level_forward", LogLevel.DEBUG),
    ("host", "log_level_in", "", "log_level_in", LogLevel.NOLOG),
    ("host", "tcpflags", "yes", "tcpflags", True),
    ("host", "tcp_flags_log_level", "err", "tcp_flags_log_level", LogLevel.ERR),
    ("host", "nosmurfs", "0", "nosmurfs", False),
    ("host", "smurf_log_level", "alert", "smurf_log_level", LogLevel.ALERT),
    ("host", "ndp", "false", "ndp", False),
    ("host", "nf_conntrack_allow_invalid", "1", "nf_conntrack_allow_invalid", True),
    ("host", "nf_conntrack_helpers", "FTP,sip", "nf_conntrack_helpers", ["ftp", "sip"]),
    ("host", "nf_conntrack_helpers", "", "nf_conntrack_helpers", []),
    ("host", "nf_conntrack_max", "262144", "nf_conntrack_max", 262144),
    ("host", "nf_conntrack_tcp_timeout_established", "432000",
     "nf_conntrack_tcp_timeout_established", 432000),
    ("host", "nf_conntrack_tcp_timeout_syn_recv", "60", "nf_conntrack_tcp_timeout_syn_recv",
     60),
    ("host", "protection_synflood", "1", "protection_synflood", True),
    ("host", "protection_synflood_rate", "400", "protection_synflood_rate", 400),
    ("host", "protection_synflood_burst", "1337", "protection_synflood_burst", 1337),
    ("host", "log_nf_conntrack", "on", "log_nf_conntrack", True),
    ("guest", "enable", "1", "enable", True),
    ("guest", "policy_in", "ACCEPT", "policy_in", Verdict.ACCEPT),
    ("guest", "policy_out", "reject", "policy_out", Verdict.REJECT),
    ("guest", "log_level_in", "crit", "log_level_in", LogLevel.CRIT),
    ("guest", "log_level_out", "notice", "log_level_out", LogLevel.NOTICE),
    ("guest", "macfilter", "0", "macfilter", False),
    ("guest", "dhcp", "0", "dhcp", False),
    ("guest", "ndp", "0", "ndp", False),
    ("guest", "radv", "1", "radv", True),
    ("guest", "ipfilter", "1", "ipfilter", True),
    ("guest", "ips", "1", "ips", True),
    ("guest", "ips_queues", "0:3", "ips_queues", (0, 3)),
    ("guest", "ips_queues", "2", "ips_queues", (2, 2)),
    ("vnet", "enable", "1", "enable", True),
    ("vnet", "policy_forward", "DROP", "policy_forward", Verdict.DROP),
    ("vnet", "log_level_forward", "info", "log_level_forward", LogLevel.INFO),
]


@pytest.mark.parametrize(("kind", "key", "value", "field", "expected"), OPTION_VALUES)
def test_option_value(kind: str, key: str, value: str, field: str, expected: Any) -> None:
    fw, diags = parse_file(kind, f"[OPTIONS]\n{key}: {value}\n")
    assert getattr(fw.options, field) == expected
    # a boolean other than 0/1 is read, and said: pve-firewall ignores such a line
    pve_bool = not isinstance(expected, bool) or value in ("0", "1") or (
        key == "enable" and value.isdigit())
    assert messages(diags) == ([] if pve_bool else [(2, "warning", (
        f"option '{key}': '{value}' is read as {int(expected)} here; pve-firewall takes only "
        f"{'numbers' if key == 'enable' else '0 or 1'} and ignores the line, keeping the "
        "option's default"))])
    # keys ignore case too
    fw, diags = parse_file(kind, f"[OPTIONS]\n{key.upper()}:{value}\n")
    assert getattr(fw.options, field) == expected


BAD_OPTION_VALUES: list[tuple[str, str, str, str]] = [
    ("cluster", "enable", "maybe", "is not a boolean"),
    ("cluster", "policy_in", "ALLOW", "is not a verdict"),
    ("cluster", "ebtables", "2", "is not a boolean"),
    ("cluster", "log_ratelimit", "rate=0", "rate must be at least 1"),
    ("cluster", "log_ratelimit", "rate=1/week", "is not N or N/second|minute|hour|day"),
    ("cluster", "log_ratelimit", "rate=1/Second", "is not N or N/second|minute|hour|day"),
    ("cluster", "log_ratelimit", "1,speed=3", "unknown key 'speed' in log_ratelimit"),
    ("cluster", "log_ratelimit", "rate=1,", "empty element in log_ratelimit"),
    ("cluster", "log_ratelimit", "burst=-1", "not a non-negative integer"),
    ("cluster", "log_ratelimit", "rate=1,1", "needs a key"),
    ("cluster", "log_ratelimit", "burst=1,burst=2", "'burst' is given more than once"),
    ("host", "nftables", "enabled", "is not a boolean"),
    ("host", "log_level_in", "loud", "is not a log level"),
    ("host", "nf_conntrack_max", "-5", "not a non-negative integer"),
    ("host", "protection_synflood_rate", "fast", "not a non-negative integer"),
    ("guest", "policy_out", "maybe", "is not a verdict"),
    ("guest", "macfilter", "x", "is not a boolean"),
    ("guest", "ips_queues", "3:1", "queue range '3:1' is reversed"),
    ("guest", "ips_queues", "a", "is not a queue number or range"),
    ("guest", "ips_queues", "1:70000", "queue number 70000 out of range"),
    ("vnet", "policy_forward", "x", "is not a verdict"),
    ("vnet", "log_level_forward", "x", "is not a log level"),
]


@pytest.mark.parametrize(("kind", "key", "value", "message"), BAD_OPTION_VALUES)
def test_bad_option_value_keeps_default(kind: str, key: str, value: str, message: str) -> None:
    fw, diags = parse_file(kind, f"[OPTIONS]\n{key}: {value}\n")
    assert fw.options == DEFAULTS[kind]
    errs = errors(diags)
    assert len(diags) == len(errs) == 1
    assert errs[0].line == 2
    assert errs[0].file == FILES[kind]
    assert errs[0].message.startswith(f"bad value for option '{key}': ")
    assert message in errs[0].message


def test_bad_value_does_not_undo_earlier_good_value() -> None:
    fw, diags = parse_file("guest", "[OPTIONS]\npolicy_in: ACCEPT\npolicy_in: MAYBE\n")
    assert fw.options.policy_in is Verdict.ACCEPT
    assert [d.line for d in errors(diags)] == [3]


@pytest.mark.parametrize(("kind", "key"), [("cluster", "enable"), ("guest", "policy_in"),
                                           ("host", "nf_conntrack_max")])
def test_empty_value_is_an_error_except_for_log_levels(kind: str, key: str) -> None:
    fw, diags = parse_file(kind, f"[OPTIONS]\n{key}:\n")
    assert fw.options == DEFAULTS[kind]
    assert messages(diags) == [(2, "error", f"option '{key}' has no value")]


def test_empty_log_level_resets_to_default() -> None:
    fw, diags = parse_file("host", "[OPTIONS]\nlog_level_in: info\nlog_level_in:\n")
    assert fw.options.log_level_in is LogLevel.NOLOG
    assert [d.severity for d in diags] == [Severity.WARNING]


def test_duplicate_option_last_wins_with_warning() -> None:
    fw, diags = parse_file("guest", "[OPTIONS]\nenable: 1\nenable: 0\n")
    assert fw.options.enable is False
    assert messages(diags) == [
        (3, "warning", "option 'enable' already set on line 2; this later value is used")
    ]


def test_several_options_sections_merge() -> None:
    fw, _ = parse_file("guest", "[OPTIONS]\nenable: 1\n[RULES]\n[OPTIONS]\ndhcp: 0\n")
    assert (fw.options.enable, fw.options.dhcp) == (True, False)


@pytest.mark.parametrize(
    ("kind", "key"),
    [("cluster", "log_level_in"), ("guest", "nftables"), ("vnet", "policy_in"),
     ("host", "dafadfsdf")],
)
def test_unknown_option_is_a_warning(kind: str, key: str) -> None:
    fw, diags = parse_file(kind, f"[OPTIONS]\n{key}: 1 # comment\n")
    assert fw.options == DEFAULTS[kind]
    assert messages(diags) == [(2, "warning", f"unknown option '{key}' ignored")]


@pytest.mark.parametrize(
    ("kind", "line"),
    [("host", "protection_limit: 100"), ("guest", "policy_forward: DROP")],
)
def test_upstream_options_without_effect_are_warnings(kind: str, line: str) -> None:
    """Never silent at the default log level (warn): the operator meant something."""
    fw, diags = parse_file(kind, f"[OPTIONS]\n{line}\n")
    assert fw.options == DEFAULTS[kind]
    assert [(d.line, d.severity) for d in diags] == [(2, Severity.WARNING)]
    assert "has no effect" in diags.items[0].message


def test_layer2_protocols_names_aliases_and_numbers() -> None:
    fw, diags = parse_file("guest", "[OPTIONS]\nlayer2_protocols: ARP, 802_1Q,ipx,NetBEUI,"
                                    "PPP,dot1q,0x88cc\n")
    assert fw.options.layer2_protocols == [0x0806, 0x8100, 0x8137, 0x8191, 0x880B, 0x88CC]
    assert list(diags) == []


def test_layer2_protocols_unknown_name_narrows_the_filter() -> None:
    fw, diags = parse_file("guest", "[OPTIONS]\nlayer2_protocols: ARP,NetBUI\n")
    assert fw.options.layer2_protocols == [0x0806]  # NetBUI frames are dropped
    assert messages(diags) == [(2, "warning", "layer2_protocols: unknown Ethernet protocol "
                                              "'NetBUI'; the guest's frames of it are dropped")]


def test_layer2_protocols_empty_means_no_filter() -> None:
    fw, diags = parse_file("guest", "[OPTIONS]\nlayer2_protocols: ARP\nlayer2_protocols:\n")
    assert fw.options.layer2_protocols is None
    assert [d.severity for d in diags] == [Severity.WARNING]  # set twice


def test_option_line_without_colon() -> None:
    _, diags = parse_file("guest", "[OPTIONS]\nenable 1\n")
    assert messages(diags) == [(2, "error", "expected 'name: value' in [OPTIONS], got "
                                            "'enable 1'")]


def test_option_value_trailing_comment_is_dropped() -> None:
    fw, diags = parse_file("guest", "[OPTIONS]\nenable: 1 # on\npolicy_in: ACCEPT#x\n")
    assert fw.options.enable is True
    assert [d.line for d in errors(diags)] == [3]  # '#' glued to the value stays part of it
    # pve-firewall ignores the whole line 2: said at the line
    assert messages(diags)[0] == (2, "warning", (
        "option 'enable': the value before the '#' comment (1) is used here; pve-firewall "
        "ignores an option line with a trailing comment, keeping the option's default"))


def test_radv_with_a_comment_is_on_here_and_said() -> None:
    fw, diags = parse_file("guest", "[OPTIONS]\nradv: 1 # routers\nmacfilter: yes\n")
    assert fw.options.radv is True and fw.options.macfilter is True
    assert [(d.line, d.severity) for d in diags] == [(2, Severity.WARNING),
                                                     (3, Severity.WARNING)]
    assert all("pve-firewall" in d.message for d in diags)


def test_conntrack_helpers_unknown_name_is_a_warning() -> None:
    fw, diags = parse_file("host", "[OPTIONS]\nnf_conntrack_helpers: ftp,h323,tftp,ftp,\n")
    assert fw.options.nf_conntrack_helpers == ["ftp", "tftp"]
    assert messages(diags) == [(2, "warning", "unknown conntrack helper 'h323' ignored")]


@pytest.mark.parametrize(
    ("age", "enabled", "severities"),
    [(30, True, []), (-100, True, []), (60, True, []), (61, False, [Severity.INFO]),
     (3600, False, [Severity.INFO])],
)
def test_cluster_enable_timestamp(age: int, enabled: bool, severities: list[Severity]) -> None:
    diags = Diagnostics()
    fw = parse_cluster_fw(f"[OPTIONS]\nenable: {int(NOW) - age}\n", "firewall/cluster.fw",
                          diags, now=NOW)
    assert fw.options.enable is enabled
    assert [d.severity for d in diags] == severities


def test_cluster_enable_timestamp_uses_the_clock_by_default() -> None:
    import time

    diags = Diagnostics()
    recent = parse_cluster_fw(f"[OPTIONS]\nenable: {int(time.time())}\n", "c", diags)
    stale = parse_cluster_fw("[OPTIONS]\nenable: 1000000000\n", "c", diags)
    assert recent.options.enable is True
    assert stale.options.enable is False


def test_ebtables_off_has_no_effect_and_says_so() -> None:
    fw, diags = parse_file("cluster", "[OPTIONS]\nebtables: 0\n")
    assert fw.options.ebtables is False
    assert messages(diags) == [(2, "warning", (
        "option 'ebtables': has no effect here: the guests' MAC, ARP and layer2_protocols "
        "filters stay in place (pve-firewall drops its ebtables rules with 0)"))]
