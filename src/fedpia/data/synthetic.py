"""Embedded synthetic medical-like image + text data (the default when no data is on disk).

Each image is a modality background with 0-2 salient *lesions*. A lesion has a kind
(``KINDS``: mass = bright sharp disc, cyst = dark disc with a bright rim, opacity = diffuse
Gaussian haze), a location (``LOCATIONS``: image quadrant, image coordinates: "left" = image
left) and a size (small / large radius). Backgrounds (``MODALITIES``):

* x-ray: grey, bright mediastinum, two dark lung fields crossed by rib stripes, vertical gradient;
* ultrasound: black outside a fan from the top, Rayleigh speckle inside;
* fundus: RGB orange-red disc with a yellow optic disc (lesions coloured: exudate / haemorrhage);
* ct: dark field, grey body ellipse, bright cortical ring and spine.

Targets are functions of the lesions only, so they are learnable from the image (+ question):
VQA closed questions (presence, kind presence, location presence, size → yes/no), VQA open
questions (where → location, what → kind, how many → none/one/two); multiclass (kind or
"normal"); multilabel (set of kinds present, or ("normal",)) with a short templated report that
hints one finding with probability ``text_hint_prob``. Rendering is vectorised over the batch:
``[n, S, S, 3]`` uint8 arrays (thousands of samples per second).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from fedpia.data.schema import TASKS, Sample

MODALITIES = ("x-ray", "ultrasound", "fundus", "ct")
ORGANS = {"x-ray": "chest", "ultrasound": "breast", "fundus": "eye", "ct": "abdomen"}
KINDS = ("mass", "cyst", "opacity")
LOCATIONS = ("left upper", "right upper", "left lower", "right lower")
_CENTERS = {"left upper": (0.32, 0.32), "right upper": (0.32, 0.68),
            "left lower": (0.68, 0.32), "right lower": (0.68, 0.68)}
_RADIUS = {"small": 0.08, "large": 0.13}
CLOSED_QUESTIONS = ("presence", "kind_presence", "location_presence", "size")
OPEN_QUESTIONS = ("where", "what", "count")
_COUNT_WORDS = ("none", "one", "two")
_INDICATIONS = ("cough", "fever", "follow-up", "pain", "screening", "shortness of breath")
# per-kind colour offset for fundus images (RGB) and intensity offset for grey modalities
_FUNDUS_TINT = {"mass": (0.35, 0.35, 0.05), "cyst": (-0.5, -0.3, -0.15), "opacity": (0.3, 0.3, 0.3)}


def _uniform(k: int) -> tuple[float, ...]:
    return tuple([1.0 / k] * k)


@dataclass(frozen=True)
class SyntheticSpec:
    """What one client's synthetic data looks like. Probabilities are normalised on validation."""

    modality: str = "x-ray"
    task: str = "vqa"
    image_size: int = 32
    kind_probs: tuple[float, ...] = field(default_factory=lambda: _uniform(len(KINDS)))
    location_probs: tuple[float, ...] = field(default_factory=lambda: _uniform(len(LOCATIONS)))
    count_probs: tuple[float, float, float] = (0.3, 0.5, 0.2)
    question_types: tuple[str, ...] = CLOSED_QUESTIONS + OPEN_QUESTIONS
    noise: float = 0.03
    text_hint_prob: float = 0.3

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"SyntheticSpec.modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.task not in TASKS:
            raise ValueError(f"SyntheticSpec.task must be one of {TASKS}, got {self.task!r}")
        if not 16 <= self.image_size <= 256:
            raise ValueError(f"SyntheticSpec.image_size must be in [16, 256], got {self.image_size}")
        bad = set(self.question_types) - set(CLOSED_QUESTIONS + OPEN_QUESTIONS)
        if bad or not self.question_types:
            raise ValueError(f"SyntheticSpec.question_types: unknown or empty {sorted(bad)}")
        for name, k in (("kind_probs", len(KINDS)), ("location_probs", len(LOCATIONS)), ("count_probs", 3)):
            p = np.asarray(getattr(self, name), dtype=float)
            if p.shape != (k,) or (p < 0).any() or p.sum() <= 0:
                raise ValueError(f"SyntheticSpec.{name} must be {k} non-negative numbers, got {tuple(p)}")
            object.__setattr__(self, name, tuple((p / p.sum()).tolist()))


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size) + 0.5) / size
    return c[:, None], c[None, :]  # yy [S,1], xx [1,S] in (0, 1)


