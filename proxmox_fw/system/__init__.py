"""The machine edge: local network, interface altnames, sysctls, the GC pause."""
