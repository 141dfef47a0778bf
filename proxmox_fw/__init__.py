"""proxmox_fw: the Proxmox VE nftables firewall (proxmox-firewall), in Python."""

__version__ = "0.1.0"
