"""Diagnosis: a Jacobian mismatch -> the most likely bug, one rule per kind."""
