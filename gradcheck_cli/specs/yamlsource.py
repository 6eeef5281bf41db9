"""YAML loaded with safe_load semantics, keeping the line and column of every key and item."""

from __future__ import annotations

from typing import Any

import yaml

from gradcheck_cli.errors import SpecError

Mark = tuple[int, int]  # 1-based line and column


class LocDict(dict[Any, Any]):
    """A mapping that remembers where each key and value stood in the file."""

    mark: Mark = (1, 1)

    def __init__(self) -> None:
        super().__init__()
        self.key_marks: dict[Any, Mark] = {}
        self.value_marks: dict[Any, Mark] = {}


class LocList(list[Any]):
    """A sequence that remembers where each item stood in the file."""

    mark: Mark = (1, 1)

    def __init__(self) -> None:
        super().__init__()
        self.item_marks: list[Mark] = []


def _mark(node: yaml.Node) -> Mark:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def load(text: str, path: str) -> Any:
    """Parse `text` as YAML (safe tags only); errors name `path`, line and column."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            return None if node is None else _build(loader, node, path)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        last = max(1, len(text.splitlines()))
        if line is not None and line > last:
            # PyYAML places "end of stream" on the line after the last: name the last one.
            line, column = last, None
        problem = exc.problem or "invalid YAML"
        context = f" {exc.context}" if exc.context else ""
        raise SpecError(
            f"YAML syntax error: {problem}{context}",
            file=path,
            line=line,
            column=column,
            hint="check the indentation and quoting at that line",
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", file=path) from None


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result = LocDict()
        result.mark = _mark(node)
        for key_node, value_node in node.value:
            key = _build(loader, key_node, path)
            if isinstance(key, (dict, list)):
                line, column = _mark(key_node)
                raise SpecError("a mapping key must be a plain value", file=path, line=line,
                                column=column)
            if key in result:
                line, column = _mark(key_node)
                raise SpecError(f"duplicate key `{key}`", file=path, line=line, column=column,
                                hint="each key may appear once in a mapping")
            result[key] = _build(loader, value_node, path)
            result.key_marks[key] = _mark(key_node)
            result.value_marks[key] = _mark(value_node)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = LocList()
        items.mark = _mark(node)
        for item in node.value:
            items.append(_build(loader, item, path))
            items.item_marks.append(_mark(item))
        return items
    return loader.construct_object(node, deep=True)
