"""Level-identification items: image items from labelled studies and text items answered by construction.

Image items (``modality: image+text``): a sagittal slice through the level asked about, with a red circle on it and a
blue square on a reference vertebra whose name the question gives ("the vertebra in the blue square is L3: which
level is in the red circle?"), so the task is counting levels on the image, as a clinician counts from C2 or S1. The
axial variant shows the axial slice through the level (red circle) beside a sagittal localiser with the slice
position (yellow line) and the reference (blue square). Answers are the names the label map gives
(``core.spine.numbering`` through ``core.spine.reference``), discs the gap between two named vertebrae.

Text items (``modality: text``), answers computed with ``core.spine.anatomy`` / ``core.spine.numbering``:
counting (n levels above/below, disc below, how many vertebrae/discs between), numbering variants (13 thoracic, six
lumbar, sacralised L5, 11 thoracic, what a bottom-up count calls a level when the lumbar count differs), label-map
conventions (VerSe, TotalSegmentator, SCT values), and anatomical landmarks quoted from the knowledge base (each item
cites the line; the knowledge base is not clinician-reviewed, and those items say so).
"""
from __future__ import annotations

import random
from pathlib import Path

from core.spine.anatomy import STANDARD, SpineConfiguration
from core.spine.numbering import get_numbering
from spinebench import render
from spinebench.schema import MCQ_SYSTEM, Item
from spinebench.studies import LabelledStudy

LETTERS = "ABCD"
AXIS = "level_identification"


def interleaved(config: SpineConfiguration = STANDARD) -> list[str]:
    """C1, C2, C2-C3, C3, ... L5, L5-S1, S1: vertebrae and discs in spine order."""
    out: list[str] = []
    for v in config.vertebrae:
        above = config.disc_above(v)
        if above:
            out.append(above)
        out.append(v)
    return out


def lettered(correct: str, distractors: list[str], rng: random.Random) -> tuple[dict[str, str], str]:
    """Four options (correct + 3 distinct distractors) in a seeded random order; returns (options, answer letter)."""
    pool = [d for d in dict.fromkeys(distractors) if d != correct][:3]
    if len(pool) < 3:
        raise ValueError(f"not enough distractors for {correct!r}: {distractors}")
    choices = [correct, *pool]
    rng.shuffle(choices)
    options = dict(zip(LETTERS, choices))
    return options, next(k for k, v in options.items() if v == correct)


def level_distractors(target: str, config: SpineConfiguration, rng: random.Random) -> list[str]:
    """Same-kind neighbours of a level (vertebra or disc), nearest first, with a random side for the third."""
    same = [x for x in interleaved(config) if ("-" in x) == ("-" in target)]
    i = same.index(target)
    near = [same[j] for j in (i - 1, i + 1) if 0 <= j < len(same)]
    far = [same[j] for j in (i - 2, i + 2, i - 3, i + 3) if 0 <= j < len(same)]
    rng.shuffle(far)
    return near + far


# --- image items ----------------------------------------------------------------------------------------------
def _reference_for(study: LabelledStudy, target: str) -> str:
    """The vertebra named in the question: the nearest other vertebra, preferring one not cut by the view."""
    names = [v for v in study.vertebrae if v != target]
    order = interleaved(study.configuration)
    pos = order.index(target)
    return min(names, key=lambda v: (v in study.partial, abs(order.index(v) - pos), order.index(v)))


def _what(study: LabelledStudy) -> str:
    if study.on_cord:
        return ("The circle and the square are placed on the spinal cord, at the height of a vertebral level. "
                "The level of the blue square is {ref}.")
    return "The vertebra marked with the blue square is {ref}."


