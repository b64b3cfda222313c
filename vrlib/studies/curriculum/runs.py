"""Study 04 — Frozen in Time (Bain et al. 2021): joint image + video training, frame curriculum,
temporal-embedding expansion, accuracy against compute.

Every run starts the space-time model (``vrlib.models.frozen``) from the world's image expert
(spatial blocks = its image tower, temporal attention and embeddings zero, one CLS token for the
whole clip as in the paper: at step 0 a one-frame clip *is* the expert's image tower, and a longer
clip is read by that CLS attending to the patches of every frame), trains it with ``vrlib.train.curriculum.train_curriculum`` for the same number of steps
(the paper gives every Table 4 row the same iterations), and tests it on the test split with the
paper's protocol (stride offsets averaged, ~``train.views`` frames seen per video).

How the paper's columns map onto the world (the choice, written down): the world has one
distribution of videos, so there is no second, downstream dataset to fine-tune on. *Pretraining*
is training on the world's train videos (WebVid's role) and, where the paper's table adds them,
its still images (CC3M's role); the paper's *finetune #frames* column becomes the frame count at
test (the final stage's), and the fine-tuning itself is dropped: what it does in the paper —
adapt to MSR-VTT — has nothing to adapt to here, and its cost would double every run. Our test
numbers are therefore zero-shot on held-out videos of the training distribution (closest to the
paper's fine-tuned columns in spirit, to Figure 4's zero-shot curves in protocol). Each table
trains on what the paper's table trained on (``table4_data``, ``expansion_data``); settings, as
named in metrics.json:

- Table 4 and Figure 4: ``frames-1``, ``frames-4``, ``frames-1=>4``, ``frames-8``,
  ``frames-1=>4=>8``, on videos only by default (the paper: WebVid2M only);
- Table A.4: ``expand-zeros``, ``expand-nearest``, ``expand-bilinear`` on ``expansion_schedule``,
  jointly by default (the paper: CC3M + WebVid2M);
- Table 2: ``images-only``, ``videos-only``, ``joint`` (on ``sources_schedule``);
- Table 3 (optional): ``block-frozen``, ``block-timesformer``.

Runs that train the same thing (same schedule, expansion where it matters, data, block, seed) are
trained once and reported under every name. ``untrained`` is step 0: the model before any step,
tested the same way (with ``cls_modes: [video, frame]`` the per-frame CLS ablation, whose step 0
is the expert's mean pooling, trains beside it as ``cls-frame``); every trained setting is compared with it.
Comparisons use a paired cluster bootstrap (``toolkit.paired_cluster_bootstrap``) that resamples
test videos with all their queries (twin pairs for twin accuracy) and each setting's seeds. A
claim "holds" when the 95% interval shows it: above 0 (greater); above -``noninferiority_margin``
and at no more compute than claimed (reaches); two one-sided tests inside
+-``equivalence_margin`` (within noise). Identical outputs are never "holds".

The parameters and their checks live in ``vrlib.studies.curriculum.params``, the decoded data in
``curriculum.data`` (both re-exported here),
the claims and the reading in ``curriculum.claims``; decoding and training in
``vrlib.train.clips`` / ``vrlib.train.curriculum``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vrlib.evaluation.study_cards import renamed
from vrlib.studies.curriculum.data import Prepared, prepare, video_subsets  # noqa: F401
from vrlib.studies.curriculum.params import CurriculumParams, TrainParams  # noqa: F401
from vrlib.studies.toolkit import METRIC_KEYS, aggregate_seeds, rows_from_metrics
from vrlib.train.clips import ClipSet, geometric_mean_recall
from vrlib.train.schedule import CurriculumConfig

TABLE4 = ("frames-1", "frames-4", "frames-1=>4", "frames-8", "frames-1=>4=>8")
UNTRAINED = "untrained"  # step 0: the model before any training step
STUDY = "curriculum"  # the name on its result cards


@dataclass(frozen=True)
class Setting:
    """One row: its name, the schedule it trains, expansion, data mix and block style."""

    name: str
    schedule: str
    expansion: str
    data: str = "joint"
    block: str = "frozen"
    ablation: bool = False  # trained with ablation_seeds rather than seeds
    cls: str | None = None  # "video" / "frame" overrides the model config's (the CLS ablation)

    def run_key(self, params: CurriculumParams) -> tuple:
        """What is trained: the expansion matters only when the table grows after training began
        (several stages, or image-only training evaluated at more frames)."""
        stages = params.schedules[self.schedule]
        grows = len(stages) > 1 or self.data == "images"
        key_stages = tuple((s.frames, s.steps, s.clips) for s in stages)
        cls = self.cls or _config_cls(params.model)
        return key_stages, self.expansion if grows else "-", self.data, self.block, cls


def _config_cls(model: str) -> str:
    from vrlib.models.frozen import load_frozen_config

    return load_frozen_config(model).cls


def settings(params: CurriculumParams) -> list[Setting]:
    """Table 4, then A.4, Table 2 and (with two blocks) Table 3 settings.

    Table 4's rows are the schedules named as the paper's (``TABLE4``); another schedule (e.g.
    ``4=>8``, the expansion's) trains only where ``expansion_schedule`` or ``sources_schedule``
    names it, so no seeds go to a row no table or claim reads.
    """
    e = params.expansion
    out = [Setting(f"frames-{name}", name, e, data=params.table4_data)
           for name in params.schedules if f"frames-{name}" in TABLE4]  # fmt: skip
    out += [Setting(f"expand-{x}", params.expansion_schedule, x, data=params.expansion_data, ablation=True)
            for x in params.expansions]  # fmt: skip
    names = {"images": "images-only", "videos": "videos-only", "joint": "joint"}
    out += [Setting(names[d], params.sources_schedule, e, data=d)  # a main comparison: seeds
            for d in params.sources]  # fmt: skip
    if len(params.blocks) > 1:
        out += [Setting(f"block-{b}", params.sources_schedule, e, block=b, ablation=True)
                for b in params.blocks]  # fmt: skip
    if len(params.cls_modes) > 1:
        out += [Setting(f"cls-{c}", params.sources_schedule, e, data=params.table4_data,
                        ablation=True, cls=c) for c in params.cls_modes]  # fmt: skip
    return out


# ----------------------------------------------------------------------------- runs


@dataclass
class RunResult:
    """One (setting, seed): test metrics, per-query ranks, twin scores, compute and curve."""

    setting: str
    seed: int
    test: dict[str, Any]
    t2v_ranks: np.ndarray
    twin_scores: np.ndarray  # per twinned-video caption: 1, 1/2 or 0
    history: list[dict[str, Any]]
    total_flops: int
    train_s: float
    flops_per_step: dict[str, int]
    card: Any = None  # its result card (vrlib.evaluation.study_cards), for the leaderboard
    # each growth of the temporal table: {"from", "to", "table_rms"}, and the spatial positions'
    # RMS row norm as its scale (FrozenInTime.temporal_table_rms / positional_rms)
    expansions: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    positional_rms: float = math.nan
    # per word swap (Prepared.swaps): weight x (1, 1/2 or 0); empty when no words are held out
    swap_scores: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))


def _card(params: CurriculumParams, setting: str, seed: int, sim, test: ClipSet, frames: int):
    """The run's result card: the test split scored under the eval harness's preset."""
    from vrlib.evaluation.study_cards import study_card

    sampling = {"strategy": "stride offsets, averaged", "pool_frames": params.pool_frames,
                "frames": frames, "views": params.train.views}  # fmt: skip
    return study_card(
        sim, test.caption_to_video, dataset=params.data.dataset, split=params.test_split,
        root=params.data.resolve_root(), study=STUDY, setting=setting, seed=seed, sampling=sampling,
    )  # fmt: skip


def train_run(setting: Setting, seed: int, params: CurriculumParams, prep: Prepared,
              encoder: Any) -> RunResult:  # fmt: skip
    """Train ``setting`` with ``seed`` from the expert and test it."""
    from vrlib.metrics import ranks
    from vrlib.models.frozen import FrozenInTime, load_frozen_config
    from vrlib.train.curriculum import train_curriculum

    cfg = CurriculumConfig(
        stages=params.schedules[setting.schedule], expansion=setting.expansion,
        data=setting.data, seed=seed, **params.train.model_dump(),
        eval_every=params.curve_every if _on_curve(setting, params) else 0,
    )  # fmt: skip
    torch.manual_seed(seed)  # the temporal attention's q/k/v init
    overrides = {"block": setting.block} | ({"cls": setting.cls} if setting.cls else {})
    model = FrozenInTime.from_clip(encoder.model, load_frozen_config(params.model, **overrides))
    result = train_curriculum(model, encoder.tokenizer, cfg, videos=prep.train,
                              images=prep.images, test=prep.test)  # fmt: skip
    sim, c2v = result.final.pop("sim"), prep.test.caption_to_video
    embedded = result.final.pop("caption_embeddings"), result.final.pop("video_embeddings")
    return RunResult(
        setting=setting.name, seed=seed, test=result.final, t2v_ranks=ranks(sim, c2v),
        twin_scores=_twin_scores(embedded, model, prep.test, cfg.final_frames, cfg.views,
                                 cfg.expansion),
        history=result.history,
        total_flops=result.total_flops, train_s=result.train_s,
        flops_per_step=result.flops_per_step,
        card=_card(params, setting.name, seed, sim, prep.test, cfg.stages[-1].frames),
        expansions=[r["expanded"] for r in result.steps if "expanded" in r],
        positional_rms=model.positional_rms(),
        swap_scores=_swap_scores(embedded, model, encoder.tokenizer, prep),
    )  # fmt: skip


def untrained_run(params: CurriculumParams, prep: Prepared, encoder: Any) -> RunResult:
    """Step 0: the model before any step (temporal attention and embeddings zero), tested like every run at the largest final frame count of ``schedules``."""
    from vrlib.metrics import evaluate, ranks
    from vrlib.models.frozen import FrozenInTime, load_frozen_config
    from vrlib.train.clips import encode_captions, encode_clips

    seed = params.seeds[0]
    torch.manual_seed(seed)
    model = FrozenInTime.from_clip(encoder.model, load_frozen_config(params.model))
    frames = max(stages[-1].frames for stages in params.schedules.values())
    views = params.train.views
    embedded = (encode_captions(model, encoder.tokenizer, prep.test.captions),
                encode_clips(model, prep.test, frames, views, params.expansion))  # fmt: skip
    sim, c2v = embedded[0] @ embedded[1].T, prep.test.caption_to_video
    return RunResult(
        setting=UNTRAINED, seed=seed, test=evaluate(sim, c2v), t2v_ranks=ranks(sim, c2v),
        twin_scores=_twin_scores(embedded, model, prep.test, frames, views, params.expansion),
        history=[], total_flops=0,
        train_s=0.0, flops_per_step={}, card=_card(params, UNTRAINED, seed, sim, prep.test, frames),
        swap_scores=_swap_scores(embedded, model, encoder.tokenizer, prep),
    )  # fmt: skip


def _on_curve(setting: Setting, params: CurriculumParams) -> bool:
    """Figure 4 follows the Table 4 runs of ``curve_schedules`` (the ablations get no curve)."""
    return setting.name in {f"frames-{name}" for name in params.curve_schedules}


Embedded = tuple[torch.Tensor, torch.Tensor]  # (captions (C, E), videos (V, E)) of the test split


def _twin_scores(embedded: Embedded, model: Any, test: ClipSet, frames: int, views: int,
                 expansion: str) -> np.ndarray:  # fmt: skip
    """Per caption of a twinned video: 1 where it scores its video's test clips above the same
    clips played backwards, 1/2 on a tie, 0 below (``vrlib.models.reversal``'s instrument).

    Why not the twin file: the reversed twin is another mp4, pooled and strided on its own, so
    its frames are never the original's in reverse and an order-blind model scored 47.8% on
    twins, not 50%. Reversing the very clips tested makes every order-blind model (step 0, whose
    temporal attention is zero) tie on every caption: exactly 50%. Only the twinned videos are
    encoded again (backwards); the captions' embeddings are the run's own.
    """
    from vrlib.models.reversal import order_scores
    from vrlib.train.clips import encode_clips

    captions, videos = embedded
    c2v = np.asarray(test.caption_to_video)
    rows = np.flatnonzero(test.twin_of[c2v] >= 0)
    if not len(rows):
        return np.zeros(0)
    twinned = np.unique(c2v[rows])  # only these videos are played backwards
    backward = encode_clips(model, test, frames, views, expansion, reverse=True, videos=twinned)
    text = captions[torch.as_tensor(rows)]
    forward = (text * videos[torch.as_tensor(c2v[rows])]).sum(-1)
    back = (text * backward[torch.as_tensor(np.searchsorted(twinned, c2v[rows]))]).sum(-1)
    return order_scores(forward, back)


def _swap_scores(embedded: Embedded, model: Any, tokenizer: Any, prep: Prepared) -> np.ndarray:
    """Per word swap (``prep.swaps``): its weighted score, the own caption against the swapped
    one on the caption's video (:mod:`vrlib.studies.curriculum.swaps`); empty without swaps.
    Only the swapped captions are encoded; the videos' and own captions' embeddings are the
    run's."""
    from vrlib.studies.curriculum.swaps import swap_scores
    from vrlib.train.clips import encode_captions

    swaps = prep.swaps
    if swaps is None or not len(swaps):
        return np.zeros(0)
    captions, videos = embedded
    video = videos[torch.as_tensor(np.asarray(prep.test.caption_to_video)[swaps.rows])]
    own = (captions[torch.as_tensor(swaps.rows)] * video).sum(-1)
    other = (encode_captions(model, tokenizer, swaps.texts) * video).sum(-1)
    return swap_scores(own.numpy(), other.numpy(), swaps)


def run_all(params: CurriculumParams, prep: Prepared, encoder: Any,
            progress: bool = True) -> list[RunResult]:  # fmt: skip
    """Step 0 (``untrained``), then every (setting, seed); runs with the same ``run_key`` are
    trained once."""
    from tqdm.auto import tqdm

    done: dict[tuple, RunResult] = {}
    out = [untrained_run(params, prep, encoder)]
    jobs = [(s, seed) for s in settings(params)
            for seed in (params.ablation_seeds if s.ablation else params.seeds)]  # fmt: skip
    for setting, seed in tqdm(jobs, desc="runs", disable=not progress):
        key = (setting.run_key(params), seed)
        if key not in done:
            done[key] = train_run(setting, seed, params, prep, encoder)
        run = copy.copy(done[key])
        run.setting = setting.name
        run.card = renamed(run.card, STUDY, setting.name)
        out.append(run)
    return out


def write_cards(runs: list[RunResult], encoder: Any, params: CurriculumParams, out_dir) -> list:
    """The result card of every setting at the first seed, into ``out_dir`` (for
    ``reports/leaderboard.md``; ``untrained`` is the model before training, step 0)."""
    from vrlib.evaluation.study_cards import write_run_cards

    named = ((r.setting, r.card) for r in runs)
    return write_run_cards(named, encoder, params.encoder.model, params.encoder.pretrained, out_dir)


# ----------------------------------------------------------------------------- tables


def summary_rows(runs: list[RunResult], split: str = "test") -> list[dict[str, Any]]:
    """metrics.json rows: per setting and direction, the mean and std over seeds, with compute."""
    per_seed = []
    for r in runs:
        extra = {"seed": r.seed, "GFLOPs": r.total_flops / 1e9, "train_s": r.train_s,
                 "geo_mean": geometric_mean_recall(r.test)}  # fmt: skip
        per_seed += rows_from_metrics(r.setting, split, r.test, **extra)
    metrics = [m for m in METRIC_KEYS if m != "n"] + ["GFLOPs", "train_s", "geo_mean"]
    return aggregate_seeds(per_seed, metrics=metrics)


def swap_rows(runs: list[RunResult], held_out: list[str]) -> list[dict[str, Any]]:
    """Per setting: balanced word-swap accuracy (mean and std over seeds), its swap count and
    the held-out words swapped (``params.held_out_words()``)."""
    words = ", ".join(held_out)
    per_seed = [{"setting": r.setting, "seed": r.seed, "swap_acc": 100.0 * float(np.mean(r.swap_scores)),
                 "n": len(r.swap_scores), "words": words} for r in runs if len(r.swap_scores)]  # fmt: skip
    return aggregate_seeds(per_seed, keys=("setting", "words"), metrics=["swap_acc"])


def twin_rows(runs: list[RunResult]) -> list[dict[str, Any]]:
    """Per setting: twin pairwise accuracy (mean and std over seeds) and its query count."""
    per_seed = [{"setting": r.setting, "seed": r.seed, "twin_acc": 100.0 * float(np.mean(r.twin_scores)),
                 "twin_n": len(r.twin_scores)} for r in runs if len(r.twin_scores)]  # fmt: skip
    return aggregate_seeds(per_seed, keys=("setting",), metrics=["twin_acc"])


def subset_rows(runs: list[RunResult], test: ClipSet, subsets: dict[str, np.ndarray],
                names: list[str]) -> list[dict[str, Any]]:  # fmt: skip
    """T2V R@1 of the ``names`` settings on each subset of test videos and on the rest (mean and
    std over seeds): whether the videos of a held-out concept are harder, and for which source.

    Args:
        subsets: a label per subset (``data.video_subsets``) and, per test video, whether it is in.
    """
    c2v = np.asarray(test.caption_to_video)
    per_seed = []
    for label, mask in subsets.items():
        inside = np.asarray(mask)[c2v]
        for videos, queries, n in ((label, inside, int(mask.sum())),
                                   ("the others", ~inside, int((~mask).sum()))):  # fmt: skip
            per_seed += [{"subset": label, "videos": videos, "n_videos": n, "setting": r.setting,
                          "seed": r.seed, "R@1": 100.0 * float(np.mean(r.t2v_ranks[queries] <= 1))}
                         for r in runs if r.setting in names]  # fmt: skip
    keys = ("subset", "videos", "n_videos", "setting")
    return aggregate_seeds(per_seed, keys=keys, metrics=["R@1"])


def paper_table(summary: list[dict], paper: list[dict], names: list[str]):
    """Ours (T2V: R@1, R@10, MdR mean ± std, GFLOPs, train s) beside the paper's row."""
    import pandas as pd

    theirs = {r["setting"]: r for r in paper if r["direction"] == "t2v"}
    rows = []
    for r in (x for x in summary if x["direction"] == "t2v" and x["setting"] in names):
        p = theirs.get(r["setting"], {})
        rows.append({"setting": r["setting"], "seeds": r["n_seeds"], "R@1": r["R@1"],
                     "R@1 ±": r["R@1_std"], "R@10": r["R@10"], "R@10 ±": r["R@10_std"],
                     "MdR": r["MdR"], "GFLOPs": r["GFLOPs"], "train s": r["train_s"],
                     "paper R@1": p.get("R@1", math.nan), "paper R@10": p.get("R@10", math.nan),
                     "paper MdR": p.get("MdR", math.nan), "paper PTT h": p.get("PTT_h", math.nan)})  # fmt: skip
    return pd.DataFrame(rows)


def curve_frame(runs: list[RunResult]):
    """Figure 4's points: setting, seed, step, cumulative GFLOPs and seconds, geometric mean."""
    import pandas as pd

    seen, rows = set(), []
    for r in runs:
        if (r.setting, r.seed) in seen or len(r.history) < 2 or not r.setting.startswith("frames-"):
            continue
        seen.add((r.setting, r.seed))
        rows += [{"setting": r.setting, "seed": r.seed, "step": h["step"],
                  "GFLOPs": h["cum_flops"] / 1e9, "train_s": h["cum_train_s"],
                  "geo_mean": h["geo_mean"]} for h in r.history]  # fmt: skip
    return pd.DataFrame(rows)
