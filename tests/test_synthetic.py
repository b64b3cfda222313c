"""The embedded synthetic world: files and schemas, twins, tags, determinism, MSR-VTT formats, CLI."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from vrlib.data import synthetic as syn

TINY = {"num_images": 12, "num_videos": 6}  # seconds to generate; twins: 1 pair
# Every mechanism off: the world as it was before they existed.
MECHANISMS_OFF = {
    "motion_image_share": 0.0,
    "video_shift": 0.0,
    "bad_frame_share": 0.0,
    "video_concept_holdout": 0.0,
}
ANNOTATIONS = (
    "world.json",
    "splits.json",
    "annotations/images.jsonl",
    "annotations/videos.jsonl",
    "annotations/captions.jsonl",
    "msrvtt/MSRVTT_data.json",
    "msrvtt/MSRVTT_JSFUSION_test.csv",
    "msrvtt/MSRVTT_train.9k.csv",
    "msrvtt/MSRVTT_train.7k.csv",
)
# Words that say something happens over time; written out here, not taken from the module, so a
# motion word slipping into the module's still-scene vocabulary makes the tests fail.
TIME_WORDS = {
    "moves", "moving", "move", "slides", "sliding", "goes", "going", "rises", "rising", "falls",
    "falling", "grows", "growing", "shrinks", "shrinking", "gets", "getting", "becomes", "becoming",
    "turns", "turning", "changes", "changing", "appears", "appearing", "disappears", "disappearing",
    "vanishes", "vanishing", "pops", "popping", "shows", "showing", "suddenly", "then", "before",
    "after", "finally", "first", "end", "upward", "downward",
}  # fmt: skip


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def decode(path: Path) -> tuple[np.ndarray, av.video.stream.VideoStream]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        return frames, stream


@pytest.fixture(scope="module")
def world(smoke_world: Path) -> dict:
    root = smoke_world
    return {
        "root": root,
        "record": json.loads((root / "world.json").read_text()),
        "images": jsonl(root / "annotations/images.jsonl"),
        "videos": {v["video_id"]: v for v in jsonl(root / "annotations/videos.jsonl")},
        "captions": jsonl(root / "annotations/captions.jsonl"),
        "splits": json.loads((root / "splits.json").read_text()),
    }


def captions_by_video(world: dict) -> dict[str, list[dict]]:
    out = defaultdict(list)
    for c in world["captions"]:
        out[c["video_id"]].append(c)
    return out


def twin_pairs(world: dict) -> list[tuple[dict, dict]]:
    videos = world["videos"]
    return [
        (videos[v["meta"]["reversed_of"]], v) for v in videos.values() if v["meta"]["reversed_of"]
    ]


# ----------------------------------------------------------------------------- files and schemas


def test_world_json_records_preset_seed_version_and_counts(world: dict) -> None:
    rec = world["record"]
    assert {"preset", "seed", "version", "params", "num_images", "num_videos"} <= set(rec)
    assert (rec["preset"], rec["seed"], rec["version"]) == ("smoke", 0, syn.WORLD_VERSION)
    assert rec["params"] == {**syn.WorldConfig().__dict__, **syn.PRESETS["smoke"]}
    motion = round(syn.PRESETS["smoke"]["motion_image_share"] * 300)
    assert rec["num_images"] == len(world["images"]) == 300 + 2 * motion  # stills and twins
    assert rec["num_videos"] == len(world["videos"]) == 24


def plain_images(world: dict) -> list[dict]:
    return [r for r in world["images"] if "motion" not in r["attributes"]]


def test_images_are_112px_rgb_pngs_with_attributes(world: dict) -> None:
    root = world["root"]
    splits = Counter(r["split"] for r in plain_images(world))
    assert set(splits) == {"train", "val", "test"} and splits["train"] > splits["val"]
    for i, row in enumerate(plain_images(world)):
        assert set(row) == {"image_id", "path", "caption", "split", "attributes"}
        assert row["image_id"] == f"img_{i:06d}" and row["path"] == f"images/img_{i:06d}.png"
        attrs = row["attributes"]
        assert attrs["background"] in syn.BACKGROUNDS and 1 <= len(attrs["objects"]) <= 2
        for obj in attrs["objects"]:
            assert obj["shape"] in syn.SHAPES and obj["colour"] in syn.COLOURS
            assert obj["size"] in syn.SIZES and obj["position"] in syn.POSITIONS
            assert obj["shape"] in row["caption"]
    for row in plain_images(world)[:20]:
        with Image.open(root / row["path"]) as im:
            assert (im.format, im.mode, im.size) == ("PNG", "RGB", (112, 112))
            pixels = np.asarray(im)
        assert np.array_equal(
            pixels, syn.render(row["attributes"]["background"], row["attributes"]["objects"], 112)
        )


def test_videos_jsonl_schema_and_splits(world: dict) -> None:
    splits, videos = world["splits"], world["videos"]
    assert set(splits) == {"train", "val", "test"}
    listed = [v for ids in splits.values() for v in ids]
    assert sorted(listed) == sorted(videos) and len(set(listed)) == len(listed)
    assert len(splits["train"]) > len(splits["val"]) > 0 and len(splits["test"]) > 0
    for name, ids in splits.items():
        assert all(videos[v]["split"] == name for v in ids)
    for vid, v in videos.items():
        assert set(v) == {"video_id", "path", "split", "meta"} and v["path"] == f"videos/{vid}.mp4"
        m = v["meta"]
        assert m["fps"] == 10 and m["num_frames"] == round(m["duration"] * 10)
        assert m["num_shots"] == len(m["events"]) >= 1
        frames = [e["frames"] for e in m["events"]]
        assert frames[0][0] == 0 and frames[-1][1] == m["num_frames"]
        assert all(a[1] == b[0] for a, b in zip(frames, frames[1:], strict=False))
        for shot, ev in enumerate(m["events"]):
            assert ev["shot"] == shot and ev["type"] in syn.EVENT_TYPES
            assert {"shape", "colour", "size", "background", "event_frames", "start", "end"} <= set(
                ev
            )
            assert (
                ev["frames"][0] <= ev["event_frames"][0] <= ev["event_frames"][1] <= ev["frames"][1]
            )


def test_mp4_files_are_h264_112px_10fps_with_the_annotated_frame_count(world: dict) -> None:
    for vid, v in world["videos"].items():
        frames, stream = decode(world["root"] / v["path"])
        assert stream.codec_context.name == "h264" and stream.codec_context.format.name == "yuv420p"
        assert float(stream.average_rate) == 10.0
        assert frames.shape == (v["meta"]["num_frames"], 112, 112, 3), vid


def planned(preset: str, seed: int = 0, **overrides) -> list:
    """The world's plan as ``generate_world`` makes it, without rendering."""
    from vrlib.data.synthetic.plan import apply_concept_holdout, assign_splits, plan_videos

    cfg = syn.resolve_config(preset, **overrides)
    videos = plan_videos(cfg, seed)
    assign_splits(videos, cfg, seed)
    apply_concept_holdout(videos, cfg, seed)
    return videos


