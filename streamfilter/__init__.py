"""streamfilter: re-integrate, rewrite and compare CrystFEL .stream files.

The library API mirrors the command line:

- :func:`read_stream` (chunks of a stream) and :class:`StreamWriter`;
- :func:`reintegrate` (``streamfilter reintegrate``);
- :func:`merge_streams` (``streamfilter merge``) and :func:`compare_streams`
  (``streamfilter compare``);
- :func:`stream_info` (``streamfilter info``) and :func:`cat_streams` (``streamfilter cat``).

The heavier entry points are imported on first use, so ``import streamfilter`` stays light.
"""

__version__ = "0.1.0"

import importlib  # noqa: E402

from .errors import StreamfilterError, StreamFormatError  # noqa: E402
from .stream import StreamWriter, read_stream  # noqa: E402

# name -> module that defines it (imported when the name is first used)
_LAZY = {
    "reintegrate": "streamfilter.pipeline.run",
    "merge_streams": "streamfilter.analysis.merge",
    "compare_streams": "streamfilter.analysis.compare",
    "stream_info": "streamfilter.stream.info",
    "cat_streams": "streamfilter.stream.cat",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'streamfilter' has no attribute {name!r}")


__all__ = ["__version__", "read_stream", "StreamWriter", "StreamfilterError",
           "StreamFormatError", *_LAZY]
