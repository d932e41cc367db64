"""Evaluation (`onellm eval`): tasks (tasks.py, readers in formats.py), metrics (metrics.py),
and the runner that combines a model, a task and its metrics (runner.py)."""
