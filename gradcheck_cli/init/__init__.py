"""`init`: drafting starter specs from a user file, with shape inference from its AST."""
