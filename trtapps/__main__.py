from __future__ import annotations

from trtapps.cli import main

main()
