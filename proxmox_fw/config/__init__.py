"""The /etc/pve edge: reading files (source) and turning them into models (loader)."""
