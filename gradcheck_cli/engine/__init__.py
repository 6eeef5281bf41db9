"""Tensors in, outcomes out: inputs, Jacobians, probes, contracts, checks and diagnosis; no I/O."""