def image_items(study: LabelledStudy, out_dir: Path, rel: str = "images") -> list[Item]:
    """Sagittal and axial items for every named vertebra and disc of a study; PNGs written to ``out_dir``."""
    spec = study.spec
    volume = study.image if study.image is not None else study.labels
    is_mask = study.image is None
    shown = (f"{spec.description} (rendered from the segmentation mask: the image itself is not available)"
             if is_mask else spec.description)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = []
    for target in study.levels_in_view():
        ref = _reference_for(study, target)
        p_target, p_ref = study.point(target), study.point(ref)
        for plane in ("sagittal", "axial"):
            item_id = f"lvl-img-{spec.key}-{plane}-{target}"
            rng = random.Random(item_id)
            sag = render.render_plane(volume, p_target, "sagittal", fov_mm=spec.fov_mm, is_mask=is_mask)
            render.square(sag, p_ref)
            if plane == "sagittal":
                render.circle(sag, p_target)
                image = sag.image
                layout = "Sagittal slice, anterior to the left, superior at the top."
                ask = "Which level is marked with the red circle?"
            else:
                render.slice_line(sag, p_target)
                ax = render.render_plane(volume, p_target, "axial", fov_mm=min(spec.fov_mm, 120.0), is_mask=is_mask)
                render.circle(ax, p_target)
                image = render.side_by_side(sag.image, ax.image)
                layout = ("Left: sagittal localiser (anterior to the left, superior at the top); the yellow line is "
                          "the position of the axial slice shown on the right (anterior at the top, patient's right "
                          "on the left).")
                ask = "At which level is the axial slice, marked with the red circle?"
            name = f"{item_id}.png"
            (out_dir / name).write_bytes(render.png_bytes(image))
            options, answer = lettered(target, level_distractors(target, study.configuration, rng), rng)
            question = f"{shown}. {layout} {_what(study).format(ref=ref)} {ask}"
            items.append(Item(
                id=item_id, axis=AXIS, format="mcq", modality="image+text", subtype=f"image_{plane}",
                system=MCQ_SYSTEM, turns=[question], images=[f"{rel}/{name}"], options=options, answer=answer,
                case_id=study.case_id, review_status="by_construction",
                source={"kind": "label_map", "folder": spec.folder, "labels": spec.labels, "image": spec.image,
                        "numbering": spec.numbering, "label_value": study.label_values.get(target),
                        "licence": spec.licence, "origin": spec.origin},
                meta={"target": target, "reference": ref, "target_kind": "disc" if "-" in target else "vertebra",
                      "partial": target in study.partial, "derived_disc": target in study.derived_discs,
                      "on_cord": study.on_cord, "mask_rendering": is_mask},
            ))
    return items


# --- text items -----------------------------------------------------------------------------------------------
def _text_item(item_id: str, subtype: str, question: str, correct: str, distractors: list[str],
               rng: random.Random, source: dict, review: str = "by_construction", **meta) -> Item:
    options, answer = lettered(correct, distractors, rng)
    return Item(id=item_id, axis=AXIS, format="mcq", modality="text", subtype=subtype, system=MCQ_SYSTEM,
                turns=[question], options=options, answer=answer, review_status=review, source=source, meta=meta)


_CODE = {"kind": "construction", "module": "core.spine.anatomy"}
_STD = "In a standard spine (7 cervical, 12 thoracic and 5 lumbar vertebrae, then the sacrum)"


def counting_items(n_each: int = 8, seed: str = "counting-v1") -> list[Item]:
    rng = random.Random(seed)
    cfg = STANDARD
    verts = list(cfg.vertebrae[:-1])  # C1..L5
    items: list[Item] = []
    for n in range(n_each):
        steps = rng.randint(1, 4)
        start = rng.choice(verts[1:len(verts) - steps - 1])
        correct = cfg.shifted(start, steps)
        wrong = [cfg.shifted(start, s) for s in (steps - 1, steps + 1, steps + 2, -steps) if s]
        items.append(_text_item(f"lvl-txt-below-{n}", "counting", f"{_STD}, which vertebra lies {steps} "
                                f"level{'s' if steps > 1 else ''} below {start}?", correct,
                                [w for w in wrong if w], rng, _CODE, start=start, steps=steps))
        start = rng.choice(verts[steps + 2:])
        correct = cfg.shifted(start, -steps)
        wrong = [cfg.shifted(start, s) for s in (-steps + 1, -steps - 1, -steps - 2, steps) if s]
        items.append(_text_item(f"lvl-txt-above-{n}", "counting", f"{_STD}, which vertebra lies {steps} "
                                f"level{'s' if steps > 1 else ''} above {start}?", correct,
                                [w for w in wrong if w], rng, _CODE, start=start,
                                steps=-steps))
        v = rng.choice(verts[2:])
        below = cfg.disc_below(v)
        wrong = [cfg.disc_above(v), cfg.disc_below(cfg.shifted(v, 1)), cfg.disc_above(cfg.shifted(v, -1))]
        items.append(_text_item(f"lvl-txt-disc-below-{n}", "counting", f"{_STD}, which intervertebral disc lies "
                                f"immediately below the {v} vertebral body?", below, [w for w in wrong if w], rng,
                                _CODE, vertebra=v))
        a = rng.choice(verts[:-4])
        b = rng.choice(verts[verts.index(a) + 2: min(len(verts), verts.index(a) + 9)])
        count = cfg.index(b) - cfg.index(a) + 1
        items.append(_text_item(f"lvl-txt-count-vertebrae-{n}", "counting", f"{_STD}, how many vertebrae are "
                                f"there from {a} to {b}, counting both?", str(count),
                                [str(count - 1), str(count + 1), str(count - 2)], rng, _CODE, start=a, end=b))
        a = rng.choice(verts[1:-4])
        b = rng.choice(verts[verts.index(a) + 2: min(len(verts), verts.index(a) + 9)])
        discs = cfg.index(b) - cfg.index(a)
        items.append(_text_item(f"lvl-txt-count-discs-{n}", "counting", f"{_STD}, how many intervertebral discs "
                                f"lie between the {a} and {b} vertebral bodies?", str(discs),
                                [str(discs + 1), str(discs - 1), str(discs + 2)], rng, _CODE, start=a, end=b))
    return items


