"""The polarisation correction process_hkl applies before merging (``--polarisation``).

CrystFEL 0.12's ``process_hkl`` divides every intensity and sigma(I) by the polarisation
factor of its reflection unless ``--polarisation=none`` (or ``--no-polarisation``) is given.
The default is ``horiz``: the incident beam fully polarised in the horizontal (lab x)
direction.  The factor of a reflection with lab scattering vector q = h a* + k b* + l c*
(m^-1) and incident wave vector k0 = (0, 0, 1/lambda) is

    pol = P (1 - cos^2(phi) sin^2(2 theta)) + (1 - P) (1 - sin^2(phi) sin^2(2 theta)),

with 2 theta the angle between the beam axis and q + k0, phi = atan2(q_y, q_x) minus the
polarisation angle, and P the polarised fraction.  The operations are done in CrystFEL's
order, on the values CrystFEL reads (32-bit floats for a*, b*, c*, I and sigma), so the
corrected intensities agree with process_hkl's to the last printed digit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

# CrystFEL's constants (libcrystfel utils.h), so the wavelength is the same number
_PLANCK = 6.62606896e-34  # J s
_C_VACUO = 299792458.0  # m/s
_ELECTRON_CHARGE = 1.6021773e-19  # C

_SPEC = re.compile(r"(?P<angle>[0-9]*)(?P<word>[A-Za-z]*)(?P<frac>[0-9]*)")


@dataclass(frozen=True)
class Polarisation:
    """Polarisation of the incident beam, as process_hkl's ``--polarisation`` gives it.

    Attributes
    ----------
    fraction : float
        Polarised fraction P, 0 to 1 (1: fully polarised).
    angle : float
        Direction of polarisation, radians, from the lab x axis towards y (0: ``horiz``,
        pi/2: ``vert``).
    disable : bool
        No correction at all (``none``).
    """

    fraction: float = 1.0
    angle: float = 0.0
    disable: bool = False


NONE = Polarisation(fraction=0.5, angle=0.0, disable=True)
HORIZONTAL = Polarisation()  # process_hkl's default


def parse_polarisation(text: str) -> Polarisation:
    """Parse a ``--polarisation`` value as process_hkl does.

    Accepted: ``none``; ``horiz`` or ``vert`` (words beginning so are accepted, as by
    CrystFEL), or ``<angle>deg`` (whole degrees from horizontal); each optionally followed by
    the polarised percentage (``horiz50``, ``45deg90``; default 100).  At most 13 characters.

    Raises
    ------
    ValueError
        For anything else (where process_hkl prints an error and goes on with an undefined
        angle, this refuses).
    """
    if text == "none":
        return NONE
    m = _SPEC.fullmatch(text)
    if len(text) > 13 or m is None:
        raise ValueError(f"invalid polarisation {text!r}")
    angle, word, frac = m.group("angle"), m.group("word"), m.group("frac")
    fraction = 1.0
    if frac:
        if int(frac) > 100:
            raise ValueError(f"invalid polarisation {text!r}: more than 100 %")
        fraction = int(frac) / 100.0
    if word == "deg":
        return Polarisation(fraction, math.radians(int(angle or "0")))
    if angle or not (word.startswith("horiz") or word.startswith("vert")):
        raise ValueError(
            f"invalid polarisation {text!r} (none, horiz, vert or <angle>deg, then optionally "
            "the polarised percentage, e.g. horiz90)"
        )
    return Polarisation(fraction, 0.0 if word.startswith("horiz") else math.pi / 2)


def polarisation_factors(
    h: np.ndarray,
    k: np.ndarray,
    l: np.ndarray,  # noqa: E741
    astar: np.ndarray,
    bstar: np.ndarray,
    cstar: np.ndarray,
    photon_energy_eV: float,  # noqa: N803 - CrystFEL's key name
    pol: Polarisation,
) -> np.ndarray:
    """The factor each intensity and sigma(I) is divided by (1 where ``pol.disable``).

    Parameters
    ----------
    h, k, l : arrays of int
        Miller indices in the crystal's own setting.
    astar, bstar, cstar : arrays of 3 floats
        Reciprocal basis vectors as printed in the stream, nm^-1, lab frame.
    photon_energy_eV : float
        The chunk's ``photon_energy_eV``.
    pol : Polarisation
        The beam's polarisation.
    """
    h = np.asarray(h, np.float64)
    k = np.asarray(k, np.float64)
    l = np.asarray(l, np.float64)  # noqa: E741
    if pol.disable:
        return np.ones(h.shape)
    # CrystFEL reads the vectors as 32-bit floats, then multiplies by 1e9 in double
    a, b, c = (np.asarray(v, np.float64).astype(np.float32).astype(np.float64) * 1e9
               for v in (astar, bstar, cstar))  # fmt: skip
    xl = h * a[0] + k * b[0] + l * c[0]
    yl = h * a[1] + k * b[1] + l * c[1]
    zl = h * a[2] + k * b[2] + l * c[2]
    kpred = 1.0 / ((_PLANCK * _C_VACUO) / (photon_energy_eV * _ELECTRON_CHARGE))
    z = zl + kpred
    cosine = np.clip(z / np.sqrt(xl * xl + yl * yl + z * z), -1.0, 1.0)
    tt = np.arccos(cosine)
    phi = np.arctan2(yl, xl) - pol.angle
    p = pol.fraction
    s_tt = np.sin(tt)
    c_phi, s_phi = np.cos(phi), np.sin(phi)
    return (p * (1.0 - c_phi * c_phi * s_tt * s_tt)
            + (1.0 - p) * (1.0 - s_phi * s_phi * s_tt * s_tt))  # fmt: skip