def _background(modality: str, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``[n, S, S, 3]`` float image in [0, 1] (grey modalities have equal channels)."""
    yy, xx = _grid(size)
    jit = rng.uniform(-0.05, 0.05, size=(n, 1, 1))
    if modality == "fundus":
        r2 = ((yy - 0.5) ** 2 + (xx - 0.5) ** 2) / 0.46**2
        inside = (r2 < 1.0).astype(float)
        base = np.array([0.78, 0.36, 0.16]) * (1.0 - 0.35 * r2)[..., None] * inside[..., None]
        disc = (((yy - 0.5) ** 2 + (xx - 0.5) ** 2) < 0.06**2)[..., None] * np.array([0.2, 0.4, 0.3])
        return np.broadcast_to(base + disc, (n, size, size, 3)) + jit[..., None] * inside[..., None]
    if modality == "x-ray":
        lungs = ((((yy - 0.5) / 0.34) ** 2 + ((xx - 0.3) / 0.18) ** 2) < 1) | \
                ((((yy - 0.5) / 0.34) ** 2 + ((xx - 0.7) / 0.18) ** 2) < 1)
        phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
        ribs = (np.sin(2 * np.pi * 6 * yy + phase) > 0.7) * lungs
        img = 0.5 + 0.1 * yy - 0.32 * lungs + 0.1 * ribs + jit
    elif modality == "ultrasound":
        dy, dx = yy + 0.15, xx - 0.5
        fan = (np.abs(np.arctan2(dx, dy)) < np.pi / 4) & (np.hypot(dy, dx) < 1.1)
        speckle = rng.rayleigh(0.22, size=(n, size, size))
        img = fan * (speckle * (1.0 - 0.35 * yy) + 0.05 + jit)
    else:  # ct
        e = ((yy - 0.5) / 0.42) ** 2 + ((xx - 0.5) / 0.46) ** 2
        spine = ((yy - 0.8) ** 2 + (xx - 0.5) ** 2) < 0.05**2
        img = 0.05 + (e < 1) * (0.35 + jit) + ((e > 0.85) & (e < 1)) * 0.45 + spine * 0.5
    return np.repeat(np.asarray(img, dtype=float)[..., None], 3, axis=-1)


def _draw_lesions(img: np.ndarray, lesions: list[list[tuple[str, str, str]]], modality: str,
                  rng: np.random.Generator) -> np.ndarray:
    """Add lesions ``(kind, location, size)`` to ``img`` ``[n, S, S, 3]``; one vectorised pass per slot."""
    n, size = img.shape[0], img.shape[1]
    yy, xx = _grid(size)
    img = np.array(img, dtype=float)
    for slot in range(max((len(x) for x in lesions), default=0)):
        rows = np.array([i for i in range(n) if len(lesions[i]) > slot], dtype=int)
        if rows.size == 0:
            continue
        spec = [lesions[i][slot] for i in rows]
        cy = np.array([_CENTERS[s[1]][0] for s in spec]) + rng.uniform(-0.05, 0.05, rows.size)
        cx = np.array([_CENTERS[s[1]][1] for s in spec]) + rng.uniform(-0.05, 0.05, rows.size)
        r = np.array([_RADIUS[s[2]] for s in spec])[:, None, None]
        dist = np.hypot(yy - cy[:, None, None], xx - cx[:, None, None])
        kinds = np.array([s[0] for s in spec])
        disc, rim = dist < r, (dist >= r) & (dist < r + 0.04)
        haze = np.exp(-(dist**2) / (2 * (0.8 * r) ** 2))
        for kind in KINDS:
            m = kinds == kind
            if not m.any():
                continue
            sub = img[rows[m]]
            d, h, ri = disc[m][..., None], haze[m][..., None], rim[m][..., None]
            if modality == "fundus":
                tint = np.array(_FUNDUS_TINT[kind])
                sub = sub + (h if kind == "opacity" else d) * tint
            elif kind == "mass":
                sub = sub + 0.5 * d
            elif kind == "cyst":
                sub = sub * (1 - d) + 0.02 * d + 0.45 * ri
            else:
                sub = sub + 0.55 * h
            img[rows[m]] = sub
    return img


def _findings(spec: SyntheticSpec, n_lesions: int, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    locs = rng.choice(len(LOCATIONS), size=n_lesions, replace=False, p=spec.location_probs)
    return [(KINDS[rng.choice(len(KINDS), p=spec.kind_probs)], LOCATIONS[int(j)],
             ("small", "large")[int(rng.integers(2))]) for j in locs]


def _vqa(spec: SyntheticSpec, rng: np.random.Generator) -> tuple[list, str, str, str]:
    """Draw (lesions, question, answer, answer_type) for one VQA sample."""
    q = spec.question_types[int(rng.integers(len(spec.question_types)))]
    n_les = 1 if q in ("where", "what", "size") else int(rng.choice(3, p=spec.count_probs))
    les = _findings(spec, n_les, rng)
    kinds, locs = {x[0] for x in les}, {x[1] for x in les}
    if q == "presence":
        return les, "Is there a lesion in the image?", ("yes" if les else "no"), "closed"
    if q == "kind_presence":
        kind = sorted(kinds)[0] if kinds and rng.random() < 0.5 else KINDS[int(rng.integers(3))]
        article = "an" if kind[0] in "aeiou" else "a"
        return les, f"Is there {article} {kind}?", ("yes" if kind in kinds else "no"), "closed"
    if q == "location_presence":
        loc = sorted(locs)[0] if locs and rng.random() < 0.5 else LOCATIONS[int(rng.integers(4))]
        return les, f"Is there a lesion in the {loc} region?", ("yes" if loc in locs else "no"), "closed"
    if q == "size":
        return les, "Is the lesion large?", ("yes" if les[0][2] == "large" else "no"), "closed"
    if q == "where":
        return les, "Where is the lesion?", les[0][1], "open"
    if q == "what":
        return les, "What kind of lesion is seen?", les[0][0], "open"
    return les, "How many lesions are there?", _COUNT_WORDS[len(les)], "open"


def generate(spec: SyntheticSpec, n: int, *, rng: np.random.Generator, split: str = "train",
             site: str = "synthetic", uid_prefix: str = "synthetic") -> list[Sample]:
    """``n`` samples of ``spec`` drawn with ``rng`` (deterministic given the generator state)."""
    if n < 0:
        raise ValueError(f"generate: n must be >= 0, got {n}")
    organ = ORGANS[spec.modality]
    rows = []
    for _ in range(n):
        if spec.task == "vqa":
            rows.append(_vqa(spec, rng))
            continue
        if spec.task == "multiclass":
            les = _findings(spec, int(rng.random() >= spec.count_probs[0]), rng)
            rows.append((les, f"Classify the finding in this {organ} {spec.modality} image.",
                         les[0][0] if les else "normal", None))
            continue
        les = _findings(spec, int(rng.choice(3, p=spec.count_probs)), rng)
        text = f"{spec.modality.upper()} of the {organ}. Indication: {rng.choice(_INDICATIONS)}."
        if les and rng.random() < spec.text_hint_prob:
            text += f" Findings suspicious for {les[int(rng.integers(len(les)))][0]}."
        rows.append((les, text, tuple(sorted({x[0] for x in les})) or ("normal",), None))
    img = _background(spec.modality, n, spec.image_size, rng)
    img = _draw_lesions(img, [r[0] for r in rows], spec.modality, rng)
    img = img + rng.normal(0.0, spec.noise, size=img.shape)
    arr = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return [Sample(image=arr[i], text=text, task=spec.task, target=target,
                   meta={"dataset": "synthetic", "modality": spec.modality, "organ": organ,
                         "site": site, "answer_type": atype, "split": split,
                         "uid": f"{uid_prefix}/{split}/{i}", "lesions": tuple(les)})
            for i, (les, text, target, atype) in enumerate(rows)]


def skewed_probs(k: int, *, alpha: float | None, rng: np.random.Generator, floor: float = 0.05) -> tuple:
    """Label-skew prior: ``(1 - k·floor)·Dir(α·1_k) + floor`` (uniform when ``alpha`` is None)."""
    if alpha is None:
        return _uniform(k)
    p = rng.dirichlet(np.full(k, float(alpha)))
    return tuple(((1 - k * floor) * p + floor).tolist())
