"""Lookup of alias and ipset references in the scope of one rule or ipset.

Scoping follows upstream: ``dc/x`` is the cluster, ``guest/x`` the current guest, a bare
name looks in the guest first, then the cluster (and, for ipsets, SDN, as pve-firewall
does). Names compare case-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from proxmox_fw.model import Alias, AliasRef, ClusterFw, GuestFw, Ipset, IpsetRef


@dataclass(frozen=True, slots=True)
class ResolvedSet:
    """An ipset reference resolved to the base name of its nft set pair."""

    base: str  # "dc/name", "guest-100/name", "sdn/name"; sets are v4-<base>, v6-<base>[-nomatch]

    def name(self, v6: bool, nomatch: bool = False) -> str:
        return f"{'v6' if v6 else 'v4'}-{self.base}{'-nomatch' if nomatch else ''}"


@dataclass(slots=True)
class RefScope:
    cluster: ClusterFw
    guest: GuestFw | None = None
    vmid: int | None = None
    sdn_sets: frozenset[str] = field(default_factory=frozenset)  # names known under +sdn/

    def alias(self, ref: AliasRef) -> Alias | None:
        key = ref.name.lower()
        if ref.scope == "dc":
            return self.cluster.aliases.get(key)
        if ref.scope == "guest":
            return self.guest.aliases.get(key) if self.guest else None
        if self.guest and key in self.guest.aliases:
            return self.guest.aliases[key]
        return self.cluster.aliases.get(key)

    def ipset(self, ref: IpsetRef) -> ResolvedSet | None:
        """None also for an ipset with an unusable ``!`` entry (see :meth:`ipset_problem`)."""
        if self.ipset_problem(ref) is not None:
            return None
        key = ref.name.lower()
        if ref.scope in (None, "guest") and self.guest and key in self.guest.ipsets:
            return ResolvedSet(f"guest-{self.vmid}/{key}")
        if ref.scope == "guest":
            return None
        if ref.scope in (None, "dc") and key in self.cluster.ipsets:
            return ResolvedSet(f"dc/{key}")
        if ref.scope in (None, "dc") and key in ("management", "blacklist"):
            # Standard sets always exist (the skeleton declares them), even if empty.
            return ResolvedSet(f"dc/{key}")
        if ref.scope in (None, "sdn") and key in self.sdn_sets:
            return ResolvedSet(f"sdn/{key}")
        return None

    def ipset_problem(self, ref: IpsetRef) -> str | None:
        """Why a defined ipset cannot be used: one of its ``!`` entries is unusable, so the
        set would match addresses it was meant to exclude. A rule then treats it like a
        missing ipset (an ACCEPT is skipped, a DROP/REJECT fails closed). ``management``
        is exempt: management access must survive (admin guide §13.8.1)."""
        found = self._defined_ipset(ref)
        if found is None or found.name.lower() == "management":
            return None
        lines = list(found.unusable_nomatch) + [
            e.origin.line for e in found.entries
            if e.nomatch and isinstance(e.address, AliasRef) and self.alias(e.address) is None]
        if not lines:
            return None
        return (f"ipset '{ref}' has an unusable '!' entry (line "
                f"{', '.join(map(str, sorted(lines)))})")

    def _defined_ipset(self, ref: IpsetRef) -> Ipset | None:
        key = ref.name.lower()
        if ref.scope in (None, "guest") and self.guest and key in self.guest.ipsets:
            return self.guest.ipsets[key]
        if ref.scope in (None, "dc") and key in self.cluster.ipsets:
            return self.cluster.ipsets[key]
        return None

    def group_ipset(self, name: str) -> Ipset | None:
        return self.cluster.ipsets.get(name.lower())
