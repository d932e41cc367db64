"""point: farthest point sampling + k-nearest-neighbour groups + 1x1 conv + max over neighbours;
synthetic clouds on the surface of one coloured solid; the demo's 3-D scatter."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from onellm.config import EncoderConfig
from onellm.data.synth.common import COLOURS, SOLIDS, article, pick, rotation, sample_surface
from onellm.errors import BadInputError, describe
from onellm.modality import LoadContext, ModalitySpec, ModalityTokenizer, TokenGrid, learned_pos_embed
from onellm.readers import read_npy
from onellm.sources import FileSource, os_path

from .point_ops import farthest_point_sample, gather_points, knn_indices

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class PointOptions:
    points: int = 8192
    channels: int = 6  # xyz then rgb in [0, 1]
    centers: int = 1024
    neighbours: int = 32
    # Columns that sampling and grouping measure distance on. The published weights were
    # trained with [3, 6] (colour, not position) and raw, uncentred neighbours.
    sample_columns: tuple[int, int] = (0, 3)
    tie_break: str = "first"  # "cuda" reproduces the original CUDA sampler's choice among ties


class PointTokenizer(ModalityTokenizer):
    Options = PointOptions

    def __init__(self, encoder: EncoderConfig, options: PointOptions) -> None:
        super().__init__(encoder, options)
        o = options
        o.sample_columns = tuple(o.sample_columns)
        if not 0 <= o.sample_columns[0] < o.sample_columns[1] <= o.channels:
            raise ValueError(f"sample_columns {o.sample_columns} outside 0..{o.channels}")
        if o.neighbours > o.points or o.centers > o.points:
            raise ValueError(
                f"{o.centers} centers x {o.neighbours} neighbours need at least that many of {o.points} points"
            )
        self.input_shape = (o.points, o.channels)
        self.num_patches = o.centers
        self.conv = nn.Conv2d(o.channels, encoder.width, kernel_size=1)
        self.pos_embed = learned_pos_embed(o.centers + 1, encoder.width)

    def tokenize(self, x: torch.Tensor, encoder) -> TokenGrid:
        o = self.options
        with torch.no_grad():
            cols = x[..., o.sample_columns[0] : o.sample_columns[1]].float()
            centers = farthest_point_sample(cols, o.centers, tie_break=o.tie_break)
            groups = knn_indices(gather_points(cols, centers), cols, o.neighbours)
        neighbours = gather_points(x.to(self.conv.weight.dtype), groups)  # [B, M, k, C]
        # A 1x1 conv is a linear map per neighbour; max over the neighbours pools each group.
        feats = F.linear(neighbours, self.conv.weight.flatten(1), self.conv.bias).amax(dim=2)
        return TokenGrid(feats.unsqueeze(1), self.pos_embed)

    def example_input(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        xyz = torch.rand(batch, self.options.points, 3, generator=generator) * 2 - 1
        rest = torch.rand(batch, self.options.points, self.options.channels - 3, generator=generator)
        return torch.cat([xyz, rest], dim=-1)


def read_cloud(path: FileSource) -> np.ndarray:
    """[N, 6] float32: xyz then rgb in [0, 1] (zeros when the file has no colours)."""
    if path.suffix.lower() == ".npy":
        cloud = read_npy(path)
        if cloud.ndim != 2 or cloud.shape[1] not in (3, 6):
            raise BadInputError(path, f"expected a point array [N, 3] or [N, 6], got {list(cloud.shape)}")
        if cloud.shape[1] == 6 and cloud[:, 3:].max(initial=0.0) > 1.0:
            cloud[:, 3:] /= 255.0  # colours stored as 0-255 bytes
    else:
        import open3d  # heavy; only mesh-style formats need it

        if path.suffix.lower() == ".ply":
            check_ply(path)
        # Quiet: a file it cannot read is reported below, as an empty cloud. The format goes by
        # the suffix, as open3d's own guess does: a memory file's name has none.
        with open3d.utility.VerbosityContextManager(open3d.utility.VerbosityLevel.Error), os_path(path) as name:
            pcd = open3d.io.read_point_cloud(name, format=path.suffix[1:].lower())
        cloud = np.asarray(pcd.points, dtype=np.float32)
        colours = np.asarray(pcd.colors, dtype=np.float32) if pcd.has_colors() else np.zeros_like(cloud)
        cloud = np.concatenate([cloud, colours], axis=1)
    if cloud.shape[1] == 3:
        cloud = np.concatenate([cloud, np.zeros_like(cloud)], axis=1)
    if len(cloud) == 0:
        raise BadInputError(path, "no points read (empty or unreadable point cloud)")
    if not np.isfinite(cloud).all():
        raise BadInputError(path, "point cloud holds NaN or infinite values")
    return cloud


_PLY_SIZES = {
    "char": 1,
    "uchar": 1,
    "int8": 1,
    "uint8": 1,
    "short": 2,
    "ushort": 2,
    "int16": 2,
    "uint16": 2,
    "int": 4,
    "uint": 4,
    "int32": 4,
    "uint32": 4,
    "float": 4,
    "float32": 4,
    "double": 8,
    "float64": 8,
}


def check_ply(path: FileSource) -> None:
    """Refuse a PLY file that open3d would trip on, before it reads it: its reader prints to
    stderr on a damaged file, reads a truncated one in part, and allocates whatever vertex
    count the header declares. The header must parse and the data must have room for every
    declared row (binary: the exact row size; ASCII: two characters a value; a list counts
    only its length field)."""
    with path.open("rb") as f:
        head = f.read(1 << 16)
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0 or b"\n" not in head[end:]:
        raise BadInputError(path, "not a PLY file (no ply ... end_header header)")
    rows: list[list[int]] = []  # per element: [count, bytes a row]
    text = None
    try:
        for words in (line.split() for line in head[:end].decode("ascii").splitlines()[1:] if line.strip()):
            if words[0] == "format":
                text = {"ascii": True, "binary_little_endian": False, "binary_big_endian": False}[words[1]]
            elif words[0] == "element" and int(words[2]) >= 0:
                rows.append([int(words[2]), 0])
            elif words[0] == "property" and text is not None:
                rows[-1][1] += 2 if text else _PLY_SIZES[words[2] if words[1] == "list" else words[1]]
            elif words[0] not in ("comment", "obj_info"):
                raise ValueError(f"unexpected header line {' '.join(words)!r}")
    except (UnicodeDecodeError, KeyError, IndexError, ValueError) as err:
        raise BadInputError(path, f"not a readable PLY header ({describe(err)})") from err
    needed = sum(count * size for count, size in rows)
    held = path.stat().st_size - (head.index(b"\n", end) + 1)
    if needed > held:
        raise BadInputError(path, f"truncated: the header declares {needed:,} bytes of data, the file holds {held:,}")


def resample_points(cloud: torch.Tensor, count: int, train: bool) -> torch.Tensor:
    """Exactly `count` points: farthest point sampling on xyz (eval) or a random subset (train)
    when there are more; repeated points when there are fewer (cyclic for eval, random for train)."""
    n = cloud.shape[0]
    if n > count:
        if train:
            return cloud[torch.randperm(n)[:count]]
        return cloud[farthest_point_sample(cloud[None, :, :3], count)[0]]
    extra = torch.randint(n, (count - n,)) if train else torch.arange(count - n) % n
    return torch.cat([cloud, cloud[extra]])


def normalize_xyz(cloud: torch.Tensor) -> torch.Tensor:
    """xyz centred on the mean and scaled into the unit sphere; colours untouched."""
    xyz = cloud[:, :3] - cloud[:, :3].mean(dim=0)
    radius = xyz.norm(dim=1).max().clamp_min(1e-12)
    return torch.cat([xyz / radius, cloud[:, 3:]], dim=1)


def load_point(
    paths: list[FileSource], ctx: LoadContext, train: bool = False, meta: dict | None = None
) -> torch.Tensor:
    """[points, channels] from .ply/.pcd/.xyz (open3d) or .npy [N, 3] / [N, 6]."""
    o = ctx.options
    cloud = read_cloud(paths[0])
    if cloud.shape[1] < o.channels:
        raise BadInputError(paths[0], f"{cloud.shape[1]} channels per point, the tokenizer takes {o.channels}")
    cloud = resample_points(torch.from_numpy(cloud[:, : o.channels]), o.points, train)
    return normalize_xyz(cloud)


# ---- synthetic samples (`onellm data synth`): points on one coloured solid ----------------

SYNTH_POINTS = 2048


def write_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    """Binary PLY with 8-bit colours through open3d; rgb in [0, 1]."""
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz.astype(np.float64)))
    cloud.colors = o3d.utility.Vector3dVector(rgb.astype(np.float64))
    if not o3d.io.write_point_cloud(str(path), cloud, write_ascii=False, compressed=False):
        raise OSError(f"{path}: open3d could not write the point cloud")


def synthesize(out_dir: Path, sample_id: str, rng: np.random.Generator) -> dict:
    """Write `<id>.ply` (or `<id>.npy` [2048, 6], xyz then rgb in [0, 1]); returns manifest fields."""
    solid, colour = pick(rng, SOLIDS), pick(rng, tuple(COLOURS))
    xyz = sample_surface(solid, SYNTH_POINTS, rng) @ rotation(rng.uniform(-0.6, 0.6), rng.uniform(0, 2 * np.pi)).T
    xyz = xyz * rng.uniform(0.5, 2.0) + rng.normal(0, 0.5, size=3) + rng.normal(0, 0.005, size=xyz.shape)
    shade = rng.uniform(-0.06, 0.06, size=(SYNTH_POINTS, 1))  # a little variation, the hue stays the named one
    rgb = np.clip(np.array(COLOURS[colour]) / 255.0 + shade, 0.0, 1.0)
    # Quantise to 8 bits for both formats, as a PLY stores them.
    rgb = np.round(rgb * 255) / 255
    if rng.uniform() < 0.25:
        path = out_dir / f"{sample_id}.npy"
        np.save(path, np.concatenate([xyz, rgb], axis=1).astype(np.float32))
    else:
        path = out_dir / f"{sample_id}.ply"
        write_ply(path, xyz, rgb)

    thing = f"{colour} {solid}"
    caption = pick(rng, (article(thing), f"a point cloud of {article(thing)}", f"{article(thing)} made of points"))
    return {
        "files": [path.name],
        "caption": caption,
        "qa": [
            {"question": "What shape is this?", "answer": solid},
            {"question": "What colour is the object?", "answer": colour},
        ],
        "meta": {"shape": solid, "colour": colour, "points": SYNTH_POINTS},
    }


# ---- demo preview -------------------------------------------------------------------------

PREVIEW_POINTS = 4096  # enough to see the shape; a plot of 100k points crawls


def preview(paths: list[Path]) -> Figure:
    """A 3-D scatter of (a subsample of) the cloud, in its own colours when it has them."""
    from matplotlib.figure import Figure  # the demo's dependency, not the loader's

    cloud = read_cloud(Path(paths[0]))
    if len(cloud) > PREVIEW_POINTS:
        cloud = cloud[np.random.default_rng(0).choice(len(cloud), PREVIEW_POINTS, replace=False)]
    xyz, rgb = cloud[:, :3], np.clip(cloud[:, 3:6], 0, 1)
    fig = Figure(figsize=(5, 4.5), layout="constrained")
    ax = fig.add_subplot(projection="3d")
    ax.scatter(*xyz.T, s=2, c=rgb if rgb.any() else xyz[:, 2], depthshade=False)
    ax.set(xlabel="x", ylabel="y", zlabel="z", title=f"{paths[0].name}: {len(xyz)} points shown")
    return fig


POINT = ModalitySpec(
    name="point",
    tokenizer=PointTokenizer,
    load=load_point,
    extensions=(".ply", ".pcd", ".xyz", ".npy"),
    prompt="What is this?",
    description="FPS + kNN groups through a 1x1 conv, max over neighbours",
    synthesize=synthesize,
    preview=preview,
)
