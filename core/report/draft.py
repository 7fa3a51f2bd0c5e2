"""Drafting a structured report with the local model: level by level, constrained to a JSON schema.

    report = draft_report(backend, context, labelling, series_uid=uid, progress=cb, cancel=token)

- The rows are exactly the levels of the labelling (:mod:`core.report.levels`): levels outside the field of view are
  never reported. One small constrained call per row (its aspects and, on disc rows, the graded scales the modality
  allows), then one call for impression, recommendations (patient advice, treatment options), risk/prognosis and,
  when the study is post-operative, post-operative management.
- Measured values come only from ``context.measurements``: they are inserted as ``measurement`` statements; the
  model's free text cannot contain digits (see :mod:`core.report.prompts`).
- Gradings a modality cannot support (Pfirrmann or Modic on CT) are fixed ``template`` statements, not model output.
- Grades and findings are held to the study's facts (:mod:`core.report.grounding`, :mod:`core.findings`): every
  graded scale comes from a measurement or says "not assessed" (the model is never asked for a grade), and after
  drafting every model statement that asserts or denies an image finding no fact supports is struck (kept rejected,
  with the reason) and replaced by what was not assessed.
- A model that sees images (a projector, or a server declared vision-capable) gets each row's key images with its
  call: the level's sagittal and axial slices with the level drawn (:mod:`core.inference.key_images`), recorded in
  the report as key-image references in the row's basis. A text-only model gets none, and the report says so.
- No level labels: :class:`NeedsLabellingError` when ``require_levels``, else a draft without level rows and a
  clearly marked note. A model failure keeps the partial draft, marked ``incomplete: <reason>``. Cancel raises
  :class:`core.tasks.Cancelled`.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from typing import Any

from core.consult.context import Measurement, StudyContext
from core.consult.retrieval import Retriever, default_retriever, retrieve
from core.inference.backend import ChatBackend, GenerationParams
from core.report import prompts
from core.report.constrained import generate_json, max_answer_chars
from core.report.levels import LevelInView, levels_in_view
from core.report.model import (
    ASPECT_TITLES,
    Basis,
    ImageRef,
    LevelFindings,
    PassageRecord,
    SpineReport,
    Statement,
    StudyInfo,
)
from core.report.templates import NOT_ASSESSABLE, ReportTemplate, template_for, template_key_for
from core.spine.anatomy import STANDARD, is_disc
from core.spine.labelling import SpineLabelling
from core.tasks import Cancelled, CancelToken, ProgressFn, check, report

log = logging.getLogger(__name__)
NO_LEVELS_NOTE = ("NO LEVEL ROWS: this study has no vertebral level labels, so findings per level were not drafted. "
                  "Label the levels and draft again to get per-level findings.")
TEXT_ONLY_NOTE = ("The drafting model saw no images (text-only): its findings and grades are suggestions from the "
                  "study context, measurements and knowledge passages only. Check each one against the images.")
POSTOP_WORDS = re.compile(r"post-?op|fusion|laminectomy|discectomy|decompression|instrumentation|arthroplasty|"
                          r"spondylodesis|screws?\b|cage", re.IGNORECASE)
SERIES_IMAGE, KEY_IMAGE = "img.series", "img.key"
ROW_PASSAGES, SUMMARY_PASSAGES = 2, 3


class NeedsLabellingError(ValueError):
    """The study has no named levels and the caller asked for levels first."""


def _is_postoperative(context: StudyContext) -> bool:
    text = " ".join([context.study_description, *context.series, *context.prior_findings])
    return bool(POSTOP_WORDS.search(text))


def _scrub(text: str, levels: list[str]) -> str:
    """Defence in depth for backends without grammars: digits outside level names are removed."""
    keep = "|".join(re.escape(lv) for lv in sorted(levels, key=len, reverse=True)) or "(?!)"
    return re.sub(rf"({keep})|\d+(?:[.,]\d+)?\s*(?:mm|cm|%|°|degrees?|HU|ml)?", lambda m: m.group(1) or "", text)


def _clean(text: Any, levels: list[str]) -> str:
    text = " ".join(_scrub(str(text), levels).split()).strip(" ,;")
    return text or "(nothing drafted: describe or reject)"


class _Drafter:
    def __init__(self, backend: ChatBackend, context: StudyContext, template: ReportTemplate, rep: SpineReport,
                 retriever: Retriever | None, params: GenerationParams, cancel: CancelToken | None,
                 level_images: Callable[[str], list[bytes]] | None = None) -> None:
        self.backend, self.context, self.template, self.report = backend, context, template, rep
        self.retriever, self.params, self.cancel = retriever, params, cancel
        self.level_images = level_images  # level -> key images (PNG) for a model that sees them
        self.level_names = [row.level for row in rep.levels]

    def _passages(self, query: str, level: str | None, limit: int) -> list:
        try:
            found = retrieve(self.retriever, query, level, limit)
        except Exception as exc:  # noqa: BLE001 - drafting goes on without knowledge passages
            self.report.notes.append(f"knowledge retrieval failed: {exc}")
            return []
        known = {p.id for p in self.report.passages}
        self.report.passages += [PassageRecord(p.id, p.title) for p in found if p.id not in known]
        return found

    def _call(self, messages: list[dict], schema: dict) -> Any:
        limit = max_answer_chars(schema) + 16
        try:
            available = self.backend.info().n_ctx - self.backend.count_prompt_tokens(messages) - 8
            if available > 0:
                limit = min(limit, available)
        except Exception as exc:  # noqa: BLE001 - token counting only tightens the limit
            log.debug("prompt tokens not counted: %s", exc)
        params = dataclasses.replace(self.params, max_tokens=limit)
        return generate_json(self.backend, messages, schema, params, self.cancel)

    def draft_row(self, row: LevelFindings) -> None:
        kind, tpl = row.kind, self.template
        words = "vertebral body fracture alignment" if kind == "vertebra" else \
            "disc degeneration herniation canal stenosis foramina facet spondylolisthesis"
        passages = self._passages(f"{self.context.derived_region()} {words} {tpl.modality_name}", row.level,
                                  ROW_PASSAGES)
        measured = [s.text for s in row.statements if s.aspect == "measurement"]
        basis = Basis(images=[SERIES_IMAGE, KEY_IMAGE] if self.report.image(KEY_IMAGE) else [SERIES_IMAGE],
                      measurements=[m for s in row.statements for m in s.basis.measurements],
                      passages=[p.id for p in passages])
        fixed = {s.aspect for s in row.statements}
        messages = prompts.row_prompt(tpl, self.context.to_text(), row.level, kind, row.note, measured, passages,
                                      fixed)
        images = self.level_images(row.level) if self.level_images else []
        if images:
            messages[-1]["images"] = images
            ref = ImageRef(f"img.level.{row.level}", f"Key images of {row.level} sent to the model: sagittal and "
                           "axial slices with the level drawn", self.report.study.series_uid, "key image")
            self.report.images.append(ref)
            basis.images.append(ref.id)
        answer = self._call(messages, prompts.row_schema(tpl, kind, fixed))
        drafted = []
        for aspect in tpl.aspects[kind]:
            drafted.append(Statement(f"{row.level}.{aspect}", _clean(answer[aspect], self.level_names),
                                     aspect=aspect, basis=basis.copy()))
        for scale in tpl.scales_for(kind):
            if scale.assessable and scale.name not in fixed:
                grade = answer[scale.name]
                drafted.append(Statement(f"{row.level}.{scale.name}", tpl.grade_text(scale.name, grade),
                                         aspect=scale.name, grade=grade, basis=basis.copy()))
        row.statements[:0] = drafted  # model text first, then the template and measurement statements

    def draft_summary(self) -> None:
        postop = _is_postoperative(self.context)
        findings = []
        for row in self.report.levels:
            parts = [f"{ASPECT_TITLES[s.aspect]}: {s.text}" for s in row.statements
                     if s.source in ("model", "measurement") and s.included]
            if parts:
                findings.append(f"{row.level}: " + "; ".join(parts))
        passages = self._passages(f"{self.context.derived_region()} treatment options conservative care prognosis "
                                  "surgery indications", None, SUMMARY_PASSAGES)
        schema = prompts.summary_schema(self.level_names, postop)
        answer = self._call(prompts.summary_prompt(self.template, self.context.to_text(), findings, postop, passages),
                            schema)
        basis = Basis(images=[i.id for i in self.report.images], measurements=[m.id for m in self.report.measurements],
                      passages=[p.id for p in passages])
        for section in schema["properties"]:
            for n, text in enumerate(answer[section], 1):
                self.report.sections[section].append(
                    Statement(f"{section}.{n}", _clean(text, self.level_names), basis=basis.copy()))


def _skeleton(context: StudyContext, levels: list[LevelInView], template: ReportTemplate, labelling, series_uid: str,
              study_uid: str, has_volume: bool) -> SpineReport:
    names = [lv.name for lv in levels]
    study = StudyInfo(
        modality=context.modality, region=context.derived_region(), study_description=context.study_description,
        study_date=context.study_date, series_description="; ".join(context.series), series_uid=series_uid,
        study_uid=study_uid, n_images=0, patient_age=context.patient_age, patient_sex=context.patient_sex,
        labelling=labelling.provenance.describe() if labelling is not None and levels else "", levels_in_view=names)
    rep = SpineReport(study=study, template=template.id)
    rep.images.append(ImageRef(SERIES_IMAGE, "; ".join(context.series) or context.modality, series_uid, "series"))
    if has_volume:
        rep.images.append(ImageRef(KEY_IMAGE, "Key image: mid-sagittal view with the level labels", series_uid,
                                   "key image"))
    series = "; ".join(context.series) or context.modality
    for n, line in enumerate(template.technique, 1):
        text = line.format(modality_name=template.modality_name, region=study.region or "spine", series=series)
        rep.sections["technique"].append(Statement(f"technique.{n}", text, source="template",
                                                   basis=Basis(images=[SERIES_IMAGE])))
    if levels:
        rep.sections["technique"].append(Statement(
            "technique.levels", f"Levels in view: {', '.join(names)} (named by {study.labelling}).", source="template",
            basis=Basis(images=[i.id for i in rep.images])))
    for lv in levels:
        row = LevelFindings(lv.name, lv.kind, position=lv.position, partial=lv.partial, note=lv.note)
        tpl_scales = template.scales_for(lv.kind)
        for scale in tpl_scales:
            if not scale.assessable:
                row.statements.append(Statement(f"{lv.name}.{scale.name}", scale.text, source="template",
                                                aspect=scale.name, grade=NOT_ASSESSABLE))
        for aspect, text in template.not_assessable.items():
            if aspect not in template.aspects[lv.kind] and (lv.kind == "disc" or aspect in ("canal", "cord")):
                row.statements.append(Statement(f"{lv.name}.{aspect}", text, source="template", aspect=aspect))
        rep.levels.append(row)
    return rep


def meyerding_grade(percent: float) -> str | None:
    """Meyerding grade of a measured anterior slip (% of the lower endplate); None for a retrolisthesis."""
    if percent < 0:
        return None
    for limit, grade in ((0, "none"), (25, "I"), (50, "II"), (75, "III"), (100, "IV")):
        if percent <= limit:
            return grade
    return "V"


def _add_measurements(rep: SpineReport, measurements: list[Measurement], template: ReportTemplate) -> None:
    """Measured values as ``measurement`` statements at their level (or under general findings for ranges such as
    L1-S1 lordosis); a measurement at a single level that is not in view is left out with a note. Without any level
    rows (no labelling, e.g. a lateral radiograph measured by hand) nothing says what is in view: measurements at a
    level go under general findings with their level. A measured slip (%) sets the segment's Meyerding grade, so
    the model is not asked for it."""
    for n, m in enumerate(measurements, 1):
        ref = Measurement(m.name, m.level, float(m.value), m.unit, id=f"m{n}")
        row = rep.level(m.level) if m.level else None
        single = bool(m.level) and bool(rep.levels) and (not is_disc(m.level) or m.level in STANDARD.disc_set
                                                          or m.level in rep.study.levels_in_view)
        if row is None and single:
            rep.notes.append(f"measurement '{ref.to_text()}' not reported: {m.level} is not a level in view")
            continue
        rep.measurements.append(ref)
        where = f" ({m.level})" if m.level and row is None else ""
        text = f"{m.name[:1].upper()}{m.name[1:]}{where}: {m.value:.4g}{' ' + m.unit if m.unit else ''} (measured)."
        basis = Basis(images=[SERIES_IMAGE], measurements=[ref.id])
        target = row.statements if row is not None else rep.sections["general"]
        target.append(Statement(f"{m.level or 'general'}.{ref.id}", text, source="measurement", aspect="measurement",
                                basis=basis))
        grade = meyerding_grade(m.value) if "slip" in m.name.lower() and m.unit == "%" else None
        if row is not None and row.kind == "disc" and grade and "meyerding" in template.scales \
                and row.get("meyerding") is None:
            row.statements.append(Statement(f"{row.level}.meyerding",
                                            template.grade_text("meyerding", grade)[:-1] + " (from the measured slip).",
                                            source="measurement", aspect="meyerding", grade=grade,
                                            basis=basis.copy()))


def draft_report(backend: ChatBackend, context: StudyContext, labelling: SpineLabelling | None = None, *,
                 series_uid: str = "", study_uid: str = "", n_images: int = 0, template: ReportTemplate | None = None,
                 retriever: Retriever | None | str = "default", require_levels: bool = False, is_2d: bool = False,
                 has_volume: bool = True, params: GenerationParams | None = None, progress: ProgressFn | None = None,
                 cancel: CancelToken | None = None, facts=None, volume: Any = None) -> SpineReport:
    """A drafted report for review; see the module docstring for the rules it follows. ``facts``: the study's
    core.findings.FactSheet (default: built from ``context.measurements`` and the levels in view). ``volume``: the
    image the labelling is on; with it a model that sees images gets each level's key images."""
    rep = _draft(backend, context, labelling, series_uid=series_uid, study_uid=study_uid, n_images=n_images,
                 template=template, retriever=retriever, require_levels=require_levels, is_2d=is_2d,
                 has_volume=has_volume, params=params, progress=progress, cancel=cancel, facts=facts, volume=volume)
    return rep


