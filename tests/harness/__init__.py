"""Real-kernel test harness: private namespaces, a PVE-like topology, probes, pve-sim.

- :mod:`.netns`: named namespaces tagged with this run, always removed; code and
  libnftables contexts bound to a namespace.
- :mod:`.topology`: the declarative builder and ``pve_sim_topology()``.
- :mod:`.probe`: ``probe(topo, from, to, proto, dport, ...) -> ACCEPT | DROP | REJECT``.
- :mod:`.trace`: the nftables trace reader that decides DROP in milliseconds.
- :mod:`.packets`: ICMP probe messages and type names.
- :mod:`.pvesim`: the pve-sim suites as cases, and the inapplicable list.

Pure Python + iproute2 + Debian's python3-nftables, so it runs unchanged in the
full-kernel VM. Namespace names cannot leak even on ``kill -9`` when pytest runs in a
private mount namespace with its own ``/run/netns``::

    mkdir -p /run/netns
    unshare --mount --propagation private -- \\
        sh -c 'mount -t tmpfs -o mode=0755 pfwt-netns /run/netns && exec "$@"' sh \\
        .venv/bin/pytest "$@"

Without the wrapper the harness still removes everything it made (fixture finalizers,
``atexit``, SIGTERM); it never touches a namespace it did not create.
"""
