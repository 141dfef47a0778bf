"""Contents of the ``.fw`` files: cluster.fw, host.fw, <vmid>.fw and sdn/firewall/<vnet>.fw.

Option defaults are the *effective* upstream defaults (see the notes), not the schema's.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from proxmox_fw.model.address import AliasRef, Cidr
from proxmox_fw.model.common import LogLevel, Model, Origin, Verdict
from proxmox_fw.model.rule import Rule


class Alias(Model):
    origin: Origin
    name: str  # lowercased
    cidr: Cidr
    comment: str | None = None


class IpsetEntry(Model):
    origin: Origin
    nomatch: bool = False
    address: Cidr | AliasRef
    comment: str | None = None


class Ipset(Model):
    origin: Origin
    name: str  # as written; lookups compare lowercased
    comment: str | None = None
    entries: list[IpsetEntry] = Field(default_factory=list)
    # Lines of `!` entries that could not be parsed: the set would match them (issue 10).
    unusable_nomatch: list[int] = Field(default_factory=list)


class SecurityGroup(Model):
    origin: Origin
    name: str  # lowercased
    comment: str | None = None
    rules: list[Rule] = Field(default_factory=list)


class LogRateLimit(Model):
    enable: bool = True
    rate: int = 1
    per: Literal["second", "minute", "hour", "day"] = "second"
    burst: int = 5


class OptionSyntax(StrEnum):
    """Marks an option field whose text is not plain syntax of its type (``Annotated``
    metadata); ``parse/options.py`` holds the parser of each and of each plain type.

    The ``*Options`` models are the option table: one field per ``key: value`` of
    ``[OPTIONS]``, the key being the field name; ``WITHOUT_EFFECT`` lists keys upstream
    accepts that this firewall takes and ignores.
    """

    ENABLE_OR_TIMESTAMP = "boolean, or Perl's Unix time of enabling"
    CONNTRACK_HELPERS = "comma-separated conntrack helper names"
    LIMIT_RATE = "a kernel limit rate (packets per second)"
    LIMIT_BURST = "a kernel limit burst"
    QUEUE_RANGE = "an NFQUEUE number or range N:M"
    ETHERTYPES = "comma-separated Ethernet protocol names or numbers (/etc/ethertypes)"


class ClusterOptions(Model):
    WITHOUT_EFFECT: ClassVar[frozenset[str]] = frozenset()

    enable: Annotated[bool, OptionSyntax.ENABLE_OR_TIMESTAMP] = False
    policy_in: Verdict = Verdict.DROP
    policy_out: Verdict = Verdict.ACCEPT
    policy_forward: Verdict = Verdict.ACCEPT
    log_ratelimit: LogRateLimit = Field(default_factory=LogRateLimit)
    ebtables: bool = True


class HostOptions(Model):
    WITHOUT_EFFECT: ClassVar[frozenset[str]] = frozenset({"protection_limit"})

    enable: bool = True
    nftables: bool = False
    log_level_in: LogLevel = LogLevel.NOLOG
    log_level_out: LogLevel = LogLevel.NOLOG
    log_level_forward: LogLevel = LogLevel.NOLOG
    tcpflags: bool = False
    tcp_flags_log_level: LogLevel = LogLevel.NOLOG
    nosmurfs: bool = True
    smurf_log_level: LogLevel = LogLevel.NOLOG
    ndp: bool = True
    nf_conntrack_allow_invalid: bool = False
    nf_conntrack_helpers: Annotated[list[str], OptionSyntax.CONNTRACK_HELPERS] = Field(
        default_factory=list
    )
    nf_conntrack_max: int | None = None
    nf_conntrack_tcp_timeout_established: int | None = None
    nf_conntrack_tcp_timeout_syn_recv: int | None = None
    protection_synflood: bool = False
    protection_synflood_rate: Annotated[int, OptionSyntax.LIMIT_RATE] = 200
    protection_synflood_burst: Annotated[int, OptionSyntax.LIMIT_BURST] = 1000
    log_nf_conntrack: bool = False


class GuestOptions(Model):
    WITHOUT_EFFECT: ClassVar[frozenset[str]] = frozenset({"policy_forward"})

    enable: bool = False
    policy_in: Verdict = Verdict.DROP
    policy_out: Verdict = Verdict.ACCEPT
    log_level_in: LogLevel = LogLevel.NOLOG
    log_level_out: LogLevel = LogLevel.NOLOG
    macfilter: bool = True
    dhcp: bool = True
    ndp: bool = True
    radv: bool = False
    ipfilter: bool = False
    ips: bool = False
    # "N" -> (N, N), "N:M" -> (N, M)
    ips_queues: Annotated[tuple[int, int] | None, OptionSyntax.QUEUE_RANGE] = None
    # Ethertypes the guest may send besides IPv4 and IPv6; None: no layer-2 filter.
    layer2_protocols: Annotated[list[int] | None, OptionSyntax.ETHERTYPES] = None


class VnetOptions(Model):
    WITHOUT_EFFECT: ClassVar[frozenset[str]] = frozenset()

    enable: bool = False
    policy_forward: Verdict = Verdict.ACCEPT
    log_level_forward: LogLevel = LogLevel.NOLOG


class ClusterFw(Model):
    """``firewall/cluster.fw``. ``present`` is False when the file does not exist.

    ``file`` (in every ``*Fw``) is the path, relative to the pve dir, the file was read
    from, or where it is looked for first when missing; rules made from its options carry
    it as their origin.
    """

    file: str = "firewall/cluster.fw"
    present: bool = False
    options: ClusterOptions = Field(default_factory=ClusterOptions)
    option_lines: dict[str, int] = Field(default_factory=dict)  # option → line it was set on
    aliases: dict[str, Alias] = Field(default_factory=dict)  # key: lowercased name
    ipsets: dict[str, Ipset] = Field(default_factory=dict)  # key: lowercased name
    rules: list[Rule] = Field(default_factory=list)
    groups: dict[str, SecurityGroup] = Field(default_factory=dict)  # key: lowercased name


class HostFw(Model):
    """``nodes/<node>/host.fw`` or ``local/host.fw``, whichever was found; the latter
    when neither was (``/etc/pve/local`` is this node's own directory)."""

    file: str = "local/host.fw"
    present: bool = False
    options: HostOptions = Field(default_factory=HostOptions)
    option_lines: dict[str, int] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)


class GuestFw(Model):
    """``firewall/<vmid>.fw``."""

    file: str = ""
    present: bool = False
    options: GuestOptions = Field(default_factory=GuestOptions)
    option_lines: dict[str, int] = Field(default_factory=dict)
    aliases: dict[str, Alias] = Field(default_factory=dict)
    ipsets: dict[str, Ipset] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)


class VnetFw(Model):
    """``sdn/firewall/<vnet>.fw``."""

    file: str
    name: str
    options: VnetOptions = Field(default_factory=VnetOptions)
    option_lines: dict[str, int] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)