def _key_images_of(volume: Any, labelling: SpineLabelling) -> Callable[[str], list[bytes]]:
    from core.inference.key_images import level_key_images

    def images(level: str) -> list[bytes]:
        try:
            return [image.png for image in level_key_images(volume, labelling, level)]
        except Exception as exc:  # noqa: BLE001 - the row is drafted without images
            log.warning("key images of %s could not be drawn: %s", level, exc)
            return []
    return images


def _draft(backend, context, labelling, *, series_uid, study_uid, n_images, template, retriever, require_levels, is_2d,
           has_volume, params, progress, cancel, facts, volume) -> SpineReport:
    from core.findings import build_facts
    from core.report.grounding import fixed_grades, ground_report

    check(cancel)
    levels, level_notes = levels_in_view(labelling)
    if not levels and require_levels:
        raise NeedsLabellingError("this study has no named vertebral levels: label the levels first "
                                  "(or draft without level rows)")
    chosen = template is not None
    template = template or template_for(context.modality, is_2d)
    context = dataclasses.replace(context, levels_in_view=[lv.name for lv in levels],
                                  measurements=list(context.measurements))
    rep = _skeleton(context, levels, template, labelling, series_uid or "", study_uid or "", has_volume)
    rep.study.n_images = n_images
    rep.notes += level_notes
    if not chosen and template_key_for(context.modality, is_2d) == "ct" and context.modality.upper() != "CT":
        rep.notes.append(f"modality {context.modality or 'unknown'!r}: the CT template was used")
    if labelling is not None and levels and labelling.needs_confirmation:
        rep.notes.append(f"level names not confirmed by a user (labelling confidence {labelling.confidence:.2f}): "
                         "check the numbering before relying on level names")
    if not levels:
        rep.notes.insert(0, NO_LEVELS_NOTE)
        rep.sections["general"].append(Statement("general.no_levels", NO_LEVELS_NOTE, source="template",
                                                 aspect="note"))
    _add_measurements(rep, context.measurements, template)
    sheet = facts if facts is not None else build_facts(context.measurements, [lv.name for lv in levels],
                                                        modality=context.modality, sees_images=False)
    fixed_grades(rep, template, sheet)
    try:
        info = backend.info() if backend.is_loaded else backend.load()
        rep.model = info.model_name or getattr(backend, "name", "")
        sees_images = bool(getattr(info, "multimodal", False))
        if not sees_images:
            rep.notes.append(TEXT_ONLY_NOTE)
        elif volume is None or labelling is None or not levels:
            rep.notes.append("The drafting model can see images but was given none (no image or no level labels): "
                             "its findings are suggestions from the study context only.")
    except Exception as exc:  # noqa: BLE001 - the template part of the draft is still useful
        rep.model = getattr(backend, "name", "")
        rep.incomplete = f"incomplete: the model could not be loaded ({exc})"
        return rep
    if retriever == "default":
        retriever = default_retriever()
    drafter = _Drafter(backend, context, template, rep, retriever,
                       params or GenerationParams(temperature=0.2, repeat_penalty=1.1, seed=7), cancel,
                       _key_images_of(volume, labelling) if sees_images and volume is not None and labelling is not None
                       else None)
    steps = len(rep.levels) + 1
    for n, row in enumerate(rep.levels):
        report(progress, n / steps, f"Drafting {row.level} ({n + 1}/{len(rep.levels)})")
        try:
            drafter.draft_row(row)
        except Cancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - the partial draft is kept and marked
            ground_report(rep, sheet)
            return _stop(rep, n, f"the model failed at {row.level}: {exc}")
    report(progress, len(rep.levels) / steps, "Drafting impression and recommendations")
    try:
        drafter.draft_summary()
    except Cancelled:
        raise
    except Exception as exc:  # noqa: BLE001
        ground_report(rep, sheet)
        return _stop(rep, len(rep.levels), f"the model failed on the impression and recommendations: {exc}")
    ground_report(rep, sheet)
    report(progress, 1.0, "Draft ready for review")
    return rep


def _stop(rep: SpineReport, failed_at: int, reason: str) -> SpineReport:
    rep.incomplete = f"incomplete: {reason}"
    for row in rep.levels[failed_at:]:
        row.note = "; ".join(filter(None, [row.note, "not drafted (draft incomplete)"]))
    rep.notes.insert(0, f"INCOMPLETE DRAFT: {reason}")
    return rep
