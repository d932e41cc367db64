import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import open3d as o3d
import pytest
import torch

from onellm.tokenizers.point_ops import (
    _fps_torch,
    farthest_point_sample,
    gather_points,
    knn_indices,
)


def _random_cloud(n: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).random((n, 3))).to(dtype)


def _quantized_cloud(n: int, seed: int, levels: int = 5) -> torch.Tensor:
    # Small integer coordinates: squared distances are exact and ties are everywhere.
    return torch.from_numpy(np.random.default_rng(seed).integers(0, levels, (n, 3))).float()


def _sq_dists(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return (points[idx].unsqueeze(1) - points.unsqueeze(0)).square().sum(-1)


def _assert_greedy(points: torch.Tensor, idx: torch.Tensor) -> None:
    """Every pick after the first attains the maximum distance to the points picked before it."""
    assert len(set(idx.tolist())) == len(idx)
    running = torch.cummin(_sq_dists(points, idx), dim=0).values
    chosen = running[:-1].gather(1, idx[1:, None]).squeeze(1)
    assert torch.equal(chosen, running[:-1].max(dim=1).values)


def _cuda_fps_reference(points: list[list[float]], num_samples: int) -> list[int]:
    """Plain-Python walk through the pointnet2 CUDA sampler: strided threads, then a tree reduction."""
    n = len(points)
    threads = 1
    while threads * 2 <= min(n, 1024):
        threads *= 2
    temp = [1e10] * n
    out = [0]
    for _ in range(1, num_samples):
        last = points[out[-1]]
        vals, idxs = [], []
        for t in range(threads):
            best, best_idx = -1.0, 0
            for k in range(t, n, threads):
                d = sum((a - b) ** 2 for a, b in zip(points[k], last))
                temp[k] = min(d, temp[k])
                if temp[k] > best:
                    best, best_idx = temp[k], k
            vals.append(best)
            idxs.append(best_idx)
        stride = threads // 2
        while stride >= 1:
            for t in range(stride):
                if vals[t + stride] > vals[t]:
                    vals[t], idxs[t] = vals[t + stride], idxs[t + stride]
            stride //= 2
        out.append(idxs[0])
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("start", [0, 17])
def test_fps_matches_open3d(start: int, dtype: torch.dtype) -> None:
    points = _random_cloud(4096, seed=1, dtype=dtype)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.double().numpy()))
    picked = np.asarray(pcd.farthest_point_down_sample(512, start_index=start).points)
    # open3d returns the selected points re-sorted by index, so compare as sets.
    row_of = {tuple(p): i for i, p in enumerate(points.double().tolist())}
    o3d_idx = {row_of[tuple(p)] for p in picked.tolist()}
    ours = farthest_point_sample(points[None], 512, start=start)[0]
    assert ours[0].item() == start
    assert set(ours.tolist()) == o3d_idx


def test_fps_output_contract() -> None:
    out = farthest_point_sample(_random_cloud(300, seed=2)[None], 40)
    assert out.dtype == torch.long and out.shape == (1, 40) and out.device.type == "cpu"
    with pytest.raises(ValueError):
        farthest_point_sample(_random_cloud(10, seed=2)[None], 11)
    with pytest.raises(ValueError):
        farthest_point_sample(_random_cloud(10, seed=2)[None], 5, tie_break="last")


def test_tie_break_modes_agree_without_ties() -> None:
    points = _random_cloud(3000, seed=3)[None]
    first = farthest_point_sample(points, 200, tie_break="first")
    cuda = farthest_point_sample(points, 200, tie_break="cuda")
    assert torch.equal(first, cuda)


def test_tie_break_modes_differ_with_ties() -> None:
    points = _quantized_cloud(2000, seed=4)
    first = farthest_point_sample(points[None], 64, tie_break="first")[0]
    cuda = farthest_point_sample(points[None], 64, tie_break="cuda")[0]
    assert not torch.equal(first, cuda)
    # Each mode is a legitimate FPS run; only the choice among tied candidates differs.
    _assert_greedy(points, first)
    _assert_greedy(points, cuda)
    # "first" resolves every tie to the lowest index.
    running = torch.cummin(_sq_dists(points, first), dim=0).values[:-1]
    assert torch.equal(first[1:], running.argmax(dim=1))


