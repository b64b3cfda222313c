"""One training engine for every temporal head (and the CLIP encoder, end to end).

Place in the data flow: frame and caption features (``vrlib.features``) or decoded frames and
caption strings (``vrlib.data``) -> a temporal head (``vrlib.models``) trained with the loss of
``vrlib.losses`` -> retrieval metrics (``vrlib.metrics``) -> the studies (``vrlib.studies``).

Modules, read in this order: ``config`` (``TrainConfig``, ``lr_factor``) -> ``data`` (pair
datasets, the no-repeat batch sampler) -> ``objective`` (one forward = one loss, end-to-end
encoding, parameter groups) -> ``runtime`` (process group, device, precision) -> ``checkpoint``
(RNG states, resume check, atomic files) -> ``engine`` (``Trainer``, ``fit`` and the run loop in
plain sight) -> ``evaluate`` (``similarity_matrix``, ``evaluate_model``).

Exports: ``TrainConfig``, ``lr_factor``, ``METRIC_KEYS``, ``SELECT_METRICS``, ``CachedPairs``,
``EndToEndPairs``, ``ContrastiveBatchSampler``, ``encode_batch_end_to_end``, ``seed_everything``,
``Trainer``, ``TrainResult``, ``fit``, ``similarity_matrix``, ``evaluate_model``.

Two modes (``TrainConfig.mode``):

- ``"cached"`` (the CPU default): the CLIP encoder is frozen and its per-frame / per-caption
  features were extracted once (``vrlib.features``); a batch is ``CachedPairs`` rows.
- ``"end_to_end"``: frames as uint8 pixels and captions as strings (``EndToEndPairs``) go through
  a trainable ``ClipEncoder`` (``encoder.model.encode_image`` on (B*T, 3, S, S), ``encode_text``)
  and then the head, as CLIP4Clip fine-tunes CLIP. Frame and text features are L2-normalised
  before the head, exactly as the cached features are, so both modes feed heads the same thing.

In cached mode the caption side may still learn: ``fit(..., text_side=build_text_side(...))``
(``vrlib.models``) feeds the head's ``text_side`` from ``text_side(batch["text_inputs"])``, the
per-caption tensors of ``CachedPairs(text_inputs=...)`` (``vrlib.features.extract_text_inputs``).
The side is part of the trained module (own lr group ``text_lr``, checkpointed as
``"text_side"``); evaluation runs it chunk by chunk. ``twin_batches`` packs each video with its
reversed twin (``CachedPairs(twin_of=...)``) as hard negatives, still no video twice a batch.

Choices (documented because they change numbers):

- ``batch_size`` is the *global* batch (split evenly over ranks), so a config gives the same
  training whatever the number of processes.
- Sampling per epoch: ``"all_captions"`` (default; CLIP4Clip's ``expand_msrvtt_sentences`` for
  MSR-VTT 9k) uses every (caption, video) pair once, in rounds (round k = the k-th of each video's
  shuffled captions, shuffled), i.e. successive random one-caption-per-video passes;
  ``"one_caption_per_video"`` is one such round (CLIP4Clip's default, Frozen in Time). Batches
  are packed so that a global batch holds no video twice (always with equal caption counts per
  video; with very unequal counts a few tail batches may repeat, and tiny datasets must). A
  repeat is masked out of both softmaxes as a false negative (``losses.same_video_mask``),
  never counted as a negative. Incomplete last batches are dropped (contrastive batches must be full and equal
  across ranks); the dropped captions differ each epoch.
- Loss: symmetric InfoNCE on the full global similarity matrix (``vrlib.losses`` explains the
  gradient scaling under DDP); heads with several similarity terms (TAB) are trained with
  ``sum(w_k * InfoNCE(part_k))`` using ``head.part_weights()`` (CLIP2Video's
  ``w * L_global + (1 - w) * L_aligned``), all sharing one learnable temperature.
- AdamW with no weight decay on biases, norms, embeddings and the logit scale; linear warm-up then
  cosine decay per optimiser step (open_clip's formulas); gradient clipping on the global norm.
- Temperature: starts at ``temperature`` (CLIP's init 0.07; the papers train at 0.01, i.e. logit
  scale 100, often with ``learn_temperature=False``); ``None`` (end_to_end) starts from the
  encoder's own logit scale. The scale is clamped at 100 after every step, as CLIP4Clip does.
- The sampler is stateless: epoch ``e`` is drawn from ``numpy.random.default_rng((seed, e))``, so
  resuming at an epoch boundary reproduces the uninterrupted run exactly, together with the
  model, optimiser, scheduler, scaler and RNG states (every rank's) saved in the checkpoint.
- Under ``torchrun`` (WORLD_SIZE > 1) ``fit`` initialises the process group from the environment,
  wraps head + loss (+ encoder) in DistributedDataParallel, and only rank 0 writes files. Every
  rank evaluates the (small) validation set itself, so no rank waits on another. Instead of
  torch's DistributedSampler, ``ContrastiveBatchSampler`` gives each rank its slice of the same
  global batches (no padding duplicates, no repeated video across ranks). The process group is
  left initialised for the caller (``dist.destroy_process_group()`` at the end of the script).
  Without WORLD_SIZE nothing global is touched: the same call works in a notebook.
"""

from vrlib.train.checkpoint import TrainResult, seed_everything
from vrlib.train.config import METRIC_KEYS, SELECT_METRICS, TrainConfig, lr_factor
from vrlib.train.data import CachedPairs, EndToEndPairs
from vrlib.train.engine import Trainer, fit
from vrlib.train.evaluate import evaluate_model, similarity_matrix
from vrlib.train.objective import encode_batch_end_to_end
from vrlib.train.sampler import ContrastiveBatchSampler

__all__ = [
    "METRIC_KEYS",
    "SELECT_METRICS",
    "CachedPairs",
    "ContrastiveBatchSampler",
    "EndToEndPairs",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "encode_batch_end_to_end",
    "evaluate_model",
    "fit",
    "lr_factor",
    "seed_everything",
    "similarity_matrix",
]
