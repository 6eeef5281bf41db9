"""Imported once by the fork server, so that every worker forked from it starts with torch.

Only imports: the server runs no torch op, so no thread pool exists to be broken by fork.
"""

import warnings

# torch warns at import when numpy is missing; numpy is not needed to check gradients.
warnings.filterwarnings("ignore", message=r".*Failed to initialize NumPy.*")

import torch  # noqa: E402,F401

import gradcheck_cli.execute  # noqa: E402
import gradcheck_cli.worker  # noqa: E402,F401
