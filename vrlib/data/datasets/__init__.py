"""Text-video retrieval datasets: one small reader per dataset, looked up by name in ``DATASETS``.

Why: every study runs the same pipeline on the embedded synthetic world and on real benchmarks,
so a dataset is reduced to plain data — a list of videos (id, path, optional segment), a list of
captions (video id, text, tags) and the caption -> video index the metrics need. Readers return
paths and captions, never frames (decoding lives in ``vrlib.data.video``).

Readers understand the files in the layouts their maintainers distribute and that CLIP4Clip,
CLIP2Video and Frozen in Time use, so someone who has MSR-VTT on disk can point ``root`` at it:

============  =====================  ===========================================================
name          splits                 files under ``root``
============  =====================  ===========================================================
synthetic     train, val, test       annotations/videos.jsonl, annotations/captions.jsonl,
                                     splits.json (written by ``vrlib.data.synthetic``)
folder        all (+ split column)   captions.csv / captions.jsonl (or ``annotations=``)
msrvtt        1k-A, full, 9k, 7k     MSRVTT_JSFUSION_test.csv, MSRVTT_data.json,
                                     MSRVTT_train.9k.csv, MSRVTT_train.7k.csv; videos/all/<id>.mp4
msvd          train, val, test       raw-captions.pkl, <split>_list.txt; videos/<id>.avi
lsmdc         train, val, test       LSMDC16_annos_training.csv, LSMDC16_annos_val.csv,
                                     LSMDC16_challenge_1000_publictect.csv; avi/<movie>/<clip>.avi
vatex         train, val             vatex_training_v1.0.json, vatex_validation_v1.0.json;
                                     videos/<videoID>.mp4
didemo        train, val, test       <split>_data.json; videos/<video>
activitynet   train, val1, val2      train.json, val_1.json, val_2.json; videos/v_<id>.mp4
youcook2      train, val             youcookii_annotations_trainval.json;
                                     raw_videos/<subset>/<recipe>/<id>.mp4 (or videos/<id>.mp4)
============  =====================  ===========================================================

Every reader also takes ``video_dir=`` (absolute, or relative to ``root``) for videos kept
elsewhere. Adding a dataset is one module here with one function decorated with
``@DATASETS.register(name)`` that returns ``(videos, captions)``, imported below so that it
registers when this package is imported; ``load_dataset`` does the rest (video checks,
skipping, indexing).

Place in the data flow: after :mod:`vrlib.data.synthetic` (which writes the ``synthetic``
world) and before :mod:`vrlib.features`, which decodes the videos of a
:class:`RetrievalDataset` with :mod:`vrlib.data.video` and embeds its captions.

Modules: :mod:`.base` (:class:`RetrievalDataset`, :class:`VideoItem`, :class:`CaptionItem`,
the errors, :data:`DATASETS`, :func:`load_dataset`), :mod:`.annotations` (row readers and
checks every reader shares), and one module per dataset family (:mod:`.synthetic`,
:mod:`.folder`, :mod:`.msrvtt`, :mod:`.msvd`, :mod:`.lsmdc`, :mod:`.vatex`, :mod:`.didemo`, :mod:`.activitynet`, :mod:`.youcook2`).
This package exports the public names of all of them.
"""

from vrlib.data.datasets.activitynet import read_activitynet
from vrlib.data.datasets.annotations import VIDEO_EXTENSIONS
from vrlib.data.datasets.base import (
    DATASETS,
    CaptionItem,
    DatasetError,
    Items,
    MissingAnnotationError,
    MissingVideoError,
    Reader,
    RetrievalDataset,
    VideoItem,
    dataset_splits,
    load_dataset,
    with_splits,
)
from vrlib.data.datasets.didemo import read_didemo
from vrlib.data.datasets.folder import read_folder
from vrlib.data.datasets.lsmdc import read_lsmdc
from vrlib.data.datasets.msrvtt import read_msrvtt
from vrlib.data.datasets.msvd import read_msvd
from vrlib.data.datasets.synthetic import SYNTHETIC_SPLITS, load_image_captions, read_synthetic
from vrlib.data.datasets.vatex import read_vatex
from vrlib.data.datasets.youcook2 import read_youcook2

__all__ = [
    "DATASETS",
    "SYNTHETIC_SPLITS",
    "VIDEO_EXTENSIONS",
    "CaptionItem",
    "DatasetError",
    "Items",
    "MissingAnnotationError",
    "MissingVideoError",
    "Reader",
    "RetrievalDataset",
    "VideoItem",
    "dataset_splits",
    "load_dataset",
    "load_image_captions",
    "read_activitynet",
    "read_didemo",
    "read_folder",
    "read_lsmdc",
    "read_msrvtt",
    "read_msvd",
    "read_synthetic",
    "read_vatex",
    "read_youcook2",
    "with_splits",
]
