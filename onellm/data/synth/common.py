"""Shared pieces of the synthetic world, for the synthesizers of several modalities: the
colour and shape vocabulary, 2-D shape drawing (image, video), and the 3-D primitives that
point, depth and normal sample or render.

Every caption is built from these few words so that a tiny model can learn the mapping
from content to text in a few hundred steps."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 220),
    "yellow": (240, 210, 20),
    "orange": (245, 130, 20),
    "purple": (140, 40, 180),
    "pink": (240, 110, 180),
    "cyan": (20, 200, 210),
}
# Backgrounds are greys, never one of the named colours, so a shape's colour is unambiguous.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "grey": (128, 128, 128),
    "black": (15, 15, 15),
}
SHAPES_2D = ("circle", "square", "triangle", "star", "diamond", "hexagon")
SOLIDS = ("sphere", "box", "torus", "cone", "cylinder")


def pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def save_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file, so that parallel workers writing the same shared
    file never leave a half-written one behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix="".join(path.suffixes))
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- 2-D shapes ----------------------------------------------------------------------


def _regular_polygon(cx: float, cy: float, r: float, sides: int, phase: float) -> list[tuple[float, float]]:
    angles = phase + 2 * np.pi * np.arange(sides) / sides
    return list(zip(cx + r * np.cos(angles), cy + r * np.sin(angles)))


def _star(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    angles = -np.pi / 2 + np.pi * np.arange(10) / 5
    radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
    return list(zip(cx + radii * np.cos(angles), cy + radii * np.sin(angles)))


def draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, colour: tuple[int, int, int]
) -> None:
    """A filled shape of 'radius' r centred at (cx, cy); no anti-aliasing, so every shape
    pixel carries exactly the named colour."""
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == "square":
        s = r * 0.85
        draw.rectangle((cx - s, cy - s, cx + s, cy + s), fill=colour)
    elif shape == "triangle":
        draw.polygon(_regular_polygon(cx, cy + 0.2 * r, 1.1 * r, 3, -np.pi / 2), fill=colour)
    elif shape == "star":
        draw.polygon(_star(cx, cy, 1.1 * r), fill=colour)
    elif shape == "diamond":
        draw.polygon(_regular_polygon(cx, cy, r, 4, -np.pi / 2), fill=colour)
    elif shape == "hexagon":
        draw.polygon(_regular_polygon(cx, cy, r, 6, 0.0), fill=colour)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {SHAPES_2D}")


def canvas(size: int, background: str) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", (size, size), BACKGROUNDS[background])
    return img, ImageDraw.Draw(img)


# ---- 3-D primitives -------------------------------------------------------------------


def sample_surface(solid: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points uniform over the surface of a unit-sized solid centred at the origin, with
    its axis along +y: [n, 3]."""
    if solid == "sphere":
        v = rng.normal(size=(n, 3))
        return v / np.linalg.norm(v, axis=1, keepdims=True)
    if solid == "box":
        half = np.array([1.0, 0.7, 0.8])
        areas = np.array([half[1] * half[2], half[0] * half[2], half[0] * half[1]])
        axis = rng.choice(3, size=n, p=areas / areas.sum())
        p = rng.uniform(-1, 1, size=(n, 3))
        p[np.arange(n), axis] = rng.choice([-1.0, 1.0], size=n)
        return p * half
    if solid == "torus":
        big, small = 0.75, 0.3
        # Rejection on the tube angle makes the density uniform over the surface area.
        u, v = rng.uniform(0, 2 * np.pi, size=(2, 3 * n))
        keep = rng.uniform(size=3 * n) < (big + small * np.cos(v)) / (big + small)
        u, v = u[keep][:n], v[keep][:n]
        ring = big + small * np.cos(v)
        return np.stack([ring * np.cos(u), small * np.sin(v), ring * np.sin(u)], axis=1)
    if solid in ("cone", "cylinder"):
        radius, height = (0.8, 1.6) if solid == "cone" else (0.6, 1.6)
        side_area = np.pi * radius * (np.hypot(radius, height) if solid == "cone" else 2 * height)
        caps = 1 if solid == "cone" else 2
        cap_area = caps * np.pi * radius**2
        on_side = rng.uniform(size=n) < side_area / (side_area + cap_area)
        theta = rng.uniform(0, 2 * np.pi, size=n)
        if solid == "cone":
            # Radius shrinks linearly with height, so the side's area density grows with sqrt.
            t = 1 - np.sqrt(rng.uniform(size=n))
            side_r, side_y = radius * (1 - t), height * t - height / 2
        else:
            side_r, side_y = np.full(n, radius), rng.uniform(-height / 2, height / 2, size=n)
        cap_r = radius * np.sqrt(rng.uniform(size=n))
        cap_y = np.where(rng.uniform(size=n) < 0.5, -height / 2, height / 2) if caps == 2 else np.full(n, -height / 2)
        r = np.where(on_side, side_r, cap_r)
        y = np.where(on_side, side_y, cap_y)
        return np.stack([r * np.cos(theta), y, r * np.sin(theta)], axis=1)
    raise ValueError(f"unknown solid {solid!r}; known: {SOLIDS}")


