"""The nftables layer: object model, rendering, skeleton, feature probe, kernel I/O.

Pure parts (``objects``, ``expr``, ``render``) import nothing that touches the machine;
``client``, ``netns``, ``skeleton``, ``features`` and ``apply`` talk to the kernel through
libnftables. Import the submodules directly; this package keeps no re-exports so that the
pure parts stay importable without libnftables.
"""
