"""Parameter pieces every study shares, and the one pipeline that turns them into features.

Why: each study needs the same three things — a dataset, an image-text encoder, and cached frame
features — and must resolve "the embedded world" and "its pretrained expert" the same way.
Parameter models reject unknown keys (``extra="forbid"``) so a typo fails before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

EXPERT = "expert"


class Strict(BaseModel):
    """Base for parameter models: unknown keys are errors, values are immutable, and a YAML
    ``true``/``false`` is refused where a number is meant (pydantic would read ``seed: true`` as 1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _takes_numbers_not_bools(field.annotation):
            items = value if isinstance(value, list | tuple) else [value]
            if any(isinstance(v, bool) for v in items):
                raise ValueError(f"expected a number, got {str(value).lower()} (a YAML boolean)")
        return value


def _takes_numbers_not_bools(annotation: Any) -> bool:
    """``int``, ``float``, ``int | None``, ``list[int]``...: numbers, and no ``bool`` or ``Any``."""
    seen: set[Any] = set()

    def walk(t: Any) -> None:
        seen.add(t)
        for arg in get_args(t):
            walk(arg)

    walk(annotation)
    return bool(seen & {int, float}) and not seen & {bool, Any}


# World knobs a study may override. These change videos only, so the preset world's expert and
# captioners (trained on its stills) stay valid for the variant ...
VIDEO_ONLY_KNOBS = ("video_shift", "bad_frame_share", "video_concept_holdout")
# ... and these change the stills, so the variant gets an expert of its own (trained with the
# preset's recipe on its stills); studies with captioners refuse them (their captioners are the
# preset's).
STILLS_KNOBS = ("motion_image_share",)


class DataParams(Strict):
    """Which dataset to read. ``root: null`` means the embedded synthetic world of ``world_preset``.

    ``world_overrides`` changes knobs of ``VIDEO_ONLY_KNOBS`` from the preset, e.g.
    ``{video_shift: 0.0}``: a negative control, in a world folder of its own. The expert and the
    captioners stay those of the preset's world (these knobs leave the stills as they are), so a
    study on the control differs from the default in its videos only. A knob of ``STILLS_KNOBS``
    (``{motion_image_share: 0.0}``: no still shows motion or order) changes the stills, and the
    expert is then that world's own (:meth:`stills_overrides`).
    """

    dataset: str = "synthetic"
    root: str | None = None
    world_preset: Literal["smoke", "default"] = "default"
    world_seed: int = 0
    world_overrides: dict[str, Any] = Field(default_factory=dict)
    on_error: Literal["raise", "skip"] = "skip"
    video_dir: str | None = None

    @field_validator("dataset")
    @classmethod
    def _registered(cls, name: str) -> str:
        from vrlib.data.datasets import DATASETS

        return _registered_in(DATASETS, name)

    def resolve_root(self) -> Path:
        """The dataset folder; builds the embedded world first if it is the one asked for and missing."""
        if self.root is not None:
            return Path(self.root).expanduser()
        from vrlib.data.synthetic import ensure_world
        from vrlib.paths import world_dir

        return ensure_world(
            world_dir(self.world_preset, self.world_seed, self.world_overrides),
            preset=self.world_preset,
            seed=self.world_seed,
            **self.world_overrides,
        )

    @model_validator(mode="after")
    def _check_overrides(self) -> DataParams:
        if self.world_overrides:
            from vrlib.data.synthetic import resolve_config

            if self.root is not None or self.dataset != "synthetic":
                raise ValueError("world_overrides apply to the embedded world only (root: null)")
            resolve_config(self.world_preset, **self.world_overrides)  # names a bad key or value
            other = sorted(set(self.world_overrides) - {*VIDEO_ONLY_KNOBS, *STILLS_KNOBS})
            if other:
                raise ValueError(
                    f"world_overrides {other}: only the mechanism knobs can be overridden "
                    f"({', '.join((*VIDEO_ONLY_KNOBS, *STILLS_KNOBS))}); the world's other "
                    "parameters are its preset's"
                )
        return self

    def stills_overrides(self) -> dict[str, Any]:
        """The overrides that change the stills (``STILLS_KNOBS``): the expert must be this
        world's own. Empty for the preset's stills."""
        return {k: v for k, v in self.world_overrides.items() if k in STILLS_KNOBS}


class EncoderParams(Strict):
    """Which image-text model. ``pretrained: expert`` = the world's expert of that model
    (``vrlib-tiny``, or ``vrlib-tiny-vit32``), pretrained on the world's still images;
    ``expert_without_words``: an expert of its own whose stills never showed these shapes or
    colours (a concept the model starts without, study 04's Table 2)."""

    model: str = "vrlib-tiny"
    pretrained: str | None = EXPERT
    device: str | None = None
    batch_size: int = Field(256, gt=0)
    expert_without_words: list[str] = Field(default_factory=list)

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        from vrlib.encoders.names import check_model_name

        check_model_name(name)
        return name

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str | None) -> str | None:
        from vrlib.encoders.names import check_device

        return device if device is None else check_device(device)

    @model_validator(mode="after")
    def _known_weights(self) -> EncoderParams:
        """The spelling of ``pretrained`` (a tag of the model, or a path), as ``load_clip`` reads it."""
        from vrlib.encoders.names import check_pretrained

        if self.pretrained not in (None, EXPERT):
            check_pretrained(self.model, self.pretrained, must_exist=False)
        if self.expert_without_words and self.pretrained != EXPERT:
            raise ValueError(
                f"expert_without_words needs pretrained: {EXPERT} (it names which expert to "
                f"train), got pretrained: {self.pretrained!r}"
            )
        return self

    @field_validator("expert_without_words")
    @classmethod
    def _known_words(cls, words: list[str]) -> list[str]:
        from vrlib.pretrain import known_words

        return known_words(words)


