"""streamfilter: re-integrate, rewrite and compare CrystFEL .stream files.

The library API mirrors the command line: :func:`read_stream` / :class:`StreamWriter` for
streams, :func:`stream_info`, :func:`cat_streams`, and (when present) ``reintegrate``,
``merge`` and ``compare``.
"""

__version__ = "0.1.0"

from .errors import StreamfilterError, StreamFormatError  # noqa: E402
from .stream import StreamWriter, read_stream  # noqa: E402


def __getattr__(name: str):
    # Heavier entry points are imported on first use so `import streamfilter` stays light.
    if name == "stream_info":
        from .stream.info import stream_info

        return stream_info
    if name == "cat_streams":
        from .stream.cat import cat_streams

        return cat_streams
    raise AttributeError(name)


__all__ = ["__version__", "read_stream", "StreamWriter", "StreamfilterError",
           "StreamFormatError", "stream_info", "cat_streams"]
