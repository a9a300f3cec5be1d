"""chunk -> frame -> predict -> integrate -> chunk, and the engines that run it over a stream.

:mod:`.config` (what a run is told), :mod:`.frame` (one frame: predict once, integrate),
:mod:`.step` (one chunk: the pure function every engine maps), :mod:`.engines` (in order, on
this process, a process pool or Dask), :mod:`.dask`, :mod:`.tuning` (malloc, pipes),
:mod:`.journal` (``--resume``) and :mod:`.run` (:func:`reintegrate`, the library entry point).
"""

from streamfilter.pipeline.config import DEFAULT_RADII, ReintegrateConfig, config_for
from streamfilter.pipeline.frame import FrameIntegrator, Integration, integrate_frame

__all__ = [
    "DEFAULT_RADII",
    "FrameIntegrator",
    "Integration",
    "ReintegrateConfig",
    "config_for",
    "integrate_frame",
]