class SamplingParams(Strict):
    """Which frames to decode (see ``vrlib.data.sampling``)."""

    strategy: str = "uniform"
    n: int = Field(12, gt=0)
    at_seconds: float = 1.0
    target_fps: float = 1.0
    max_frames: int | None = None
    offset: float = 0.5

    @model_validator(mode="after")
    def _valid_config(self) -> SamplingParams:
        """Strategy and ranges, checked by building the ``SamplingConfig`` extraction will use."""
        self.config()
        return self

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

    def split_keys(self) -> dict[str, str]:
        """``{parameter key: split}`` of every split the study reads (subclasses list theirs)."""
        return {}

    @model_validator(mode="after")
    def _consistent(self) -> FeatureStudyParams:
        check_splits(self.data, self.split_keys())
        check_expert(self.data, self.encoder)
        return self


def _registered_in(registry, name: str) -> str:
    """``name`` if ``registry`` has it; a ValueError listing the valid names (pydantic reports
    ValueErrors with the key, not KeyErrors)."""
    try:
        registry.get(name)
    except KeyError as e:
        raise ValueError(e.args[0]) from None
    return name


def known_aggregation(name: str) -> str:
    """``name`` if it is registered in ``vrlib.aggregate.AGGREGATIONS`` (else ValueError)."""
    from vrlib.aggregate import AGGREGATIONS

    return _registered_in(AGGREGATIONS, name)


def check_splits(data: DataParams, split_keys: dict[str, str]) -> None:
    """Each split against the reader's own list (``dataset_splits``); datasets whose files define
    their splits (``folder``) are checked by :func:`check_inputs`, which reads them."""
    from vrlib.data.datasets import dataset_splits

    valid = dataset_splits(data.dataset)
    for key, split in split_keys.items():
        if valid is not None and split not in valid:
            raise ValueError(
                f"{key}: unknown split {split!r} for dataset {data.dataset!r}; "
                f"valid: {', '.join(valid)}"
            )


def check_expert(data: DataParams, enc: EncoderParams) -> None:
    from vrlib.pretrain import PRESETS

    if enc.pretrained == EXPERT and enc.model not in PRESETS:
        raise ValueError(
            f"encoder.pretrained: 'expert' exists for {', '.join(PRESETS)}, not {enc.model!r}; "
            "give an open_clip tag or a local checkpoint path"
        )
    if enc.pretrained == EXPERT and data.root is not None:
        raise ValueError(
            "encoder.pretrained: 'expert' is the embedded world's vrlib-tiny and needs data.root: "
            "null; for real data give an open_clip tag (e.g. openai) or a local checkpoint path"
        )


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


def train_over_defaults(section: Any, defaults: BaseModel, set_by_study: dict[str, str]) -> Any:
    """A partial ``train:`` section overrides the study's defaults, not the engine's.

    Keys the study sets itself (``set_by_study``: key -> why) are refused, naming the key.
    """
    if not isinstance(section, dict):
        return section
    for bad, why in set_by_study.items():
        if bad in section:
            raise ValueError(f"train.{bad} is set by the study ({why})")
    return type(defaults).model_validate({**defaults.model_dump(exclude_unset=True), **section})


def start_temperature(value: float | str, encoder: Any) -> float:
    """The softmax temperature a study's training starts from: ``value``, or with ``"expert"``
    the encoder's own ``1 / exp(logit_scale)`` clamped to [0.01, 1] (0.01 for OpenAI's CLIP).

    Why: the released code (CLIP4Clip, CLIP2Video) continues from its backbone's logit scale, so
    training starts at the sharpness the aligned space was trained at; a head on vrlib-tiny at
    CLIP's 100 starts with a first loss near 20 and wrecks the space in its first steps.
    """
    if value != EXPERT:
        return float(value)
    scale = float(encoder.model.logit_scale.detach().float().exp())
    return min(1.0, max(0.01, 1.0 / scale))


def check_temperature(value: float | str) -> float | str:
    """``"expert"`` or a number in [0.01, 1] (a study's ``temperature`` parameter)."""
    if value != EXPERT and not 0.01 <= value <= 1:
        raise ValueError(f"temperature must be 'expert' or in [0.01, 1], got {value}")
    return value


# Re-exported: the notebooks and studies load their encoder and record their inputs through here.
from vrlib.studies.inputs import data_fingerprint, load_encoder, study_inputs  # noqa: E402, F401
