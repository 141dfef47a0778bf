"""Operator tools (``trace``, ``counters``, ``try-apply``): one module per tool, plus the
reader of the firewall's rules in the kernel that they share (:mod:`.kernelrules`).

They read the kernel through libnftables and netlink and print nothing themselves; the
``cli`` modules format and exit.
"""
