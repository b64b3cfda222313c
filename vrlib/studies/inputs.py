"""What a study read: its encoder, loaded (the world's expert trained first if missing) and
fingerprinted, and the fingerprint of its dataset, for metrics.json.

Why apart from :mod:`vrlib.studies.common` (which re-exports these): the parameter models there
say what a study may ask for; this module loads it and records what was loaded. The parameter
models are imported inside the functions, so either module may be imported first.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vrlib.studies.common import DataParams, EncoderParams

# Files that identify a dataset's content apart from its videos: world.json (generator version
# and parameters), splits and captions. Videos are not hashed (gigabytes); world.json pins them.
_ANNOTATION_SUFFIXES = (".json", ".jsonl", ".csv", ".txt")
# Weights fingerprint of every encoder load_encoder returned in this process, by its parameters.
_LOADED_FINGERPRINTS: dict[tuple[str, str | None, str, int], str] = {}


def load_encoder(enc: EncoderParams, data: DataParams):
    """Load the encoder; ``pretrained: expert`` trains the world's expert first if it is missing."""
    from vrlib.encoders import load_clip
    from vrlib.studies.common import EXPERT, check_expert

    pretrained = enc.pretrained
    check_expert(data, enc)
    if pretrained == EXPERT:
        from vrlib.pretrain import ensure_expert

        pretrained = str(
            ensure_expert(
                data.world_preset, data.world_seed, model=enc.model,
                overrides=data.stills_overrides(), without_words=enc.expert_without_words,
            )
        )  # fmt: skip
    encoder = load_clip(enc.model, pretrained=pretrained, device=enc.device)
    # Taken now, before a study may fine-tune the weights in place: metrics.json names the inputs.
    _LOADED_FINGERPRINTS[_encoder_key(enc, data)] = encoder.fingerprint
    return encoder


def _encoder_key(enc: EncoderParams, data: DataParams) -> tuple[str, str | None, str, int, str]:
    # a variant's expert is its own: other stills, or shapes or colours it never saw
    stills = json.dumps([data.stills_overrides(), enc.expert_without_words], sort_keys=True)
    return (enc.model, enc.pretrained, data.world_preset, data.world_seed, stills)


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
    from vrlib.studies.common import DataParams, EncoderParams

    data, enc = getattr(params, "data", None), getattr(params, "encoder", None)
    if not isinstance(data, DataParams) or not isinstance(enc, EncoderParams):
        return {}
    from vrlib.paths import world_dir

    # Not resolve_root(): recording what was used must never build a world.
    root = (
        Path(data.root).expanduser()
        if data.root
        else world_dir(data.world_preset, data.world_seed, data.world_overrides)
    )
    changed = "".join(f" {k}={v}" for k, v in sorted(data.world_overrides.items()))
    return {
        "data_root": str(root)
        if data.root is not None
        else f"world {data.world_preset} seed {data.world_seed}{changed}",
        "data_sha256": data_fingerprint(root) if root.is_dir() else None,
        "encoder": enc.model,
        "encoder_pretrained": enc.pretrained,
        "encoder_fingerprint": _LOADED_FINGERPRINTS.get(_encoder_key(enc, data)),
    }
