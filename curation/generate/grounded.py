"""Level-grounded items from labelled cases: the answers come from the label map and the findings sheet, never
from a model.

For each case with named vertebrae (see :class:`~curation.sources.cases.LabelledCase`):

- ``which_level_marked`` (MCQ, image): one vertebra ringed, another one labelled as the anchor;
- ``count_from_sacrum`` (open, image): when L5 is in view in a standard spine, count the ringed vertebra from the
  sacrum (L5 = 1);
- ``disc_between`` (open, image and text): the disc between two labelled adjacent vertebrae;
- ``levels_in_view`` (open, image): name the ringed vertebrae top to bottom from one labelled anchor;
- ``levels_report`` (report, image): a structured report of the levels in view, with only the findings the sheet
  gives;
- ``level_consultation`` (consultation, image): patient and clinician talk about one marked level;
- ``finding_at_level`` / ``which_disc_narrowed`` / ``which_level_annotated`` from gradings (SPIDER, RSNA, local sheets).

Vertebrae cut by the field of view are never the marked target (their centre is unreliable) but may be anchors.
"""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np

from core.spine.anatomy import SpineConfiguration
from curation.generate.items import ItemDraft
from curation.sources.cases import Finding, LabelledCase

GENERATOR = "labels:grounded"
VERSION = "1"
ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth", 7: "seventh", 8: "eighth",
            9: "ninth", 10: "tenth", 11: "eleventh", 12: "twelfth"}
FINDING_WORDS = {"pfirrmann": "Pfirrmann grade", "modic": "Modic change", "disc_narrowing": "disc narrowing",
                 "disc_bulging": "disc bulging", "disc_herniation": "disc herniation",
                 "spondylolisthesis": "spondylolisthesis", "upper_endplate_defect": "upper endplate defect",
                 "lower_endplate_defect": "lower endplate defect"}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def configuration(case: LabelledCase) -> SpineConfiguration:
    names = set(case.vertebrae)
    return SpineConfiguration(thoracic=13 if "T13" in names else 12, lumbar=6 if "L6" in names else 5)


def finding_words(name: str) -> str:
    return FINDING_WORDS.get(name, name.replace("_", " "))


