"""Parsing geometry text into a :class:`~streamfilter.geometry.model.Detector`.

Behaviour follows CrystFEL 0.12 (``libcrystfel/src/datatemplate.c``); where it deliberately
differs (stricter number parsing, trailing defaults only warn) the docstring of
:func:`parse_geometry` says so.  The line syntax is in :mod:`streamfilter.geometry.syntax`.
"""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path

from .model import (
    MAX_MASKS,
    BadRegion,
    Detector,
    GeometryError,
    GeometryWarning,
    MaskSpec,
    Panel,
)
from .syntax import direction_terms, split_line, value_unit

#: Keys of CrystFEL <= 0.9 that are accepted and kept in ``extra`` without a warning.
_OLD_GLOBAL_KEYS = {
    "photon_energy_scale",
    "rail_direction",
    "clen_for_centering",
    "peak_info_location",
    "beam_bandwidth",
}
_BAD_KEYS = {"min_x", "max_x", "min_y", "max_y", "min_fs", "max_fs", "min_ss", "max_ss", "panel"}


def _dims_text(roles: tuple) -> str:
    return "(" + ", ".join(str(r) for r in roles) + ")"


#: ``peak_list_type`` values CrystFEL 0.12 accepts.
PEAK_LIST_TYPES = ("auto", "cxi", "list3")


