"""Shape rules, one per torch op or family of ops, registered by name in `rules.registry`.

Each module registers its rules as it is imported (`shape_inference` imports them all):
`@tensor_op("name", ...)` for `x.name(...)`, also reached as `torch.name(x, ...)`, and
`@torch_function("name", ...)` for `torch.name(...)` itself, which sees its arguments
unevaluated and may return None to leave the call to the tensor op of the same name.
"""
