"""Print the N-th ```bash block of the README's Quickstart section (so CI runs what users read)."""

from __future__ import annotations

import re
import sys


def main() -> None:
    path, number = sys.argv[1], int(sys.argv[2])
    with open(path, encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash|sh|shell)\n(.*?)```", section, re.DOTALL)
    if len(blocks) != 2:
        sys.exit(f"README Quickstart must have exactly two shell blocks, found {len(blocks)}")
    print(blocks[number - 1].strip())


if __name__ == "__main__":
    main()
