"""The system's GSL (GNU Scientific Library), loaded at run time through ctypes, to solve the
``-grad`` background plane with the very library calls indexamajig makes.

streamfilter contains no GSL code: when the user has GSL installed (``libgsl`` and
``libgslcblas``, e.g. Debian/Ubuntu ``libgsl27``, conda ``gsl``), this module finds it with
:func:`ctypes.util.find_library` and calls its public API.  Without it, :mod:`.plane` falls
back to numpy.

``STREAMFILTER_GSL`` chooses: unset (find it), ``off`` (never use it), or the path of a
``libgsl`` shared library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import math
import os
import sys
from dataclasses import dataclass

import numpy as np

__all__ = ["Gsl", "gsl_library", "load_failure", "solve_svd", "reset"]

ENV = "STREAMFILTER_GSL"
_CBLAS_NO_TRANS = 111  # CBLAS_TRANSPOSE's CblasNoTrans
_MAX_CONDITION = 1e6  # CrystFEL drops singular values below the largest / 1e6


class _Vector(ctypes.Structure):
    """``gsl_vector`` as gsl_vector_double.h declares it."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("stride", ctypes.c_size_t),
        ("data", ctypes.POINTER(ctypes.c_double)),
        ("block", ctypes.c_void_p),
        ("owner", ctypes.c_int),
    ]


class _Matrix(ctypes.Structure):
    """``gsl_matrix`` as gsl_matrix_double.h declares it."""

    _fields_ = [
        ("size1", ctypes.c_size_t),
        ("size2", ctypes.c_size_t),
        ("tda", ctypes.c_size_t),
        ("data", ctypes.POINTER(ctypes.c_double)),
        ("block", ctypes.c_void_p),
        ("owner", ctypes.c_int),
    ]


_M = ctypes.POINTER(_Matrix)
_V = ctypes.POINTER(_Vector)
_D = ctypes.POINTER(ctypes.c_double)
# name -> (restype, argtypes) of every GSL function used (all public API)
_SIGNATURES = {
    "gsl_set_error_handler_off": (ctypes.c_void_p, []),
    "gsl_matrix_view_array": (_Matrix, [_D, ctypes.c_size_t, ctypes.c_size_t]),
    "gsl_vector_view_array": (_Vector, [_D, ctypes.c_size_t]),
    "gsl_blas_dgemm": (ctypes.c_int, [ctypes.c_int, ctypes.c_int, ctypes.c_double, _M, _M,
                                      ctypes.c_double, _M]),
    "gsl_blas_dgemv": (ctypes.c_int, [ctypes.c_int, ctypes.c_double, _M, _V, ctypes.c_double,
                                      _V]),
    "gsl_linalg_SV_decomp": (ctypes.c_int, [_M, _M, _V, _V]),
    "gsl_linalg_SV_solve": (ctypes.c_int, [_M, _M, _V, _V, _V]),
}  # fmt: skip


@dataclass(frozen=True)
class Gsl:
    """A loaded GSL: its version (``gsl_version``), the file and the ctypes handle."""

    version: str
    path: str
    lib: ctypes.CDLL

    @property
    def soname(self) -> str:
        """The library's file name, e.g. ``libgsl.so.27``."""
        return os.path.basename(self.path)


def _in_folder(folder: str, name: str) -> str | None:
    """The shared library ``lib<name>`` in ``folder`` (``.so*`` or ``.dylib``), or None."""
    hits = sorted(glob.glob(os.path.join(folder, f"lib{name}.so*")) +
                  glob.glob(os.path.join(folder, f"lib{name}*.dylib")))  # fmt: skip
    return hits[0] if hits else None


def _find_library(name: str) -> str | None:
    """Where the shared library ``lib<name>`` is: ctypes' search, then ``<prefix>/lib`` of
    this Python or of the active conda environment, else None."""
    found = ctypes.util.find_library(name)
    for prefix in dict.fromkeys((sys.prefix, os.environ.get("CONDA_PREFIX", ""))):
        if not found and prefix:
            found = _in_folder(os.path.join(prefix, "lib"), name)
    return found


def _load() -> tuple[Gsl | None, str]:
    """(the loaded GSL, '') or (None, why not)."""
    choice = os.environ.get(ENV, "").strip()
    if choice.lower() in ("off", "0", "no", "none"):
        return None, f"{ENV}={choice}"
    gsl_path = choice or _find_library("gsl")
    if not gsl_path:
        return None, "libgsl not found"
    # the CBLAS next to a chosen GSL first
    cblas_path = choice and _in_folder(os.path.dirname(choice), "gslcblas")
    cblas_path = cblas_path or _find_library("gslcblas")
    try:
        if cblas_path:  # libgsl leaves its BLAS symbols to be resolved globally
            ctypes.CDLL(cblas_path, mode=ctypes.RTLD_GLOBAL)
        lib = ctypes.CDLL(gsl_path)
        for fname, (restype, argtypes) in _SIGNATURES.items():
            func = getattr(lib, fname)
            func.restype, func.argtypes = restype, argtypes
        version = ctypes.c_char_p.in_dll(lib, "gsl_version").value.decode()
    except (OSError, AttributeError, ValueError) as e:
        return None, f"{os.path.basename(gsl_path)} did not load ({e})"
    lib.gsl_set_error_handler_off()  # errors come back as status codes, never abort()
    return Gsl(version, gsl_path, lib), ""


@functools.cache
def _loaded() -> tuple[Gsl | None, str]:
    return _load()


