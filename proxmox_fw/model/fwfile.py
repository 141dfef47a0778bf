"""Contents of the ``.fw`` files: cluster.fw, host.fw, <vmid>.fw and sdn/firewall/<vnet>.fw.

Option defaults are the *effective* upstream defaults (see the notes), not the schema's.
"""

from __future__ import annotations

from typing import Literal

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


class ClusterOptions(Model):
    enable: bool = False
    policy_in: Verdict = Verdict.DROP
    policy_out: Verdict = Verdict.ACCEPT
    policy_forward: Verdict = Verdict.ACCEPT
    log_ratelimit: LogRateLimit = Field(default_factory=LogRateLimit)
    ebtables: bool = True


class HostOptions(Model):
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
    nf_conntrack_helpers: list[str] = Field(default_factory=list)
    nf_conntrack_max: int | None = None
    nf_conntrack_tcp_timeout_established: int | None = None
    nf_conntrack_tcp_timeout_syn_recv: int | None = None
    protection_synflood: bool = False
    protection_synflood_rate: int = 200
    protection_synflood_burst: int = 1000
    log_nf_conntrack: bool = False


class GuestOptions(Model):
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
    ips_queues: tuple[int, int] | None = None  # "N" -> (N, N), "N:M" -> (N, M)


class VnetOptions(Model):
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
    rules: list[Rule] = Field(default_factory=list)


class GuestFw(Model):
    """``firewall/<vmid>.fw``."""

    file: str = ""
    present: bool = False
    options: GuestOptions = Field(default_factory=GuestOptions)
    aliases: dict[str, Alias] = Field(default_factory=dict)
    ipsets: dict[str, Ipset] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)


class VnetFw(Model):
    """``sdn/firewall/<vnet>.fw``."""

    file: str
    name: str
    options: VnetOptions = Field(default_factory=VnetOptions)
    rules: list[Rule] = Field(default_factory=list)