@cache
def solid_mesh(solid: str) -> tuple[np.ndarray, np.ndarray]:
    """A triangle mesh of the same unit-sized solid: vertices [V, 3], triangles [F, 3]."""
    import open3d as o3d

    make = {
        "sphere": lambda: o3d.geometry.TriangleMesh.create_sphere(radius=1.0, resolution=24),
        "box": lambda: o3d.geometry.TriangleMesh.create_box(2.0, 1.4, 1.6).translate((-1.0, -0.7, -0.8)),
        "torus": lambda: o3d.geometry.TriangleMesh.create_torus(0.75, 0.3, 40, 20),
        "cone": lambda: o3d.geometry.TriangleMesh.create_cone(0.8, 1.6, 40).translate((0, 0, -0.8)),
        "cylinder": lambda: o3d.geometry.TriangleMesh.create_cylinder(0.6, 1.6, 40),
    }
    if solid not in make:
        raise ValueError(f"unknown solid {solid!r}; known: {SOLIDS}")
    mesh = make[solid]()
    # open3d builds these around +z; turn them so that the axis is +y, as in sample_surface.
    if solid in ("torus", "cone", "cylinder"):
        mesh.rotate(rotation(-np.pi / 2, 0.0), center=(0, 0, 0))
    return np.asarray(mesh.vertices, dtype=np.float32), np.asarray(mesh.triangles, dtype=np.uint32)


