"""gradcheck-cli: check the hand-written backward of custom autograd Functions.

The public Python API (`check`, `assert_gradients`, `run`, `make_settings`, `Report`, ...) lives in
`gradcheck_cli.api` and is re-exported here lazily: importing this package never imports
torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gradcheck_cli.version import __version__

if TYPE_CHECKING:  # for type checkers: the names below, as `api` defines them
    from gradcheck_cli.api import (
        Report,
        RunOptions,
        Settings,
        assert_gradients,
        check,
        collect,
        make_settings,
        run,
        run_items,
    )

__all__ = ["Report", "RunOptions", "Settings", "__version__", "assert_gradients", "check",
           "collect", "make_settings", "run", "run_items"]
_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from gradcheck_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'gradcheck_cli' has no attribute {name!r}")
