"""Spec files: YAML with line marks, spec records and their parsing, and path collection."""
