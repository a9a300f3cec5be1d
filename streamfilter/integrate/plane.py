"""The solver of the ``-grad`` background plane's 3x3 normal equations (``--method crystfel``).

indexamajig rescales the normal matrix (Bricogne: ``S = diag(M_ii^-1/2)``), decomposes it by
GSL's SVD, drops singular values below the largest / 1e6 and solves.  The plane is exact in
theory, but its last bits decide how ``%.2f`` prints an intensity that lies on a print tie,
and photon-counting data (integer pixels, a mean background of k/n) put ``I`` exactly on
x.xx5 often.  So the plane is solved by the system's GSL when there is one (:mod:`.gsl`,
loaded at run time: the same calls as indexamajig, the same digits); otherwise by numpy
(LAPACK), whose last bits differ: 0.6-2.3 % of a rings-grad stream's rows then print 0.01
away from indexamajig's.  :func:`plane_solver` names the solver in use (the provenance line
of a re-integrated stream, ``streamfilter --version``).
"""

from __future__ import annotations

import numpy as np

from streamfilter.integrate import gsl

__all__ = ["plane_solver", "solve_normal_equations", "uses_gsl"]

#: what a run without GSL says of its -grad intensities
NUMPY_NOTE = (
    "-grad intensities on %.2f ties may differ from indexamajig's in the last printed digit"
)


def uses_gsl() -> bool:
    """True when the plane is solved by the system's GSL (loaded at the first call)."""
    return gsl.gsl_library() is not None


def plane_solver() -> str:
    """The plane solver in use, for humans: ``GSL 2.7.1 (libgsl.so.27), as indexamajig`` or
    ``numpy (libgsl not found): -grad intensities ... may differ ...``."""
    lib = gsl.gsl_library()
    if lib is not None:
        return f"GSL {lib.version} ({lib.soname}), as indexamajig"
    return f"numpy ({gsl.load_failure()}): {NUMPY_NOTE}"


def solve_normal_equations(m: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve N 3x3 normal systems ``m x = rhs`` as CrystFEL's ``solve_svd`` does: with GSL
    when it is available (the same digits), else with numpy.

    Parameters
    ----------
    m : np.ndarray
        float64 (N, 3, 3) normal matrices (sums of p^2, pq, p, ... over the background pixels,
        box coordinates).
    rhs : np.ndarray
        float64 (N, 3) right-hand sides (sums of v p, v q, v over the same pixels, ADU).

    Returns
    -------
    np.ndarray
        float64 (N, 3): (a, b, c) of the plane ``a p + b q + c``; NaN where a diagonal element
        of ``m`` is not positive (no background pixel; such boxes are rejected anyway).
    """
    if uses_gsl():
        return gsl.solve_svd(m, rhs)
    return solve_numpy(m, rhs)


def solve_numpy(m: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """:func:`solve_normal_equations` with numpy's SVD (LAPACK): the same rescaling and
    filter, the same solution up to the last bits."""
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.diagonal(m, axis1=1, axis2=2) ** -0.5  # (N, 3)
        sas = m * s[:, :, None] * s[:, None, :]
        sb = s * rhs
        bad = ~np.isfinite(sas).all(axis=(1, 2))
        sas[bad] = np.eye(3)
        u, sv, vt = np.linalg.svd(sas)
        keep = sv >= sv[:, :1] / 1e6
        inv = np.where(keep, 1.0 / np.where(keep, sv, 1.0), 0.0)
        ut_b = np.einsum("nji,nj->ni", u, sb)
        x = np.einsum("nji,nj->ni", vt, inv * ut_b)
        out = s * x
    out[bad] = np.nan
    return out
