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

    def flat_span(self, shape: tuple[int, ...]) -> tuple[int, int] | None:
        """Where the member panels lie, one after the other in member order, in the
        C-ordered slab of ``shape`` read for them: (start, stop) of the element range,
        or None when their pixels are not consecutive blocks of the slab in that order.

        A panel's view is one block when every axis before its first partial one selects
        a single index and every axis after it is whole.
        """
        span: tuple[int, int] | None = None
        for p in self.panels:
            bounds = []
            for axis, v in enumerate(self.views[p.name]):
                lo, hi = (v.start, v.stop) if isinstance(v, slice) else (v, v + 1)
                bounds.append((lo, hi, shape[axis]))
            sizes = [hi - lo for lo, hi, _ in bounds]
            partial = [i for i, (m, (_, _, n)) in enumerate(zip(sizes, bounds)) if m != n]
            if partial:
                k = partial[0]
                if any(m != 1 for m in sizes[:k]):
                    return None
                if any(m != n for m, (_, _, n) in zip(sizes[k + 1 :], bounds[k + 1 :])):
                    return None
            start, size, stride = 0, 1, 1
            for lo, hi, n in reversed(bounds):
                start += lo * stride
                size *= hi - lo
                stride *= n
            if span is not None and start != span[1]:
                return None
            span = (start if span is None else span[0], start + size)
        return span

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


def dims_text(roles: Sequence[str | int]) -> str:
    return "(" + ", ".join(str(r) for r in roles) + ")"
