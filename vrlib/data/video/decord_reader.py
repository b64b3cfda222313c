"""The decord backend (package ``decord2``): fast random access, tried first.

Why apart: decord's native code writes its own log lines straight to file descriptor 2; the
redirection that keeps them out of notebooks and progress bars belongs with the reader that
needs it.

Long files
    decord (decord2 3.4) seeks by decoding forward from a keyframe; while its decoder thread
    lags, every empty poll queues one more packet, and after :data:`DECORD_SKIP_LIMIT` empty
    polls it gives up ("Failed to skip frames effectively") and returns the frame it had reached:
    on a generated 15,000-frame 256x256 H.264 file (a 10-minute 25 fps video), 7-9 of 32 evenly
    sampled frames came back 91-186 frames early, and the packets queued ahead raised peak memory
    by 152 MB, about the size of the file (PyAV: 20 MB; the campaign saw 2.06 GB on a larger one). It
    can only happen with more than that many packets left to queue, so a file longer than
    :data:`DECORD_SKIP_LIMIT` frames is read with PyAV when no backend is forced
    (``max_frames``); on any shorter file, the give-up line is still caught on fd 2 and the batch
    raises :class:`VideoDecodeError`, which :func:`~vrlib.data.video.read_frames` answers by
    reading it with PyAV. decord's Python API gives no timestamps of the frames it returns
    (``get_frame_timestamp`` looks up the ones asked for), so its own log line is the only sign.
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

#: decord gives up a seek after this many empty polls of its decoder (``MAX_POP_RETRIES_PER_FRAME``
#: in decord2's ``video_reader.cc``); files with more frames than this are read with PyAV.
DECORD_SKIP_LIMIT = 10_000
_SKIP_GAVE_UP = b"Failed to skip frames effectively"


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[list[bytes]]:
    """Drop decord's C++ log lines (e.g. ``ERROR opening: ...``) written straight to fd 2.

    The reason is already in the :class:`VideoDecodeError` we raise, so the line is noise in a
    notebook or a progress bar. fd 2 is redirected to a temporary file for the duration of the
    call and everything that is *not* a decord log line is written back afterwards, so output
    of other threads is delayed, never lost. A lock keeps two redirections from nesting. The
    list yielded receives the dropped lines when the block ends (the reader looks for
    :data:`_SKIP_GAVE_UP` in them).
    """
    dropped: list[bytes] = []
    with _stderr_lock:
        try:
            saved = os.dup(2)
        except OSError:  # no usable fd 2: nothing to silence
            yield dropped
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield dropped
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                kept = []
                for line in sink.read().splitlines(True):
                    (dropped if _NATIVE_LOG_LINE.match(line) else kept).append(line)
                if kept:
                    os.write(2, b"".join(kept))


@BACKENDS.register("decord")
class DecordReader(VideoReader):
    """decord (package ``decord2``): builds a frame index at open and seeks accurately by itself."""

    name = "decord"
    module = "decord"
    priority = 0
    max_frames = DECORD_SKIP_LIMIT
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
            with _quiet_native_stderr() as native_log:
                frames = self._vr.get_batch(indices.tolist()).asnumpy()
        except (self._decord.DECORDError, RuntimeError, IndexError) as e:
            raise VideoDecodeError(
                self.path,
                f"decoding frames {preview_indices(indices)} failed with decord ({short_message(e)}); "
                f"the file may be truncated or damaged",
            ) from e
        if gave_up := [line for line in native_log if _SKIP_GAVE_UP in line]:
            raise VideoDecodeError(
                self.path,
                f"decord returned wrong frames for {preview_indices(indices)}: a seek gave up "
                f"({short_message(gave_up[0].decode(errors='replace'))}) and returns earlier frames",
            )
        if frames.shape[0] != len(indices):
            raise VideoDecodeError(
                self.path, f"decord returned {frames.shape[0]} of {len(indices)} frames"
            )
        return frames

    def close(self) -> None:
        self._vr = None
