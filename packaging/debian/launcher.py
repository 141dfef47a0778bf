#!/usr/bin/python3 -I
"""Start proxmox-firewall from the Debian package's private library directory.

-I (isolated mode): PYTHON* environment variables, the user's site directory and the
current directory are ignored, so nothing outside the package can shadow its modules.
The private directory goes first on the path, ahead of the system's dist-packages, where
an older pydantic (python3-pydantic 1.x) may be installed; python3-nftables still comes
from dist-packages.
"""

import sys

sys.path.insert(0, "/usr/lib/proxmox-firewall")

from cli.main import main  # noqa: E402

main()
