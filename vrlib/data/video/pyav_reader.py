"""The PyAV backend: frame-accurate access by seeking to a keyframe and decoding forward.

Why apart: the fallback when decord is missing or cannot open or decode a file; its packet
index and timestamp matching (see the package docstring, "What an index means") are the
longest part of decoding and read best on their own.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator

import numpy as np

from vrlib.data.video.reader import (
    BACKENDS,
    DECODE_THREADS,
    VideoDecodeError,
    VideoInfo,
    VideoReader,
    preview_indices,
    short_message,
)

log = logging.getLogger(__name__)


def header_facts(path: str) -> tuple[int, int, int]:
    """``(frames, width, height)`` as the container header states them (0 where it does not say
    or cannot be read).

    Why here: decord has no query for the header's frame count nor for the frame size (it would
    have to decode a frame); reading them with PyAV costs an open of the header (about 2 ms),
    no demuxing and no decoding.
    """
    import av

    try:
        with av.open(path) as container:
            streams = container.streams.video
            if not streams:
                return 0, 0, 0
            ctx = streams[0].codec_context
            return max(int(streams[0].frames or 0), 0), int(ctx.width or 0), int(ctx.height or 0)
    except (av.FFmpegError, OSError, ValueError):
        return 0, 0, 0


@BACKENDS.register("pyav")
class PyAVReader(VideoReader):
    """PyAV: frame-accurate access by seeking to a keyframe and decoding forward, matching pts."""

    name = "pyav"
    module = "av"
    priority = 1

    def __init__(self, path: str) -> None:
        super().__init__(path)
        import av

        self._av = av
        try:
            self._container = av.open(path)
        except (av.FFmpegError, OSError, ValueError) as e:
            raise VideoDecodeError(path, f"cannot open with pyav ({short_message(e)})") from e
        try:
            if not self._container.streams.video:
                raise VideoDecodeError(path, "no video stream in the file")
            self._stream = self._container.streams.video[0]
            self._stream.codec_context.thread_count = DECODE_THREADS
            self._index_packets()
        except BaseException:
            self._container.close()
            raise
        if self.num_frames == 0:
            self._container.close()
            claimed = self._stream.frames
            raise VideoDecodeError(path, f"video stream has no frames (header claims {claimed})")

    def _index_packets(self) -> None:
        """Demux once (no decoding): presentation timestamps and keyframe timestamps."""
        pts, keys, count, missing_pts = [], [], 0, False
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0 or packet.is_discard:  # flush packet / edit-list discard
                    continue
                count += 1
                if packet.pts is None:
                    missing_pts = True
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
        except self._av.FFmpegError as e:  # damaged tail: keep the packets read so far
            log.debug("%s: demuxing stopped early: %s", self.path, e)
        pts.sort()
        keys.sort()
        self.num_frames = count
        # Timestamps must name frames uniquely; otherwise fall back to decoding sequentially.
        self._sequential = missing_pts or len(set(pts)) != len(pts)
        self._pts = [] if self._sequential else pts
        self._keys = keys or pts[:1]

    def info(self) -> VideoInfo:
        s = self._stream
        rate = s.average_rate or s.guessed_rate or s.base_rate
        fps = float(rate) if rate else 0.0
        duration = self.num_frames / fps if fps > 0 else 0.0
        cc = s.codec_context
        return VideoInfo(
            self.path,
            self.num_frames,
            fps,
            duration,
            int(cc.width),
            int(cc.height),
            claimed_frames=max(int(s.frames or 0), 0),
        )

    def read(self, indices: np.ndarray) -> np.ndarray:
        if self._sequential:
            frames = self._read_sequential(indices)
        else:
            frames = self._read_by_pts(indices)
        return np.stack(frames)  # (U, H, W, 3)

    def _decode_from(self, key_pts: int | None) -> Iterator:
        """Frames in presentation order after seeking to the keyframe at ``key_pts`` (None: reopen)."""
        if key_pts is None:
            self._container.close()
            self._container = self._av.open(self.path)
            self._stream = self._container.streams.video[0]
            self._stream.codec_context.thread_count = DECODE_THREADS
        else:
            try:
                self._container.seek(key_pts, backward=True, any_frame=False, stream=self._stream)
            except self._av.FFmpegError as e:
                raise VideoDecodeError(
                    self.path, f"seeking failed with pyav ({short_message(e)})"
                ) from e
        return self._container.decode(self._stream)

    def _next_frame(self, frames: Iterator, indices: np.ndarray, got: int):
        """Next decoded frame, or None at the end of the stream; decode errors name the frames."""
        try:
            return next(frames, None)
        except self._av.FFmpegError as e:
            missing = indices[got:]
            raise VideoDecodeError(
                self.path,
                f"frames {preview_indices(missing)} do not decode with pyav ({short_message(e)}); "
                f"the file may be truncated or damaged",
            ) from e

    def _read_by_pts(self, indices: np.ndarray) -> list[np.ndarray]:
        targets = [self._pts[i] for i in indices.tolist()]
        out: list[np.ndarray] = []
        frames: Iterator | None = None
        seeked_to: int | None = None
        last: int | None = None
        budget = 2 * len(self._pts) + 16  # decoded frames; guards against a decoder that loops
        while len(out) < len(targets):
            want = targets[len(out)]
            key = self._keys[max(bisect.bisect_right(self._keys, want) - 1, 0)]
            # Seek when nothing is open, or a keyframe lies between where we are and the target.
            if frames is None or (key != seeked_to and (last is None or key > last)):
                frames, seeked_to, last = self._decode_from(key), key, None
            frame = self._next_frame(frames, indices, len(out))
            budget -= 1
            if frame is None or budget < 0:
                break
            if frame.pts is None:
                raise VideoDecodeError(self.path, "pyav decoded a frame without a timestamp")
            last = frame.pts
            if last == want:
                out.append(frame.to_ndarray(format="rgb24"))
            elif last > want:
                break  # the target was skipped: never substitute a neighbour
        if len(out) < len(targets):
            missing = indices[len(out) :]
            raise VideoDecodeError(
                self.path, f"frames {preview_indices(missing)} were not produced by the decoder"
            )
        return out

    def _read_sequential(self, indices: np.ndarray) -> list[np.ndarray]:
        wanted = set(indices.tolist())
        out: list[np.ndarray] = []
        frames = self._decode_from(None)
        for position in range(int(indices[-1]) + 1):
            frame = self._next_frame(frames, indices, len(out))
            if frame is None:
                break
            if position in wanted:
                out.append(frame.to_ndarray(format="rgb24"))
        if len(out) < len(indices):
            missing = indices[len(out) :]
            raise VideoDecodeError(
                self.path, f"frames {preview_indices(missing)} are past the last decodable frame"
            )
        return out

    def close(self) -> None:
        self._container.close()
