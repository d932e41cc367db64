"""Farthest point sampling on CPU: open3d vs the numba kernel vs a plain torch loop.

Also times the point tokenizer's whole grouping step (FPS on xyz, kNN, gather of xyz+rgb).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import open3d as o3d
import torch

from onellm.tokenizers.point_ops import farthest_point_sample, gather_points, knn_indices


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def torch_loop_fps(points: torch.Tensor, num_samples: int) -> torch.Tensor:
    """The usual batched pure-torch FPS, as a baseline."""
    num_clouds, n, _ = points.shape
    rows = torch.arange(num_clouds)
    min_dist = torch.full((num_clouds, n), 1e10)
    out = torch.zeros((num_clouds, num_samples), dtype=torch.long)
    last = torch.zeros(num_clouds, dtype=torch.long)
    for i in range(num_samples):
        out[:, i] = last
        d = (points - points[rows, last].unsqueeze(1)).square().sum(-1)
        min_dist = torch.minimum(min_dist, d)
        last = min_dist.argmax(dim=1)
    return out


def group(cloud: torch.Tensor, num_samples: int, k: int) -> torch.Tensor:
    xyz = cloud[..., :3]
    centers = gather_points(xyz, farthest_point_sample(xyz, num_samples))
    return gather_points(cloud, knn_indices(centers, xyz, k))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clouds", type=int, default=8)
    parser.add_argument("--points", type=int, default=8192)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--k", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(2)

    cloud = torch.rand(args.clouds, args.points, 6)
    xyz = cloud[..., :3].contiguous()
    pcds = [o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p.double().numpy())) for p in xyz]

    # Warm-up so numba compilation (or cache loading) is not timed.
    farthest_point_sample(xyz, args.samples)
    grouped = group(cloud, args.samples, args.k)

    rows = [
        (
            "open3d, loop over clouds",
            median_ms(lambda: [p.farthest_point_down_sample(args.samples) for p in pcds], args.repeats),
        ),
        ("onellm numba FPS", median_ms(lambda: farthest_point_sample(xyz, args.samples), args.repeats)),
        ("plain torch loop FPS", median_ms(lambda: torch_loop_fps(xyz, args.samples), args.repeats)),
        (
            f"grouping: FPS + kNN k={args.k} + gather {list(grouped.shape)}",
            median_ms(lambda: group(cloud, args.samples, args.k), args.repeats),
        ),
    ]
    print(
        f"{args.clouds} clouds x {args.points} points -> {args.samples} samples, median of {args.repeats}, 2 threads\n"
    )
    print("| method | median ms |\n|---|---:|")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} |")


if __name__ == "__main__":
    main()
