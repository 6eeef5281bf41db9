"""Drafting inputs from forward's source: `init`'s starter specs, and `drafting.draft_inputs`."""