class _Parser:
    """Builds a :class:`Detector` from geometry text; one instance per parse."""

    def __init__(self, text: str, source: str):
        self.text = text
        self.source = source
        self.panels: dict[str, dict] = {}
        self.bad: dict[str, BadRegion] = {}
        self.bad_lines: dict[str, dict[str, int]] = {}
        self.defaults: dict = self._initial_defaults()
        self.unused_defaults: tuple[int, str] | None = None
        self.glob: dict = {
            "clen": None,
            "photon_energy": None,
            "wavelength": None,
            "electron_voltage": None,
            "bandwidth": None,
            "detector_shift_x": None,
            "detector_shift_y": None,
            "clen_scale": 1e-3,
            "photon_energy_scale": 1.0,
            "wavelength_scale": 1.0,
            "electron_voltage_scale": 1.0,
            "detector_shift_scale": 1.0,
        }
        self.groups: dict[str, list[str]] = {}
        self.group_lines: list[tuple[int, str, list[str]]] = []  # checked once panels are known
        self.rigid_groups: dict[str, list[str]] = {}
        self.extra: dict[str, str] = {}
        self.warnings: list[str] = []

    @staticmethod
    def _initial_defaults() -> dict:
        return {
            "min_fs": None,
            "max_fs": None,
            "min_ss": None,
            "max_ss": None,
            "corner_x": None,
            "corner_y": None,
            "fs": None,
            "ss": None,
            "res": None,
            "coffset": 0.0,
            "adu_per_photon": None,
            "adu_per_eV": None,
            "max_adu": math.inf,
            "data": "/data/data",
            "dims": {0: "ss", 1: "fs"},
            "masks": {},
            "saturation_map": None,
            "saturation_map_file": None,
            "flags": [],
            "mask_edge_pixels": 0,
            "no_index": False,
            "clen": None,
            "extra": {},
        }

    # -- helpers -----------------------------------------------------------------------------

    def error(self, line_no: int | None, key: str | None, message: str) -> GeometryError:
        return GeometryError(self.source, line_no, key, message)

    def warn(self, line_no: int | None, key: str | None, message: str) -> None:
        text = str(GeometryError(self.source, line_no, key, message))
        self.warnings.append(text)
        warnings.warn(text, GeometryWarning, stacklevel=4)

    def to_float(self, value: str, line_no: int, key: str) -> float:
        try:
            v = float(value)
        except ValueError:
            raise self.error(line_no, key, f"expected a number, got '{value}'") from None
        if math.isnan(v):
            raise self.error(line_no, key, f"expected a number, got '{value}'")
        return v

    def to_int(self, value: str, line_no: int, key: str) -> int:
        v = self.to_float(value, line_no, key)
        if not math.isfinite(v) or v != int(v):
            raise self.error(line_no, key, f"expected an integer, got '{value}'")
        return int(v)

    def to_bits(self, value: str, line_no: int, key: str) -> int:
        try:
            v = int(value, 0)
        except ValueError:
            v = self.to_int(value, line_no, key)
        if v < 0:
            raise self.error(line_no, key, f"bit mask must not be negative, got '{value}'")
        return v

    def to_bool(self, value: str, line_no: int, key: str) -> bool:
        low = value.lower()
        if low == "true":
            return True
        if low == "false":
            return False
        return self.to_int(value, line_no, key) != 0

    def to_direction(self, value: str, line_no: int, key: str) -> tuple[float, float, float]:
        try:
            terms = direction_terms(value)
        except ValueError:
            raise self.error(
                line_no, key, f"invalid direction '{value}' (expected e.g. '-0.0059x +0.99998y')"
            ) from None
        vec = {"x": 0.0, "y": 0.0, "z": 0.0}
        for sign, coef_text, axis in terms:
            coef = float(coef_text or "1")
            if sign == "-":
                coef = -coef
            vec[axis] += coef
        return vec["x"], vec["y"], vec["z"]

    def value_unit(self, value: str, line_no: int, key: str) -> tuple[str, str | None]:
        try:
            return value_unit(value)
        except ValueError:
            raise self.error(line_no, key, f"expected 'value [unit]', got '{value}'") from None

    @staticmethod
    def is_number(text: str) -> bool:
        try:
            float(text)
        except ValueError:
            return False
        return True

    # -- statements --------------------------------------------------------------------------

    def run(self) -> Detector:
        lines = self.text.splitlines()
        for line_no, line in enumerate(lines, start=1):
            try:
                stmt = split_line(line)
            except ValueError:
                raise self.error(
                    line_no, None, f"cannot parse '{line.strip()}': expected 'key = value'"
                ) from None
            if stmt is None:
                continue
            owner, key, value = stmt
            value = value.strip()
            full_key = f"{owner}/{key}" if owner else key
            if value == "":
                raise self.error(line_no, full_key, "empty value")
            if owner is None:
                self.toplevel(key, value, line_no)
            elif owner.startswith("bad"):
                self.bad_field(owner, key, value, line_no)
            else:
                if owner.startswith("group") or owner.startswith("rigid_group"):
                    raise self.error(
                        line_no,
                        full_key,
                        "panel names must not start with 'group' or 'rigid_group'",
                    )
                if owner not in self.panels:
                    p = copy.deepcopy(self.defaults)
                    p["_index"] = len(self.panels)
                    p["_line"] = line_no
                    self.panels[owner] = p
                    self.unused_defaults = None
                self.panel_field(self.panels[owner], owner, key, value, line_no)
        return self.finish()

    def toplevel(self, key: str, value: str, line_no: int) -> None:
        g = self.glob
        if key == "clen":
            v, unit = self.value_unit(value, line_no, key)
            scale = self.length_scale(unit, line_no, key, header_default=1e-3)
            if self.is_number(v):
                g["clen"] = self.to_float(v, line_no, key) * (1.0 if unit is None else scale)
            else:
                g["clen"] = v
                g["clen_scale"] = scale
        elif key in ("detector_shift_x", "detector_shift_y"):
            v, unit = self.value_unit(value, line_no, key)
            scale = self.length_scale(unit, line_no, key, header_default=1.0)
            if self.is_number(v):
                g[key] = self.to_float(v, line_no, key) * scale
            else:
                g[key] = v
                g["detector_shift_scale"] = scale
        elif key == "photon_energy":
            v, unit = self.value_unit(value, line_no, key)
            scales = {None: 1.0, "eV": 1.0, "keV": 1e3}
            if unit not in scales:
                raise self.error(line_no, key, f"unknown unit '{unit}' (use eV or keV)")
            if self.is_number(v):
                g["photon_energy"] = self.to_float(v, line_no, key) * scales[unit]
            else:
                g["photon_energy"] = v
                g["photon_energy_scale"] = scales[unit]
        elif key == "wavelength":
            v, unit = self.value_unit(value, line_no, key)
            scales = {"m": 1.0, "A": 1e-10}
            if unit not in scales:
                raise self.error(line_no, key, "wavelength needs a unit: 'm' or 'A'")
            if self.is_number(v):
                g["wavelength"] = self.to_float(v, line_no, key) * scales[unit]
            else:
                g["wavelength"] = v
                g["wavelength_scale"] = scales[unit]
        elif key == "electron_voltage":
            v, unit = self.value_unit(value, line_no, key)
            scales = {"V": 1.0, "kV": 1e3}
            if unit not in scales:
                raise self.error(line_no, key, "electron_voltage needs a unit: 'V' or 'kV'")
            if self.is_number(v):
                g["electron_voltage"] = self.to_float(v, line_no, key) * scales[unit]
            else:
                g["electron_voltage"] = v
                g["electron_voltage_scale"] = scales[unit]
        elif key == "bandwidth":
            g["bandwidth"] = self.to_float(value, line_no, key)
        elif key == "peak_list_type" and value not in PEAK_LIST_TYPES:
            raise self.error(line_no, key, (
                f"unknown peak list type '{value}' (CrystFEL knows "
                + ", ".join(PEAK_LIST_TYPES) + ")"
            ))  # fmt: skip
        elif key in ("peak_list", "peak_list_type") or key in _OLD_GLOBAL_KEYS:
            self.extra[key] = value
        elif key.startswith("rigid_group"):
            self.rigid_groups[key] = [m.strip() for m in value.split(",") if m.strip()]
        elif key.startswith("group_"):
            members = [m.strip() for m in value.split(",") if m.strip()]
            if not members:
                raise self.error(line_no, key, "panel group has no members")
            self.group_lines.append((line_no, key[len("group_") :], members))
        else:
            known = self.panel_field(self.defaults, None, key, value, line_no)
            if known:
                self.unused_defaults = (line_no, key)
            else:
                self.extra[key] = value
                del self.defaults["extra"][key]

    def length_scale(
        self, unit: str | None, line_no: int, key: str, header_default: float
    ) -> float:
        if unit is None:
            return header_default
        if unit == "mm":
            return 1e-3
        if unit == "m":
            return 1.0
        raise self.error(line_no, key, f"unknown length unit '{unit}' (use m or mm)")

    def panel_field(self, p: dict, name: str | None, key: str, value: str, line_no: int) -> bool:
        """Set one per-panel key on a panel (or on the defaults when ``name`` is None).

        Returns False for an unknown key (kept in ``extra`` with a warning).
        """
        full = f"{name}/{key}" if name else key
        p["_lines"] = {**p.get("_lines", {}), key: line_no}
        if key in ("min_fs", "max_fs", "min_ss", "max_ss"):
            v = self.to_int(value, line_no, full)
            if v < 0:
                raise self.error(line_no, full, f"must not be negative, got {v}")
            p[key] = v
        elif key in ("corner_x", "corner_y", "coffset", "max_adu"):
            p[key] = self.to_float(value, line_no, full)
            if key == "max_adu":
                self.warn(line_no, full, "max_adu is set; CrystFEL advises cutting at merge time")
        elif key == "res":
            v = self.to_float(value, line_no, full)
            if not v > 0:
                raise self.error(line_no, full, f"res must be positive, got {value}")
            p["res"] = v
        elif key in ("adu_per_photon", "adu_per_eV"):
            other = "adu_per_eV" if key == "adu_per_photon" else "adu_per_photon"
            p[key] = self.to_float(value, line_no, full)
            p[other] = None
        elif key == "data":
            # CrystFEL opens the path from the file (H5Dopen2 on the file id), so a relative
            # path is relative to the root group
            p["data"] = value if value.startswith("/") else "/" + value
        elif key in ("saturation_map", "saturation_map_file"):
            p[key] = value
        elif key == "mask_edge_pixels":
            p[key] = self.to_int(value, line_no, full)
        elif key == "no_index":
            p["no_index"] = self.to_bool(value, line_no, full)
        elif key in ("flag_lessthan", "flag_morethan", "flag_equal"):
            p["flags"] = p["flags"] + [(key[len("flag_") :], self.to_float(value, line_no, full))]
        elif key in ("fs", "ss"):
            p[key] = self.to_direction(value, line_no, full)
        elif key == "clen":
            if name is not None or self.panels:
                self.warn(line_no, full, "per-panel clen is an error in CrystFEL 0.11+")
            v, unit = self.value_unit(value, line_no, full)
            p["clen"] = self.to_float(v, line_no, full) if self.is_number(v) else v
        elif key in ("mask", "mask_file", "mask_good", "mask_bad"):
            alias = {"mask": "data", "mask_file": "file", "mask_good": "goodbits"}
            self.mask_field(p, 0, alias.get(key, "badbits"), value, line_no, full)
        elif key.startswith("mask") and "_" in key:
            num, _, what = key[len("mask") :].partition("_")
            if not num.isdigit() or what not in ("data", "file", "goodbits", "badbits"):
                raise self.error(line_no, full, "invalid mask directive")
            if int(num) >= MAX_MASKS:
                raise self.error(line_no, full, f"at most {MAX_MASKS} masks (mask0 to mask7)")
            self.mask_field(p, int(num), what, value, line_no, full)
        elif key.startswith("dim"):
            self.dim_field(p, key, value, line_no, full)
        elif key == "badrow_direction":
            p["extra"][key] = value
        else:
            self.warn(line_no, full, "unknown key, kept but not used")
            p["extra"][key] = value
            return False
        return True

    def mask_field(self, p: dict, num: int, what: str, value: str, line_no: int, full: str) -> None:
        m = p["masks"].setdefault(num, {"data": None, "file": None, "goodbits": 0, "badbits": 0})
        if what == "data":
            if not value.startswith("/"):
                raise self.error(line_no, full, f"mask location must start with '/': '{value}'")
            m["data"] = value
        elif what == "file":
            m["file"] = value
        else:
            m[what] = self.to_bits(value, line_no, full)

    def dim_field(self, p: dict, key: str, value: str, line_no: int, full: str) -> None:
        num = key[len("dim") :]
        if not num.isdigit():
            raise self.error(line_no, full, "'dim' must be followed by a number, e.g. 'dim0'")
        if value in ("ss", "fs", "%"):
            role: str | int = value
        elif value.isdigit():
            role = int(value)
        else:
            raise self.error(
                line_no, full, f"invalid dimension '{value}' (expected ss, fs, % or an index)"
            )
        p["dims"] = {**p["dims"], int(num): role}

    def bad_field(self, name: str, key: str, value: str, line_no: int) -> None:
        full = f"{name}/{key}"
        r = self.bad.get(name)
        if r is None:
            r = self.bad[name] = BadRegion(name=name, line_no=line_no)
        if key not in _BAD_KEYS:
            self.warn(line_no, full, "unknown bad-region key, ignored")
            return
        self.bad_lines.setdefault(name, {})[key] = line_no
        if key == "panel":
            r.panel = value
            return
        is_fsss = key.endswith("_fs") or key.endswith("_ss")
        has_xy = any(v is not None for v in (r.min_x, r.max_x, r.min_y, r.max_y))
        if (is_fsss and has_xy) or (not is_fsss and r.is_fsss):
            raise self.error(line_no, full, "a bad region cannot mix x/y and fs/ss limits")
        if is_fsss:
            setattr(r, key, self.to_int(value, line_no, full))
        else:
            setattr(r, key, self.to_float(value, line_no, full))

    # -- assembly and checks -----------------------------------------------------------------

    def finish(self) -> Detector:
        if not self.panels:
            raise self.error(None, None, "no panel descriptions in the geometry")
        if self.unused_defaults is not None:
            line_no, key = self.unused_defaults
            self.warn(
                line_no,
                key,
                "statement after the last panel has no effect (defaults only apply to panels "
                "mentioned later; CrystFEL 0.10+ rejects such a file)",
            )
        panels = [self.make_panel(name, p) for name, p in self.panels.items()]
        self.check_groups()
        det = Detector(
            panels=panels,
            bad_regions=[],
            clen=self.glob["clen"],
            photon_energy=self.glob["photon_energy"],
            bandwidth=self.glob["bandwidth"],
            detector_shift_x=self.glob["detector_shift_x"],
            detector_shift_y=self.glob["detector_shift_y"],
            source=self.source,
            text=self.text,
            wavelength=self.glob["wavelength"],
            electron_voltage=self.glob["electron_voltage"],
            clen_scale=self.glob["clen_scale"],
            photon_energy_scale=self.glob["photon_energy_scale"],
            wavelength_scale=self.glob["wavelength_scale"],
            electron_voltage_scale=self.glob["electron_voltage_scale"],
            detector_shift_scale=self.glob["detector_shift_scale"],
            groups=self.groups,
            rigid_groups=self.rigid_groups,
            extra=self.extra,
            warnings=self.warnings,
        )
        det.bad_regions = [self.check_bad_region(r, det) for r in self.bad.values()]
        return det

    def check_groups(self) -> None:
        """Check ``group_*`` lines as CrystFEL 0.12 does (``add_group_members``): they are
        read after every other line, in order; each member must be a panel or a group
        defined on an earlier line, named once; a name (panel or group) is defined once."""
        defined = {name: None for name in self.panels}  # name -> line of its group_ line
        for line_no, name, members in self.group_lines:
            key = f"group_{name}"
            if name in defined:
                first = defined[name]
                where = "a panel" if first is None else f"a group defined at line {first}"
                raise self.error(line_no, key, f"duplicate panel group '{name}': already {where}")
            seen: set[str] = set()
            for m in members:
                if m in seen:
                    raise self.error(line_no, key, f"duplicate member '{m}' in group '{name}'")
                seen.add(m)
                if m not in defined:
                    raise self.error(line_no, key, (
                        f"unknown panel group '{m}' (members must be panels or groups "
                        "defined on earlier group_ lines)"
                    ))  # fmt: skip
            defined[name] = line_no
            self.groups[name] = members

    def make_panel(self, name: str, p: dict) -> Panel:
        line_no = p["_line"]
        lines = p.get("_lines", {})
        self.check_required(name, p, lines, line_no)
        dims = self.check_dims(name, p["dims"], lines, line_no)
        masks = self.make_masks(name, p, lines, line_no)
        sat = p["saturation_map"]
        if sat is not None and sat.count("%") > p["data"].count("%"):
            raise self.error(
                lines.get("saturation_map", line_no),
                f"{name}/saturation_map",
                "a saturation map path cannot have more placeholders than the data path",
            )
        last = {kind: v for kind, v in p["flags"]}
        return Panel(
            name=name,
            index=p["_index"],
            min_fs=p["min_fs"],
            max_fs=p["max_fs"],
            min_ss=p["min_ss"],
            max_ss=p["max_ss"],
            corner_x=p["corner_x"],
            corner_y=p["corner_y"],
            fs=p["fs"],
            ss=p["ss"],
            res=p["res"],
            coffset=p["coffset"],
            adu_per_photon=p["adu_per_photon"],
            adu_per_eV=p["adu_per_eV"],
            max_adu=p["max_adu"],
            data=p["data"],
            dims=dims,
            masks=tuple(masks),
            saturation_map=sat,
            saturation_map_file=p["saturation_map_file"],
            flag_lessthan=last.get("lessthan"),
            flag_morethan=last.get("morethan"),
            flag_equal=last.get("equal"),
            mask_edge_pixels=p["mask_edge_pixels"],
            no_index=p["no_index"],
            flags=tuple(p["flags"]),
            clen=p["clen"],
            extra=dict(p["extra"]),
            line_no=line_no,
        )

    def check_required(self, name: str, p: dict, lines: dict[str, int], line_no: int) -> None:
        """The keys every panel needs are set, its pixel range is ordered and its corner,
        res and coffset are finite."""

        def need(key: str, what: str):
            if p[key] is None:
                raise self.error(line_no, f"{name}/{key}", f"panel {name} needs {what}")
            return p[key]

        for k in ("min_fs", "max_fs", "min_ss", "max_ss"):
            need(k, "its pixel range (min_fs, max_fs, min_ss, max_ss)")
        for lo, hi in (("min_fs", "max_fs"), ("min_ss", "max_ss")):
            if p[hi] < p[lo]:
                raise self.error(
                    lines.get(hi, line_no),
                    f"{name}/{hi}",
                    f"panel {name}: {hi} ({p[hi]}) < {lo} ({p[lo]})",
                )
        need("corner_x", "corner_x")
        need("corner_y", "corner_y")
        need("fs", "an fs direction")
        need("ss", "an ss direction")
        need("res", "res (pixels per metre)")
        for key in ("corner_x", "corner_y", "res", "coffset"):  # inf would reach the maths
            if p[key] is not None and not math.isfinite(p[key]):
                raise self.error(
                    lines.get(key, line_no),
                    f"{name}/{key}",
                    f"panel {name}: {key} must be a finite number",
                )

    def make_masks(self, name: str, p: dict, lines: dict[str, int], line_no: int) -> list:
        """The panel's :class:`MaskSpec` list, in mask number order."""
        masks = []
        for num in sorted(p["masks"]):
            m = p["masks"][num]
            mask_line = min(
                (
                    v
                    for k, v in lines.items()
                    if k.startswith(f"mask{num}_")
                    or (num == 0 and k in ("mask", "mask_file", "mask_good", "mask_bad"))
                ),
                default=line_no,
            )
            if m["data"] is None:
                raise self.error(
                    mask_line,
                    f"{name}/mask{num}_data",
                    f"panel {name}: mask {num} has a file or bits but no data location",
                )
            n_data = p["data"].count("%")
            if m["data"].count("%") > n_data:
                raise self.error(
                    mask_line,
                    f"{name}/mask{num}_data",
                    "a mask path cannot have more placeholders than the data path",
                )
            masks.append(MaskSpec(m["data"], m["file"], m["goodbits"], m["badbits"]))
        return masks

    def check_dims(
        self, name: str, dims: dict[int, str | int], lines: dict[str, int], line_no: int
    ) -> tuple:
        n = max(dims) + 1
        missing = [i for i in range(n) if i not in dims]
        if missing:
            key = f"dim{missing[0] + 1}" if f"dim{missing[0] + 1}" in lines else f"dim{n - 1}"
            raise self.error(
                lines.get(key, line_no),
                f"{name}/dim{missing[0]}",
                f"panel {name}: dim{missing[0]} is not set",
            )
        roles = tuple(dims[i] for i in range(n))
        problem = None
        for role in ("ss", "fs"):
            if roles.count(role) != 1:
                problem = next((i for i, r in enumerate(roles) if r == role and i > 1), n - 1)
                break
        else:
            if roles.index("ss") > roles.index("fs"):
                problem = roles.index("fs")
        if problem is not None:
            raise self.error(
                lines.get(f"dim{problem}", line_no),
                f"{name}/dim{problem}",
                f"panel {name}: dims {_dims_text(roles)} need exactly one 'ss' axis followed by "
                "one 'fs' axis (dim0 = ss and dim1 = fs unless set)",
            )
        return roles

    def check_bad_region(self, r: BadRegion, det: Detector) -> BadRegion:
        xy = (r.min_x, r.max_x, r.min_y, r.max_y)
        if not r.is_fsss and all(v is None for v in xy):
            raise self.error(r.line_no, r.name, f"bad region {r.name} gives no coordinate range")
        if not r.is_fsss:
            if any(v is None for v in xy):
                self.warn(
                    r.line_no,
                    r.name,
                    f"bad region {r.name} lacks one of min_x/max_x/min_y/max_y and marks "
                    "nothing (as in CrystFEL)",
                )
            return r
        if r.panel is None:
            r.panel = self.guess_panel(r, det)
        if r.panel not in det._by_name:
            raise self.error(
                self.bad_lines[r.name].get("panel", r.line_no),
                f"{r.name}/panel",
                f"no such panel '{r.panel}' for bad region {r.name}",
            )
        p = det._by_name[r.panel]
        lo_fs, hi_fs = r.min_fs or 0, r.max_fs or 0
        lo_ss, hi_ss = r.min_ss or 0, r.max_ss or 0
        if lo_fs < p.min_fs or hi_fs > p.max_fs or lo_ss < p.min_ss or hi_ss > p.max_ss:
            raise self.error(
                r.line_no,
                r.name,
                f"bad region {r.name} (fs {lo_fs}-{hi_fs}, ss {lo_ss}-{hi_ss}) is outside "
                f"panel {p.name} (fs {p.min_fs}-{p.max_fs}, ss {p.min_ss}-{p.max_ss})",
            )
        return r

    def guess_panel(self, r: BadRegion, det: Detector) -> str:
        if len(det.panels) == 1:
            return det.panels[0].name
        lo = ((r.min_fs or 0), (r.min_ss or 0))
        hi = ((r.max_fs or 0), (r.max_ss or 0))
        owners = [p.name for p in det.panels if bool(p.contains(*lo)) and bool(p.contains(*hi))]
        if len(owners) == 1:
            self.warn(r.line_no, r.name, f"assuming {r.name}/panel = {owners[0]}")
            return owners[0]
        raise self.error(r.line_no, f"{r.name}/panel", f"bad region {r.name} needs a panel")


