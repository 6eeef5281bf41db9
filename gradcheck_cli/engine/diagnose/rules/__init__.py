"""The diagnosis rules, one module per kind (`Kind` lists them; `registry` loads them)."""
