"""Search your own videos: a folder of video files -> a saved, updatable, searchable index.

``VideoIndex`` joins the pieces every study already uses: files are decoded and encoded through the
feature cache (:func:`vrlib.features.extract_frame_features`: resumable, bad files listed with the
reason, never dropped silently), frame embeddings are aggregated (:func:`vrlib.aggregate.aggregate`,
``mean`` by default, any registered method), and queries are ranked by cosine similarity
(:mod:`vrlib.index.search`: exact by default, faiss IVF above :data:`ANN_THRESHOLD` vectors or
when asked). The command line (``python -m vrlib index`` / ``search``) and the query browser use
this same object.

Choices where a user of this field expects something specific:

* Video ids are paths relative to the indexed folder (``clips/a.mp4``), so two files with the
  same name in different sub-folders stay apart, and the index survives moving the folder.
* A file is "changed" when its size or modification time changed (what ``rsync`` and the
  feature cache use); ``update`` encodes only new and changed files and drops deleted ones.
  Files that could not be decoded are tried again on every update (a fixed file then appears).
* Frame features are kept by default (float16, about ``T x d x 2`` bytes a video), so a result
  can say *when* in the video it matches best; ``keep_frames=False`` saves that space.
* A query of type ``str`` is a text; a ``pathlib.Path`` is a video (video -> video search,
  embedded exactly as the indexed videos were). A score is a cosine similarity; under a
  multi-embedding aggregation such as k-means, a video scores by its best embedding, and a query
  video, which then has ``k`` embeddings too, by the mean of each one's best match (see
  :meth:`VideoIndex.search`). A query video that is in the index so scores 1 and comes first.
  (Reducing the query to the mean of its centroids, as before, let another video outscore it.)
* An index remembers the fingerprint of the encoder that built it (model, config, weights,
  precision); any other encoder is refused, since its embeddings live in another space.

Storage layout (see :mod:`vrlib.index.store`)::

    manifest.json        model, weights fingerprint, sampling, aggregation, dates, skipped files,
                         SHA-256 of every other file (checked on load)
    embeddings.npy       (N, d) or (N, k, d), float16 (default) or float32, row i = ids row i
    ids.parquet          row, video_id, path, size, mtime_ns   (or ids.jsonl)
    frames.npy, frame_times.npy, frame_offsets.npy   kept frame features (optional)
    ann.faiss            the IVF index when one was built

Length: a little over 400 lines, because ``VideoIndex`` is one class whose build, update, search
and save share the same rows, manifest and frame store; files, search and queries already live
in their own modules.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from vrlib.index.queries import embed_queries, embed_query_sets, one_embedding
from vrlib.index.search import (
    ANN_THRESHOLD,
    AnnIndex,
    AnnParams,
    exact_scores,
    exact_topk,
    tune_nprobe,
    tuning_set,
)
from vrlib.index.store import (
    FrameStore,
    IndexMismatchError,
    list_videos,
    new_manifest,
    read_index,
    stamp,
    write_index,
)


def default_sampling():
    """1 frame per second, at most 32 evenly spread frames: whole-video coverage at a bounded cost."""
    from vrlib.data.sampling import SamplingConfig

    return SamplingConfig(strategy="fps", target_fps=1.0, max_frames=32)


@dataclass(frozen=True)
class SearchHit:
    """One ranked video. ``time`` is the best-matching moment in seconds (None without frames)."""

    rank: int
    row: int
    video_id: str
    path: str
    score: float
    time: float | None = None


class VideoIndex:
    """Embeddings of a folder of videos, their ids and paths, and how they were made.

    Build one with :meth:`build` (or :meth:`from_features` from features already extracted),
    keep it current with :meth:`update`, query it with :meth:`search`, persist it with
    :meth:`save` / :meth:`load`.

    Attributes:
        embeddings: ``(N, d)`` or ``(N, k, d)`` float32, L2-normalised.
        table: ``pandas.DataFrame`` with ``video_id, path, size, mtime_ns`` per row.
        manifest: dict (see the module docstring).
        frames: kept frame features (:class:`~vrlib.index.store.FrameStore`) or None.
        encoder: the encoder attached by ``build``/``load(encoder=...)``/``search(encoder=...)``.
    """

    def __init__(self, embeddings, table, manifest: dict, frames: FrameStore | None = None):
        if len(embeddings) != len(table):
            raise ValueError(f"{len(embeddings)} embeddings for {len(table)} ids")
        half = np.asarray(embeddings).dtype == np.float16  # searched as stored (search.py)
        self.embeddings = np.asarray(embeddings, dtype=np.float16 if half else np.float32)
        self.table = table.reset_index(drop=True)
        self.manifest = manifest
        self.frames = frames
        self.encoder = None
        self._ann: AnnIndex | None = None
        self._on_device = None  # a torch copy of the flat embeddings, see to()
        self._row_of = {v: i for i, v in enumerate(self.table["video_id"])}

    def __len__(self) -> int:
        return len(self.embeddings)

    def __repr__(self) -> str:
        m = self.manifest
        return f"VideoIndex({len(self)} videos, model={m.get('model')!r}, aggregation={m['aggregation']['method']!r})"

    @property
    def video_ids(self) -> list[str]:
        return self.table["video_id"].tolist()

    def row_of(self, video_id: str) -> int:
        """Row of ``video_id`` (KeyError names it)."""
        if video_id not in self._row_of:
            raise KeyError(f"video id {video_id!r} is not in this index")
        return self._row_of[video_id]

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        video_dir: str | os.PathLike,
        encoder,
        *,
        sampling=None,
        aggregation: str = "mean",
        aggregation_options: dict[str, Any] | None = None,
        keep_frames: bool = True,
        **extract: Any,
    ) -> VideoIndex:
        """Index every video under ``video_dir`` (recursively; extensions of ``VIDEO_EXTENSIONS``).

        Args:
            video_dir: the folder.
            encoder: a :class:`~vrlib.encoders.ClipEncoder`.
            sampling: a ``SamplingConfig`` (default :func:`default_sampling`).
            aggregation, aggregation_options: a registered aggregation and its options.
            keep_frames: keep frame features for best-matching times.
            **extract: passed to :meth:`update` (``cache_dir``, ``batch_size``, ``num_workers``,
                ``seed``, ``progress``); ``encode=False`` returns the empty index (to encode it
                in shards first, :mod:`vrlib.index.shards`).
        """
        from vrlib.aggregate import AGGREGATIONS

        AGGREGATIONS.get(aggregation)  # unknown names fail here, listing the valid ones
        manifest = new_manifest(
            encoder,
            Path(video_dir),
            sampling or default_sampling(),
            {"method": aggregation, "options": dict(aggregation_options or {})},
            keep_frames,
            seed=int(extract.get("seed", 0)),
        )
        index = cls.from_arrays(np.zeros((0, encoder.embed_dim), np.float32), [], [], manifest)
        index.frames = FrameStore.empty(encoder.embed_dim) if keep_frames else None
        if extract.pop("encode", True):
            index.update(encoder, **extract)
        return index.attach(encoder)

    @classmethod
    def from_arrays(
        cls,
        embeddings,
        video_ids: Sequence[str],
        paths: Sequence[str],
        manifest: dict | None = None,
    ) -> VideoIndex:
        """An index over given embeddings; ``manifest`` entries override the defaults.

        Without file sizes such an index cannot :meth:`update`; without an encoder fingerprint in
        ``manifest`` any encoder is accepted (the caller vouches for it).
        """
        import pandas as pd

        base = new_manifest(None, None, None, {"method": "given", "options": {}}, False, seed=0)
        table = pd.DataFrame(
            {
                "video_id": list(video_ids),
                "path": [str(p) for p in paths],
                "size": -1,
                "mtime_ns": -1,
            }
        )
        table = table.astype({"size": "int64", "mtime_ns": "int64"})
        return cls(embeddings, table, {**base, **(manifest or {}), "count": len(table)})

    @classmethod
    def from_features(
        cls,
        features,
        paths: Sequence[str],
        encoder,
        sampling,
        aggregation="mean",
        seed=0,
        **options,
    ) -> VideoIndex:
        """An index over :class:`~vrlib.features.FrameFeatures` already extracted (e.g. a dataset split).

        ``paths`` are the files of ``features.video_ids``, in that order; frames are kept.
        """
        from vrlib.aggregate import aggregate

        if len(paths) != len(features):
            raise ValueError(f"{len(paths)} paths for {len(features)} videos")
        agg = {"method": aggregation, "options": options}
        manifest = new_manifest(encoder, None, sampling, agg, True, seed=seed)
        emb = aggregate(features.features, aggregation, **options).cpu().numpy()
        index = cls.from_arrays(emb, features.video_ids, paths, manifest)
        index.frames = FrameStore.from_lists(features.features, features.timestamps)
        return index

    def update(
        self,
        encoder=None,
        *,
        cache_dir: str | os.PathLike | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int | None = None,
        progress: bool = True,
    ) -> dict[str, int]:
        """Re-read the folder: encode new and changed files, drop deleted ones, keep the rest.

        Returns:
            counts: ``added``, ``changed``, ``removed``, ``unchanged``, ``skipped`` (could not be
            decoded; listed with reasons in ``manifest["skipped"]``), ``encoded`` and ``cached``
            (of the files that needed embeddings, how many the feature cache already had).
        """
        from vrlib.aggregate import aggregate
        from vrlib.features import extract_frame_features
        from vrlib.paths import feature_cache_dir

        encoder = self._checked(encoder)
        files, unchanged, todo = self.pending()
        known = {r.video_id: (r.size, r.mtime_ns) for r in self.table.itertuples()}
        feats = extract_frame_features(
            SimpleNamespace(videos=todo),
            encoder,
            self.sampling,
            cache_dir=feature_cache_dir() if cache_dir is None else cache_dir,
            batch_size=batch_size,
            num_workers=num_workers,
            on_error="skip",
            seed=self.manifest["seed"] if seed is None else seed,
            progress=progress,
            rank=0,
            world_size=1,  # an index holds every video: ranks share work via encode_share()
        )
        agg = self.manifest["aggregation"]
        new = (
            aggregate(feats.features, agg["method"], **agg["options"]).cpu().numpy()
            if len(feats)
            else None
        )
        self._merge(files, unchanged, feats, new)
        self.manifest["skipped"] = [
            {"video_id": v, "path": str(files[v].item.path), "reason": why}
            for v, why in feats.skipped
        ]
        stamp(self.manifest, len(self))
        self._ann = self._on_device = None  # both describe the old embeddings
        self.manifest.pop("ann", None)
        return {
            "added": sum(v not in known for v in feats.video_ids),
            "changed": sum(v in known for v in feats.video_ids),
            "removed": sum(v not in files for v in known),
            "unchanged": len(unchanged),
            "skipped": len(feats.skipped),
            "encoded": int(feats.stats.get("encoded", 0)),
            "cached": int(feats.stats.get("cached", 0)),
        }

    def pending(self) -> tuple[dict, list[str], list]:
        """``(files by id, ids unchanged since indexed, items to encode)`` of the folder now."""
        if not self.manifest.get("video_dir"):
            raise ValueError("this index was not built from a folder; nothing to update")
        files = list_videos(self.manifest["video_dir"])
        known = {r.video_id: (r.size, r.mtime_ns) for r in self.table.itertuples()}
        unchanged = [v for v, f in files.items() if known.get(v) == (f.size, f.mtime_ns)]
        todo = [f.item for v, f in files.items() if known.get(v) != (f.size, f.mtime_ns)]
        return files, unchanged, todo

    def _merge(self, files: dict, unchanged: list[str], feats, new: np.ndarray | None) -> None:
        """Rows of ``unchanged`` (old) and of ``feats`` (new), in video-id order."""
        import pandas as pd

        new_row = {v: i for i, v in enumerate(feats.video_ids)}
        order = sorted([*unchanged, *feats.video_ids])
        parts, frames = [], []
        for v in order:
            if v in new_row:
                parts.append(new[new_row[v]])
                frames.append((feats.features[new_row[v]].numpy(), feats.timestamps[new_row[v]]))
            else:
                parts.append(self.embeddings[self._row_of[v]])
                if self.frames is not None:
                    frames.append(self.frames.video(self._row_of[v]))
        d = self.embeddings.shape[1:]
        self.embeddings = (
            np.stack(parts).astype(np.float32) if parts else np.zeros((0, *d), np.float32)
        )
        self.table = pd.DataFrame(
            [
                {
                    "video_id": v,
                    "path": str(files[v].item.path),
                    "size": files[v].size,
                    "mtime_ns": files[v].mtime_ns,
                }
                for v in order
            ],
            columns=["video_id", "path", "size", "mtime_ns"],
        ).astype({"size": "int64", "mtime_ns": "int64"})
        if self.frames is not None:
            self.frames = FrameStore.from_lists(
                [f for f, _ in frames], [t for _, t in frames], d[-1]
            )
        self._row_of = {v: i for i, v in enumerate(order)}

    # -- encoders ---------------------------------------------------------------------------

    @property
    def sampling(self):
        from vrlib.data.sampling import SamplingConfig

        return SamplingConfig(**self.manifest["sampling"])

    def check_encoder(self, encoder) -> None:
        """Raise :class:`IndexMismatchError` unless ``encoder`` is the one that built the index."""
        want = self.manifest.get("encoder_fingerprint")
        got = getattr(encoder, "fingerprint", None)
        if want is not None and got != want:
            m = self.manifest
            raise IndexMismatchError(
                f"this index was built with model {m['model']!r} and weights {m['pretrained']!r} "
                f"(fingerprint {want[:12]}); the query encoder is {getattr(encoder, 'model_name', '?')!r} "
                f"with weights {getattr(encoder, 'source', '?')!r} (fingerprint {str(got)[:12]}). "
                "Embeddings of different models or weights are not comparable: query with the same "
                "model and weights, or rebuild the index with this encoder."
            )

    def attach(self, encoder) -> VideoIndex:
        """Check ``encoder`` against the manifest and keep it for queries; returns self."""
        self.check_encoder(encoder)
        self.encoder = encoder
        return self

    def _checked(self, encoder):
        if encoder is None:
            if self.encoder is None:
                raise ValueError("no encoder: pass encoder=... or load(path, encoder=...)")
            return self.encoder
        return self.attach(encoder).encoder

    # -- queries ----------------------------------------------------------------------------

    def embed_queries(self, queries, encoder=None) -> np.ndarray:
        """``(Q, d)`` float32 query embeddings: texts (``str``) or videos (``Path``), or given arrays."""
        if isinstance(queries, np.ndarray):  # (Q, d), or (Q, m, d) reduced as one_embedding does
            given = np.atleast_2d(queries).astype(np.float32)
            return np.stack([one_embedding(s) for s in given]) if given.ndim == 3 else given
        return embed_queries(
            queries, self._checked(encoder), self.manifest, self.embeddings.shape[-1]
        )

    def search(
        self, queries, k: int = 10, *, encoder=None, method: str = "auto"
    ) -> list[list[SearchHit]]:
        """Rank the videos for each query.

        Args:
            queries: a text, a video ``Path``, a list of them, or query embeddings ``(Q, d)``
                (or ``(Q, m, d)``: ``m`` embeddings a query, as a k-means video has).
            k: results per query.
            encoder: query encoder (default: the attached one); must match the manifest.
            method: ``"exact"`` (chunked matmul), ``"ann"`` (faiss IVF) or ``"auto"`` (ANN only
                above :data:`~vrlib.index.search.ANN_THRESHOLD` embedding rows).

        Returns:
            One list of :class:`SearchHit` per query, best first. A score is a cosine similarity:
            of a video's best embedding for a query of one embedding; for a query of ``m`` (a
            video under k-means), the mean over them of each one's best match (ColBERT's MaxSim
            averaged), computed exactly. A video so scores 1 against itself; only a video with
            the same set of embeddings ties it (under an order-blind aggregation, its reversed twin).
        """
        if method not in ("auto", "exact", "ann"):
            raise ValueError(f"unknown method {method!r}; valid: auto, exact, ann")
        sets = self._query_sets(queries, encoder)  # Q arrays (m_i, d): a k-means video has k
        hits: list[list[SearchHit]] = [[] for _ in sets]
        single = [i for i, s in enumerate(sets) if len(s) == 1]
        if single:
            q = np.concatenate([sets[i] for i in single])  # (Q1, d)
            flat = self.embeddings.reshape(-1, self.embeddings.shape[-1])  # (N*m, d)
            per_video = flat.shape[0] // max(1, len(self))
            want = min(k, len(self)) * per_video
            if method == "ann" or (method == "auto" and len(flat) > ANN_THRESHOLD):
                scores, rows = self.ann().search(q, want)
            else:
                on = flat if self._on_device is None else self._on_device
                scores, rows = exact_topk(q, on, want)
            for j, i in enumerate(single):
                hits[i] = self._hits(q[j], scores[j], rows[j] // per_video, k)
        for i, s in enumerate(sets):
            if len(s) > 1:  # each embedding scored as a text is, then averaged (exact)
                score = self.scores(s).mean(axis=0)  # (m, N) -> (N,)
                top = np.argsort(-score, kind="stable")[:k]
                hits[i] = self._hits(one_embedding(s), score[top], top, k)
        return hits

    def _query_sets(self, queries, encoder) -> list[np.ndarray]:
        if isinstance(queries, np.ndarray):  # (Q, d) embeddings, or (Q, m, d) sets of them
            given = queries.astype(np.float32)
            return list(given) if given.ndim == 3 else [row[None] for row in np.atleast_2d(given)]
        return embed_query_sets(
            queries, self._checked(encoder), self.manifest, self.embeddings.shape[-1]
        )

    def _hits(self, query: np.ndarray, scores, rows, k: int) -> list[SearchHit]:
        hits: list[SearchHit] = []
        seen: set[int] = set()
        for s, r in zip(scores.tolist(), rows.tolist(), strict=True):
            if (
                r < 0 or r in seen
            ):  # faiss pads with -1; several embeddings of one video: keep its best
                continue
            seen.add(r)
            when = self.frames.best_time(r, query) if self.frames is not None else None
            vid, path = self.table.at[r, "video_id"], self.table.at[r, "path"]
            hits.append(SearchHit(len(hits) + 1, r, vid, path, float(s), when))
            if len(hits) == k:
                break
        return hits

    def scores(self, query_embeddings: np.ndarray) -> np.ndarray:
        """Exact scores ``(Q, N)`` of embedded queries against every video (best of k embeddings)."""
        n, rest = len(self), self.embeddings.shape[1:]
        s = exact_scores(query_embeddings, self.embeddings.reshape(-1, rest[-1]))
        return s.reshape(len(s), n, -1).max(axis=2) if len(rest) == 2 else s  # (Q, N)

    def to(self, device) -> VideoIndex:
        """Keep a copy of the embeddings on ``device`` (e.g. ``"cuda"``): exact search runs there."""
        import torch

        flat = self.embeddings.reshape(-1, self.embeddings.shape[-1])
        self._on_device = torch.from_numpy(flat).to(device)
        return self

    def ann(self, params: AnnParams | None = None) -> AnnIndex:
        """The faiss IVF index over the embeddings, built on first use (or with new ``params``).

        Without ``params.nprobe``, ``nprobe`` is tuned for ``params.target_recall`` (recall@10,
        0.95 by default) on ``params.tune_queries`` rows of the index, each left out of its own
        results (:func:`~vrlib.index.search.tuning_set`); the choice and the recall it reached are
        recorded in ``manifest["ann"]`` and saved with the index. Text queries sit apart from video
        embeddings in CLIP space (the modality gap), so their recall can differ: measure it with
        :func:`~vrlib.index.search.tune_nprobe` on your own queries where it matters.
        """
        if self._ann is None or params is not None:
            params = params or AnnParams(seed=self.manifest["seed"])
            flat = self.embeddings.reshape(-1, self.embeddings.shape[-1])  # (N*m, d)
            ann = AnnIndex.build(flat, params)
            if params.nprobe is None:
                q, truth, own = tuning_set(flat, params.tune_queries, seed=params.seed)
                tuned = tune_nprobe(ann, q, truth, params.target_recall, exclude=own)
                info = tuned.manifest()
            else:
                info = {"nprobe": ann.nprobe, "target_recall": None}
            self.manifest["ann"] = {"kind": ann.kind, "nlist": int(ann.index.nlist), **info}
            self._ann = ann
        return self._ann

    # -- persistence ------------------------------------------------------------------------

    def save(
        self, path: str | os.PathLike, dtype: str = "float16", table_format: str = "parquet"
    ) -> Path:
        """Write the index folder: built beside it, then swapped in whole; returns the folder.

        An interrupted save (full disk, kill) leaves the previous index loadable; see
        :func:`~vrlib.index.store.write_index`. ``dtype``: float16 by default (half the bytes an
        exact search reads, scores within about 1e-3 of float32); ``"float32"`` keeps full
        precision.
        """
        return write_index(self, Path(path).expanduser(), dtype, table_format)

    @classmethod
    def load(cls, path: str | os.PathLike, encoder=None, repair: bool = False) -> VideoIndex:
        """Read an index folder, every file checked against its checksum; with ``encoder`` it is
        checked and attached.

        Raises:
            IndexCorruptError: a damaged file, named. With ``repair`` its rows come back marked
                changed instead, so that :meth:`update` encodes them again (what ``vrlib index``
                does on a damaged index).
        """
        embeddings, table, manifest, frames, ann = read_index(
            Path(path).expanduser(), repair=repair
        )
        index = cls(embeddings, table, manifest, frames)
        if ann is not None:
            ann.nprobe = manifest.get("ann", {}).get("nprobe") or ann.nprobe  # the tuned value
            if ann.kind == "pq":  # rescore its candidates from the stored vectors
                ann.vectors = embeddings.reshape(-1, embeddings.shape[-1])
            index._ann = ann
        return index.attach(encoder) if encoder is not None else index
