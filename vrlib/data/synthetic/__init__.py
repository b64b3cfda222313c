"""The embedded synthetic world: captioned images and H.264 videos the workbench makes itself.

Place in the data flow: the first step. ``ensure_world`` writes a world folder that
:mod:`vrlib.data.datasets` (``"synthetic"``, and ``"msrvtt"`` on its ``msrvtt/`` files) reads,
that :mod:`vrlib.pretrain` learns the image-text expert from, and whose videos
:mod:`vrlib.data.video` decodes for feature extraction.

Why: no pretrained CLIP weights and no benchmark videos can be downloaded where this is built and
tested, so every study runs on a world generated here, built to contain the effect each paper
studies (see DESIGN.md, "The embedded default world"):

- **images** pretrain the image-text expert, the way CLIP only ever saw still images: plain
  scenes, and (``motion_image_share``, train only) stills of motion and change, trails and
  before->after strips, whose captions use the videos' words of time (:mod:`.motion`);
- **videos** have 1-3 shots and one event per shot (move, grow/shrink, colour change,
  appear/disappear); longer videos tend to have more shots, so one frame at 1 s misses the later
  shots (frame aggregation, Portillo-Quintero 2021);
- some videos have a **reversed twin** (the same frames in reverse order, the opposite caption):
  no order-blind aggregation can tell a pair apart, a temporal model can (CLIP2Video);
- about 20 captions per video: full, paraphrased, partial and a few ``audio`` ones, about
  sound (as in MSR-VTT); ``tags`` say which, and ``temporal`` marks the captions whose truth depends on order
  or direction;
- the mechanisms the studies need, each a :class:`WorldConfig` knob that 0 removes: an
  image->video gap (``video_shift``: compression, blur, colour cast, lighting drift, jitter,
  video-only backgrounds), uninformative frames (``bad_frame_share``: fades, blanks, an
  occluder; listed in ``meta["bad_frames"]``), and concepts rare in training videos but present
  in stills (``video_concept_holdout``; ``meta["held_out_concepts"]``) (:mod:`.nuisance`,
  :mod:`.plan`);
- the annotations are also written in MSR-VTT's own file formats (CLIP4Clip's ``msrvtt_data``)
  so the real readers run on it.

Everything is drawn from ``seed`` with one random stream per item, and the x264 encoder is pinned
to options that were checked to give byte-identical files run after run (one thread, no
macroblock tree, no weighted P prediction: with those two on, libx264 gave different but
equally-decoding bitstreams across runs). ``world.json`` is written last, so an interrupted
generation is detected by :func:`ensure_world` and redone.

The per-frame state of a video is a pure function of its ``meta["events"]`` (:func:`scene_at`),
and frames are rendered from it, so the annotations describe exactly what is on screen; a
frame-level "oracle captioner" is :func:`describe_frame`.

Modules, in the order the generator uses them:

- :mod:`.config`: :class:`WorldConfig`, :data:`PRESETS`, :func:`resolve_config` and the
  vocabulary (shapes, colours, sizes, positions, backgrounds, event types);
- :mod:`.scenes`: :func:`sample_image`, :func:`sample_video`, :func:`reverse_events`,
  :func:`scene_at` (what a picture or a video shows);
- :mod:`.render`: :func:`render`, :func:`render_video`, :func:`encode_mp4` (pixels and mp4 bytes);
- :mod:`.motion`: :func:`sample_motion_image`, :func:`render_motion_image` (stills of motion);
- :mod:`.nuisance`: the video-only nuisances and the bad frames;
- :mod:`.captions`: :func:`describe_scene`, :func:`describe_frame`, :func:`video_captions`;
- :mod:`.plan`: which videos and twins a world has, and its splits;
- :mod:`.writers`: the world's files and the MSR-VTT formats;
- :mod:`.world`: :func:`generate_world`, :func:`ensure_world`, :func:`generator_sha`.

This package exports the public names of all of them.
"""

from vrlib.data.synthetic.captions import (
    AUDIO_CAPTIONS,
    BACKGROUND_PHRASES,
    CAPTION_TAGS,
    EVENT_PHRASES,
    POSITION_PHRASES,
    describe_frame,
    describe_scene,
    motion_caption,
    video_captions,
)
from vrlib.data.synthetic.config import (
    BACKGROUNDS,
    COLOURS,
    EVENT_TYPES,
    OPPOSITE,
    PLAIN_BACKGROUNDS,
    POSITIONS,
    PRESETS,
    SHAPES,
    SIZES,
    TEXTURE_GREYS,
    WORLD_VERSION,
    WorldConfig,
    resolve_config,
)
from vrlib.data.synthetic.motion import render_motion_image, sample_motion_image
from vrlib.data.synthetic.nuisance import (
    apply_bad_frames,
    apply_shift,
    crf_for,
    plan_bad_frames,
    sample_shift,
    video_background,
)
from vrlib.data.synthetic.plan import HOLDOUT_KEEP, held_out_concepts
from vrlib.data.synthetic.render import (
    SHAPE_MASKS,
    X264_OPTIONS,
    draw,
    encode_mp4,
    render,
    render_video,
    x264_options,
)
from vrlib.data.synthetic.scenes import (
    concepts,
    position_word,
    reverse_events,
    sample_image,
    sample_video,
    scene_at,
    size_word,
)
from vrlib.data.synthetic.world import ensure_world, generate_world, generator_sha
from vrlib.data.synthetic.writers import image_rows

__all__ = [
    "AUDIO_CAPTIONS",
    "BACKGROUNDS",
    "BACKGROUND_PHRASES",
    "CAPTION_TAGS",
    "COLOURS",
    "EVENT_PHRASES",
    "EVENT_TYPES",
    "HOLDOUT_KEEP",
    "OPPOSITE",
    "PLAIN_BACKGROUNDS",
    "POSITIONS",
    "POSITION_PHRASES",
    "PRESETS",
    "SHAPES",
    "SHAPE_MASKS",
    "SIZES",
    "TEXTURE_GREYS",
    "WORLD_VERSION",
    "WorldConfig",
    "X264_OPTIONS",
    "apply_bad_frames",
    "apply_shift",
    "concepts",
    "crf_for",
    "describe_frame",
    "describe_scene",
    "draw",
    "encode_mp4",
    "ensure_world",
    "generate_world",
    "generator_sha",
    "held_out_concepts",
    "image_rows",
    "motion_caption",
    "plan_bad_frames",
    "position_word",
    "render",
    "render_motion_image",
    "render_video",
    "resolve_config",
    "reverse_events",
    "sample_image",
    "sample_motion_image",
    "sample_shift",
    "sample_video",
    "scene_at",
    "size_word",
    "video_background",
    "video_captions",
    "x264_options",
]
