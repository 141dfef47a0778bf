"""Tests that need Debian's stock kernel (bridge conntrack/reject/meta); they run under qemu."""
