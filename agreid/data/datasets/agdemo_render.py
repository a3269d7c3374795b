"""Drawing of the AGDemo people: stable per-identity outfits rendered from ground or aerial cameras.

Ground cameras see upright full bodies from varied angles; aerial cameras see blurred, rotated,
foreshortened top-down views over a different background. Every draw takes an explicit Generator.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from agreid.data.opencv import cv2

GROUND_CAMS = (1, 2, 3, 4)
AERIAL_CAMS = (5, 6)
Color = Tuple[float, float, float]
Span = Tuple[float, float, float]

CLOTHES: Tuple[Color, ...] = (
    (40, 40, 200), (30, 30, 120), (0, 140, 255), (40, 210, 230), (60, 170, 60), (30, 90, 30),
    (160, 160, 40), (200, 90, 30), (100, 40, 20), (140, 50, 120), (180, 120, 240), (235, 235, 235),
    (170, 170, 170), (80, 80, 80), (25, 25, 25), (30, 70, 120), (150, 190, 210), (50, 120, 120),
    (230, 190, 140), (120, 40, 160))
SKINS: Tuple[Color, ...] = ((180, 200, 240), (140, 170, 220), (110, 140, 190), (80, 110, 160), (50, 75, 110))
HAIRS: Tuple[Color, ...] = ((20, 20, 25), (30, 45, 70), (40, 70, 110), (90, 170, 210), (160, 160, 160),
                            (40, 70, 170))
AERIAL_GROUNDS: Tuple[Color, ...] = ((90, 90, 95), (60, 130, 80), (150, 165, 175), (90, 120, 150))
UPPER_PATTERNS = ("solid", "hstripes", "vstripes", "checks", "jacket", "logo")
LOWER_PATTERNS = ("solid", "solid", "checks", "vstripes")
LOWER_KINDS = ("trousers", "trousers", "shorts", "skirt")
BAGS = ("none", "none", "backpack", "shoulder")
FACINGS = ("front", "back", "left", "right")
GROUND_LAYOUT = dict(head_y=0.075, head_r=0.062, shoulder_y=0.165, waist_y=0.50, knee_y=0.72,
                     foot_y=0.955, shoulder_w=0.135, waist_w=0.105, leg_w=0.042, arm_w=0.032)
AERIAL_LAYOUT = dict(head_y=0.13, head_r=0.10, shoulder_y=0.25, waist_y=0.52, knee_y=0.62,
                     foot_y=0.72, shoulder_w=0.19, waist_w=0.12, leg_w=0.045, arm_w=0.045)


@dataclass(frozen=True)
class Identity:
    """The stable appearance of one synthetic person: colours, patterns, proportions and accessories."""

    skin: Color
    hair: Color
    long_hair: bool
    upper: Color
    upper2: Color
    upper_pattern: str
    long_sleeves: bool
    lower: Color
    lower2: Color
    lower_pattern: str
    lower_kind: str
    shoes: Color
    build: float
    bag: str
    bag_color: Color
    hat: Optional[Color]


def seeded_rng(seed: int, *key: int) -> np.random.Generator:
    """A generator owned by (seed, *key), so each identity and camera draws independently."""
    return np.random.default_rng([seed, *key])


def _pick(rng: np.random.Generator, options: Sequence[Color], jitter: float = 12.0) -> Color:
    base = np.asarray(options[rng.integers(len(options))], np.float64)
    return tuple(float(c) for c in np.clip(base + rng.uniform(-jitter, jitter, 3), 0, 255))


def make_identity(seed: int, pid: int) -> Identity:
    """Draw the appearance of identity ``pid``; it depends only on (seed, pid), not on the split sizes."""
    rng = seeded_rng(seed, 1, pid)
    return Identity(
        skin=_pick(rng, SKINS, 8), hair=_pick(rng, HAIRS, 8), long_hair=bool(rng.random() < 0.35),
        upper=_pick(rng, CLOTHES), upper2=_pick(rng, CLOTHES), upper_pattern=str(rng.choice(UPPER_PATTERNS)),
        long_sleeves=bool(rng.random() < 0.6), lower=_pick(rng, CLOTHES), lower2=_pick(rng, CLOTHES),
        lower_pattern=str(rng.choice(LOWER_PATTERNS)), lower_kind=str(rng.choice(LOWER_KINDS)),
        shoes=_pick(rng, CLOTHES[11:16]), build=float(rng.uniform(0.85, 1.2)), bag=str(rng.choice(BAGS)),
        bag_color=_pick(rng, CLOTHES), hat=_pick(rng, CLOTHES) if rng.random() < 0.3 else None)


def _quad(top: Span, bottom: Span) -> List[Tuple[float, float]]:
    (xa, xb, ya), (xc, xd, yb) = top, bottom
    return [(xa, ya), (xb, ya), (xd, yb), (xc, yb)]


class _Canvas:
    """A colour image plus the coverage mask of everything drawn on it (the mask becomes the alpha)."""

    def __init__(self, h: int, w: int) -> None:
        self.img = np.zeros((h, w, 3), np.uint8)
        self.mask = np.zeros((h, w), np.uint8)

    def _both(self, draw, color: Color) -> None:
        draw(self.img, tuple(float(c) for c in color))
        draw(self.mask, 255)

    def ellipse(self, center, axes, color: Color, start: float = 0, end: float = 360) -> None:
        c, a = (int(center[0]), int(center[1])), (max(1, int(axes[0])), max(1, int(axes[1])))
        self._both(lambda im, col: cv2.ellipse(im, c, a, 0, start, end, col, -1, cv2.LINE_AA), color)

    def line(self, p, q, color: Color, thick: float) -> None:
        a, b = (int(p[0]), int(p[1])), (int(q[0]), int(q[1]))
        self._both(lambda im, col: cv2.line(im, a, b, col, max(1, int(thick)), cv2.LINE_AA), color)

    def quad(self, top: Span, bottom: Span, color: Color) -> None:
        pts = np.int32(_quad(top, bottom))
        self._both(lambda im, col: cv2.fillPoly(im, [pts], col, cv2.LINE_AA), color)

    def fill(self, polys, kind: str, c1: Color, c2: Color, period: float, cx: float, y0: float,
             half_w: float, front: bool) -> None:
        """Paint the union of ``polys`` with pattern ``kind`` (stripes, checks, jacket, chest logo)."""
        region = np.zeros(self.mask.shape, np.uint8)
        for poly in polys:
            cv2.fillPoly(region, [np.int32(poly)], 255)
        bx, by, bw, bh = cv2.boundingRect(region)
        box = region[by:by + bh, bx:bx + bw] > 0
        yy = (np.arange(by, by + bh, dtype=np.float32)[:, None] - y0) // period
        xs = np.arange(bx, bx + bw, dtype=np.float32)[None, :] - cx
        second = {"hstripes": yy % 2 == 1, "vstripes": (xs // period) % 2 == 1,
                  "checks": (yy + xs // period) % 2 == 1, "jacket": np.abs(xs) < 0.35 * half_w,
                  "logo": (np.abs(xs) < 0.45 * half_w) & (yy >= 2) & (yy < 5) & front}.get(kind, False)
        patch = self.img[by:by + bh, bx:bx + bw]
        patch[box] = np.uint8(c1)
        patch[box & np.broadcast_to(second, box.shape)] = np.uint8(c2)
        self.mask[by:by + bh, bx:bx + bw][box] = 255


def draw_person(canvas: _Canvas, ident: Identity, facing: str, layout: Dict[str, float], cx: float,
                top: float, fh: float, rng: np.random.Generator) -> None:
    """Draw ``ident`` seen from ``facing`` with body proportions ``layout`` (fractions of height ``fh``)."""
    L = {k: v * fh for k, v in layout.items()}
    hy, sy, wy, ky, fy = (top + L[k] for k in ("head_y", "shoulder_y", "waist_y", "knee_y", "foot_y"))
    side, s, front = facing in ("left", "right"), 1 if facing == "right" else -1, facing == "front"
    sw = L["shoulder_w"] * ident.build * (0.6 if side else 1.0)
    ww = L["waist_w"] * ident.build * (0.65 if side else 1.0)
    lw, aw, hr, u = L["leg_w"], L["arm_w"], L["head_r"], 0.01 * fh
    if ident.bag == "backpack" and side:
        back = (cx - s * sw * 0.8, cx - s * sw * 1.9)
        canvas.quad((*back, sy + hr * 0.5), (*back, wy - hr), ident.bag_color)
    stride = rng.uniform(0.0, 6 * u) if side else 2.3 * lw
    legs = [cx - s * stride / 2, cx + s * stride / 2]
    end = {"trousers": fy - 2 * u, "shorts": ky - 3 * u, "skirt": ky}[ident.lower_kind]
    for lx in legs:
        foot = lx + (lx - cx) * 0.2
        canvas.line((lx, wy), (foot, fy - 2 * u), ident.skin, lw * 1.8)
        canvas.ellipse((foot + (s * lw * 0.6 if side else 0), fy), (lw * (1.5 if side else 1.1), 2 * u),
                       ident.shoes)
    if ident.lower_kind == "skirt":
        lower = [_quad((cx - ww, cx + ww, wy), (cx - ww * 1.5, cx + ww * 1.5, end))]
    else:
        hem = [lx + (lx - cx) * 0.2 for lx in legs]
        lower = [_quad((lx - lw, lx + lw, wy), (e - lw * 0.9, e + lw * 0.9, end)) for lx, e in zip(legs, hem)]
        lower.append(_quad((cx - ww, cx + ww, wy - u), (cx - ww, cx + ww, wy + 5 * u)))
    canvas.fill(lower, ident.lower_pattern, ident.lower, ident.lower2, 3 * u, cx, wy, ww, front)
    torso = [(cx - sw, sy + hr * 0.3), (cx - sw * 0.9, sy), (cx + sw * 0.9, sy), (cx + sw, sy + hr * 0.3),
             (cx + ww, wy + u), (cx - ww, wy + u)]
    canvas.fill([torso], ident.upper_pattern, ident.upper, ident.upper2, 3.5 * u, cx, sy, sw, front)
    swing = rng.uniform(-4 * u, 4 * u) if side else 0.0
    for a in ([s] if side else [-1, 1]):
        shoulder = (cx + a * sw * (0.3 if side else 0.95), sy + aw)
        hand = (cx + a * (sw + aw * 0.6) + swing, wy - 2 * u)
        elbow = ((shoulder[0] + hand[0]) / 2, (shoulder[1] + hand[1]) / 2)
        canvas.line(shoulder, elbow, ident.upper, aw * 2)
        canvas.line(elbow, hand, ident.upper if ident.long_sleeves else ident.skin, aw * 1.8)
        canvas.ellipse(hand, (aw, aw * 1.2), ident.skin)
    if ident.bag == "backpack" and facing == "back":
        canvas.quad((cx - sw * 0.7, cx + sw * 0.7, sy + hr * 0.5),
                    (cx - sw * 0.75, cx + sw * 0.75, wy - hr * 0.6), ident.bag_color)
    elif ident.bag == "backpack" and front:
        for a in (-1, 1):
            canvas.line((cx + a * sw * 0.55, sy), (cx + a * sw * 0.6, wy - 2 * hr), ident.bag_color, aw * 1.2)
    elif ident.bag == "shoulder":
        far = -s if side else 1
        canvas.line((cx - far * sw * 0.7, sy), (cx + far * ww, wy), ident.bag_color, aw * 0.8)
        pouch = (cx + far * ww * 0.6, cx + far * ww * 1.9)
        canvas.quad((*pouch, wy - 5 * u), (*pouch, wy + 7 * u), ident.bag_color)
    hx = cx + (s * hr * 0.1 if side else 0)
    canvas.ellipse((cx, sy - hr * 0.2), (hr * 0.45, hr * 0.5), ident.skin)
    if ident.long_hair and not front:
        canvas.quad((hx - hr * 0.95, hx + hr * 0.95, hy), (hx - hr, hx + hr, sy + hr * 1.2), ident.hair)
    canvas.ellipse((hx, hy), (hr * 0.85, hr), ident.hair)
    if front or side:
        face_x, face_w = (hx + s * hr * 0.3, 0.55) if side else (hx, 0.72)
        canvas.ellipse((face_x, hy + hr * 0.2), (hr * face_w, hr * 0.8), ident.skin)
    if ident.hat is not None:
        canvas.ellipse((hx, hy - hr * 0.15), (hr * 0.95, hr * 0.9), ident.hat, start=180, end=360)
        canvas.ellipse((hx + (s * hr * 0.7 if side else 0), hy - hr * 0.12),
                       (hr * (0.8 if side else 1.1), hr * 0.22), ident.hat)


@dataclass(frozen=True)
class CameraStyle:
    """What stays fixed for one camera: scene colours, colour cast, noise level, sun direction."""

    base: Color
    second: Color
    horizon: float
    gains: Tuple[float, float, float]
    noise: float
    sun: Tuple[float, float]


def camera_style(seed: int, camid: int) -> CameraStyle:
    """The deterministic per-camera style, so each camera has its own recognisable colour cast."""
    rng = seeded_rng(seed, 3, camid)
    if camid in AERIAL_CAMS:
        base = _pick(rng, AERIAL_GROUNDS, 15)
    else:
        base = tuple(float(c) for c in rng.uniform(60, 200) + rng.uniform(-25, 25, 3))
    return CameraStyle(base=base, second=tuple(rng.uniform(50, 190, 3)), horizon=float(rng.uniform(0.5, 0.7)),
                       gains=tuple(rng.uniform(0.8, 1.2, 3)), noise=float(rng.uniform(2, 6)),
                       sun=tuple(rng.uniform(-0.12, 0.12, 2)))


def _clutter(img: np.ndarray, rng: np.random.Generator, count: int, muted: Color) -> None:
    h, w = img.shape[:2]
    for _ in range(count):
        muted_color = tuple(np.clip(np.add(muted, rng.uniform(-45, 45, 3)), 0, 255))
        color = _pick(rng, CLOTHES, 20) if rng.random() < 0.3 else muted_color
        x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(-0.1, 1.0) * h
        dx, dy = rng.uniform(0.1, 0.6) * w, rng.uniform(0.05, 0.4) * h
        if rng.random() < 0.5:
            cv2.rectangle(img, (int(x0), int(y0)), (int(x0 + dx), int(y0 + dy)), color, -1)
        else:
            cv2.ellipse(img, (int(x0), int(y0)), (int(dx / 2), int(dy / 2)), 0, 0, 360, color, -1)


def _background(style: CameraStyle, aerial: bool, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    base = np.clip(np.asarray(style.base) + rng.normal(0, 6, 3), 0, 255)
    texture = cv2.resize(rng.normal(0, 14, (h // 16 + 2, w // 16 + 2)).astype(np.float32), (w, h),
                         interpolation=cv2.INTER_CUBIC)
    img = np.full((h, w, 3), base, np.float32) + texture[..., None]
    if aerial:
        for _ in range(rng.integers(0, 3)):
            p, angle = rng.uniform(0, 1, 2) * (w, h), rng.uniform(0, np.pi)
            d = np.array([np.cos(angle), np.sin(angle)]) * 2 * h
            cv2.line(img, tuple(int(v) for v in p - d), tuple(int(v) for v in p + d),
                     (230, 230, 230) if rng.random() < 0.6 else (40, 200, 230), int(rng.integers(1, 4)))
        _clutter(img, rng, int(rng.integers(1, 4)), style.second)
    else:
        hor = int(h * (style.horizon + rng.uniform(-0.05, 0.05)))
        img[:hor] *= np.linspace(0.85, 1.1, hor, dtype=np.float32)[:, None, None]
        _clutter(img[:hor], rng, int(rng.integers(2, 7)), style.base)
        img[hor:] = img[hor:] * 0.5 + np.asarray(style.second, np.float32) * 0.5
    return cv2.GaussianBlur(np.clip(img, 0, 255), (3, 3), 0)


def _occlude(img: np.ndarray, aerial: bool, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    color = _pick(rng, CLOTHES + ((60, 60, 60), (100, 110, 110)), 25)
    kind = rng.integers(3)
    if aerial and kind == 0:
        radius = int(w * rng.uniform(0.25, 0.5))
        cv2.ellipse(img, (int(rng.choice([0, w])), int(rng.uniform(0, h))), (radius, radius), 0, 0, 360,
                    (40, 110, 50), -1)
    elif kind == 1:
        x = rng.uniform(0, w)
        cv2.rectangle(img, (int(x), 0), (int(x + rng.uniform(0.08, 0.16) * w), h), color, -1)
    else:
        y, (x0, x1) = int(h * rng.uniform(0.7, 0.85)), sorted(rng.uniform(-0.3, 1.3, 2) * w)
        cv2.rectangle(img, (int(x0), y), (int(max(x1, x0 + 0.5 * w)), h), color, -1)


def render_image(ident: Identity, style: CameraStyle, aerial: bool, h: int, w: int,
                 rng: np.random.Generator) -> np.ndarray:
    """One BGR uint8 ``h``×``w`` crop of ``ident`` as seen by a camera of ``style``."""
    canvas = _Canvas(h, w)
    facing = str(rng.choice(FACINGS, p=(0.35, 0.35, 0.15, 0.15)))
    bg = _background(style, aerial, h, w, rng)
    if aerial:
        draw_person(canvas, ident, facing, AERIAL_LAYOUT, w / 2, 0.06 * h, 0.9 * h, rng)
        a, b = rng.uniform(0.0, 0.12) * w, rng.uniform(0.12, 0.22) * w
        t0, t1 = rng.uniform(0.0, 0.08) * h, rng.uniform(0.75, 0.9) * h
        foreshorten = cv2.getPerspectiveTransform(np.float32([(0, 0), (w, 0), (w, h), (0, h)]),
                                                  np.float32([(-a, t0), (w + a, t0), (w - b, t1), (b, t1)]))
        rotate = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-35, 35), rng.uniform(0.75, 0.95))
        m = np.vstack([rotate, (0, 0, 1)]) @ foreshorten
        fig, mask = cv2.warpPerspective(canvas.img, m, (w, h)), cv2.warpPerspective(canvas.mask, m, (w, h))
        shift = np.float32([[1, 0, style.sun[0] * w], [0, 1, style.sun[1] * h]])
        bg *= 1 - 0.45 * cv2.warpAffine(mask, shift, (w, h)).astype(np.float32)[..., None] / 255
    else:
        fh, cx = rng.uniform(0.82, 0.94) * h, w / 2 + rng.uniform(-0.07, 0.07) * w
        top = (h - fh) * rng.uniform(0.2, 0.8)
        cv2.ellipse(bg, (int(cx), int(top + 0.95 * fh)), (int(0.2 * w), int(0.025 * h)), 0, 0, 360,
                    tuple(float(c) * 0.5 for c in style.second), -1)
        draw_person(canvas, ident, facing, GROUND_LAYOUT, cx, top, fh, rng)
        fig, mask = canvas.img, canvas.mask
    alpha = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32)[..., None] / 255
    img = bg * (1 - alpha) + fig.astype(np.float32) * alpha
    if rng.random() < (0.2 if aerial else 0.25):
        _occlude(img, aerial, rng)
    if aerial:
        f = rng.uniform(0.3, 0.5)
        small = cv2.resize(img, (max(4, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    img = img * (np.float32(style.gains) * rng.uniform(0.8, 1.15)) + rng.uniform(-10, 10)
    img += rng.standard_normal(img.shape, np.float32) * (style.noise * (1.4 if aerial else 1.0))
    return np.clip(img, 0, 255).astype(np.uint8)


