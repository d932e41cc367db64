"""Synthetic IMU traces: a body-worn accelerometer + gyroscope during one activity.

Accelerometers measure specific force, so a still device reads +9.81 m/s^2 against gravity
and a device in free fall (mid-jump) reads about zero."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import pick, rotation

GRAVITY = 9.81
RATES = (50, 100)
CAPTIONS = {
    "idle": ("the person is standing still", "someone stands still without moving"),
    "walking": ("the person is walking", "someone walks at a steady pace"),
    "running": ("the person is running", "someone runs quickly"),
    "turning left": ("the person turns to the left", "someone walks and turns left"),
    "turning right": ("the person turns to the right", "someone walks and turns right"),
    "jumping": ("the person jumps {times}", "someone jumps up and lands {times}"),
}
TIMES = {1: "once", 2: "twice", 3: "three times"}


def _gait(t: np.ndarray, steps_per_s: float, bounce: float, sway: float, rng: np.random.Generator) -> np.ndarray:
    """[N, 6] body motion for walking or running: a vertical bounce per step, a forward
    surge and a side sway per stride (two steps), and the matching small rotations."""
    phase = 2 * np.pi * steps_per_s * t + rng.uniform(0, 2 * np.pi)
    out = np.zeros((t.size, 6))
    out[:, 2] = bounce * np.sin(phase) + 0.3 * bounce * np.sin(2 * phase)
    out[:, 0] = 0.4 * bounce * np.sin(phase + 0.5)
    out[:, 1] = sway * np.sin(phase / 2)
    out[:, 3] = 0.08 * bounce * np.sin(phase / 2)
    out[:, 4] = 0.05 * bounce * np.sin(phase)
    out[:, 5] = 0.06 * bounce * np.sin(phase / 2 + 1.0)
    return out


def _jumps(t: np.ndarray, times: int, rng: np.random.Generator) -> np.ndarray:
    """[N, 6]: crouch, push-off peak, ~0.35 s of free fall (the reading drops to zero, i.e.
    minus gravity here), then a landing spike, for each jump."""
    out = np.zeros((t.size, 6))
    starts = np.linspace(0.3, t[-1] - 0.9, times) + rng.uniform(-0.05, 0.05, size=times)
    for start in starts:
        push, flight = start + 0.2, rng.uniform(0.3, 0.4)
        out[:, 2] += -3.0 * np.exp(-(((t - start) / 0.08) ** 2))
        out[:, 2] += 12.0 * np.exp(-(((t - push) / 0.06) ** 2))
        out[:, 2] += np.where((t > push + 0.08) & (t < push + 0.08 + flight), -GRAVITY, 0.0)
        out[:, 2] += 25.0 * np.exp(-(((t - push - 0.1 - flight) / 0.04) ** 2))
        out[:, 4] += 0.8 * np.exp(-(((t - push - 0.1 - flight) / 0.05) ** 2))
    return out


def _turn(t: np.ndarray, direction: float, rng: np.random.Generator) -> np.ndarray:
    """[N, 6] yaw rate of a turn of 60-120 degrees over about a second, mid-window."""
    angle, width = np.deg2rad(rng.uniform(60, 120)), rng.uniform(0.7, 1.1)
    bump = np.exp(-(((t - t[-1] / 2) / (width / 2.5)) ** 2))
    out = np.zeros((t.size, 6))
    out[:, 5] = direction * angle * bump / (bump.sum() * (t[1] - t[0]))
    out[:, 1] = direction * 1.2 * bump  # centripetal pull towards the inside of the turn
    return out


def motion(activity: str, t: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Body-frame motion [N, 6] (no gravity, no noise) and the number of jumps."""
    if activity == "idle":
        return np.zeros((t.size, 6)), 0
    if activity == "walking":
        return _gait(t, rng.uniform(1.6, 2.2), rng.uniform(1.5, 3.0), 0.5, rng), 0
    if activity == "running":
        return _gait(t, rng.uniform(2.6, 3.2), rng.uniform(7.0, 11.0), 1.2, rng), 0
    if activity in ("turning left", "turning right"):
        # Left is a positive (counter-clockwise) yaw rate about the upward z axis.
        direction = 1.0 if activity == "turning left" else -1.0
        return _gait(t, rng.uniform(1.6, 2.0), rng.uniform(1.0, 2.0), 0.4, rng) + _turn(t, direction, rng), 0
    if activity == "jumping":
        times = int(rng.integers(1, 4 if t[-1] > 3.0 else 3))
        return _jumps(t, times, rng), times
    raise ValueError(f"unknown activity {activity!r}")


def synthesize(out_dir: Path, sample_id: str, rng: np.random.Generator) -> dict:
    """Write `<id>.npy` [N, 6] (ax, ay, az m/s^2, gx, gy, gz rad/s) or `<id>.csv` with a
    timestamp column, 2-4 s at 50 or 100 Hz; returns manifest fields (meta sample_rate)."""
    activity, rate = pick(rng, tuple(CAPTIONS)), pick(rng, RATES)
    t = np.arange(int(rng.uniform(2.0, 4.0) * rate)) / rate
    body, jumps = motion(activity, t, rng)
    # The device is worn slightly tilted, so gravity (and all motion) shows up a little on
    # every axis; tilting after adding gravity keeps free fall at an exact zero reading.
    body[:, 2] += GRAVITY
    tilt = rotation(*rng.normal(0, 0.08, size=2))
    trace = np.concatenate([body[:, :3] @ tilt.T, body[:, 3:] @ tilt.T], axis=1)
    trace += rng.normal(0, 1.0, size=6) * np.array([0.02, 0.02, 0.02, 0.002, 0.002, 0.002])  # bias
    trace += rng.normal(size=trace.shape) * np.array([0.05, 0.05, 0.05, 0.01, 0.01, 0.01])
    trace = trace.astype(np.float32)

    if rng.uniform() < 0.3:
        path = out_dir / f"{sample_id}.csv"
        table = np.concatenate([t[:, None], trace], axis=1)
        np.savetxt(path, table, delimiter=",", fmt="%.5f", header="timestamp,ax,ay,az,gx,gy,gz", comments="")
    else:
        path = out_dir / f"{sample_id}.npy"
        np.save(path, trace)

    caption = pick(rng, CAPTIONS[activity]).format(times=TIMES.get(jumps, ""))
    moving = "no" if activity == "idle" else "yes"
    qa = [
        {"question": "What is the person doing?", "answer": activity.replace("idle", "standing still")},
        {"question": "Is the person moving?", "answer": moving},
    ]
    if jumps:
        qa.append({"question": "How many times does the person jump?", "answer": TIMES[jumps]})
    return {
        "files": [path.name],
        "caption": caption,
        "qa": qa,
        "meta": {"activity": activity, "sample_rate": rate, "seconds": round(t.size / rate, 2), "jumps": jumps},
    }