def gsl_library() -> Gsl | None:
    """The system GSL, loaded at the first call; None when it is absent or does not load."""
    return _loaded()[0]


def load_failure() -> str:
    """Why :func:`gsl_library` is None ('' when GSL is loaded)."""
    return _loaded()[1]


def reset() -> None:
    """Forget the loaded library and the cached factorisations (tests; a changed
    ``STREAMFILTER_GSL``)."""
    _loaded.cache_clear()
    _factorise.cache_clear()


def _matrix(lib: ctypes.CDLL, a: np.ndarray) -> _Matrix:
    """A gsl_matrix view of a C-contiguous float64 (n, m) array (keep ``a`` alive)."""
    return lib.gsl_matrix_view_array(a.ctypes.data_as(_D), a.shape[0], a.shape[1])


def _vector(lib: ctypes.CDLL, a: np.ndarray) -> _Vector:
    """A gsl_vector view of a contiguous float64 (n,) array (keep ``a`` alive)."""
    return lib.gsl_vector_view_array(a.ctypes.data_as(_D), a.shape[0])


@functools.lru_cache(maxsize=4096)
def _factorise(key: tuple[float, ...]) -> tuple[np.ndarray, ...] | None:
    """CrystFEL's ``solve_svd`` up to the right-hand side, for one 3x3 normal matrix
    (row-major ``key``, positive diagonal): the rescaling S (diagonal, ``pow(M_ii, -0.5)``),
    ``SAS = S (M S)`` by two ``gsl_blas_dgemm``, NaN entries set to 0,
    ``gsl_linalg_SV_decomp`` into U, V and the singular values, of which those below the
    largest / 1e6 are set to 0.  Returns (S, U, V, sigma) or None if the decomposition
    fails."""
    lib = _loaded()[0].lib
    m = np.array(key, dtype=np.float64).reshape(3, 3)
    s = np.zeros((3, 3))
    for i in range(3):
        s[i, i] = math.pow(m[i, i], -0.5)  # the C library's pow, as CrystFEL
    a_s, sas = np.zeros((3, 3)), np.zeros((3, 3))
    vm, vs, vas, vsas = (_matrix(lib, x) for x in (m, s, a_s, sas))
    lib.gsl_blas_dgemm(_CBLAS_NO_TRANS, _CBLAS_NO_TRANS, 1.0, vm, vs, 0.0, vas)
    lib.gsl_blas_dgemm(_CBLAS_NO_TRANS, _CBLAS_NO_TRANS, 1.0, vs, vas, 0.0, vsas)
    sas[np.isnan(sas)] = 0.0
    v, sigma, work = np.zeros((3, 3)), np.zeros(3), np.zeros(3)
    if lib.gsl_linalg_SV_decomp(vsas, _matrix(lib, v), _vector(lib, sigma), _vector(lib, work)):
        return None
    top = 0.0
    for value in sigma.tolist():
        top = value if value > top else top
    sigma[sigma < top / _MAX_CONDITION] = 0.0
    for x in (s, sas, v, sigma):
        x.setflags(write=False)
    return s, sas, v, sigma


def solve_svd(m: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve N 3x3 normal systems ``m x = rhs`` with GSL, as CrystFEL's ``solve_svd`` does
    (which requires :func:`gsl_library` to be loaded).

    Each distinct matrix is decomposed once (:func:`_factorise`, cached); per right-hand side
    ``SB = S v`` (``gsl_blas_dgemv``, NaN set to 0), ``gsl_linalg_SV_solve`` and ``x = S (S^-1
    x)`` (``gsl_blas_dgemv``).

    Parameters
    ----------
    m : np.ndarray
        float64 (N, 3, 3) normal matrices.
    rhs : np.ndarray
        float64 (N, 3) right-hand sides.

    Returns
    -------
    np.ndarray
        float64 (N, 3) solutions; NaN where a diagonal element of ``m`` is not positive or
        ``m`` is not finite (no background pixel), or GSL reports an error.
    """
    lib = _loaded()[0].lib
    n = len(m)
    out = np.full((n, 3), np.nan)
    flat = np.ascontiguousarray(m, dtype=np.float64).reshape(n, 9)
    good = (flat[:, [0, 4, 8]] > 0).all(axis=1) & np.isfinite(flat).all(axis=1)
    if not good.any():
        return out
    rows = np.flatnonzero(good)
    keys, inverse = np.unique(flat[rows], axis=0, return_inverse=True)
    inverse = inverse.ravel()
    b, sb, y, x = (np.zeros(3) for _ in range(4))
    vb, vsb, vy, vx = (_vector(lib, a) for a in (b, sb, y, x))
    for k, key in enumerate(keys):
        factors = _factorise(tuple(key.tolist()))
        if factors is None:
            continue
        vs, vu, vv, vsigma = (_matrix(lib, a) if a.ndim == 2 else _vector(lib, a)
                              for a in factors)  # fmt: skip
        for r in rows[inverse == k].tolist():
            b[:] = rhs[r]
            lib.gsl_blas_dgemv(_CBLAS_NO_TRANS, 1.0, vs, vb, 0.0, vsb)
            sb[np.isnan(sb)] = 0.0
            if lib.gsl_linalg_SV_solve(vu, vv, vsigma, vsb, vy):
                continue
            lib.gsl_blas_dgemv(_CBLAS_NO_TRANS, 1.0, vs, vy, 0.0, vx)
            out[r] = x
    return out