def parse_geometry(text: str, source: str = "<string>") -> Detector:
    """Parse the text of a CrystFEL geometry file.

    Parameters
    ----------
    text : str
        Geometry text (a ``.geom`` file, or the block a stream embeds).
    source : str
        Name used in error messages, e.g. the file name or ``"<stream geometry>"``.

    Returns
    -------
    Detector

    Raises
    ------
    GeometryError
        Malformed line or value, missing required per-panel key (pixel range, corner,
        fs/ss directions, res), inconsistent ``dimN``, bad region outside its panel, ...

    Notes
    -----
    Differences from CrystFEL 0.12 ``datatemplate.c``, all deliberate:

    * numbers are parsed strictly (``atof("12abc")`` would give 12; here it is an error);
    * statements after the last panel that only set defaults give a
      :class:`GeometryWarning` instead of rejecting the file, and a missing
      ``adu_per_photon``/``adu_per_eV``, ``clen`` or photon energy is only an error when the
      value is asked for (older geometries, as embedded in old streams, stay readable);
    * per-panel ``clen`` (CrystFEL <= 0.10) is accepted with a warning;
    * an fs/ss bad region without ``panel`` is assigned to the one panel whose range holds
      it (CrystFEL only guesses for single-panel detectors).
    """
    return _Parser(text, source).run()


def load_geometry(path: str | Path) -> Detector:
    """Read and parse a geometry file; see :func:`parse_geometry`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise GeometryError(str(path), None, None, f"cannot read geometry file: {e}") from e
    return parse_geometry(text, source=str(path))
