"""The learned, contrast-agnostic labeller: a small network trained on synthetic images (``spinemed-train levels``),
run with onnxruntime on sagittal slab stacks (:mod:`slabs`) swept across the spine.

Pipeline: 2 mm isotropic grid -> slab stacks every 4 mm across the middle of the body -> per stack, heatmaps of
vertebral-body and disc centres and the anchor class of body pixels (C2, C3-C7, thoracic, lumbar, sacrum) -> the
midline (the plane of mirror symmetry of body, canal and arch, found in the image whatever the contrast): only peaks
of stacks near it count -> peaks merged across stacks into 3D detections -> bodies re-found along the column they
trace (body and disc profiles along it, the column's own pitch: missed bodies added, duplicates merged; a short
column's pitch is never below what the bodies' depth allows, since there the profile's period may be the network's
half period), S1 where the network's sacrum class starts below them, each set on the midline. Small images (less
than 100 mm tall) and images where fewer than three bodies were found get a second pass on a 1.5 mm grid, where the
network sees small bodies larger; that pass is kept when its bodies' scores add up to clearly more -> names: every
way of laying the level names (standard spine, or 11/13 thoracic, 4/6 lumbar) over the detections in order is
scored by the anchor classes the network sees; the best one is used when its posterior probability is high enough
(an anchor is in view: C2, the sacrum, the thoracolumbar junction), otherwise the vertebrae are left unnamed and the
user names one.

Refused with a message: a localiser or thin slab, slices thicker than the training images' (6 mm: an axial-only MR
of thick slices), a lone body-like detection in an image tall enough to show several (no spine in view), and
missing or corrupt weights. onnxruntime runs on ``threads`` CPU threads (default 1 on small CPUs,
``SPINEMED_LEVELS_THREADS``). Weights, their version and sha256 are in ``resources/models/<name>/`` (labeller.json +
model.onnx; ``SPINEMED_LEVELS_MODEL_DIR`` points elsewhere); every labelling records them with the pipeline's
version.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from core.spine.anatomy import STANDARD, SpineConfiguration
from core.spine.autolabel.base import AutoLabelError
from core.spine.autolabel.classical_ct import check_volume
from core.spine.autolabel.grid import iso_grid
from core.spine.autolabel.slabs import normalise, pad_to, padded_shape, raw_stack
from core.spine.labelling import DiscLabel, Provenance, SpineLabelling, VertebraLabel
from core.studies.volume import Volume
from core.tasks import CancelToken, ProgressFn, check, report, sub_progress

MODEL_NAME = "spinemed-levels-synth"
# The steps around the network (peaks, midline, naming) change the output too: their version goes beside the
# weights' (2: the midline from mirror symmetry; 3: bodies re-found along the column profile, 2026-12-07; 4: a
# finer second pass for small images, a short column's pitch bounded by the bodies' depth, more refusals, 2026-12-07).
PIPELINE = "+pipeline4"
DEFAULT_DIR = Path(__file__).resolve().parents[3] / "resources" / "models" / MODEL_NAME
STEP_MM = 2.0
# pipeline4: small images get a second pass on a finer grid, where the network sees small bodies larger
FINE_STEP_MM = 1.5
FINE_BELOW = 3  # the first pass found fewer bodies than this
SMALL_FOV_MM = 100.0  # or the image is less tall than this (a crop of a few vertebrae)
FINE_MARGIN = 1.2  # the finer pass is kept when its bodies' scores add up to this much more than the first's
LOCALISER_MM = 20.0  # an image thinner than this across is a localiser or a thin slab
MAX_SLICE_MM = 6.0  # the thickest slices of the synthetic training images (training/levels/synth.py)
MIN_EXTENT_MM = 32.0  # a grid less deep or tall than this cannot hold a vertebra and its context
SWEEP_MM = 4.0  # distance between slab stacks
SWEEP_WIDTH_MM = 150.0  # the middle of the body the stacks cover (the spine, scoliosis included)
PEAK_MIN = 0.3  # a heatmap peak this high is a candidate
DETECT_MIN = 0.5  # a merged detection must reach this somewhere (best F1 on the synthetic validation set)
MERGE_MM = 9.0  # peaks of neighbouring stacks closer than this in the sagittal plane are one vertebra
MIN_PITCH_MM = 12.0  # adult vertebral bodies are at least ~15 mm apart (C3-C4), centre to centre
MAX_PITCH_MM = 50.0  # and at most ~45 mm (L4-L5 of a tall adult)
LONE_BODY_MAX_MM = 2 * MAX_PITCH_MM  # taller than this, a spine shows more than one body: one alone is not a column
# the column profile (pipeline3): bodies re-found along the column the first detections trace
PATH_EXTEND_MM = 40.0  # the path goes this far above the first and below the last body found (about one vertebra)
PATH_FOLLOW_MM = 6.0  # beyond them it follows the maps' strongest response this far forwards or back per row
PROFILE_LR_MM = 4.0  # the profile: maxima over stacks within this of the midline
PROFILE_AP_MM = 8.0  # and within this in front of and behind the path (about half a body's depth)
PROFILE_SMOOTH_MM = 2.0
REL_MIN = 0.5  # a body peak at least this share of the column's strong peaks
DISC_OVER = 0.15  # a body peak where the disc channel is this much stronger is a disc
MERGE_PITCH = 0.5  # two bodies closer than this share of the pitch are one
PROFILE_PASSES = 4
ONE_SEED_PITCH_MM = 25.0  # the pitch assumed when one body was found and its depth is unknown (mid-thoracic)
# pipeline4: a short column's pitch from the bodies' depth (front to back) as the network outlines them: in adults
# the pitch is about 0.7-1.2 times that depth (body + disc height against depth, cervical to lumbar); the network's
# half period falls below the floor
SHORT_COLUMN = 4
PITCH_PER_DEPTH_MIN = 0.55
PITCH_PER_DEPTH = 0.9
BODY_MIN = 0.5
SACRUM_MIN = 0.5  # sacrum class averaged across the column this high starts the sacrum
SACRUM_REACH = 1.5  # pitches below the lowest body within which the sacrum is looked for
SEED_KEEP = 0.25  # a profile peak this share of the pitch from a body found before is that body
GAP_MIN, GAP_MAX = 1.6, 2.5  # a gap of this many pitches has a body missing in its middle
NAME_MIN = 0.6
THREADS_ENV = "SPINEMED_LEVELS_THREADS"  # onnxruntime threads, when the labeller is built without a number
# mirror-symmetry midline: a block around each detection (the body, the canal and the arch behind it) is compared with
# its left-right mirror image at every candidate midline within SYM_SEARCH_MM of the network's estimate
SYM_HALF_MM = 24.0  # left-right half-width of the block
SYM_FRONT_MM, SYM_BACK_MM = 20.0, 30.0  # the block from in front of the body centre to behind the canal
SYM_SEARCH_MM = 24.0
SYM_MIN = 0.3  # weaker mirror correlation than this: the network's estimate is kept
MID_KEEP_MM = 8.0  # peaks of stacks farther than this from the midline are not used (they cut the body off-centre)
MID_WINDOW_MM = 60.0  # the local midline at a level: the detections within this distance above and below it
TEMPERATURE = 2.0  # posterior of the best naming needed to name the vertebrae
REGION_NAMES = ("background", "C2", "C3-C7", "thoracic", "lumbar", "sacrum")
# configurations tried, with their prior (transitional anatomy is uncommon)
HYPOTHESES = ((STANDARD, 0.86), (SpineConfiguration(thoracic=11), 0.02), (SpineConfiguration(thoracic=13), 0.04),
              (SpineConfiguration(lumbar=4), 0.03), (SpineConfiguration(lumbar=6), 0.05))


def _region(name: str) -> int:
    if name == "C2":
        return 1
    return {"C": 2, "T": 3, "L": 4, "S": 5}[name[0]]


def default_threads() -> int:
    """onnxruntime's intra-op threads when none is given: $SPINEMED_LEVELS_THREADS, else 1 on small CPUs (4 cores
    or fewer: the labeller shares them with the GUI and a language model, and a second thread there buys little;
    see benchmarks/bench_levels.py --threads), else half the cores up to 4."""
    try:
        n = int(os.environ.get(THREADS_ENV, "0"))
    except ValueError:
        n = 0
    if n > 0:
        return n
    cores = os.cpu_count() or 1
    return 1 if cores <= 4 else min(4, cores // 2)


def check_learned_input(volume: Volume) -> None:
    """Refuse what the network was never meant to read, beyond the general checks (:func:`check_volume`): a
    localiser or thin slab (a few slices, or less than LOCALISER_MM across), and slices farther apart than the
    thickest the network was trained on (MAX_SLICE_MM: an axial-only MR of thick slices has no usable sagittal
    view)."""
    spacing = np.asarray(volume.spacing, dtype=float)
    extent = spacing * np.asarray(volume.shape)
    thin = int(np.argmin(extent))
    if volume.shape[thin] < 4 or extent[thin] < LOCALISER_MM:
        raise AutoLabelError(f"a localiser or a thin slab ({volume.shape[thin]} slices, {extent[thin]:.0f} mm "
                             "across): automatic labelling needs a 3D series (CT or MR volume) of the spine")
    if spacing.max() > MAX_SLICE_MM:
        raise AutoLabelError(f"slices {spacing.max():g} mm apart: the learned labeller was trained on slices up to "
                             f"{MAX_SLICE_MM:g} mm thick (an axial-only series of thick slices has no usable "
                             "sagittal view); use a sagittal series or a thinner reconstruction")


def _height_mm(volume: Volume) -> float:
    """The image's superior-inferior extent: of the voxel axes, the one closest to S."""
    axes = np.asarray(volume.affine, dtype=float)[:3, :3]
    k = int(np.argmax(np.abs(axes[2]) / np.maximum(np.linalg.norm(axes, axis=0), 1e-9)))
    return float(np.linalg.norm(axes[:, k]) * volume.shape[k])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class LearnedLevels:
    name = "learned"
    description = ("Learned contrast-agnostic labeller (network trained on synthetic CT/MR-like images): body and "
                   "disc centres, anchors C2 / sacrum / thoracolumbar junction")

    def __init__(self, model_dir: Path | str | None = None, threads: int | None = None) -> None:
        self._model_dir = Path(model_dir) if model_dir else None
        self.threads = threads
        self._session = None
        self._meta: dict | None = None

    @property
    def threads(self) -> int:
        """onnxruntime's intra-op threads: the number given, else :func:`default_threads`."""
        return self._threads or default_threads()

    @threads.setter
    def threads(self, value: int | None) -> None:
        if value is not None and int(value) < 1:
            raise ValueError(f"threads must be at least 1 (got {value})")
        self._threads = int(value) if value else None

    # --- weights ------------------------------------------------------------------------------------------
    @property
    def model_dir(self) -> Path:
        """The folder given, else $SPINEMED_LEVELS_MODEL_DIR, else the shipped model."""
        return self._model_dir or Path(os.environ.get("SPINEMED_LEVELS_MODEL_DIR") or DEFAULT_DIR)

    @property
    def version(self) -> str:
        meta = self._read_meta()
        return f"{meta.get('version', '?')}{PIPELINE}" if meta else "?"

    def _read_meta(self) -> dict | None:
        try:
            return json.loads((self.model_dir / "labeller.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _check_weights(self) -> tuple[dict | None, str]:
        meta_path = self.model_dir / "labeller.json"
        if not meta_path.is_file():
            return None, f"its description {meta_path} is missing"
        meta = self._read_meta()
        if not isinstance(meta, dict) or "file" not in meta:
            return None, f"{meta_path} is not a valid labeller description"
        weights = self.model_dir / meta["file"]
        if not weights.is_file():
            return None, f"the weights file {weights} is missing (reinstall, or retrain with spinemed-train levels)"
        if meta.get("sha256") and _sha256(weights) != meta["sha256"]:
            return None, (f"the weights file {weights} is corrupt or was changed (its sha256 differs from "
                          f"{meta_path.name})")
        return meta, ""

    def available(self) -> tuple[bool, str]:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return False, "onnxruntime is not installed"
        meta, why = self._check_weights()
        return (meta is not None), why

    def supports(self, volume: Volume) -> bool:
        """CT and MR, and images of unknown modality (the network does not depend on the contrast)."""
        return (volume.modality or "").upper() in ("CT", "MR", "OT", "") and not volume.is_2d

    def _load(self):
        meta, why = self._check_weights()  # every run: the file may have changed since the last one
        if meta is None:
            raise AutoLabelError(f"the learned labeller cannot run: {why}")
        key = {**meta, "dir": str(self.model_dir), "threads": self.threads}
        if self._session is not None and self._meta == key:
            return self._session, meta
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(self.model_dir / meta["file"]), opts,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for an unreadable model
            raise AutoLabelError(f"the learned labeller's weights {self.model_dir / meta['file']} cannot be "
                                 f"loaded: {exc}") from None
        self._meta = key
        return self._session, meta

    # --- labelling ----------------------------------------------------------------------------------------
    def run(self, volume: Volume, progress: ProgressFn | None = None,
            cancel: CancelToken | None = None) -> SpineLabelling:
        modality = (volume.modality or "").upper()
        if modality not in ("CT", "MR") and not volume.is_2d:  # unknown: Hounsfield units have air below -500
            modality = "CT" if float(np.asarray(volume.data[::8, ::8, ::4]).min()) < -500.0 else "MR"
        check_volume(volume, modality)
        check_learned_input(volume)
        session, meta = self._load()
        report(progress, 0.0, "Preparing the image")
        small = _height_mm(volume) < SMALL_FOV_MM
        first = self._pass(volume, session, STEP_MM, sub_progress(progress, 0.0, 0.45 if small else 0.9), cancel)
        best = first
        if small or first is None or len(first[0]) < FINE_BELOW:
            span = (0.45, 0.9) if small else (0.9, 0.95)
            second = self._pass(volume, session, FINE_STEP_MM, sub_progress(progress, *span), cancel)
            best = choose_pass(first, second)
            if first is None and second is None:
                raise AutoLabelError(f"the image is too small for labelling ({volume.shape} voxels of "
                                     f"{[round(v, 2) for v in volume.spacing]} mm: at least {MIN_EXTENT_MM:g} mm "
                                     "deep and tall is needed)")
        report(progress, 0.95, "Naming the levels")
        if best is None or not best[0]:
            raise AutoLabelError("no vertebral body found in this image (is the spine in view? a sagittal or 3D "
                                 "series of the spine is needed)")
        bodies, discs, sacral, grid = best
        height = grid.data.shape[2] * grid.step
        if len(bodies) < 2 and height > LONE_BODY_MAX_MM:
            raise AutoLabelError(f"no vertebral column found in this image: one vertebra-like structure in an image "
                                 f"{height:.0f} mm tall, where a spine would show several (is the spine in view?)")
        labelling = self._labelling(bodies, discs, grid, meta, grid.data.shape)
        if sacral:
            labelling.notes.append(f"{sacral} sacral segment(s) below S1 seen and not labelled (the sacrum is S1)")
        labelling.series_uid = volume.series_uid
        report(progress, 1.0, labelling.message)
        return labelling

    def _pass(self, volume: Volume, session, step: float, progress, cancel):
        """The network and the steps after it on a grid of ``step`` mm: (bodies, discs, sacral segments, grid), or
        None when the image is too small for this grid."""
        grid = iso_grid(volume, step, cancel)
        data = grid.data
        if min(data.shape[1:]) * step < MIN_EXTENT_MM:
            return None
        xs = self._sweep(data.shape[0], step)
        maps = self._infer(session, data, xs, progress, cancel, step)
        bodies, discs, sacral = detect(maps, xs, data, step=step)
        return bodies, discs, sacral, grid

    @staticmethod
    def _sweep(n_lr: int, step: float = STEP_MM) -> list[int]:
        stride = max(1, int(np.rint(SWEEP_MM / step)))
        half = int(SWEEP_WIDTH_MM / step / 2)
        mid = n_lr // 2
        lo, hi = max(0, mid - half), min(n_lr - 1, mid + half)
        return list(range(lo + (hi - lo) % stride // 2, hi + 1, stride)) or [mid]

    @staticmethod
    def _infer(session, data: np.ndarray, xs: list[int], progress, cancel, step: float = STEP_MM) -> np.ndarray:
        rows, cols = data.shape[2], data.shape[1]
        pr, pc = padded_shape(rows, cols)
        out = np.zeros((len(xs), 8, rows, cols), dtype=np.float32)
        batch = 4
        for b0 in range(0, len(xs), batch):
            check(cancel)
            report(progress, 0.1 + 0.85 * b0 / len(xs), "Looking for vertebrae and discs")
            stacks = np.stack([pad_to(normalise(raw_stack(data, x, step)), pr, pc) for x in xs[b0:b0 + batch]])
            res = session.run(None, {"stack": stacks})[0][:, :, :rows, :cols]
            heat = 1.0 / (1.0 + np.exp(-res[:, :2]))
            reg = np.exp(res[:, 2:] - res[:, 2:].max(axis=1, keepdims=True))
            reg /= reg.sum(axis=1, keepdims=True)
            out[b0:b0 + len(res)] = np.concatenate([heat, reg], axis=1)
        return out

    def _labelling(self, bodies, discs, grid, meta, shape) -> SpineLabelling:
        n_s = shape[2]

        def to_patient(det):
            return tuple(grid.to_patient((det["x"], det["c"], n_s - 1 - det["r"])))

        bodies.sort(key=lambda d: d["r"])
        probs = np.array([d["region"] for d in bodies])
        names, conf, config, anchor, evidence, notes = name_detections(probs)
        gaps = _gaps([to_patient(d) for d in bodies])
        if gaps:
            notes.append(f"the distance between vertebrae {', '.join(f'#{i + 1} and #{i + 2}' for i in gaps)} is "
                         "about twice the usual: a vertebra may have been missed there; confirm the levels")
            conf *= 0.7
        vertebrae = []
        for d, name in zip(bodies, names):
            edge = min(d["r"], n_s - 1 - d["r"]) * grid.step < 8.0
            vertebrae.append(VertebraLabel(name, to_patient(d), round(conf if name else 0.0, 3), partial=edge))
        pts = np.array([v.centroid for v in vertebrae])
        disc_labels = []
        for d in sorted(discs, key=lambda d: d["r"]):
            c = np.array(to_patient(d))
            above = [p for p, b in zip(pts, bodies) if b["r"] < d["r"]]
            below = [p for p, b in zip(pts, bodies) if b["r"] > d["r"]]
            normal = (0.0, 0.0, 1.0)
            if above and below:
                up = min(above, key=lambda p: np.linalg.norm(p - c))
                down = min(below, key=lambda p: np.linalg.norm(p - c))
                normal = tuple(up - down)
            disc_labels.append(DiscLabel(None, tuple(c), normal, round(float(d["score"]), 3)))
        prov = Provenance(meta.get("name", MODEL_NAME), f"{meta.get('version', '')}{PIPELINE}",
                          weights_sha256=meta.get("sha256"))
        labelling = SpineLabelling(vertebrae=vertebrae, discs=disc_labels, provenance=prov, configuration=config,
                                   confidence=round(conf, 3) if anchor else 0.0, anchor=anchor, notes=notes)
        labelling.discs = labelling.discs_named_from_vertebrae()
        found = f"{len(vertebrae)} vertebrae and {len(disc_labels)} discs"
        if anchor is None:
            labelling.message = (f"Found {found}, but no anatomical anchor (C2 with its dens, the sacrum, or the "
                                 f"thoracolumbar junction) is clear enough to name them (best naming "
                                 f"{conf:.2f} likely): the vertebrae are not named. Name one vertebra to label the "
                                 "others.")
        else:
            labelling.message = (f"Found {found}; named from {evidence}, confidence {conf:.2f}. Please confirm the "
                                 "levels.")
        return labelling


def choose_pass(first, second, margin: float = FINE_MARGIN):
    """Of two passes (bodies, discs, sacral, grid) or None, the one whose bodies' network scores add up to more (more
    bodies, or surer ones: the development set preferred it to the count of bodies alone); the first (the grid the
    network was trained on) unless the second's sum is more than ``margin`` times the first's."""
    def total(p) -> float:
        return float(sum(b.get("score", 0.0) for b in p[0])) if p is not None else 0.0

    if second is None or not second[0]:
        return first
    if first is None or not first[0] or total(second) > margin * total(first):
        return second
    return first


def detect(maps: np.ndarray, xs: list[int], data: np.ndarray, step: float = STEP_MM
           ) -> tuple[list[dict], list[dict], int]:
    """The vertebral bodies and discs of the column from the network's maps (stacks at ``xs`` of the grid ``data``):
    (bodies in order, discs between them, how many sacral segments below S1 were dropped)."""
    body_peaks, disc_peaks = _peaks(maps, xs, 0), _peaks(maps, xs, 1)
    midline = midline_curve(_merge(body_peaks, step), data, step)
    if midline is not None:
        body_peaks = [p for p in body_peaks if abs(p["x"] - midline(p["r"])) * step <= MID_KEEP_MM]
        disc_peaks = [p for p in disc_peaks if abs(p["x"] - midline(p["r"])) * step <= MID_KEEP_MM]
    all_discs = _merge(disc_peaks, step)
    bodies = _column(_not_on_discs(_merge(body_peaks, step), all_discs, step), step)
    if bodies:
        bodies = column_profile_bodies(maps, xs, bodies, midline, step=step)
    if len(bodies) >= 2:
        s1 = sacrum_below(maps, xs, bodies, midline, step)
        if s1 is not None:  # the lowest body found is S1, or S1 is below it
            bodies = sorted(bodies, key=lambda d: d["r"])
            bodies = bodies[:-1] + [s1] if s1["r"] == bodies[-1]["r"] else bodies + [s1]
    bodies, sacral = _sacral_tail(bodies)
    bodies = _midline(bodies, data, step)
    discs = _near_column(all_discs, bodies, step)
    discs = _discs_between(discs, bodies)
    return bodies, discs, sacral


def sacrum_below(maps: np.ndarray, xs: list[int], bodies: list[dict], midline=None, step: float = STEP_MM
                 ) -> dict | None:
    """S1 from where the column runs into the sacrum: the network marks S1 in its anchor-class channels (sacrum)
    rather than with a body-centre peak, so S1 is looked for there. Along the column path from half a pitch above
    the lowest body to SACRUM_REACH pitches below it, the first row where the sacrum class reaches SACRUM_MIN (its
    mean over the path's stacks, anywhere from PROFILE_AP_MM in front of the path to 3 times that behind it: the
    sacrum tilts backwards below L5) starts the sacrum. If it starts above the lowest body's centre, that body is in
    the sacrum: it is S1 and is returned with the sacrum's classes (the caller replaces it). Otherwise S1 is one
    pitch below the lowest body (bodies follow each other at the column's pitch), where the sacrum class must hold
    too. None when there is no sacrum (no anchor)."""
    bodies = sorted(bodies, key=lambda d: d["r"])
    last = bodies[-1]
    pitch = float(np.median(np.diff([b["r"] for b in bodies])))
    path = column_path(maps, xs, bodies, midline, step)
    ap = int(np.rint(PROFILE_AP_MM / step))
    n_cols = maps.shape[3]

    def sacrum_at(i: int) -> tuple[float, int]:  # (best sacrum probability, its column) in the i-th row's window
        c = int(np.rint(path["c"][i]))
        lo, hi = max(0, c - ap), min(n_cols, c + 3 * ap + 1)
        sac = maps[path["stacks"][i], 7, path["rows"][i], lo:hi].mean(axis=0)
        return float(sac.max()), lo + int(np.argmax(sac))

    def region(i: int, c: int) -> np.ndarray:
        return maps[path["stacks"][i], 2:, path["rows"][i], c].mean(axis=0)

    for i, r in enumerate(path["rows"]):
        if r < last["r"] - 0.5 * pitch:
            continue
        if r > last["r"] + SACRUM_REACH * pitch:
            break
        if sacrum_at(i)[0] < SACRUM_MIN:
            continue
        if r <= last["r"]:  # the sacrum starts above the lowest body's centre: that body is S1
            j = int(np.argmin(np.abs(path["rows"] - last["r"])))
            prob, c = sacrum_at(j)
            return {**last, "region": region(j, c), "sacrum": True} if prob >= SACRUM_MIN else None
        j = int(np.argmin(np.abs(path["rows"] - (last["r"] + pitch))))
        if path["rows"][j] < last["r"] + 0.75 * pitch:  # the image ends before S1's centre
            return None
        prob, c = sacrum_at(j)
        if prob < SACRUM_MIN:
            return None
        return {"x": float(path["x"][j]), "r": float(path["rows"][j]), "c": float(c), "score": prob,
                "region": region(j, c), "sacrum": True}
    return None


def column_path(maps: np.ndarray, xs: list[int], seeds: list[dict], midline=None, step: float = STEP_MM) -> dict:
    """The column's path through the stacks: for each row from PATH_EXTEND_MM above the first seed body to as far
    below the last, its left-right grid position (the midline curve, else the seeds') and its anterior-posterior
    one (the seeds', then followed to where the body and disc maps are strongest nearby, smoothed), and along it
    the body and disc profiles (the maps' maxima within PROFILE_LR_MM and PROFILE_AP_MM of the path)."""
    n_rows, n_cols = maps.shape[2], maps.shape[3]
    seeds = sorted(seeds, key=lambda d: d["r"])
    rs = np.array([b["r"] for b in seeds])
    ext = PATH_EXTEND_MM / step
    rows = np.arange(max(0, int(rs.min() - ext)), min(n_rows - 1, int(np.ceil(rs.max() + ext))) + 1)
    cs = np.interp(rows, rs, [b["c"] for b in seeds])
    if midline is not None:
        x_path = np.array([midline(r) for r in rows])
    else:
        x_path = np.interp(rows, rs, [b["x"] for b in seeds])
    xs_arr = np.asarray(xs, dtype=float)
    lr = PROFILE_LR_MM / step
    ap = int(np.rint(PROFILE_AP_MM / step))
    stacks = [np.nonzero(np.abs(xs_arr - x) <= lr)[0] for x in x_path]
    stacks = [s if s.size else np.array([int(np.argmin(np.abs(xs_arr - x)))]) for s, x in zip(stacks, x_path)]
    both = maps[:, 0] + maps[:, 1]
    # outside the seeds' span the path is followed: the strongest body or disc response near the path above/below
    follow = ap + int(np.rint(PATH_FOLLOW_MM / step))
    for order in (np.nonzero(rows > rs.max())[0], np.nonzero(rows < rs.min())[0][::-1]):
        prev = None
        for i in order:
            c = cs[i] if prev is None else prev
            c0, c1 = max(0, int(c) - follow), min(n_cols, int(c) + follow + 1)
            prof = both[stacks[i], rows[i], c0:c1].max(axis=0)
            if prof.max() >= PEAK_MIN:
                c = 0.7 * c + 0.3 * (c0 + int(np.argmax(prof)))
            cs[i] = prev = c
    body, disc, c_best = np.zeros(len(rows)), np.zeros(len(rows)), np.zeros(len(rows))
    for i, (r, c) in enumerate(zip(rows, cs)):
        c0, c1 = max(0, int(np.rint(c)) - ap), min(n_cols, int(np.rint(c)) + ap + 1)
        b = maps[stacks[i], 0, r, c0:c1]
        body[i] = b.max()
        disc[i] = maps[stacks[i], 1, r, c0:c1].max()
        c_best[i] = c0 + np.unravel_index(int(np.argmax(b)), b.shape)[1]
    return {"rows": rows, "c": cs, "x": x_path, "body": body, "disc": disc, "c_best": c_best, "stacks": stacks}


def _first_pitch(maps: np.ndarray, xs: list[int], seeds: list[dict], contrast: np.ndarray, steps: np.ndarray,
                 step: float) -> float:
    """The column's pitch (rows) for the first profile pass. Many seeds: the profile's period
    (:func:`column_pitch`), the seeds' spacing when it has none. A short column (fewer than SHORT_COLUMN seeds): the
    profile's period is unreliable (a few periods, and the network's body channel may fire on discs: half the
    period), so a period shorter than PITCH_PER_DEPTH_MIN body depths (:func:`body_depth`) is refused; one seed:
    PITCH_PER_DEPTH body depths (ONE_SEED_PITCH_MM when the depth cannot be measured)."""
    depth = body_depth(maps, xs, seeds, step) if len(seeds) < SHORT_COLUMN else None
    if not len(steps):
        return PITCH_PER_DEPTH * depth if depth else ONE_SEED_PITCH_MM / step
    spacing = float(np.median(steps))
    if depth is None:
        return column_pitch(contrast, spacing, step)
    floor = PITCH_PER_DEPTH_MIN * depth
    return column_pitch(contrast, spacing if spacing >= floor else PITCH_PER_DEPTH * depth, step, floor)


def body_depth(maps: np.ndarray, xs: list[int], seeds: list[dict], step: float = STEP_MM) -> float | None:
    """The bodies' anterior-posterior depth in grid voxels: the median over the seeds of the run of body pixels
    (anchor class other than background at BODY_MIN or more, averaged over the stacks within PROFILE_LR_MM of the
    seed) in front of and behind the seed's centre, along its row; runs that reach the image's edge are not counted.
    None when no seed has one. The network's class map outlines bodies whatever their size (the disc between two
    bodies is often classed as body too, so their height cannot be read the same way)."""
    xs_arr = np.asarray(xs, dtype=float)
    depths = []
    for b in seeds:
        st = np.nonzero(np.abs(xs_arr - b["x"]) <= PROFILE_LR_MM / step)[0]
        if not st.size:
            st = np.array([int(np.argmin(np.abs(xs_arr - b["x"])))])
        r, c = int(np.rint(b["r"])), int(np.rint(b["c"]))
        if not (0 <= r < maps.shape[2] and 0 <= c < maps.shape[3]):
            continue
        prob = 1.0 - maps[st, 2, r].mean(axis=0)
        if prob[c] < BODY_MIN:
            continue
        front, back = c, c
        while front > 0 and prob[front - 1] >= BODY_MIN:
            front -= 1
        while back < len(prob) - 1 and prob[back + 1] >= BODY_MIN:
            back += 1
        if front > 0 and back < len(prob) - 1:
            depths.append(back - front + 1)
    return float(np.median(depths)) if depths else None


def column_pitch(contrast: np.ndarray, fallback: float, step: float = STEP_MM, floor: float = 0.0) -> float:
    """The column's period in grid rows: the strongest autocorrelation peak of the body-minus-disc profile between
    MIN_PITCH_MM (or ``floor`` rows, if longer) and MAX_PITCH_MM (bodies and discs alternate); ``fallback`` when
    there is none."""
    lo, hi = max(int(MIN_PITCH_MM / step), int(np.ceil(floor))), int(np.ceil(MAX_PITCH_MM / step))
    q = contrast - contrast.mean()
    if len(q) < 2 * lo or hi <= lo:
        return fallback
    ac = np.correlate(q, q, "full")[len(q) - 1:]
    ac = ac / max(float(ac[0]), 1e-9)
    seg = ac[lo: min(hi, len(ac) - 1) + 1]
    peaks = [i for i in range(1, len(seg) - 1) if seg[i] >= seg[i - 1] and seg[i] > seg[i + 1] and seg[i] > 0]
    if not peaks:
        return fallback
    return float(lo + max(peaks, key=lambda i: seg[i]))


def profile_peaks(contrast: np.ndarray, body: np.ndarray, disc: np.ndarray, pitch: float) -> list[int]:
    """Indices of the bodies along a column profile: local maxima of the ``body`` channel that reach PEAK_MIN and
    REL_MIN of the column's own strong peaks (the median of its best three: the network's confidence differs from
    image to image, the column's bodies do not), except where the ``disc`` channel is DISC_OVER stronger (the body
    channel also fires on discs on real images; the disc channel rarely fires on bodies); then peaks closer than
    half a pitch merged, the one with the larger body-minus-disc ``contrast`` kept (:func:`merge_close`), and gaps
    of about twice the pitch completed (:func:`complete_by_pitch`)."""
    n = len(body)
    cand = [i for i in range(n) if (i == 0 or body[i] >= body[i - 1]) and
            (i == n - 1 or body[i] > body[i + 1]) and body[i] >= PEAK_MIN]
    if not cand:
        return []
    strong = float(np.median(sorted((body[i] for i in cand), reverse=True)[:3]))
    keep = [i for i in cand if body[i] >= REL_MIN * strong and disc[i] - body[i] < DISC_OVER]
    keep = merge_close(keep, contrast, pitch)
    return merge_close(complete_by_pitch(keep, contrast, body, pitch), contrast, pitch)


def merge_close(idx: list[int], score: np.ndarray, pitch: float) -> list[int]:
    """Of detections closer than MERGE_PITCH times the pitch, the stronger one stays (one body seen twice)."""
    out: list[int] = []
    for i in sorted(idx):
        if out and i - out[-1] < MERGE_PITCH * pitch:
            if score[i] > score[out[-1]]:
                out[-1] = i
            continue
        out.append(i)
    return out


def complete_by_pitch(idx: list[int], contrast: np.ndarray, body: np.ndarray, pitch: float) -> list[int]:
    """Bodies missed between two detections: where the gap is about twice the local pitch (GAP_MIN..GAP_MAX times
    it) and the body-minus-disc profile has a local maximum in the middle third of the gap with the body channel at
    PEAK_MIN at least, a body is added there (bodies alternate with discs at a slowly varying spacing)."""
    idx = sorted(idx)
    out = list(idx)
    for k, (a, b) in enumerate(itertools.pairwise(idx)):
        near = [y - x for x, y in itertools.pairwise(idx[max(0, k - 2): k + 4]) if y - x < GAP_MIN * pitch]
        local = float(np.median(near)) if near else pitch
        if not GAP_MIN * local <= b - a <= GAP_MAX * local:
            continue
        lo, hi = a + int(np.ceil((b - a) / 3)), b - int(np.ceil((b - a) / 3))
        if hi < lo:
            continue
        i = lo + int(np.argmax(contrast[lo: hi + 1]))
        is_max = contrast[i] >= contrast[max(i - 1, 0)] and contrast[i] >= contrast[min(i + 1, len(contrast) - 1)]
        if is_max and body[i] >= PEAK_MIN:
            out.append(i)
    return sorted(out)


def column_profile_bodies(maps: np.ndarray, xs: list[int], seeds: list[dict], midline=None, step: float = STEP_MM
                          ) -> list[dict]:
    """Bodies re-found along the column the seed detections trace (:func:`column_path`): peaks of the body channel
    where the disc channel is not clearly stronger, completed and merged by the column's pitch
    (:func:`profile_peaks`); a peak near a seed keeps the seed's position; then bodies seen twice merged
    (:func:`merge_duplicates`). Keeps the seeds when the profile finds fewer bodies. Repeated from the bodies found
    while the column grows at its ends (up to PROFILE_PASSES times: the path reaches one vertebra further each
    time, e.g. down to the sacrum; the pitch is the first pass's: the seeds hold it against the profile)."""
    bodies, pitch = seeds, None
    for _ in range(PROFILE_PASSES):
        grown, pitch = _profile_pass(maps, xs, bodies, midline, pitch, step)
        span = (min(b["r"] for b in bodies), max(b["r"] for b in bodies))
        if grown is bodies or (min(b["r"] for b in grown), max(b["r"] for b in grown)) == span:
            return grown
        bodies = grown
    return bodies


def _profile_pass(maps: np.ndarray, xs: list[int], seeds: list[dict], midline=None,
                  pitch: float | None = None, step: float = STEP_MM) -> tuple[list[dict], float]:
    path = column_path(maps, xs, seeds, midline, step)
    sigma = PROFILE_SMOOTH_MM / step
    body = ndimage.gaussian_filter1d(path["body"], sigma)
    disc = ndimage.gaussian_filter1d(path["disc"], sigma)
    contrast = body - disc
    steps = np.diff(sorted(b["r"] for b in seeds))
    if pitch is None:
        pitch = _first_pitch(maps, xs, seeds, contrast, steps, step)
    idx = profile_peaks(contrast, body, disc, pitch)
    if len(idx) < len(seeds):
        return seeds, pitch
    out = [b for b in seeds]
    for i in idx:
        r = int(path["rows"][i])
        if min(abs(b["r"] - r) for b in seeds) <= SEED_KEEP * pitch:  # a body found before: its 2D peak is better
            continue
        st = path["stacks"][i]
        # a new body's centre: the body channel's strongest point near the path, within a fifth of a pitch above
        # or below the profile's peak and PROFILE_AP_MM + PATH_FOLLOW_MM in front or behind (the path lags where
        # the column curves)
        reach = int(np.rint((PROFILE_AP_MM + PATH_FOLLOW_MM) / step))
        dr = max(1, int(0.2 * pitch))
        r0, c0 = max(0, r - dr), max(0, int(np.rint(path["c"][i])) - reach)
        win = maps[st, 0, r0: r + dr + 1, c0: int(np.rint(path["c"][i])) + reach + 1].max(axis=0)
        ri, ci = np.unravel_index(int(np.argmax(win)), win.shape)
        r, ci = r0 + int(ri), c0 + int(ci)
        c = float(ci)
        win = maps[st, 2:, max(0, r - 1): r + 2, max(0, ci - 1): ci + 2]
        region = win.transpose(1, 0, 2, 3).reshape(6, -1).mean(axis=1)
        out.append({"x": float(path["x"][i]), "r": float(r), "c": c, "score": float(body[i]),
                    "region": region, "profile": float(contrast[i])})
    return merge_duplicates(out, pitch), pitch


def merge_duplicates(bodies: list[dict], pitch: float) -> list[dict]:
    """Bodies closer than MERGE_PITCH times the pitch along the column are one body seen twice: one detection at
    their score-weighted mean position and anchor classes, with the better score."""
    out: list[dict] = []
    for b in sorted(bodies, key=lambda d: d["r"]):
        if out and b["r"] - out[-1]["r"] < MERGE_PITCH * pitch:
            a = out[-1]
            w = np.array([a["score"], b["score"]])
            merged = {k: float(np.average([a[k], b[k]], weights=w)) for k in ("x", "r", "c")}
            merged["score"] = max(a["score"], b["score"])
            merged["region"] = np.average([a["region"], b["region"]], axis=0, weights=w)
            out[-1] = merged
            continue
        out.append(b)
    return out


def _discs_between(discs: list[dict], bodies: list[dict]) -> list[dict]:
    """A disc between every two consecutive bodies: the disc channel's where it found one between them, else
    midway between the two bodies with a low score (0.3), since the disc channel is weak on many real images."""
    out = []
    bodies = sorted(bodies, key=lambda d: d["r"])
    for a, b in itertools.pairwise(bodies):
        have = [d for d in discs if a["r"] < d["r"] < b["r"]]
        if have:
            out.append(max(have, key=lambda d: d["score"]))
        else:
            out.append({k: 0.5 * (a[k] + b[k]) for k in ("x", "r", "c")} | {"score": 0.3})
    return out


def mirror_midline(data: np.ndarray, x: float, c: float, k: float, step: float = STEP_MM
                   ) -> tuple[float, float]:
    """The left-right grid position of the plane of mirror symmetry through a vertebra at (x, c, k) of ``data``
    [L, P, S], searched within SYM_SEARCH_MM of ``x``: (position, its mirror correlation), or (x, 0.0) when the
    block does not fit in the image. A vertebra (body, canal, arch) is symmetric about the midsagittal plane whatever
    the contrast; the aorta, bowel and organs beside it are not, which a stack-by-stack detector can be pulled by."""
    n_l, n_p, n_s = data.shape
    half = int(np.rint(SYM_HALF_MM / step))
    j0, j1 = max(0, int(np.rint(c - SYM_FRONT_MM / step))), min(n_p, int(np.rint(c + SYM_BACK_MM / step)) + 1)
    kc = int(np.rint(k))
    k0, k1 = max(0, kc - 2), min(n_s, kc + 3)
    reach = int(np.rint(SYM_SEARCH_MM / step))
    xc = int(np.rint(x))
    cands = [xi for xi in range(xc - reach, xc + reach + 1) if xi - half >= 0 and xi + half < n_l]
    if j1 - j0 < 4 or k1 <= k0 or not cands:
        return float(x), 0.0
    scores = []
    for xi in cands:
        block = data[xi - half: xi + half + 1, j0:j1, k0:k1].astype(np.float64)
        a = block - block.mean()
        b = a[::-1]
        den = float(np.sqrt((a * a).sum() * (b * b).sum()))
        scores.append(float((a * b).sum()) / den if den > 0 else 0.0)
    scores = np.asarray(scores)
    i = int(np.argmax(scores))
    best = float(cands[i])
    if 0 < i < len(scores) - 1:  # sub-voxel: the vertex of the parabola through the best three
        y0, y1, y2 = scores[i - 1: i + 2]
        den = y0 - 2 * y1 + y2
        if den < 0:
            best += float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5))
    return best, float(scores[i])


def midline_curve(dets: list[dict], data: np.ndarray, step: float = STEP_MM):
    """The midsagittal plane's left-right grid position as a function of the row (superior-inferior), from the
    mirror midlines (:func:`mirror_midline`) of the detections that show one clearly: at each row, the
    score-weighted median of those within MID_WINDOW_MM above and below (all of them when none is that close), so a
    scoliotic column is followed and a few detections on organs, hips or ribs are outvoted. None when no detection
    shows a symmetric vertebra."""
    n_s = data.shape[2]
    found = []
    for d in dets:
        x, score = mirror_midline(data, d["x"], d["c"], n_s - 1 - d["r"], step)
        if score >= SYM_MIN:
            found.append((d["r"], x, d["score"] * score))
    if not found:
        return None
    rows, xs, ws = (np.array(v) for v in zip(*found))

    def weighted_median(sel: np.ndarray) -> float:
        order = np.argsort(xs[sel])
        x, w = xs[sel][order], ws[sel][order]
        return float(x[np.searchsorted(np.cumsum(w), 0.5 * w.sum())])

    def at(r: float) -> float:
        sel = np.abs(rows - r) * step <= MID_WINDOW_MM
        return weighted_median(sel if sel.any() else np.ones_like(sel))

    return at


def _midline(bodies: list[dict], data: np.ndarray, step: float = STEP_MM) -> list[dict]:
    """Each body's left-right position from mirror symmetry (:func:`mirror_midline`) where the image shows it
    clearly; then a position more than 10 mm from the median of its neighbours' is replaced by that median (one
    detection pulled aside by a neighbouring organ)."""
    n_s = data.shape[2]
    for b in bodies:
        x, score = mirror_midline(data, b["x"], b["c"], n_s - 1 - b["r"], step)
        b["x_net"] = b["x"]
        if score >= SYM_MIN:
            b["x"] = x
    if len(bodies) >= 3:
        xs = [b["x"] for b in bodies]
        for i, b in enumerate(bodies):
            near = xs[max(0, i - 1): i + 2]
            med = float(np.median(near))
            if abs(xs[i] - med) * step > 10.0:
                b["x"] = med
    return bodies


def _column(dets: list[dict], step: float = STEP_MM) -> list[dict]:
    """The chain of detections that best makes a spinal column (largest summed score): each one MIN_PITCH_MM to 50 mm
    below the last, leaning at most about 40 degrees forwards or back and 30 degrees to the side. Drops detections
    off the column (bowel gas, a hip, a rib)."""
    if len(dets) < 2:
        return dets
    dets = sorted(dets, key=lambda d: d["r"])
    n = len(dets)
    best = [d["score"] for d in dets]
    prev = [-1] * n
    for j in range(n):
        for i in range(j):
            dr = (dets[j]["r"] - dets[i]["r"]) * step
            dc = abs(dets[j]["c"] - dets[i]["c"]) * step
            dx = abs(dets[j]["x"] - dets[i]["x"]) * step
            ok = MIN_PITCH_MM <= dr <= 50.0 and dc <= 0.85 * dr + 6.0 and dx <= 0.6 * dr + 4.0
            if ok and best[i] + dets[j]["score"] > best[j]:
                best[j] = best[i] + dets[j]["score"]
                prev[j] = i
    j = int(np.argmax(best))
    chain = []
    while j >= 0:
        chain.append(dets[j])
        j = prev[j]
    return chain[::-1]


def _not_on_discs(bodies: list[dict], discs: list[dict], step: float = STEP_MM) -> list[dict]:
    """Drop body detections that sit on a disc detection (within 6 mm) scoring higher: a point is not both."""
    lim = 6.0 / step
    return [b for b in bodies if not any(
        np.hypot(np.hypot(b["r"] - d["r"], b["c"] - d["c"]), b["x"] - d["x"]) <= lim and d["score"] > b["score"]
        for d in discs)]


def _sacral_tail(bodies: list[dict]) -> tuple[list[dict], int]:
    """Bodies below the first of a run of sacrum-type detections that ends the column are sacral segments (S2,
    S3...), not vertebrae to name: (bodies to S1, how many dropped)."""
    sac = [float(b["region"][5]) > max(0.5, float(np.max(b["region"][1:5]))) for b in bodies]
    i = len(bodies)
    while i > 0 and sac[i - 1]:
        i -= 1
    if i < len(bodies) - 1:
        return bodies[: i + 1], len(bodies) - i - 1
    return bodies, 0


def _near_column(discs: list[dict], bodies: list[dict], step: float = STEP_MM) -> list[dict]:
    """Discs between two consecutive bodies of the column, within 12 mm of the line joining them (the best one
    per gap)."""
    out = []
    for a, b in itertools.pairwise(bodies):
        cands = []
        for d in discs:
            if a["r"] < d["r"] < b["r"]:
                t = (d["r"] - a["r"]) / max(b["r"] - a["r"], 1e-6)
                c = a["c"] + t * (b["c"] - a["c"])
                if abs(d["c"] - c) * step <= 12.0:
                    cands.append(d)
        if cands:
            out.append(max(cands, key=lambda d: d["score"]))
    return out


def _gaps(points: list[tuple[float, float, float]]) -> list[int]:
    """Indices i where the step from vertebra i to i+1 is 1.7 times the median step or more (a missed one)."""
    if len(points) < 4:
        return []
    steps = np.linalg.norm(np.diff(np.asarray(points), axis=0), axis=1)
    med = float(np.median(steps))
    return [int(i) for i in np.nonzero(steps >= 1.7 * med)[0]]


def _peaks(maps: np.ndarray, xs: list[int], channel: int) -> list[dict]:
    """Local maxima of one heatmap in every stack: x (grid LR index), r, c, score, region probabilities."""
    out = []
    for n, x in enumerate(xs):
        h = maps[n, channel]
        mx = ndimage.maximum_filter(h, size=5, mode="constant")
        rr, cc = np.nonzero((h >= mx) & (h >= PEAK_MIN))
        for r, c in zip(rr, cc):
            win = maps[n, 2:, max(0, r - 1): r + 2, max(0, c - 1): c + 2].reshape(6, -1).mean(axis=1)
            out.append({"x": float(x), "r": float(r), "c": float(c), "score": float(h[r, c]), "region": win})
    return out


def _merge(peaks: list[dict], step: float = STEP_MM) -> list[dict]:
    """One detection per vertebra (or disc) from the peaks of neighbouring stacks: score-weighted position of the
    peaks within MERGE_MM in the sagittal plane, region probabilities of the best ones; an isolated weak peak is
    dropped; detections far to the side of the column (hip, rib, organ) are dropped."""
    peaks = sorted(peaks, key=lambda p: -p["score"])
    clusters: list[list[dict]] = []
    lim = MERGE_MM / step
    for p in peaks:
        for cl in clusters:
            top = cl[0]
            if np.hypot(p["r"] - top["r"], p["c"] - top["c"]) <= lim and abs(p["x"] - top["x"]) <= 30 / step:
                cl.append(p)
                break
        else:
            clusters.append([p])
    dets = []
    for cl in clusters:
        best = cl[0]["score"]
        if best < DETECT_MIN:
            continue
        good = [p for p in cl if p["score"] >= 0.6 * best]
        w = np.array([p["score"] for p in good])
        det = {k: float(np.average([p[k] for p in good], weights=w)) for k in ("x", "r", "c")}
        det["score"] = best
        det["region"] = np.average([p["region"] for p in good], axis=0, weights=w)
        dets.append(det)
    if len(dets) >= 3:
        xm = float(np.median([d["x"] for d in dets]))
        dets = [d for d in dets if abs(d["x"] - xm) <= 45 / step]
    return dets


def name_detections(probs: np.ndarray):
    """Names for detections in spine order from their anchor-class probabilities ``probs`` (n, 6).

    Every configuration of :data:`HYPOTHESES` and every first level is scored by the log-likelihood of the classes
    its names imply plus the log prior of the configuration; the posterior of the best one is the confidence.
    Returns (names or Nones, confidence, configuration, anchor name or None, evidence text, notes)."""
    n = len(probs)
    body = np.clip(probs[:, 1:] / np.maximum(probs[:, 1:].sum(axis=1, keepdims=True), 1e-6), 0.02, 1.0)
    logp = np.log(body)  # neighbouring detections see overlapping views: not independent, so tempered below
    hyps = []
    for config, prior in HYPOTHESES:
        levels = config.vertebrae[1:]  # C2 .. S1: bodies
        regions = np.array([_region(v) - 1 for v in levels])
        for first in range(len(levels) - n + 1):
            score = float(logp[np.arange(n), regions[first:first + n]].sum()) / TEMPERATURE + np.log(prior)
            hyps.append((score, config, first, tuple(levels[first:first + n])))
    if not hyps:
        return [None] * n, 0.0, STANDARD, None, "", [f"{n} detections: more than a whole spine; not named"]
    scores = np.array([h[0] for h in hyps])
    post = np.exp(scores - scores.max())
    post /= post.sum()
    by_names: dict[tuple, float] = {}
    for p, h in zip(post, hyps):
        by_names[h[3]] = by_names.get(h[3], 0.0) + float(p)
    best_names = max(by_names, key=by_names.get)
    conf = by_names[best_names]
    best = max((h for h in hyps if h[3] == best_names), key=lambda h: h[0])
    config = best[1]
    notes = []
    if conf < NAME_MIN:
        return [None] * n, conf, STANDARD, None, "", notes
    sure = probs[:, 1:] / np.maximum(probs[:, 1:].sum(axis=1, keepdims=True), 1e-6) > 0.5  # (n, 5): C2 C T L S
    anchors = []
    for i, name in enumerate(best_names):
        if name == "C2" and sure[i, 0]:
            anchors.append(("C2", "C2 with its dens"))
        elif name == "S1" and sure[i, 4]:
            anchors.append(("S1", "the sacrum"))
        elif name == f"T{config.thoracic}" and sure[i, 2] and i + 1 < n and sure[i + 1, 3]:
            anchors.append((name, "the thoracolumbar junction (last thoracic-type vertebra)"))
    if not anchors:  # a likely pattern of vertebra types is not an anchor: name nothing rather than guess
        return [None] * n, conf, STANDARD, None, "", notes
    implied = np.array([_region(v) - 1 for v in best_names])
    odd = [i for i in range(n) if sure[i].any() and not sure[i, implied[i]]]
    if odd:
        notes.append(f"the type of vertebra {', '.join(f'#{i + 1}' for i in odd)} does not fit the naming "
                     f"({config.describe()}): possible transitional vertebra (T13, L6, sacralised L5) or a "
                     "misread type; confirm the levels")
        conf *= 0.7
        if conf < NAME_MIN:
            return [None] * n, conf, STANDARD, None, "", notes
    anchor, evidence = anchors[0]
    if not config.is_standard:
        notes.append(f"named with {config.describe()}: a transitional spine fits the anchors better; confirm")
    return list(best_names), conf, config, anchor, evidence, notes
