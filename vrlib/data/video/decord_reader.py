"""The decord backend (package ``decord2``): fast random access, tried first.

Why apart: decord's native code writes its own log lines straight to file descriptor 2; the
redirection that keeps them out of notebooks and progress bars belongs with the reader that
needs it.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator

import numpy as np

from vrlib.data.video.pyav_reader import PyAVReader, header_facts
from vrlib.data.video.reader import (
    BACKENDS,
    DECODE_THREADS,
    VideoDecodeError,
    VideoInfo,
    VideoReader,
    preview_indices,
    short_message,
)

_NATIVE_LOG_LINE = re.compile(rb"^\[\d\d:\d\d:\d\d\] \S+\.(?:cc|h|cpp):\d+: ")
_stderr_lock = threading.Lock()


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Drop decord's C++ log lines (e.g. ``ERROR opening: ...``) written straight to fd 2.

    The reason is already in the :class:`VideoDecodeError` we raise, so the line is noise in a
    notebook or a progress bar. fd 2 is redirected to a temporary file for the duration of the
    call and everything that is *not* a decord log line is written back afterwards, so output
    of other threads is delayed, never lost. A lock keeps two redirections from nesting.
    """
    with _stderr_lock:
        try:
            saved = os.dup(2)
        except OSError:  # no usable fd 2: nothing to silence
            yield
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                kept = [ln for ln in sink.read().splitlines(True) if not _NATIVE_LOG_LINE.match(ln)]
                if kept:
                    os.write(2, b"".join(kept))


@BACKENDS.register("decord")
class DecordReader(VideoReader):
    """decord (package ``decord2``): builds a frame index at open and seeks accurately by itself."""

    name = "decord"
    module = "decord"
    priority = 0
    _configured = False

    def __init__(self, path: str) -> None:
        super().__init__(path)
        import decord

        self._decord = decord
        if not DecordReader._configured:  # FFmpeg's own log (decord's copy of it) off for good
            decord.logging.set_level(decord.logging.QUIET)
            DecordReader._configured = True
        try:
            with _quiet_native_stderr():
                self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=DECODE_THREADS)
        except (decord.DECORDError, RuntimeError, AssertionError) as e:
            raise VideoDecodeError(path, f"cannot open with decord ({short_message(e)})") from e
        self.num_frames = len(self._vr)
        self._shape: tuple[int, int] | None = None

    def info(self) -> VideoInfo:
        claimed, width, height = header_facts(self.path) if PyAVReader.available() else (0, 0, 0)
        if self._shape is None:  # decord has no size query: the header's, else decode frame 0
            self._shape = (
                (height, width)
                if width and height
                else self.read(np.zeros(1, dtype=np.int64)).shape[1:3]
            )
        height, width = self._shape
        fps = float(self._vr.get_avg_fps())
        duration = self.num_frames / fps if fps > 0 else 0.0
        return VideoInfo(
            self.path, self.num_frames, fps, duration, int(width), int(height), claimed
        )

    def read(self, indices: np.ndarray) -> np.ndarray:
        try:
            frames = self._vr.get_batch(indices.tolist()).asnumpy()
        except (self._decord.DECORDError, RuntimeError, IndexError) as e:
            raise VideoDecodeError(
                self.path,
                f"decoding frames {preview_indices(indices)} failed with decord ({short_message(e)}); "
                f"the file may be truncated or damaged",
            ) from e
        if frames.shape[0] != len(indices):
            raise VideoDecodeError(
                self.path, f"decord returned {frames.shape[0]} of {len(indices)} frames"
            )
        return frames

    def close(self) -> None:
        self._vr = None
