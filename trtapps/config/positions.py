"""Source positions of YAML nodes, so validation errors can say ``file:line:col``.

PyYAML's composer keeps a start mark on every node. We compose the document once, construct the plain data
from the same nodes, and later walk an error's location (a tuple of keys and indexes) through the node tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


class YamlDocument:
    """A parsed YAML document: its plain data and the node tree it came from."""

    def __init__(self, text: str, filename: str = "<string>") -> None:
        loader = yaml.SafeLoader(text)
        loader.name = filename
        try:
            node = loader.get_single_node()
            self.data: Any = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
        self.root: yaml.Node | None = node
        self.filename = filename

    def position(self, loc: Sequence[str | int], *, key: bool = False) -> Position:
        """Where the value at *loc* is (or the key itself with ``key=True``).

        When the path leaves the document (a missing field), the position of the deepest existing parent is
        returned, which is where the field should be added.
        """
        node = self.root
        if node is None:
            return Position(1, 1)
        target: yaml.Node = node
        for i, part in enumerate(loc):
            last = i == len(loc) - 1
            if isinstance(target, yaml.MappingNode):
                found = None
                for k, v in target.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                        found = k if (last and key) else v
                        break
                if found is None:
                    break
                target = found
            elif isinstance(target, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(target.value):
                target = target.value[part]
            else:
                break
        mark = target.start_mark
        return Position(mark.line + 1, mark.column + 1)
