"""The firewall log daemon (``proxmox-firewall logger``, pvefw-logger's successor):
NFLOG and conntrack events in, lines of ``/var/log/pve-firewall.log`` out."""