class GroundedGenerator:
    """Builds the items of one case and writes their key images under ``image_root``."""

    def __init__(self, image_root: Path) -> None:
        self.image_root = Path(image_root)

    # --- helpers ------------------------------------------------------------------------------------------------
    def _draft(self, case: LabelledCase, task: str, subtask: str, content: dict, chunk: str, location: str,
               levels: list[str], support: str, images: list[str] | None = None, variant: str = "") -> ItemDraft:
        return ItemDraft(
            task=task, subtask=subtask, content=content, source_id=f"case:{case.case_id}",
            chunk_id=f"case:{case.case_id}#{chunk}", location=location, generator=GENERATOR,
            generator_kind="labels", prompt_template=f"labels:{subtask}", prompt_version=VERSION, seed=0,
            levels=levels, region=case.region, images=images or [], case_id=case.case_id, group_key=case.case_id,
            variant=variant, support=support,
        )

    def _where(self, case: LabelledCase, name: str) -> str:
        label_file = case.label_path.name if case.label_path else "labels"
        value = case.label_values.get(name)
        return f"{label_file} label value {value}" if value is not None else f"{label_file} {name}"

    def _image(self, case: LabelledCase, view, name: str, **drawing) -> str:
        from curation.generate.render import draw_key_image

        rel = f"{slug(case.case_id)}/{name}.png"
        draw_key_image(view, self.image_root / rel, **drawing)
        return rel

    # --- all items of a case ------------------------------------------------------------------------------------
    def items(self, case: LabelledCase) -> tuple[list[ItemDraft], list[str]]:
        """(items, notes for the user)."""
        from curation.generate.render import sagittal_view

        drafts: list[ItemDraft] = []
        notes: list[str] = []
        if case.vertebrae:
            config = configuration(case)
            drafts += self._text_discs(case, config)
            try:
                view = sagittal_view(case)
            except (ValueError, OSError) as exc:
                notes.append(f"{case.case_id}: no key image ({exc}); text items only")
                view = None
            if view is not None:
                drafts += self._marked(case, config, view)
                drafts += self._discs(case, config, view)
                drafts += self._overview(case, view)
        else:
            notes.append(f"{case.case_id}: no named vertebrae")
        drafts += self._findings(case)
        return drafts, notes

    def _targets_and_anchor(self, case: LabelledCase) -> tuple[list[str], dict[str, str]]:
        names = list(case.vertebrae)
        targets = [n for n in names if n not in case.partial]
        anchors = {}
        for t in targets:
            others = [n for n in names if n != t]
            if not others:
                continue
            full = [n for n in others if n not in case.partial] or others
            anchors[t] = full[-1] if t != full[-1] else full[0]  # the lowest other vertebra, else the highest
            if case.numbering != "sct":  # counting from the sacrum: the sacrum, else L5, is the natural anchor
                for anchor in ("S1", "L5"):
                    if anchor in others:
                        anchors[t] = anchor
                        break
        return targets, anchors

    def _marked(self, case: LabelledCase, config: SpineConfiguration, view) -> list[ItemDraft]:
        out: list[ItemDraft] = []
        _targets, anchors = self._targets_and_anchor(case)
        for target, anchor in anchors.items():
            image = self._image(case, view, f"marked_{target}_anchor_{anchor}", labels={anchor: case.vertebrae[anchor]},
                                markers=[case.vertebrae[target]])
            steps = config.index(target) - config.index(anchor)
            direction = "above" if steps < 0 else "below"
            n = abs(steps)
            support = (f"{target} is labelled in the label map ({self._where(case, target)}); {anchor} is "
                       f"{self._where(case, anchor)}.")
            # options: the target and its nearest neighbours in the spine
            i = config.index(target)
            pool = [config.vertebra_at(i + d) for d in (-2, -1, 1, 2, 3, -3)]
            options = [target] + [p for p in pool if p and p != target and p != "S1"][:3]
            options.sort(key=config.index)
            marker_kind = "spinal cord level" if case.numbering == "sct" else "vertebra"
            content = {
                "question": (f"In this sagittal {case.modality or 'label-map'} image one vertebra is labelled "
                             f"{anchor}. Which {marker_kind} is marked with the red ring?"),
                "options": options, "answer_index": options.index(target),
                "rationale": (f"Counting from the labelled {anchor}, the marked level is {n} level"
                              f"{'s' if n != 1 else ''} {direction}: {target}."),
            }
            out.append(self._draft(case, "mcq", "which_level_marked", content, f"vertebra-{target}",
                                   self._where(case, target), [target, anchor], support, [image], variant=target))
            if anchor in ("L5", "S1") and target != "S1" and config.lumbar == 5 and config.thoracic == 12:
                number = config.index("S1") - config.index(target)
                lead = ("The labelled vertebra L5 is the last lumbar vertebra, directly above the sacrum."
                        if anchor == "L5" else "The sacrum is labelled S1.")
                content = {
                    "question": (f"{lead} Counting upwards from the sacrum (the vertebra directly above it is the "
                                 "first), what number is the vertebra marked with the red ring, and what is its "
                                 "name?"),
                    "answer": f"It is the {ORDINALS.get(number, str(number))} vertebra above the sacrum: {target}.",
                }
                out.append(self._draft(case, "open_qa", "count_from_sacrum", content, f"vertebra-{target}",
                                       self._where(case, target), [target], support, [image], variant=target))
            lower, upper = config.neighbours(target)[1], config.neighbours(target)[0]
            if lower in case.vertebrae:  # only discs whose two vertebrae are both in view
                side, disc = "below", config.disc_below(target)
            elif upper in case.vertebrae:
                side, disc = "above", config.disc_above(target)
            else:
                side, disc = "", None
            if disc:
                turns = [
                    {"role": "patient", "text": f"My scan picture has one vertebra labelled {anchor} and another "
                                                "one circled in red. Which vertebra is circled?"},
                    {"role": "clinician", "text": f"The circled vertebra is {target}. Counting from {anchor}, it is "
                                                  f"{n} level{'s' if n != 1 else ''} {direction}."},
                    {"role": "patient", "text": f"And which disc is just {side} it?"},
                    {"role": "clinician", "text": f"The disc just {side} {target} is the {disc} disc."},
                    {"role": "patient", "text": "Can you tell me about the rest of my spine from this picture?"},
                    {"role": "clinician", "text": (f"No. This picture only shows the levels from {case.levels[0]} "
                                                   f"to {case.levels[-1]}; anything outside it cannot be judged "
                                                   "from it, and a specialist reviews the whole study.")},
                ]
                out.append(self._draft(case, "consultation", "level_consultation", {"level": target, "turns": turns},
                                       f"vertebra-{target}", self._where(case, target), [target, anchor, disc],
                                       support, [image], variant=target))
        return out

    def _disc_centre(self, case: LabelledCase, upper: str, lower: str):
        name = f"{upper}-{lower}"
        if name in case.discs:
            return case.discs[name], True
        a, b = np.asarray(case.vertebrae[upper]), np.asarray(case.vertebrae[lower])
        return tuple((a + b) / 2), False

    def _adjacent_pairs(self, case: LabelledCase, config: SpineConfiguration) -> list[tuple[str, str]]:
        names = [n for n in case.vertebrae if config.has(n)]
        pairs = []
        for upper, lower in itertools.pairwise(names):
            try:
                config.disc_between(upper, lower)
            except ValueError:
                continue
            pairs.append((upper, lower))
        return pairs

    def _discs(self, case: LabelledCase, config: SpineConfiguration, view) -> list[ItemDraft]:
        out = []
        if case.numbering == "sct":
            return out  # cord labels: a disc position between cord segments is not a disc
        for upper, lower in self._adjacent_pairs(case, config):
            centre, labelled = self._disc_centre(case, upper, lower)
            disc = config.disc_between(upper, lower)
            image = self._image(case, view, f"disc_{disc}", labels={upper: case.vertebrae[upper],
                                                                    lower: case.vertebrae[lower]},
                                disc_markers=[centre])
            chunk = f"disc-{disc}" if labelled else f"vertebra-{upper}"
            where = self._where(case, disc) if labelled else self._where(case, upper)
            content = {"question": "Two vertebrae are labelled in this image. Which intervertebral disc is marked "
                                   "with the blue box?",
                       "answer": f"The marked disc lies between {upper} and {lower}: it is the {disc} disc."}
            label_file = case.label_path.name if case.label_path else "the labels"
            support = f"{upper} and {lower} are adjacent labelled vertebrae in {label_file}."
            out.append(self._draft(case, "open_qa", "disc_between", content, chunk, where, [disc, upper, lower],
                                   support, [image], variant=disc))
        return out

    def _text_discs(self, case: LabelledCase, config: SpineConfiguration) -> list[ItemDraft]:
        out = []
        for upper, lower in self._adjacent_pairs(case, config):
            disc = config.disc_between(upper, lower)
            content = {"question": f"Which intervertebral disc lies between the {upper} and {lower} vertebrae?",
                       "answer": f"The {disc} disc."}
            out.append(self._draft(case, "open_qa", "disc_between_text", content, f"vertebra-{upper}",
                                   self._where(case, upper), [disc], f"{upper} and {lower} are adjacent.",
                                   variant=disc))
        return out

    def _overview(self, case: LabelledCase, view) -> list[ItemDraft]:
        out = []
        names = list(case.vertebrae)
        if len(names) >= 2:
            anchor = names[-1]
            image = self._image(case, view, f"overview_anchor_{anchor}", labels={anchor: case.vertebrae[anchor]},
                                markers=[case.vertebrae[n] for n in names])
            content = {"question": f"All labelled vertebrae in this image are ringed and the lowest one is labelled "
                                   f"{anchor}. Name the ringed vertebrae from top to bottom.",
                       "answer": "From top to bottom: " + ", ".join(names) + "."}
            out.append(self._draft(case, "open_qa", "levels_in_view", content, f"vertebra-{anchor}",
                                   self._where(case, anchor), names, "labels: " + ", ".join(names), [image]))
        labelled = self._image(case, view, "labelled", labels=dict(case.vertebrae))
        by_level: dict[str, list[Finding]] = {}
        for f in case.findings:
            by_level.setdefault(f.level, []).append(f)
        rows = []
        for name in names + [d for d in case.discs if d not in names]:
            graded = by_level.get(name, [])
            text = "; ".join(f"{finding_words(f.name)}: {f.value}" for f in graded) or "in view; no finding supplied"
            if name in case.partial:
                text += " (partly outside the field of view)"
            rows.append({"level": name, "finding": text})
        for level, graded in by_level.items():
            if level not in names and level not in case.discs:
                rows.append({"level": level, "finding": "; ".join(f"{finding_words(f.name)}: {f.value}"
                                                                    for f in graded)})
        span = f"{names[0]} to {names[-1]}" if len(names) > 1 else names[0]
        content = {
            "technique": f"{case.modality or 'Label map'} sagittal key image with level labels ({case.dataset} case).",
            "findings": rows[:30],
            "impression": (f"Levels in view: {span} ({len(names)} vertebrae). "
                           + ("Graded findings are listed per level." if case.findings else
                              "No graded findings were supplied with this case.")),
            "advice": "This picture shows which vertebrae are visible; it is not a diagnosis. Your clinician will "
                      "explain the full report.",
            "treatment": "No treatment can be derived from level labels alone; correlate with the complete study "
                         "and the clinical findings.",
            "risk": "Not assessable from the labels; levels outside the field of view are not reported.",
            "basis": [f"label map {case.label_path.name if case.label_path else '(none)'}"]
                     + sorted({f.location for f in case.findings})[:8],
        }
        out.append(self._draft(case, "report", "levels_report", content, f"vertebra-{names[0]}",
                               self._where(case, names[0]), names, "labels and findings sheet", [labelled]))
        return out

    def _findings(self, case: LabelledCase) -> list[ItemDraft]:
        out = []
        for n, f in enumerate(case.findings):
            chunk = f"finding-{n}-{f.level}-{f.name}"
            words = finding_words(f.name)
            content = {"question": f"In this {case.dataset.upper()} case, what is the graded {words} at {f.level}?",
                       "answer": f"{words[0].upper() + words[1:]} at {f.level}: {f.value} "
                                 f"(as graded in the dataset's reading)."}
            out.append(self._draft(case, "open_qa", "finding_at_level", content, chunk, f.location, [f.level],
                                   f"{f.name} at {f.level}: {f.value}", variant=f"{f.level}-{f.name}"))
        narrowed = [f for f in case.findings if f.name == "disc_narrowing" and f.value == "present"]
        graded_discs = sorted({f.level for f in case.findings if f.name == "disc_narrowing"})
        if len(narrowed) == 1 and len(graded_discs) >= 4:
            target = narrowed[0].level
            options = [target] + [d for d in graded_discs if d != target][:3]
            options.sort()
            content = {"question": f"In this {case.dataset.upper()} case, which disc is graded as narrowed?",
                       "options": options, "answer_index": options.index(target),
                       "rationale": f"Disc narrowing is graded present only at {target} ({narrowed[0].location})."}
            idx = case.findings.index(narrowed[0])
            out.append(self._draft(case, "mcq", "which_disc_narrowed", content,
                                   f"finding-{idx}-{target}-disc_narrowing", narrowed[0].location, graded_discs,
                                   f"disc narrowing present at {target}"))
        out += self._annotated_points(case)
        return out

    def _annotated_points(self, case: LabelledCase) -> list[ItemDraft]:
        """RSNA-style 2D annotations: ring the annotated point and ask which disc level it is."""
        from curation.generate.render import render_instance

        out = []
        levels = ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
        seen = set()
        for c in case.extra.get("coordinates", []):
            if c["condition"] != "spinal_canal_stenosis" or c["level"] in seen or not Path(c["dicom"]).is_file():
                continue
            seen.add(c["level"])
            rel = f"{slug(case.case_id)}/annotated_{c['level']}.png"
            render_instance(Path(c["dicom"]), self.image_root / rel, points=[(c["x"], c["y"])])
            content = {"question": "This sagittal MRI slice has one annotated point (red ring) at a lumbar disc "
                                   "level. Which level is annotated?",
                       "options": levels, "answer_index": levels.index(c["level"]),
                       "rationale": f"The annotation for spinal canal stenosis on this slice is at {c['level']}."}
            out.append(self._draft(case, "mcq", "which_level_annotated", content,
                                   f"point-spinal_canal_stenosis-{c['level']}", c["location"], [c["level"]],
                                   f"annotation at {c['level']} ({c['location']})", [rel], variant=c["level"]))
        return out
