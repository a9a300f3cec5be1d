"""Which hyperslab to read for the panels that share one HDF5 array, and where each
panel's pixels lie in it."""

from __future__ import annotations

from collections.abc import Sequence

from ..geometry import Panel


class PanelGroup:
    """Panels whose pixels come from the same HDF5 array, read with one hyperslab.

    ``roles`` is the panels' dims with fixed indices replaced by ``'#'``; every panel of a
    group has the same roles.  The read covers, along each ss/fs/fixed axis, the bounding
    range of the member panels; placeholder axes take the event's index.
    """

    def __init__(self, template: str, file: str | None, panels: list[Panel]):
        self.template = template
        self.file = file
        self.panels = panels
        self.dims = panels[0].dims
        self.roles = tuple(r if isinstance(r, str) else "#" for r in self.dims)
        self.n_placeholders = self.roles.count("%")
        ranges = []
        for axis, role in enumerate(self.roles):
            if role == "ss":
                ranges.append((min(p.min_ss for p in panels), max(p.max_ss for p in panels) + 1))
            elif role == "fs":
                ranges.append((min(p.min_fs for p in panels), max(p.max_fs for p in panels) + 1))
            elif role == "#":
                vals = [int(p.dims[axis]) for p in panels]
                ranges.append((min(vals), max(vals) + 1))
            else:
                ranges.append(None)
        self.ranges = ranges
        self.views = {p.name: self._view(p) for p in panels}

    def _view(self, p: Panel) -> tuple:
        view: list = []
        for axis, role in enumerate(self.roles):
            lo = self.ranges[axis][0] if self.ranges[axis] else 0
            if role == "ss":
                view.append(slice(p.min_ss - lo, p.max_ss + 1 - lo))
            elif role == "fs":
                view.append(slice(p.min_fs - lo, p.max_fs + 1 - lo))
            elif role == "#":
                view.append(int(p.dims[axis]) - lo)
        return tuple(view)

    def selection(self, shape: tuple[int, ...], ev_dims: tuple[int, ...], static: bool):
        """Hyperslab (start, count) and output shape for a dataset of ``shape``.

        Placeholder and fixed-index axes have count 1 and are dropped from the output
        shape only for placeholders.  With ``static`` the placeholder axes are absent from
        the dataset (a mask or saturation map shared by all frames).  Raises ValueError with
        a readable reason.
        """
        keep = [r != "%" or not static for r in self.roles]
        roles = [r for r, k in zip(self.roles, keep, strict=True) if k]
        ranges = [g for g, k in zip(self.ranges, keep, strict=True) if k]
        start: list[int] = []
        count: list[int] = []
        out_shape: list[int] = []
        k = 0
        for axis, (role, rng) in enumerate(zip(roles, ranges, strict=True)):
            if role == "%":
                idx = ev_dims[k]
                k += 1
                if idx >= shape[axis]:
                    raise ValueError(
                        f"event index {idx} is out of range for axis {axis} "
                        f"(size {shape[axis]}) of '{{path}}', shape {shape}"
                    )
                start.append(idx)
                count.append(1)
            else:
                lo, hi = rng
                if hi > shape[axis]:
                    what = {"ss": "max_ss", "fs": "max_fs", "#": "fixed index"}[role]
                    raise ValueError(
                        f"the geometry needs {what} {hi - 1} on axis {axis} ({role}) but "
                        f"'{{path}}' has shape {shape}"
                    )
                start.append(lo)
                count.append(hi - lo)
                out_shape.append(hi - lo)
        return (tuple(start), tuple(count)), tuple(out_shape)


def _dims_text(roles: Sequence[str | int]) -> str:
    return "(" + ", ".join(str(r) for r in roles) + ")"


def dims_text(roles: Sequence[str | int]) -> str:
    return "(" + ", ".join(str(r) for r in roles) + ")"