def test_cuda_tie_break_by_hand() -> None:
    # N=8 -> 8 threads of one point each. From x=0 the points at x=3 (idx 3, 7) and x=-3 (idx 6)
    # tie; the halving reduction sends 6 to slot 2 and keeps 3 over 7 in slot 3, then slot 0
    # takes 6 and keeps it over 3. The lowest-index rule would pick 3 first instead.
    xs = [0, 1, 2, 3, -1, -2, -3, 3]
    points = torch.tensor([[x, 0.0, 0.0] for x in xs])[None]
    assert farthest_point_sample(points, 3, tie_break="cuda")[0].tolist() == [0, 6, 3]
    assert farthest_point_sample(points, 3, tie_break="first")[0].tolist() == [0, 3, 6]
    assert _cuda_fps_reference(points[0].tolist(), 3) == [0, 6, 3]


@pytest.mark.parametrize("n", [37, 64, 100, 1500])
def test_cuda_tie_break_matches_reference(n: int) -> None:
    points = _quantized_cloud(n, seed=n, levels=4)
    ours = farthest_point_sample(points[None], 24, tie_break="cuda")[0]
    assert ours.tolist() == _cuda_fps_reference(points.tolist(), 24)


@pytest.mark.parametrize("tie_break", ["first", "cuda"])
def test_fps_batched_equals_per_cloud(tie_break: str) -> None:
    clouds = torch.stack([_quantized_cloud(700, seed=10), _random_cloud(700, seed=11)])
    batched = farthest_point_sample(clouds, 50, start=5, tie_break=tie_break)
    for b in range(len(clouds)):
        single = farthest_point_sample(clouds[b : b + 1], 50, start=5, tie_break=tie_break)
        assert torch.equal(batched[b], single[0])


def test_torch_fps_matches_numba() -> None:
    # The torch loop serves CUDA tensors; it must agree with the CPU kernel, ties included.
    clouds = torch.stack([_quantized_cloud(500, seed=12), _random_cloud(500, seed=13)])
    assert torch.equal(_fps_torch(clouds, 60, 3), farthest_point_sample(clouds, 60, start=3))


def test_fps_uses_all_columns() -> None:
    # Columns 3.. dominate the spread, so FPS over 6 columns must differ from FPS over xyz.
    rng = np.random.default_rng(14)
    points = torch.from_numpy(np.concatenate([rng.random((400, 3)), 100 * rng.random((400, 3))], 1)).float()
    all_cols = farthest_point_sample(points[None], 30)[0]
    _assert_greedy(points, all_cols)
    assert not torch.equal(all_cols, farthest_point_sample(points[None, :, :3], 30)[0])


def test_knn_matches_brute_force() -> None:
    points = torch.stack([_random_cloud(512, seed=15), _random_cloud(512, seed=16)])
    query = points[:, :64]
    idx = knn_indices(query, points, 8)
    assert idx.shape == (2, 64, 8) and idx.dtype == torch.long
    brute = (query.unsqueeze(2) - points.unsqueeze(1)).square().sum(-1).argsort(dim=-1)[..., :8]
    assert torch.equal(idx, brute)
    assert torch.equal(idx[..., 0], torch.arange(64).expand(2, 64))


def test_gather_points() -> None:
    points = torch.randn(2, 50, 6)
    centers = torch.randint(0, 50, (2, 10))
    neighbours = torch.randint(0, 50, (2, 10, 4))
    assert gather_points(points, centers).shape == (2, 10, 6)
    grouped = gather_points(points, neighbours)
    assert grouped.shape == (2, 10, 4, 6)
    assert torch.equal(grouped[1, 3, 2], points[1, neighbours[1, 3, 2]])


SETTINGS_PROBE = """
import open3d  # brings its own, older libtbb, which numba's TBB probe warns about
import torch

torch.set_num_threads(1)
import numba
from onellm import OneLLM, OneLLMConfig

model = OneLLM(OneLLMConfig.from_preset("tiny")).eval()
model.caption("point", model.tokenizers["point"].example_input(2), max_new_tokens=1)
print(torch.get_num_threads(), numba.threading_layer())
"""


@pytest.mark.slow
def test_fps_leaves_the_thread_count_alone_and_prints_nothing() -> None:
    """numba's default layer would set torch's thread count from 1 to 2 (OpenMP) and warn
    about open3d's libtbb; a fresh process, since the layer is chosen once per process."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    out = subprocess.run([sys.executable, "-c", SETTINGS_PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "workqueue"] and out.stderr == ""


def test_fps_launches_from_several_threads_take_turns() -> None:
    """The workqueue layer aborts the process on concurrent launches."""
    cloud = _random_cloud(4000, 0).unsqueeze(0)
    expected = farthest_point_sample(cloud, 64)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: farthest_point_sample(cloud, 64), range(6)))
    assert all(torch.equal(r, expected) for r in results)
