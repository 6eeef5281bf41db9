"""--plot: numerical, analytical and difference Jacobians of each failing input, as PNG heatmaps.

matplotlib is optional (`pip install 'gradcheck-cli[plot]'`); only this module imports it.
"""

from __future__ import annotations

from pathlib import Path

from gradcheck_cli.errors import UsageError
from gradcheck_cli.report import file_stem
from gradcheck_cli.results import CheckResult


def require_matplotlib() -> None:
    """Fail early, before any check runs, when --plot cannot work."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib, which is not installed",
                         hint="pip install 'gradcheck-cli[plot]'") from None


def save(results: list[CheckResult], folder: Path) -> list[Path]:
    """One PNG per failing input that has Jacobians attached; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    for result in results:
        for input_name, pictures in (result.jacobians or {}).items():
            folder.mkdir(parents=True, exist_ok=True)
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
                axis.set_xlabel(f"element of input `{input_name}` ({columns}, flattened)")
                axis.set_ylabel(f"output element ({rows}, flattened)")
                figure.colorbar(image, ax=axis, shrink=0.85)
            note = " (downsampled: each cell the largest entry of its block)" \
                if pictures.get("downsampled") else ""
            figure.suptitle(f"{result.function} [{result.case}, {result.device}, "
                            f"{result.check}]: d outputs / d {input_name}{note}")
            path = folder / (file_stem(result, input_name) + ".png")
            figure.savefig(path, dpi=110)
            plt.close(figure)
            written.append(path)
    return written
