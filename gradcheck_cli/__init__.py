"""gradcheck-cli: check the hand-written backward of custom autograd Functions.

The public Python API (`gradcheck_cli.run`, `make_settings`, `Report`, ...) lives in
`gradcheck_cli.api` and is re-exported here lazily: importing this package never imports
torch.
"""

from __future__ import annotations

from typing import Any

from gradcheck_cli.version import __version__

_API = ("Report", "RunOptions", "Settings", "collect", "make_settings", "run", "run_items")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from gradcheck_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'gradcheck_cli' has no attribute {name!r}")
