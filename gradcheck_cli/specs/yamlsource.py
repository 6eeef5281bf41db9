"""YAML loaded with safe_load semantics, keeping the line and column of every key and item."""

from __future__ import annotations

import re
from typing import Any

import yaml

from gradcheck_cli.errors import SpecError

Mark = tuple[int, int]  # 1-based line and column

# No spec needs more than a handful of levels; Python's recursion limit (about 1000 frames,
# several per YAML level) is the hard stop this keeps far away from.
MAX_DEPTH = 100
# Aliases share one node, so `&a [*b, *b, ...]` chains grow exponentially when expanded
# into plain lists (an "alias bomb"): values reached a second time through an alias are
# counted, and past this many the file is refused before memory or time runs out.
MAX_ALIAS_VALUES = 100_000


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


# The same file is read by collection (is it a spec?) and again by planning: the parsed
# document is kept by its text, so each spec of a run is parsed once (up to this many
# characters of YAML in all, the oldest dropped first). Documents are never mutated.
_PARSED: dict[str, Any] = {}
_PARSED_CHARS = 4 << 20  # a document holds some 70 bytes per character: about 300 MB
_parsed_chars = [0]  # the characters of the texts in _PARSED

# libyaml's parser (PyYAML's CSafeLoader, where it was built with it) composes a spec about
# ten times faster than the pure-Python one, but recursively in C: nesting some 10^5 levels
# deep overflows the C stack and kills the process. Every level of nesting opens with one
# of these indicators ('- ' item, 'key:' mapping, '[' or '{'; a '? ' key never reaches
# libyaml, below), so a text holding fewer than C_PARSER_INDICATORS of them cannot nest
# deeper than that; 10^4 levels parse safely, and no spec comes near. The two parsers also
# differ at the edges of YAML: libyaml accepts a tab after `key:`, a `?` inside a plain
# scalar of a flow collection and a comment right after a block scalar's `>-`, reads a
# bare `!` tag as '' (not None), counts no column for a BOM inside a line. A spec must
# mean the same with and without libyaml, so only a text of the plainest YAML goes to it:
# none of the characters of _PYTHON_ONLY (tags, anchors, aliases, block scalars, complex
# keys, directives, tabs, BOMs, control characters, Unicode line breaks). Any text libyaml
# rejects goes to the pure-Python parser as well, for its error message and position.
# (One difference is left: an empty value in a flow mapping, `{a: , b: 1}`, is placed at
# the comma by libyaml, a column or two from where the pure-Python parser places it.)
_C_LOADER: Any = getattr(yaml, "CSafeLoader", None)
C_PARSER_INDICATORS = 2_000
_PYTHON_ONLY = re.compile("[\t?!|>\ufeff\u2028\u2029\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def load(text: str, path: str) -> Any:
    """Parse `text` as YAML (safe tags only); errors name `path`, line and column."""
    if text in _PARSED:
        return _PARSED[text]
    doc = _load(text, path)
    if len(text) > _PARSED_CHARS:
        return doc
    if not _PARSED:
        _parsed_chars[0] = 0
    while _PARSED and _parsed_chars[0] + len(text) > _PARSED_CHARS:
        _parsed_chars[0] -= len(next(iter(_PARSED)))
        del _PARSED[next(iter(_PARSED))]
    _PARSED[text] = doc
    _parsed_chars[0] += len(text)
    return doc


def _fast(text: str, path: str) -> tuple[bool, Any]:
    """(True, the document) parsed by libyaml, or (False, None) where it must not be used
    or fails (the pure-Python parser then says why)."""
    if _C_LOADER is None or _PYTHON_ONLY.search(text) is not None \
            or sum(map(text.count, "-:[{")) >= C_PARSER_INDICATORS:
        return False, None
    try:
        return True, _compose(_C_LOADER(text), path)
    except (yaml.YAMLError, RecursionError, ValueError, OverflowError):
        return False, None


def _compose(loader: Any, path: str) -> Any:
    try:
        node = loader.get_single_node()
        return None if node is None else _Builder(loader, path).build(node, 0)
    finally:
        loader.dispose()


def _load(text: str, path: str) -> Any:
    done, doc = _fast(text, path)
    if done:
        return doc
    try:
        return _compose(yaml.SafeLoader(text), path)
    except (ValueError, OverflowError) as exc:  # an escape past Unicode, `"\U00110000"`
        raise SpecError(f"YAML value cannot be read: {exc}", file=path,
                        hint="correct the escapes in quoted strings") from None
    except RecursionError:
        line, column = _deepest_mark(text)
        raise SpecError(f"YAML nested more than {MAX_DEPTH} levels deep", file=path, line=line,
                        column=column, hint="a spec needs only a few levels of nesting"
                        ) from None
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


def _deepest_mark(text: str) -> tuple[int | None, int | None]:
    """The line and column where nesting first passes MAX_DEPTH (where `_Builder` would
    stop), read from parser events (which, unlike composing, take no recursion)."""
    depth = -1  # the document's own collection is at depth 0, as for `_Builder`
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    if mark is None:
                        return None, None
                    return int(mark.line) + 1, int(mark.column) + 1
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        pass
    return None, None


class _Builder:
    """Nodes -> LocDict/LocList/plain values, refusing deep nesting and alias bombs."""

    def __init__(self, loader: yaml.SafeLoader, path: str) -> None:
        self.loader = loader
        self.path = path
        self.seen: set[int] = set()
        self.repeated = 0

    def _refuse(self, message: str, node: yaml.Node, hint: str) -> SpecError:
        line, column = _mark(node)
        return SpecError(message, file=self.path, line=line, column=column, hint=hint)

    def build(self, node: yaml.Node, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self._refuse(f"YAML nested more than {MAX_DEPTH} levels deep", node,
                               "a spec needs only a few levels of nesting")
        if id(node) in self.seen:
            self.repeated += 1
            if self.repeated > MAX_ALIAS_VALUES:
                raise self._refuse(
                    f"YAML aliases expand to more than {MAX_ALIAS_VALUES} values "
                    "(an alias bomb?)", node, "write the values out, or use fewer aliases")
        else:
            self.seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, depth)
        if isinstance(node, yaml.SequenceNode):
            items = LocList()
            items.mark = _mark(node)
            for item in node.value:
                items.append(self.build(item, depth + 1))
                items.item_marks.append(_mark(item))
            return items
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError) as exc:  # a date past its month, `2001-02-30`
            raise self._refuse(f"YAML value `{node.value}` cannot be read: {exc}", node,
                               "quote it to make it a string, or correct it") from None

    def _mapping(self, node: yaml.MappingNode, depth: int) -> LocDict:
        path = self.path
        self.loader.flatten_mapping(node)
        result = LocDict()
        result.mark = _mark(node)
        for key_node, value_node in node.value:
            key = self.build(key_node, depth + 1)
            if isinstance(key, (dict, list)):
                line, column = _mark(key_node)
                raise SpecError("a mapping key must be a plain value", file=path, line=line,
                                column=column)
            if key in result:
                line, column = _mark(key_node)
                raise SpecError(f"duplicate key `{key}`", file=path, line=line, column=column,
                                hint="each key may appear once in a mapping")
            result[key] = self.build(value_node, depth + 1)
            result.key_marks[key] = _mark(key_node)
            result.value_marks[key] = _mark(value_node)
        return result
