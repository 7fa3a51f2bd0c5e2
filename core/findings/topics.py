"""Image-finding topics: how a sentence that asserts or denies one is recognised, which measurement settles it,
and what would have to be measured or looked at when none does.

Two groups:
- *measurable* topics (fracture, listhesis, scoliosis, canal stenosis, disc height, sagittal alignment): a fact made
  from a measurement (core.findings.build) can support or contradict a sentence about them;
- *image-only* topics (herniation, signal change, oedema, Modic, Pfirrmann, nerve or cord compression, foraminal
  stenosis, facet arthrosis, lesions): no measurement of this workstation settles them, so only a model that saw the
  images, or a clinician, can state them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str
    what: str  # for people: "vertebral compression fracture"
    pattern: re.Pattern[str]
    measure: str  # what settles it ("" for image-only topics)
    look: str  # what a clinician would look at

    def needs(self, level: str | None = None) -> str:
        where = f" at {level}" if level else ""
        if self.measure:
            return f"{self.measure}{where}, or {self.look}"
        return f"{self.look}{where}"


def _re(*words: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(words) + r")", re.IGNORECASE)


MEASURABLE = (
    Topic("fracture", "vertebral compression fracture or body height loss",
          _re(r"fractur", r"compress(?:ion|ed)\s+(?:fracture|deformit)", r"compression(?!\s+of\s+the\s+(?:nerve|cord|"
              r"root|thecal|spinal cord))", r"collaps", r"wedg", r"crush", r"burst", r"height\s+loss",
              r"loss\s+of\s+(?:vertebral\s+)?(?:body\s+)?height", r"genant", r"vertebral\s+deformit"),
          "the vertebral body heights (Genant grade)", "a look at the sagittal images for a fracture line"),
    Topic("listhesis", "spondylolisthesis (slip)",
          _re(r"\w*listhes", r"slip", r"spondyloptos", r"meyerding"),
          "the slip % on the sagittal view (Meyerding grade)", "the alignment of the posterior body walls"),
    Topic("scoliosis", "scoliosis (coronal curve)", _re(r"scolio", r"cobb", r"lateral\s+curv", r"coronal\s+curv"),
          "a Cobb angle on the coronal view", "the coronal alignment"),
    Topic("canal_stenosis", "central canal stenosis",
          _re(r"stenos", r"stenosis\s+of\s+the\s+(?:central\s+|spinal\s+)?canal",
              r"canal\s+(?:narrow|compromis)", r"narrow(?:ing|ed)?\s+(?:of\s+the\s+)?(?:central\s+|spinal\s+)?canal"),
          "the AP canal diameter", "the canal on axial images"),
    Topic("disc_height", "disc height loss", _re(r"disc\s+(?:space\s+)?(?:height|narrow)", r"narrow(?:ed|ing)\s+disc",
                                                 r"disc\s+collaps", r"collapsed\s+disc"),
          "the disc height", "the disc space on the sagittal view"),
    Topic("alignment", "sagittal alignment (lordosis, kyphosis)", _re(r"lordos", r"kyphos", r"hyperkyph"),
          "a lordosis or kyphosis angle", "the sagittal alignment"),
)

IMAGE_ONLY = (
    Topic("herniation", "disc herniation, protrusion, extrusion or bulge",
          _re(r"herniat", r"protru", r"extru", r"sequest", r"bulg", r"slipped\s+disc", r"prolaps"),
          "", "a look at the images (MRI shows discs best)"),
    Topic("degeneration", "disc degeneration (Pfirrmann)", _re(r"degenerat", r"pfirrmann", r"desiccat", r"dessicat",
                                                               r"black\s+disc", r"vacuum"),
          "", "a look at T2-weighted MRI (Pfirrmann grading)"),
    Topic("modic", "Modic endplate change", _re(r"modic", r"endplate\s+(?:change|signal|oedema|edema)"),
          "", "a look at T1- and T2-weighted MRI (Modic types)"),
    Topic("signal", "signal change or oedema", _re(r"signal", r"o?edema", r"hyperintens", r"hypointens", r"marrow"),
          "", "a look at the MRI sequences"),
    Topic("nerve", "nerve root, cord or thecal sac compression",
          _re(r"(?:nerve|root|cord|thecal|cauda)\w*\s+(?:\w+\s+){0,2}(?:compress|imping|contact|displac)",
              r"(?:compress|imping)\w*\s+(?:of\s+|on\s+)?(?:the\s+)?(?:\w+\s+)?(?:nerve|root|cord|thecal|cauda)",
              r"myelopath", r"radiculopath", r"pinched"),
          "", "a look at the images (MRI shows neural structures)"),
    Topic("foraminal", "foraminal stenosis", _re(r"foramin\w*\s+(?:stenos|narrow)", r"(?:stenos|narrow)\w*\s+of\s+"
                                                 r"the\s+(?:\w+\s+)?foram"),
          "", "a look at the sagittal and axial images of the foramina"),
    Topic("facets", "facet joint arthrosis", _re(r"facet\w*\s+(?:\w+\s+)?(?:arthro|hypertroph|degenerat|effusion)",
                                                 r"spondylos", r"osteoarthr", r"osteophyt"),
          "", "a look at the facet joints"),
    Topic("lesion", "a lesion, tumour, infection or other abnormality",
          _re(r"lesion", r"tumou?r", r"metasta", r"mass\b", r"infect", r"discitis", r"abscess", r"malignan",
              r"abnormalit", r"patholog", r"haematom", r"hematom", r"injur"),
          "", "a look at the images"),
)

TOPICS = {t.name: t for t in MEASURABLE + IMAGE_ONLY}


def topics_in(text: str) -> list[Topic]:
    """The topics a sentence speaks about, in the order of TOPICS (none for plain advice or general text)."""
    found = [t for t in MEASURABLE + IMAGE_ONLY if t.pattern.search(text)]
    names = {t.name for t in found}
    if "nerve" in names and "fracture" in names and not re.search(r"fractur|collaps|wedg|crush|burst|height",
                                                                   text, re.IGNORECASE):
        found = [t for t in found if t.name != "fracture"]  # "compression of the nerve" is not a fracture
    if "foraminal" in names and "canal_stenosis" in names and not re.search(r"canal|central", text, re.IGNORECASE):
        found = [t for t in found if t.name != "canal_stenosis"]
    return found