def solid_normals(solid: str, p: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Unit outward normals [N, 3] of the ideal solid at surface points p [N, 3] (its own
    frame); `flat` are the normals of the mesh triangles hit, used for the flat faces."""
    cap = np.abs(flat[:, 1:2]) > 0.99
    if solid == "sphere":
        n = p
    elif solid == "box":
        n = flat
    elif solid == "torus":
        ring = p * np.array([1.0, 0.0, 1.0])
        n = p - 0.75 * ring / (np.linalg.norm(ring, axis=1, keepdims=True) + 1e-12)
    elif solid == "cylinder":
        n = np.where(cap, flat, p * np.array([1.0, 0.0, 1.0]))
    elif solid == "cone":
        # Side normal of a cone with base radius 0.8 and height 1.6: (h cos, r, h sin).
        around = p[:, [0, 2]] / (np.linalg.norm(p[:, [0, 2]], axis=1, keepdims=True) + 1e-12)
        side = np.stack([1.6 * around[:, 0], np.full(len(p), 0.8), 1.6 * around[:, 1]], axis=1)
        n = np.where(cap, flat, side)
    else:
        raise ValueError(f"unknown solid {solid!r}; known: {SOLIDS}")
    return n / (np.linalg.norm(n, axis=1, keepdims=True) + 1e-12)


def rotation(tilt: float, turn: float) -> np.ndarray:
    """Rotate by `tilt` about x (towards the viewer), after `turn` about the vertical y axis."""
    ct, st, cy, sy = np.cos(tilt), np.sin(tilt), np.cos(turn), np.sin(turn)
    about_x = np.array([[1, 0, 0], [0, ct, -st], [0, st, ct]])
    about_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    return about_x @ about_y


# ---- one solid seen by a pinhole camera (depth and normal) -----------------------------

DISTANCES = {
    "near": ((1.4, 1.8), "close to the camera"),
    "middle": ((2.6, 3.2), "at a middle distance"),
    "far": ((4.2, 5.0), "far from the camera"),
}
SIDES = {"left": (-1, "on the left"), "centre": (0, "in the centre"), "right": (1, "on the right")}
FIELD_OF_VIEW = np.deg2rad(60.0)
LIGHT = np.array([-0.4, 0.6, -0.7]) / np.linalg.norm([-0.4, 0.6, -0.7])


def render_solid(size: int, rng: np.random.Generator) -> dict[str, Any]:
    """Ray-cast one randomly placed solid. The camera sits at the origin looking along +z
    with y up, so a ray's hit distance along a direction with z = 1 is the depth itself.

    Returns the scene's facts (solid, colour, distance, side, background) and images:
    `depth` [H, W] metres (0 where no surface), `normal` [H, W, 3] unit normals with
    x right, y up, z towards the viewer (0 where no surface), `rgb` [H, W, 3] uint8."""
    import open3d as o3d

    solid, colour = pick(rng, SOLIDS), pick(rng, tuple(COLOURS))
    distance, side, background = pick(rng, tuple(DISTANCES)), pick(rng, tuple(SIDES)), pick(rng, tuple(BACKGROUNDS))
    z = rng.uniform(*DISTANCES[distance][0])
    half_width = z * np.tan(FIELD_OF_VIEW / 2)
    centre = np.array([SIDES[side][0] * 0.5 * half_width, rng.uniform(-0.1, 0.1) * half_width, z])
    turn = rotation(-rng.uniform(0.3, 0.7), rng.uniform(0, 2 * np.pi))
    scale = rng.uniform(0.35, 0.45)

    vertices, triangles = solid_mesh(solid)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor((scale * vertices @ turn.T + centre).astype(np.float32)), o3d.core.Tensor(triangles)
    )
    focal = size / 2 / np.tan(FIELD_OF_VIEW / 2)
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    directions = np.stack(
        [(cols + 0.5 - size / 2) / focal, -(rows + 0.5 - size / 2) / focal, np.ones((size, size))], -1
    )
    rays = np.concatenate([np.zeros_like(directions), directions], axis=-1).reshape(-1, 6).astype(np.float32)
    hits = scene.cast_rays(o3d.core.Tensor(rays))
    depth = hits["t_hit"].numpy().reshape(size, size)
    hit = np.isfinite(depth)
    depth = np.where(hit, depth, 0.0)

    # Exact normals of the ideal solid at the hit point, in the solid's own frame; the
    # mesh's triangle normal tells caps from sides, where the faceted mesh cannot.
    flat = hits["primitive_normals"].numpy() @ turn
    local = ((directions.reshape(-1, 3) * depth.reshape(-1, 1) - centre) @ turn) / scale
    n = solid_normals(solid, local, flat) @ turn.T
    facing = np.sign(-(n * directions.reshape(-1, 3)).sum(axis=1, keepdims=True) + 1e-12)
    n = (n * facing).reshape(size, size, 3) * hit[..., None]

    light = np.clip(n @ LIGHT, 0.0, 1.0)[..., None]
    lit = np.array(COLOURS[colour]) * (0.3 + 0.7 * light)
    rgb = np.where(hit[..., None], lit, np.array(BACKGROUNDS[background])).round().astype(np.uint8)
    return {
        "solid": solid,
        "colour": colour,
        "distance": distance,
        "side": side,
        "background": background,
        "depth": depth,
        "normal": n * np.array([1.0, 1.0, -1.0]),
        "rgb": rgb,
    }


def describe_solid(facts: dict[str, Any], attribute: str, rng: np.random.Generator) -> dict[str, Any]:
    """Caption naming colour, solid and one placement attribute ('distance' or 'side'),
    QA about the others, and the facts as meta."""
    phrase = (DISTANCES if attribute == "distance" else SIDES)[facts[attribute]][1]
    thing = article(f"{facts['colour']} {facts['solid']}")
    caption = pick(rng, (f"{thing} {phrase}", f"a scene with {thing} {phrase}"))
    return {
        "caption": caption,
        "qa": [
            {"question": "What shape is the object?", "answer": facts["solid"]},
            {"question": "Is the object near, at a middle distance or far?", "answer": facts["distance"]},
            {"question": "Is the object on the left, in the centre or on the right?", "answer": facts["side"]},
        ],
        "meta": {k: facts[k] for k in ("solid", "colour", "distance", "side", "background")},
    }
