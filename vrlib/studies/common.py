"""Parameter pieces every study shares, and the one pipeline that turns them into features.

Why: each study needs the same three things — a dataset, an image-text encoder, and cached frame
features — and must resolve "the embedded world" and "its pretrained expert" the same way.
Parameter models reject unknown keys (``extra="forbid"``) so a typo fails before any work starts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EXPERT = "expert"
# Files that identify a dataset's content apart from its videos: world.json (generator version
# and parameters), splits and captions. Videos are not hashed (gigabytes); world.json pins them.
_ANNOTATION_SUFFIXES = (".json", ".jsonl", ".csv", ".txt")
# Weights fingerprint of every encoder load_encoder returned in this process, by its parameters.
_LOADED_FINGERPRINTS: dict[tuple[str, str | None, str, int], str] = {}


class Strict(BaseModel):
    """Base for parameter models: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(Strict):
    """Which dataset to read. ``root: null`` means the embedded synthetic world of ``world_preset``."""

    dataset: str = "synthetic"
    root: str | None = None
    world_preset: Literal["smoke", "default"] = "default"
    world_seed: int = 0
    on_error: Literal["raise", "skip"] = "skip"
    video_dir: str | None = None

    def resolve_root(self) -> Path:
        """The dataset folder; builds the embedded world first if it is the one asked for and missing."""
        if self.root is not None:
            return Path(self.root).expanduser()
        from vrlib.data.synthetic import ensure_world
        from vrlib.paths import world_dir

        return ensure_world(
            world_dir(self.world_preset, self.world_seed),
            preset=self.world_preset,
            seed=self.world_seed,
        )


class EncoderParams(Strict):
    """Which image-text model. ``pretrained: expert`` = vrlib-tiny pretrained on the world's images."""

    model: str = "vrlib-tiny"
    pretrained: str | None = EXPERT
    device: str | None = None
    batch_size: int = Field(256, gt=0)


class SamplingParams(Strict):
    """Which frames to decode (see ``vrlib.data.sampling``)."""

    strategy: str = "uniform"
    n: int = Field(12, gt=0)
    at_seconds: float = 1.0
    target_fps: float = 1.0
    max_frames: int | None = None
    offset: float = 0.5

    def config(self, size: int | None = None):
        from vrlib.data.sampling import SamplingConfig

        return SamplingConfig(
            strategy=self.strategy,
            n=self.n,
            at_seconds=self.at_seconds,
            offset=self.offset,
            target_fps=self.target_fps,
            max_frames=self.max_frames,
            size=size,
        )


class FeatureStudyParams(Strict):
    """What every study on cached frame features shares: seed, data, encoder, frames, cache."""

    seed: int = 0
    data: DataParams = DataParams()
    encoder: EncoderParams = EncoderParams()
    sampling: SamplingParams = SamplingParams(strategy="fps", target_fps=5.0, max_frames=64)
    cache_dir: str | None = None


def load_encoder(enc: EncoderParams, data: DataParams):
    """Load the encoder; ``pretrained: expert`` trains the world's expert first if it is missing."""
    from vrlib.encoders import load_clip

    pretrained = enc.pretrained
    if pretrained == EXPERT:
        if data.root is not None:
            raise ValueError(
                "encoder.pretrained: 'expert' is the embedded world's vrlib-tiny and needs data.root: null; "
                "for real data give an open_clip tag (e.g. openai) or a local checkpoint path"
            )
        from vrlib.pretrain import ensure_expert

        pretrained = str(ensure_expert(data.world_preset, data.world_seed))
    encoder = load_clip(enc.model, pretrained=pretrained, device=enc.device)
    # Taken now, before a study may fine-tune the weights in place: metrics.json names the inputs.
    _LOADED_FINGERPRINTS[_encoder_key(enc, data)] = encoder.fingerprint
    return encoder


def _encoder_key(enc: EncoderParams, data: DataParams) -> tuple[str, str | None, str, int]:
    return (enc.model, enc.pretrained, data.world_preset, data.world_seed)


def data_fingerprint(root: Path) -> str:
    """SHA-256 of the dataset's annotation files (names and bytes), up to two folders deep.

    Why: two machines that report different numbers must be able to tell differing inputs from
    differing arithmetic. For the embedded world this covers ``world.json`` (generator and
    parameters), ``splits.json`` and the caption files.
    """
    h = hashlib.sha256()
    files = sorted(
        p
        for p in root.rglob("*")
        if p.suffix in _ANNOTATION_SUFFIXES and len(p.relative_to(root).parts) <= 3 and p.is_file()
    )
    for path in files:
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def study_inputs(params: Any) -> dict[str, Any]:
    """What identifies a study's inputs, for metrics.json: data and encoder weights fingerprints.

    Studies without ``data``/``encoder`` parameters get an empty dict. The encoder fingerprint is
    the one :func:`load_encoder` took when it loaded the weights in this process (None if the
    study loaded none); the data fingerprint is :func:`data_fingerprint` of the dataset root.
    """
    data, enc = getattr(params, "data", None), getattr(params, "encoder", None)
    if not isinstance(data, DataParams) or not isinstance(enc, EncoderParams):
        return {}
    from vrlib.paths import world_dir

    # Not resolve_root(): recording what was used must never build a world.
    root = (
        Path(data.root).expanduser() if data.root else world_dir(data.world_preset, data.world_seed)
    )
    return {
        "data_root": str(root)
        if data.root is not None
        else f"world {data.world_preset} seed {data.world_seed}",
        "data_sha256": data_fingerprint(root) if root.is_dir() else None,
        "encoder": enc.model,
        "encoder_pretrained": enc.pretrained,
        "encoder_fingerprint": _LOADED_FINGERPRINTS.get(_encoder_key(enc, data)),
    }


@dataclass
class Prepared:
    """What a study works on: the dataset of one split, its frame features and caption features."""

    dataset: object
    features: object
    text: object
    caption_to_video: object


def prepare_split(
    data: DataParams,
    split: str,
    encoder,
    sampling: SamplingParams,
    *,
    batch_size: int = 256,
    cache_dir: str | None = None,
    seed: int = 0,
) -> Prepared:
    """Dataset of ``split`` -> cached frame features and caption features, aligned by video order.

    Videos that could not be decoded (``on_error: skip``) are dropped from the dataset together with
    their captions, and listed in ``dataset.skipped`` for the report.
    """
    from vrlib.data.datasets import load_dataset
    from vrlib.features import extract_frame_features, extract_text_features
    from vrlib.paths import feature_cache_dir

    kw = {"video_dir": data.video_dir} if data.video_dir else {}
    ds = load_dataset(data.dataset, data.resolve_root(), split, on_error=data.on_error, **kw)
    cache = Path(cache_dir) if cache_dir else feature_cache_dir()
    feats = extract_frame_features(
        ds,
        encoder,
        sampling.config(),
        cache_dir=cache,
        batch_size=batch_size,
        on_error=data.on_error,
        seed=seed,
    )
    ds = ds.drop_videos(feats.skipped) if feats.skipped else ds
    text = extract_text_features([c.text for c in ds.captions], encoder, cache_dir=cache)
    return Prepared(dataset=ds, features=feats, text=text, caption_to_video=ds.caption_to_video)
