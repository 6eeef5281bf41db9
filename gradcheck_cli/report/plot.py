"""--plot: numerical, analytical and difference Jacobians of each failing input, as PNG heatmaps.

matplotlib is optional (`pip install 'gradcheck-cli[plot]'`); only this module imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gradcheck_cli.errors import UsageError
from gradcheck_cli.report.files import Folder, Warn, warn_on_stderr
from gradcheck_cli.report.naming import unique_stem
from gradcheck_cli.report.safe import printable, shown
from gradcheck_cli.results import CheckResult


def require_matplotlib() -> None:
    """Fail early, before any check runs, when --plot cannot work."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib, which is not installed",
                         hint="pip install 'gradcheck-cli[plot]'") from None


def save(results: list[CheckResult], folder: Path,
         warn: Warn = warn_on_stderr) -> list[Path]:
    """One PNG per failing input that has Jacobians attached; returns the paths written. A
    folder that cannot be written is told to `warn` once; the run's report never depends
    on it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    taken: set[str] = set()
    target = Folder(folder, "a plot", warn)
    for result in results:
        for input_name, pictures in (result.jacobians or {}).items():
            def draw(path: Path, result: CheckResult = result, input_name: str = input_name,
                     pictures: dict[str, Any] = pictures) -> None:
                figure = _figure(plt, shown(result), printable(input_name), pictures)
                try:
                    figure.savefig(path, dpi=110)
                finally:
                    plt.close(figure)

            path = target.write(unique_stem(result, taken, input_name) + ".png", draw)
            if path is not None:
                written.append(path)
    target.finish()
    return written


def _figure(plt: Any, result: CheckResult, input_name: str, pictures: dict[str, Any]) -> Any:
    rows, columns = pictures["shape"]
    figure, axes = plt.subplots(1, 3, figsize=(13, 4.2), constrained_layout=True)
    panels = (("numerical", "numerical (finite differences)"),
              ("analytical", "analytical (your backward)"),
              ("difference", "analytical − numerical"))
    numerical_limit = max(
        (abs(v) for row in pictures["numerical"] + pictures["analytical"] for v in row),
        default=1.0) or 1.0
    for axis, (key, title) in zip(axes, panels):
        data = pictures[key]
        limit = numerical_limit if key != "difference" else max(
            (abs(v) for row in data for v in row), default=1.0) or 1.0
        image = axis.imshow(data, cmap="RdBu_r", vmin=-limit, vmax=limit,
                            aspect="auto", interpolation="nearest")
        axis.set_title(title)
        # Names are text, never mathtext: a `$` in a case name must not be parsed.
        axis.set_xlabel(f"element of input `{input_name}` ({columns}, flattened)",
                        parse_math=False)
        axis.set_ylabel(f"output element ({rows}, flattened)")
        figure.colorbar(image, ax=axis, shrink=0.85)
    note = " (downsampled: each cell the largest entry of its block)" \
        if pictures.get("downsampled") else ""
    figure.suptitle(f"{result.function} [{result.case}, {result.device}, "
                    f"{result.check}]: d outputs / d {input_name}{note}", parse_math=False)
    return figure
