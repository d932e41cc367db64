"""Point-cloud primitives for the point tokenizer: farthest point sampling, kNN and gathering.

OneLLM built these on a compiled pointnet2 CUDA extension; here FPS runs as a numba kernel on
CPU (and as a batched torch loop on GPU), so the point tokenizer needs no custom build.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import torch
from numba import config, njit, prange

# numba's default threading layer is a library changing the process's settings: its OpenMP
# layer raises torch's intra-op thread count (1 -> 2), and with open3d's older libtbb loaded,
# its TBB probe prints a two-line warning on every point cloud. The workqueue layer does
# neither; a user's own NUMBA_THREADING_LAYER still wins.
if "NUMBA_THREADING_LAYER" not in os.environ and config.THREADING_LAYER == "default":
    config.THREADING_LAYER = "workqueue"
# The workqueue layer aborts the process when two threads launch kernels at once (a web
# server's request threads, say), so launches take turns.
_KERNEL_LOCK = threading.Lock()

# The original sampler fills its running-min buffer with 1e10 rather than +inf.
_INIT_DIST = 1e10
# Block size cap of the original CUDA sampler.
_CUDA_MAX_THREADS = 1024


@njit(inline="always", cache=True, fastmath=False)
def _squared_distance(pts: np.ndarray, k: int, last: int) -> float:
    """|pts[k] - pts[last]|^2, summed column by column in the original kernel's order."""
    d = pts[k, 0] - pts[last, 0]
    d = d * d
    for j in range(1, pts.shape[1]):
        diff = pts[k, j] - pts[last, j]
        d += diff * diff
    return d


@njit(parallel=True, cache=True, fastmath=False)
def _fps_first_kernel(points: np.ndarray, num_samples: int, start: int) -> np.ndarray:
    num_clouds, n, _ = points.shape
    out = np.empty((num_clouds, num_samples), dtype=np.int64)
    for b in prange(num_clouds):
        pts = points[b]
        min_dist = np.full(n, _INIT_DIST, dtype=points.dtype)
        last = start
        out[b, 0] = last
        for i in range(1, num_samples):
            # Fused: update running min distance and track its first strict maximum in one pass.
            best = -1.0
            best_idx = 0
            for k in range(n):
                d = min(_squared_distance(pts, k, last), min_dist[k])
                min_dist[k] = d
                if d > best:
                    best = d
                    best_idx = k
            last = best_idx
            out[b, i] = last
    return out


@njit(parallel=True, cache=True, fastmath=False)
def _fps_cuda_kernel(points: np.ndarray, num_samples: int, start: int) -> np.ndarray:
    num_clouds, n, _ = points.shape
    threads = 1
    while threads * 2 <= n and threads * 2 <= _CUDA_MAX_THREADS:
        threads *= 2
    out = np.empty((num_clouds, num_samples), dtype=np.int64)
    for b in prange(num_clouds):
        pts = points[b]
        temp = np.full(n, _INIT_DIST, dtype=points.dtype)
        vals = np.empty(threads, dtype=points.dtype)
        idxs = np.empty(threads, dtype=np.int64)
        last = start
        out[b, 0] = last
        for i in range(1, num_samples):
            # Each CUDA thread t strides over points t, t+T, ... keeping its first strict maximum.
            for t in range(threads):
                best = -1.0
                best_idx = 0
                for k in range(t, n, threads):
                    d2 = min(_squared_distance(pts, k, last), temp[k])
                    temp[k] = d2
                    if d2 > best:
                        best = d2
                        best_idx = k
                vals[t] = best
                idxs[t] = best_idx
            # Shared-memory tree reduction: the upper slot wins only when strictly greater.
            stride = threads // 2
            while stride >= 1:
                for t in range(stride):
                    if vals[t + stride] > vals[t]:
                        vals[t] = vals[t + stride]
                        idxs[t] = idxs[t + stride]
                stride //= 2
            last = idxs[0]
            out[b, i] = last
    return out


def _fps_torch(points: torch.Tensor, num_samples: int, start: int) -> torch.Tensor:
    num_clouds, n, _ = points.shape
    rows = torch.arange(num_clouds, device=points.device)
    min_dist = torch.full((num_clouds, n), _INIT_DIST, dtype=points.dtype, device=points.device)
    out = torch.empty((num_clouds, num_samples), dtype=torch.long, device=points.device)
    last = torch.full((num_clouds,), start, dtype=torch.long, device=points.device)
    for i in range(num_samples):
        out[:, i] = last
        if i + 1 == num_samples:
            break
        d = (points - points[rows, last].unsqueeze(1)).square().sum(-1)
        torch.minimum(min_dist, d, out=min_dist)
        # argmax returns the first maximal index, matching tie_break="first".
        last = min_dist.argmax(dim=1)
    return out


@torch.no_grad()
def farthest_point_sample(
    points: torch.Tensor, num_samples: int, start: int = 0, tie_break: str = "first"
) -> torch.Tensor:
    """Farthest point sampling over all C columns of `points` [B, N, C].

    Returns LongTensor [B, num_samples] of indices on the input's device; column 0 is `start`.
    tie_break="first" picks the lowest index among equal running-min distances; "cuda"
    reproduces the block-strided argmax of OneLLM's pointnet2 CUDA sampler. float64 input is
    kept in float64, anything else is computed in float32.
    """
    if points.dim() != 3:
        raise ValueError(f"points must be [B, N, C], got shape {tuple(points.shape)}")
    n = points.shape[1]
    if not 1 <= num_samples <= n:
        raise ValueError(f"num_samples must be in [1, {n}], got {num_samples}")
    if not 0 <= start < n:
        raise ValueError(f"start must be in [0, {n}), got {start}")
    if tie_break not in ("first", "cuda"):
        raise ValueError(f"tie_break must be 'first' or 'cuda', got {tie_break!r}")

    dtype = torch.float64 if points.dtype == torch.float64 else torch.float32
    if points.device.type != "cpu" and tie_break == "first":
        return _fps_torch(points.to(dtype), num_samples, start)
    # The CUDA tie-break is emulated on CPU for every device: exactness matters more than speed there.
    arr = points.detach().to(device="cpu", dtype=dtype).contiguous().numpy()
    kernel = _fps_first_kernel if tie_break == "first" else _fps_cuda_kernel
    with _KERNEL_LOCK:
        picked = kernel(arr, num_samples, start)
    return torch.from_numpy(picked).to(points.device)


@torch.no_grad()
def knn_indices(query: torch.Tensor, points: torch.Tensor, k: int) -> torch.Tensor:
    """Indices [B, M, k] of the k points in `points` [B, N, C] nearest to each `query` [B, M, C]."""
    return torch.cdist(query, points).topk(k, dim=-1, largest=False).indices


def gather_points(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Select rows of `points` [B, N, C] by `idx` [B, ...], giving [B, ..., C]."""
    rows = torch.arange(points.shape[0], device=points.device).view(-1, *([1] * (idx.dim() - 1)))
    return points[rows, idx]
