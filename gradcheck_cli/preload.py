"""Imported once by the fork server, so that every worker forked from it starts with torch.

Only imports: the server runs no torch op, so no thread pool exists to be broken by fork.
"""

from gradcheck_cli.quiet import quiet_torch_import

quiet_torch_import()

import torch  # noqa: E402,F401

import gradcheck_cli.execute  # noqa: E402
import gradcheck_cli.worker  # noqa: E402,F401