def variant_items(seed: str = "variants-v1") -> list[Item]:
    """Numbering variants; every answer is computed from a SpineConfiguration."""
    rng = random.Random(seed)
    t13 = SpineConfiguration(thoracic=13)
    l6 = SpineConfiguration(lumbar=6)
    l4 = SpineConfiguration(lumbar=4)
    t11 = SpineConfiguration(thoracic=11)
    src = {"kind": "construction", "module": "core.spine.anatomy.SpineConfiguration"}
    cases = [
        ("t13-disc", ("A patient has 13 rib-bearing thoracic vertebrae and 5 lumbar vertebrae, counted from C2. "
                     "Which disc lies directly below the last thoracic vertebra?"),
         t13.disc_below("T13"), ["T12-L1", "T12-T13", "L1-L2"]),
        ("t13-above-l1", ("A patient has 13 thoracic vertebrae and 5 lumbar vertebrae, counted from C2. Which "
                         "vertebra lies directly above L1?"), t13.neighbours("L1")[0], ["T12", "L2", "T11"]),
        ("l6-lowest-disc", ("A patient has six lumbar-type vertebrae, counted from C2. Which is the lowest "
                           "(lumbosacral) disc?"), l6.discs[-1], ["L5-S1", "L4-L5", "L5-L6"]),
        ("l6-above-sacrum", ("A patient has six lumbar-type vertebrae, counted from C2. Which vertebra lies directly "
                            "above the sacrum?"), l6.neighbours("S1")[0], ["L5", "S1", "L4"]),
        ("l6-n-discs", ("A patient has six lumbar-type vertebrae. How many intervertebral discs lie between L1 and the "
                       "sacrum (from L1-L2 down to the lumbosacral disc)?"),
         str(sum(1 for d in l6.discs if d.startswith("L"))), ["5", "4", "7"]),
        ("l4-lowest-disc", ("A patient has a sacralised L5 (only four lumbar vertebrae above the sacrum), counted "
                           "from C2. Which is the lowest disc?"), l4.discs[-1], ["L5-S1", "L3-L4", "L4-L5"]),
        ("l4-above-sacrum", ("A patient has a sacralised L5, so only four lumbar vertebrae lie above the sacrum. "
                            "Which vertebra lies directly above the sacrum?"), l4.neighbours("S1")[0],
         ["L5", "L3", "S1"]),
        ("t11-below", ("A patient has only 11 rib-bearing thoracic vertebrae and 5 lumbar vertebrae, counted from "
                      "C2. Which vertebra lies directly below T11?"), t11.neighbours("T11")[1], ["T12", "L2", "T10"]),
        ("t11-disc", ("A patient has 11 thoracic and 5 lumbar vertebrae, counted from C2. Which disc lies directly "
                     "below T11?"), t11.disc_below("T11"), ["T11-T12", "T12-L1", "T10-T11"]),
    ]
    # bottom-up counting with a differing lumbar count: what a count from the sacrum calls a vertebra
    for key, cfg, true_name in (("l6", l6, "L5"), ("l4", l4, "L4"), ("l6b", l6, "L3")):
        steps_above_sacrum = cfg.index("S1") - cfg.index(true_name)
        called = STANDARD.shifted("S1", -steps_above_sacrum)
        lumbar = "six lumbar-type vertebrae" if cfg.lumbar == 6 else "a sacralised L5 (four lumbar vertebrae)"
        wrong = [STANDARD.shifted(called, d) for d in (1, -1, 2, -2) if STANDARD.shifted(called, d)]
        wrong = [true_name, *wrong] if true_name != called else wrong
        cases.append((f"bottom-up-{key}", (f"A patient has {lumbar}. The true {true_name} (counted from C2) is "
                      "labelled by a reader who counts upwards from the sacrum and assumes five lumbar vertebrae. "
                      "What will that reader call it?"), called, wrong))
    items = []
    for key, question, correct, wrong in cases:
        items.append(_text_item(f"lvl-txt-variant-{key}", "variant", question, correct, wrong, rng, src))
    return items