def test_decoded_frames_show_the_annotated_scene(world: dict) -> None:
    """Frames decoded from the mp4 match a fresh render of the plan, nuisances and bad frames
    included (up to H.264 loss, heavier with ``video_shift``)."""
    from vrlib.data.synthetic.writers import video_frames

    cfg = syn.resolve_config("smoke")
    originals = [v for v in planned("smoke") if v.reversed_of is None][:6]
    for v in originals:
        frames, _ = decode(world["root"] / f"videos/{v.video_id}.mp4")
        assert world["videos"][v.video_id]["meta"]["events"] == v.events
        expected = video_frames(v, cfg, seed=0)
        for i in (0, len(frames) // 2, len(frames) - 1):
            assert np.abs(frames[i].astype(int) - expected[i]).mean() < 8.0, (v.video_id, i)


def test_with_every_mechanism_off_frames_are_the_plain_render(tmp_path: Path) -> None:
    root = syn.generate_world(tmp_path / "w", "smoke", 0, **TINY, **MECHANISMS_OFF)
    images = jsonl(root / "annotations/images.jsonl")
    assert len(images) == TINY["num_images"] and not any(
        "motion" in r["attributes"] for r in images
    )
    record = json.loads((root / "world.json").read_text())
    assert record["encoder"]["options"]["crf"] == "20" and record["held_out_concepts"] == []
    for v in jsonl(root / "annotations/videos.jsonl"):
        assert not {"shift", "bad_frames", "held_out_concepts"} & set(v["meta"])
        assert not any("background_style" in ev for ev in v["meta"]["events"])
        frames, _ = decode(root / v["path"])
        for i in (0, len(frames) // 2, len(frames) - 1):
            scene = syn.scene_at(v["meta"]["events"], i)
            expected = syn.render(scene["background"], scene["objects"], 112)
            assert np.abs(frames[i].astype(int) - expected).mean() < 4.0, (v["video_id"], i)


def test_each_knob_changes_only_its_own_files(tmp_path: Path) -> None:
    """Stills of motion leave the videos alone; the video knobs leave the images alone."""
    base = syn.generate_world(tmp_path / "off", "smoke", 0, **TINY, **MECHANISMS_OFF)
    motion = syn.generate_world(
        tmp_path / "m", "smoke", 0, **TINY, **(MECHANISMS_OFF | {"motion_image_share": 0.5})
    )
    video = syn.generate_world(
        tmp_path / "v",
        "smoke",
        0,
        **TINY,
        **(MECHANISMS_OFF | {"video_shift": 0.6, "bad_frame_share": 0.2}),
    )

    def files(root: Path, folder: str) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted((root / folder).iterdir())}

    assert files(motion, "videos") == files(base, "videos")
    assert set(files(motion, "images")) > set(files(base, "images"))
    assert all(files(motion, "images")[k] == b for k, b in files(base, "images").items())
    assert files(video, "images") == files(base, "images")
    assert files(video, "videos") != files(base, "videos")


def test_lengths_spread_and_longer_videos_have_more_shots(world: dict) -> None:
    metas = sorted((v["meta"] for v in world["videos"].values()), key=lambda m: m["duration"])
    assert metas[-1]["duration"] >= 3 * metas[0]["duration"]
    half = len(metas) // 2
    shots = [np.mean([m["num_shots"] for m in part]) for part in (metas[:half], metas[half:])]
    assert shots[1] > shots[0]
    assert any(m["num_shots"] >= 2 for m in metas)


# ----------------------------------------------------------------------------- captions and tags


def test_about_twenty_captions_per_video_with_audio_and_temporal(world: dict) -> None:
    by_video = captions_by_video(world)
    assert set(by_video) == set(world["videos"])
    for vid, caps in by_video.items():
        texts = [c["caption"] for c in caps]
        assert 15 <= len(caps) <= 20 and len(set(texts)) == len(texts), vid
        tags = Counter(t for c in caps for t in c["tags"])
        assert 1 <= tags["audio"] <= 2 and tags["temporal"] >= 5 and tags["partial"] >= 3, vid
        assert tags["full"] >= 5 and tags["paraphrase"] >= 3, vid
        assert caps[0]["tags"] == ["full", "temporal"]  # the canonical description comes first


def test_tags_follow_the_caption_text(world: dict) -> None:
    for c in world["captions"]:
        tags = set(c["tags"])
        assert tags and tags <= set(syn.CAPTION_TAGS)
        if "audio" in tags:
            assert tags == {"audio"} and c["caption"] in syn.AUDIO_CAPTIONS
            continue
        assert len(tags & {"full", "partial"}) == 1
        says_time = bool(words(c["caption"]) & TIME_WORDS)
        assert ("temporal" in tags) == says_time, c


def test_full_caption_names_every_shot_in_order(world: dict) -> None:
    by_video = captions_by_video(world)
    for vid, v in world["videos"].items():
        canonical = by_video[vid][0]["caption"]
        at = [canonical.find(" " + ev["shape"]) for ev in v["meta"]["events"]]
        assert all(i >= 0 for i in at) and at == sorted(at), (vid, canonical)
        if v["meta"]["num_shots"] > 1:
            assert "then" in words(canonical)


def test_plain_still_captions_have_no_motion_or_time_words(world: dict) -> None:
    for row in plain_images(world):
        assert not words(row["caption"]) & TIME_WORDS, row["caption"]


def test_motion_stills_are_train_images_that_speak_of_time(world: dict) -> None:
    motion = [r for r in world["images"] if "motion" in r["attributes"]]
    assert len(motion) == 2 * round(syn.PRESETS["smoke"]["motion_image_share"] * 300)
    assert {r["split"] for r in motion} == {"train"}
    timed = [bool(words(r["caption"]) & TIME_WORDS) for r in motion]
    assert np.mean(timed) > 0.7
    assert {r["attributes"]["motion"]["style"] for r in motion} == {"trail", "strip"}
    for row in motion[:10]:
        with Image.open(world["root"] / row["path"]) as im:
            pixels = np.asarray(im)
        assert np.array_equal(pixels, syn.render_motion_image(row["attributes"], 112))
        for ev in row["attributes"]["motion"]["events"]:
            assert ev["type"] in syn.EVENT_TYPES and ev["shape"] in syn.SHAPES


def _mirrored(caption: str, kind: str) -> str | None:
    """The caption with its (longest) phrase of event ``kind`` replaced by the same phrase of the
    opposite event ("moves to the left" -> "moves to the right"); None if it has none."""
    found = [
        (len(form), k, g)
        for k, forms in enumerate(syn.EVENT_PHRASES[kind])
        for g, form in enumerate(forms)
        if re.search(rf"\b{re.escape(form)}\b", caption)
    ]
    if not found:
        return None
    _, k, g = max(found)
    said, opposite = syn.EVENT_PHRASES[kind][k][g], syn.EVENT_PHRASES[syn.OPPOSITE[kind]][k][g]
    return re.sub(rf"\b{re.escape(said)}\b", opposite, caption)


def test_each_motion_still_has_its_reversed_twin_as_its_hard_negative(world: dict) -> None:
    """A twin: the same scenes, the events played backwards, the opposite direction words in the
    same phrasing; the pair is recorded in images.jsonl and is each other's only partner."""
    from vrlib.data.minimal_pairs import image_records, partner_lists

    rows = {r["image_id"]: r for r in world["images"]}
    motion = [r for r in world["images"] if "motion" in r["attributes"]]
    originals = [r for r in motion if "reversed_of" not in r]
    assert len(originals) * 2 == len(motion) > 0
    said = 0
    for orig in originals:
        twin = rows[orig["twin"]]
        assert twin["twin"] == twin["reversed_of"] == orig["image_id"]
        assert twin["split"] == "train"
        events = orig["attributes"]["motion"]["events"]
        reverse = syn.reverse_events(events, 10 * len(events))
        assert twin["attributes"]["motion"] == {**orig["attributes"]["motion"], "events": reverse}
        if len(events) > 1 or events[0]["type"] == "changes_colour":
            continue
        kind = events[0]["type"]
        mirrored = _mirrored(orig["caption"], kind)
        if mirrored is None:  # a caption of the look alone fits both
            assert twin["caption"] == orig["caption"]
            continue
        assert twin["caption"] == mirrored != orig["caption"], (orig, twin)
        assert _mirrored(twin["caption"], syn.OPPOSITE[kind]) == orig["caption"]
        said += 1
    assert said >= 20
    for row in [rows[r["twin"]] for r in originals[:10]]:
        with Image.open(world["root"] / row["path"]) as im:
            assert np.array_equal(np.asarray(im), syn.render_motion_image(row["attributes"], 112))

    records = image_records(world["root"], "train")
    partners = partner_lists(records)
    index = {r["image_id"]: i for i, r in enumerate(records)}
    for r in motion:
        differ = rows[r["twin"]]["caption"] != r["caption"]
        assert partners[index[r["image_id"]]] == ([index[r["twin"]]] if differ else [])
    paired = sum(bool(partners[index[r["image_id"]]]) for r in motion)
    assert paired > 0.8 * len(motion)
    stills = {index[r["image_id"]] for r in motion}  # plain stills never pair with motion ones
    assert not any(stills & set(p) for i, p in enumerate(partners) if i not in stills)


def test_every_word_of_every_video_caption_occurs_in_an_image_caption() -> None:
    """The unseen-token fraction of the default world is 0: checked on all its captions
    (train, val and test videos), without rendering a pixel."""
    from vrlib.data.synthetic.writers import annotation_rows, image_rows
    from vrlib.studies.world_measures import unseen_words

    cfg = syn.resolve_config("default")
    images = [r["caption"] for r in image_rows(cfg, 0) if r["split"] == "train"]
    _, captions = annotation_rows(planned("default"), cfg, 0)
    out = unseen_words(images, [c["caption"] for c in captions])
    assert out["words"] == [] and out["token_fraction"] == 0.0
    off = syn.resolve_config("default", motion_image_share=0.0)
    plain = [r["caption"] for r in image_rows(off, 0) if r["split"] == "train"]
    assert unseen_words(plain, [c["caption"] for c in captions])["token_fraction"] > 0.1


def test_every_visual_word_of_video_captions_is_in_image_captions(world: dict) -> None:
    """The image-text expert learns its vocabulary from images only."""
    image_vocab = set().union(*(words(r["caption"]) for r in world["images"]))
    visual = set(syn.SHAPES) | set(syn.COLOURS) | set(syn.SIZES) | set(syn.PLAIN_BACKGROUNDS)
    visual |= {"left", "right", "top", "bottom", "centre", "middle", "stripes", "striped"}
    visual |= {"checkerboard", "checkered", "background", "plain"}
    used = set().union(
        *(words(c["caption"]) for c in world["captions"] if "audio" not in c["tags"])
    )
    assert used & visual <= image_vocab, (used & visual) - image_vocab
    assert visual <= image_vocab, visual - image_vocab


# ----------------------------------------------------------------------------- reversed twins


def test_twins_share_a_split_and_test_has_at_least_two_pairs(world: dict) -> None:
    pairs = twin_pairs(world)
    assert 3 <= len(pairs) <= 5  # ~20% of the originals
    for orig, twin in pairs:
        assert orig["split"] == twin["split"]
        assert orig["meta"]["twin"] == twin["video_id"] and twin["meta"]["twin"] == orig["video_id"]
        assert orig["meta"]["reversed_of"] is None
    assert sum(orig["split"] == "test" for orig, _ in pairs) >= 2
    singles = [v for v in world["videos"].values() if v["meta"]["twin"] is None]
    assert all(v["meta"]["reversed_of"] is None for v in singles)


def test_default_world_plans_at_least_60_test_twin_pairs_kept_in_one_split() -> None:
    """Study 02's twin CIs need >= 60 test pairs; checked on the plan, without rendering."""
    from vrlib.data.synthetic.plan import assign_splits, plan_videos

    cfg = syn.resolve_config("default")
    videos = plan_videos(cfg, seed=0)
    assign_splits(videos, cfg, seed=0)
    split = {v.video_id: v.split for v in videos}
    pairs = [(v.video_id, v.twin) for v in videos if v.twin and v.reversed_of is None]
    assert all(split[a] == split[b] for a, b in pairs)
    test_pairs = sum(split[a] == "test" for a, _ in pairs)
    assert test_pairs >= 60
    assert 0 < sum(s == "test" and v.twin is None for v, s in ((v, v.split) for v in videos))
    assert sum(split[a] == "train" for a, _ in pairs) >= 60  # for twin batches and probes


def test_twin_frames_are_the_original_frames_reversed(world: dict) -> None:
    for orig, twin in twin_pairs(world):
        a, _ = decode(world["root"] / orig["path"])
        b, _ = decode(world["root"] / twin["path"])
        assert a.shape == b.shape
        reversed_diff = np.abs(a[::-1].astype(int) - b).mean(axis=(1, 2, 3))
        assert reversed_diff.max() < 6.0, orig["video_id"]  # H.264 noise only (crf 26 at shift 0.4)
        same_order_diff = np.abs(a.astype(int) - b).mean()
        assert same_order_diff > 5 * reversed_diff.mean(), orig["video_id"]  # the order did change


def test_twin_annotations_are_the_opposite_events(world: dict) -> None:
    opposite = {
        "moves_left": "moves_right", "moves_right": "moves_left", "moves_up": "moves_down",
        "moves_down": "moves_up", "grows": "shrinks", "shrinks": "grows",
        "changes_colour": "changes_colour", "appears": "disappears", "disappears": "appears",
    }  # fmt: skip
    by_video = captions_by_video(world)
    for orig, twin in twin_pairs(world):
        o, t = orig["meta"], twin["meta"]
        assert [opposite[e["type"]] for e in reversed(o["events"])] == [
            e["type"] for e in t["events"]
        ]
        for eo, et in zip(reversed(o["events"]), t["events"], strict=True):
            assert (eo["start"]["colour"], eo["end"]["colour"]) == (
                et["end"]["colour"],
                et["start"]["colour"],
            )
            assert eo["shape"] == et["shape"] and eo["background"] == et["background"]
        n = o["num_frames"]
        for i in range(n):
            so, st = syn.scene_at(o["events"], i), syn.scene_at(t["events"], n - 1 - i)
            key = [(x["shape"], x["colour"], x["size"], x["position"]) for x in so["objects"]]
            key_twin = [(x["shape"], x["colour"], x["size"], x["position"]) for x in st["objects"]]
            assert so["background"] == st["background"] and key == key_twin, (
                orig["video_id"],
                i,
            )
        assert by_video[orig["video_id"]][0]["caption"] != by_video[twin["video_id"]][0]["caption"]


def test_reverse_events_twice_is_identity(world: dict) -> None:
    for v in world["videos"].values():
        m = v["meta"]
        assert (
            syn.reverse_events(syn.reverse_events(m["events"], m["num_frames"]), m["num_frames"])
            == m["events"]
        )


def test_describe_frame_names_what_is_visible(world: dict) -> None:
    v = next(iter(world["videos"].values()))
    ev = v["meta"]["events"][0]
    text = syn.describe_frame(v["meta"], ev["frames"][0])
    visible = syn.scene_at(v["meta"]["events"], ev["frames"][0])["objects"]
    assert all(o["shape"] in text for o in visible) and not words(text) & TIME_WORDS


# ----------------------------------------------------------------------------- MSR-VTT formats


def test_msrvtt_files_use_the_real_formats(world: dict) -> None:
    import pandas as pd

    root, videos, splits = world["root"] / "msrvtt", world["videos"], world["splits"]
    data = json.loads((root / "MSRVTT_data.json").read_text())
    assert set(data) == {"info", "videos", "sentences"}
    for i, entry in enumerate(data["videos"]):
        assert set(entry) == {
            "category",
            "url",
            "video_id",
            "start time",
            "end time",
            "split",
            "id",
        }
        assert entry["id"] == i and "?v=" in entry["url"]
        ours = videos[entry["video_id"]]
        assert (
            entry["split"] == {"train": "train", "val": "validate", "test": "test"}[ours["split"]]
        )
        assert entry["end time"] == ours["meta"]["duration"]
    assert len(data["sentences"]) == len(world["captions"])
    assert all(set(s) == {"caption", "video_id", "sen_id"} for s in data["sentences"])
    assert [s["sen_id"] for s in data["sentences"]] == list(range(len(data["sentences"])))

    test = pd.read_csv(root / "MSRVTT_JSFUSION_test.csv")
    assert list(test.columns) == ["key", "vid_key", "video_id", "sentence"]
    assert list(test["video_id"]) == splits["test"] and list(test["key"]) == [
        f"ret{i}" for i in range(len(test))
    ]
    captions = {(c["video_id"], c["caption"]) for c in world["captions"] if "full" in c["tags"]}
    assert all((v, s) in captions for v, s in zip(test["video_id"], test["sentence"], strict=True))
    assert list(pd.read_csv(root / "MSRVTT_train.9k.csv")["video_id"]) == sorted(
        splits["train"] + splits["val"]
    )
    assert list(pd.read_csv(root / "MSRVTT_train.7k.csv")["video_id"]) == splits["train"]
    for vid in videos:
        link = root / "videos" / "all" / f"{vid}.mp4"
        assert link.resolve() == (world["root"] / "videos" / f"{vid}.mp4").resolve()


def test_msrvtt_reader_reads_the_world(world: dict) -> None:
    from vrlib.data.datasets import load_dataset

    ds = load_dataset("msrvtt", world["root"] / "msrvtt", "1k-A")
    assert [v.video_id for v in ds.videos] == world["splits"]["test"]
    full = load_dataset("msrvtt", world["root"] / "msrvtt", "full")
    assert len(full.captions) == sum(
        world["videos"][c["video_id"]]["split"] == "test" for c in world["captions"]
    )


# ----------------------------------------------------------------------------- determinism, presets, ensure_world, CLI


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    a = syn.generate_world(tmp_path / "a", "smoke", 0, **TINY)
    b = syn.generate_world(tmp_path / "b", "smoke", 0, **TINY)
    c = syn.generate_world(tmp_path / "c", "smoke", 1, **TINY)
    for rel in ANNOTATIONS:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    differing = [rel for rel in ANNOTATIONS[1:] if (a / rel).read_bytes() != (c / rel).read_bytes()]
    assert "annotations/captions.jsonl" in differing and "annotations/videos.jsonl" in differing
    for path in sorted((a / "videos").glob("*.mp4")):
        assert path.read_bytes() == (b / "videos" / path.name).read_bytes(), path.name
        assert np.array_equal(decode(path)[0], decode(b / "videos" / path.name)[0])
    assert (a / "images/img_000000.png").read_bytes() != (c / "images/img_000000.png").read_bytes()


def test_overrides_change_the_preset_and_unknown_keys_are_rejected(tmp_path: Path) -> None:
    cfg = syn.resolve_config("smoke", num_videos=7, twin_fraction=0)
    assert (cfg.num_videos, cfg.twin_fraction, cfg.num_images) == (7, 0.0, 300)
    with pytest.raises(
        ValueError, match=r"unknown world parameter.*'num_vidoes'.*valid:.*num_videos"
    ):
        syn.generate_world(tmp_path / "w", "smoke", 0, num_vidoes=3)
    with pytest.raises(ValueError, match=r"unknown world preset 'huge'; valid: smoke, default"):
        syn.resolve_config("huge")
    with pytest.raises(ValueError, match=r"num_videos='3' must be int"):
        syn.resolve_config("smoke", num_videos="3")
    with pytest.raises(ValueError, match=r"size=113 must be even"):
        syn.resolve_config("smoke", size=113)
    assert not (tmp_path / "w").exists()  # rejected before anything is written


def test_ensure_world_reuses_a_complete_world_and_redoes_an_unfinished_one(tmp_path: Path) -> None:
    out = tmp_path / "w"
    syn.ensure_world(out, "smoke", 0, **TINY)
    record = out / "world.json"
    first = record.stat().st_mtime_ns
    assert syn.ensure_world(out, "smoke", 0, **TINY) == out and record.stat().st_mtime_ns == first

    record.unlink()  # as if killed before the end
    stale = out / "videos" / "vid_999999.mp4"
    stale.write_bytes(b"left over")
    syn.ensure_world(out, "smoke", 0, **TINY)
    assert record.is_file() and not stale.exists()

    syn.ensure_world(out, "smoke", 3, **TINY)  # another seed: regenerated in place
    assert json.loads(record.read_text())["seed"] == 3


def test_ensure_world_regenerates_a_world_written_by_another_generator(tmp_path: Path) -> None:
    out = tmp_path / "w"
    syn.ensure_world(out, "smoke", 0, **TINY)
    record = out / "world.json"
    assert json.loads(record.read_text())["generator_sha"] == syn.generator_sha()
    old = json.loads(record.read_text())
    record.write_text(json.dumps({**old, "generator_sha": "an older generator"}))
    syn.ensure_world(out, "smoke", 0, **TINY)
    assert json.loads(record.read_text())["generator_sha"] == syn.generator_sha()


def test_generator_sha_covers_every_module_of_the_package(tmp_path: Path) -> None:
    from vrlib.data.synthetic.world import sources_sha

    package = Path(syn.__file__).parent
    copy = tmp_path / "synthetic"
    copy.mkdir()
    for module in sorted(package.glob("*.py")):
        (copy / module.name).write_bytes(module.read_bytes())
    assert sources_sha(copy) == syn.generator_sha()  # the package's modules, nothing else
    for module in sorted(copy.glob("*.py")):  # an edit to any one module changes the hash
        original = module.read_bytes()
        module.write_bytes(original + b"# edited\n")
        assert sources_sha(copy) != syn.generator_sha(), module.name
        module.write_bytes(original)
    first, second = sorted(copy.glob("*.py"))[:2]  # moving code between modules changes it too
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(a + b[:10])
    second.write_bytes(b[10:])
    assert sources_sha(copy) != syn.generator_sha()
    (copy / "notes.txt").write_text("not source")
    first.write_bytes(a)
    second.write_bytes(b)
    assert sources_sha(copy) == syn.generator_sha()  # only Python sources count


def test_refuses_to_write_into_a_folder_that_is_not_a_world(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and is not a vrlib world"):
        syn.generate_world(tmp_path, "smoke", 0, **TINY)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_cli_synth_writes_a_world(tmp_path: Path) -> None:
    out = tmp_path / "cli-world"
    run = subprocess.run(
        [sys.executable, "-m", "vrlib", "synth", "--preset", "smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.strip().splitlines()[-1] == str(out)
    record = json.loads((out / "world.json").read_text())
    assert (record["preset"], record["num_videos"]) == ("smoke", 24)
    with (out / "msrvtt" / "MSRVTT_train.7k.csv").open() as f:
        assert next(csv.reader(f)) == ["video_id"]


# ----------------------------------------------------------------------------- mechanisms


def test_bad_frames_are_annotated_dark_or_covered_and_about_the_share(world: dict) -> None:
    share = syn.PRESETS["smoke"]["bad_frame_share"]
    middles = 0
    for v in list(world["videos"].values())[:8]:
        m = v["meta"]
        bad, kinds = m["bad_frames"], m["bad_frame_kinds"]
        assert len(bad) == len(kinds) and bad == sorted(set(bad))
        assert 0 < len(bad) <= 2 * share * m["num_frames"] + 3, v["video_id"]
        assert len(bad) < m["num_frames"] / 2  # most frames stay good
        middles += m["num_frames"] // 2 in bad
        frames, _ = decode(world["root"] / v["path"])
        for i, kind in zip(bad, kinds, strict=True):
            if kind == "blank":
                assert frames[i].mean() < 25, (v["video_id"], i)
    assert middles >= 1  # the middle frame is sometimes a bad pick


def test_video_shift_is_graded_and_zero_is_identity() -> None:
    rng = np.random.default_rng(0)
    clean = [syn.render("gray", [], 112) for _ in range(5)]
    params0 = syn.sample_shift(np.random.default_rng(1), 0.0, 2)
    assert params0["cast"] == [1.0] * 3 and params0["blur"] == 0 and params0["jitter"] == 0
    assert not any(params0["video_backgrounds"]) and params0["crf"] == 20
    out0 = syn.apply_shift(clean, params0, rng)
    assert all(np.array_equal(a, b) for a, b in zip(out0, clean, strict=True))
    distance = []
    for shift in (0.2, 0.5, 1.0):
        params = syn.sample_shift(np.random.default_rng(1), shift, 2)  # same draws, scaled
        frames = syn.apply_shift(clean, params, np.random.default_rng(2))
        distance.append(
            np.mean([np.abs(f.astype(int) - c).mean() for f, c in zip(frames, clean, strict=True)])
        )
    assert distance == sorted(distance) and distance[0] > 0
    for name in syn.BACKGROUNDS:  # video-only renditions differ from every still background
        assert not np.array_equal(syn.video_background(name, 112), syn.render(name, [], 112))


def test_held_out_concepts_are_rare_in_train_videos_and_present_in_test() -> None:
    """Checked on the default world's plan (no rendering)."""
    videos = planned("default")
    held = set(syn.held_out_concepts(syn.resolve_config("default"), 0))
    assert len(held) == round(syn.PRESETS["default"]["video_concept_holdout"] * 56)
    share = {
        split: np.mean([bool(syn.concepts(v.events) & held) for v in videos if v.split == split])
        for split in ("train", "test")
    }
    assert share["test"] > 0.2 and share["train"] < share["test"] / 4, share
    off = planned("default", video_concept_holdout=0.0)
    assert [v.events for v in off if v.split == "test"] == [
        v.events for v in videos if v.split == "test"
    ]


def test_default_world_has_at_least_300_test_videos() -> None:
    videos = planned("default")
    assert sum(v.split == "test" for v in videos) >= 300
    assert sum(v.split == "train" for v in videos) >= 600
