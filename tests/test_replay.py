"""The replay sampler: weights, determinism, resumption, agreement across ranks."""

import collections
import pickle
import warnings

import pytest

from onellm.training.datamodule import _replay_shares
from onellm.training.replay import BlockShuffle, ReplayBatchSampler, ResumableLoader, Shuffle

SIZES = {"image": 50, "audio": 30, "imu": 20}


def test_modality_counts_follow_weights():
    sampler = ReplayBatchSampler(SIZES, {"image": 0.5, "audio": 0.3, "imu": 0.2}, batch_size=2, steps=4000)
    counts = collections.Counter(sampler.schedule(4000))
    for m, w in {"image": 0.5, "audio": 0.3, "imu": 0.2}.items():
        assert abs(counts[m] / 4000 - w) < 0.03


def test_every_batch_holds_one_modality_and_passes_cover_each_sample():
    sampler = ReplayBatchSampler(SIZES, {"image": 1, "audio": 1, "imu": 1}, batch_size=5, steps=300)
    seen = collections.defaultdict(list)
    offsets = {"image": 0, "audio": 50, "imu": 80}
    for step, batch in enumerate(sampler):
        m = sampler.modality_at(step)
        idx = [i for i, _ in batch]
        assert all(offsets[m] <= i < offsets[m] + SIZES[m] for i in idx)
        seen[m] += idx
    for m, n in SIZES.items():  # the first full pass visits every sample exactly once
        assert sorted(seen[m][:n]) == list(range(offsets[m], offsets[m] + n))


def test_same_seed_same_stream_other_seed_differs():
    a = list(ReplayBatchSampler(SIZES, {"image": 1, "audio": 1}, 4, 50, seed=3))
    assert a == list(ReplayBatchSampler(SIZES, {"image": 1, "audio": 1}, 4, 50, seed=3))
    assert a != list(ReplayBatchSampler(SIZES, {"image": 1, "audio": 1}, 4, 50, seed=4))


def test_resume_continues_the_same_stream():
    full = list(ReplayBatchSampler(SIZES, {"image": 2, "imu": 1}, 3, 80, seed=1))
    resumed = list(ReplayBatchSampler(SIZES, {"image": 2, "imu": 1}, 3, 80, seed=1, start_step=37))
    assert resumed == full[37:]


def test_ranks_share_modality_and_split_samples():
    ranks = [
        list(ReplayBatchSampler(SIZES, {"image": 1, "audio": 1, "imu": 1}, 2, 40, rank=r, world_size=2))
        for r in range(2)
    ]
    sampler = ReplayBatchSampler(SIZES, {"image": 1, "audio": 1, "imu": 1}, 2, 40)
    taken = collections.Counter()
    for step, (b0, b1) in enumerate(zip(*ranks)):
        m = sampler.modality_at(step)
        lo = {"image": 0, "audio": 50, "imu": 80}[m]
        assert all(lo <= i < lo + 50 for i, _ in b0 + b1)
        first, taken[m] = taken[m] * 4, taken[m] + 1
        if first // SIZES[m] == (first + 3) // SIZES[m]:  # within one pass: no sample twice
            assert not {i for i, _ in b0} & {i for i, _ in b1}


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 4097])
def test_shuffle_is_a_seeded_permutation(n):
    order = [Shuffle(n, seed=5)[i] for i in range(n)]
    assert sorted(order) == list(range(n))
    if n >= 64:
        assert order != [Shuffle(n, seed=6)[i] for i in range(n)]
        assert order != sorted(order)
        # shuffled, not a rotation or a stride: neighbours land far apart on average
        assert sum(abs(a - b) for a, b in zip(order, order[1:])) / (n - 1) > n / 5


def test_sampler_memory_does_not_grow_with_the_data():
    small = ReplayBatchSampler({"image": 100}, {"image": 1}, 4, 10)
    huge = ReplayBatchSampler({"image": 10**9}, {"image": 1}, 4, 10)
    batches = list(huge)  # a billion samples: no table of indices is built
    assert len(batches) == 10 and all(0 <= i < 10**9 for b in batches for i, _ in b)
    list(small)
    assert len(pickle.dumps(huge)) < 2 * len(pickle.dumps(small))


def test_bad_configuration_is_explained():
    with pytest.raises(ValueError, match="without data"):
        ReplayBatchSampler(SIZES, {"video": 1}, 2, 10)
    with pytest.raises(ValueError, match="fewer samples than one global batch"):
        ReplayBatchSampler({"imu": 3}, {"imu": 1}, 2, 10, world_size=2)


def test_replay_share_splits_steps_between_earlier_and_new_modalities():
    weights = {"image": 1.0, "video": 1.0, "audio": 3.0}
    shares = _replay_shares(weights, {"image"}, 0.25)
    assert shares == pytest.approx({"image": 0.25, "video": 0.1875, "audio": 0.5625})
    assert _replay_shares(weights, {"image"}, 0.0) == {"image": 0.0, "video": 1.0, "audio": 3.0}
    assert _replay_shares(weights, set(), 0.25) == weights  # a first stage has nothing to replay
    with pytest.raises(ValueError, match="nothing new"):
        _replay_shares(weights, set(weights), 0.25)


def test_resuming_a_loader_state_warns_when_the_stream_differs():
    def loader(**kwargs):
        sampler = ReplayBatchSampler(SIZES, {"image": 1, "audio": 1}, 2, 30, **kwargs)
        return ResumableLoader(range(100), batch_sampler=sampler, position=lambda: 7)

    state = loader(seed=1).state_dict()
    same = loader(seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same.load_state_dict(state)
    assert same.batch_sampler.start_step == 7
    with pytest.warns(UserWarning, match="seed changed"):
        loader(seed=2).load_state_dict(state)
    older = {k: v for k, v in state.items() if k != "order"}  # written before the order was recorded
    with pytest.warns(UserWarning, match="order changed"):
        loader(seed=1).load_state_dict(older)


@pytest.mark.parametrize("n, block", [(10, 3), (100, 7), (5, 5), (4, 8), (1000, 64)])
def test_block_shuffle_is_a_permutation_that_keeps_blocks_together(n, block):
    order = [BlockShuffle(n, seed=2, block=block)[i] for i in range(n)]
    assert sorted(order) == list(range(n))
    full = n // block * block
    for start in range(0, full, block):  # each run of `block` positions is one block's indices
        assert len({i // block for i in order[start : start + block]}) == 1
    assert sorted(order[full:]) == list(range(full, n))
    if n // block > 3:
        assert [i // block for i in order[:full:block]] != sorted(i // block for i in order[:full:block])


def test_sampler_with_blocks_touches_few_blocks_per_pass_and_resumes():
    sizes = {"image": 4096}
    free = ReplayBatchSampler(sizes, {"image": 1}, 16, 64, seed=1)
    local = ReplayBatchSampler(sizes, {"image": 1}, 16, 64, seed=1, block=512)

    def chunks_touched(sampler):
        return len({i // 512 for batch in sampler for i, _ in batch})

    assert chunks_touched(local) == 2 and chunks_touched(free) == 8  # 1024 samples of 4096
    resumed = ReplayBatchSampler(sizes, {"image": 1}, 16, 64, seed=1, block=512, start_step=21)
    assert list(resumed) == list(local)[21:]
    assert local.fingerprint()["order"] != free.fingerprint()["order"]