def numbering_items(seed: str = "numbering-v1") -> list[Item]:
    """Label-map conventions: what a label value means (core.spine.numbering)."""
    rng = random.Random(seed)
    picks = [("verse", [5, 19, 22, 24, 104, 118, 123]), ("totalseg", [27, 29, 32, 41, 44]),
             ("totalseg_v1", [18, 23, 35]), ("sct", [2, 7, 20]), ("totalseg_vertebrae_mr", [2, 6])]
    items = []
    for key, values in picks:
        numbering = get_numbering(key)
        for value in values:
            name = numbering.name_of(value)
            kind = "disc" if "-" in name else "vertebra"
            question = (f"In the {numbering.title} label convention, which {kind} does label value {value} "
                        "denote?")
            items.append(_text_item(f"lvl-txt-numbering-{key}-{value}", "numbering_convention", question, name,
                                    level_distractors(name, STANDARD, rng), rng,
                                    {"kind": "construction", "module": "core.spine.numbering", "numbering": key},
                                    numbering=key, value=value))
    return items


# (id, question, answer, distractors, knowledge file, phrase that must appear in it)
LANDMARKS = [
    ("atlas", "Which vertebra is a ring with no vertebral body?", "C1", ["C2", "C7", "T1"],
     "anatomy-craniocervical-junction.md", "The atlas is a ring with no vertebral body"),
    ("dens", "Which vertebra carries the dens (odontoid process)?", "C2", ["C1", "C3", "C7"],
     "anatomy-craniocervical-junction.md", "The axis carries the dens"),
    ("first-disc", "Which is the most cranial intervertebral disc of the spine?", "C2-C3",
     ["C1-C2", "C3-C4", "C0-C1"], "anatomy-craniocervical-junction.md", "the first disc is C2-C3"),
    ("prominens", "Which vertebra is called the vertebra prominens?", "C7", ["C6", "T1", "C2"],
     "anatomy-subaxial-cervical-spine.md", "C7, the vertebra prominens"),
    ("conus", "Around which level does the conus medullaris normally end in adults?", "L1-L2",
     ["T10-T11", "L3-L4", "L5-S1"], "anatomy-thoracic-spine.md", "The conus medullaris normally ends around L1-L2"),
    ("last-rib", "On CT or radiographs, which vertebra is usually the last rib-bearing vertebra?", "T12",
     ["T11", "L1", "T10"], "vertebral-counting-and-numbering.md", "the last rib-bearing vertebra is usually T12"),
    ("iliolumbar", "From which vertebra does the iliolumbar ligament usually arise?", "L5", ["L4", "L3", "S1"],
     "vertebral-counting-and-numbering.md", "The iliolumbar ligament usually arises from L5"),
]


def landmark_items(knowledge_dir: Path, seed: str = "landmarks-v1") -> list[Item]:
    """Landmark questions whose answer is quoted from the knowledge base (file and line in ``source``)."""
    rng = random.Random(seed)
    items = []
    for key, question, correct, wrong, doc, phrase in LANDMARKS:
        path = knowledge_dir / doc
        lines = path.read_text(encoding="utf-8").splitlines()
        line = next((n for n, text in enumerate(lines, 1) if phrase in text), None)
        if line is None:
            raise ValueError(f"{path}: the landmark phrase {phrase!r} is no longer there; update LANDMARKS")
        items.append(_text_item(f"lvl-txt-landmark-{key}", "landmark", question, correct, wrong, rng,
                                {"kind": "knowledge", "path": f"resources/knowledge/{doc}", "line": line,
                                 "quote": phrase}, review="knowledge_base"))
    return items
