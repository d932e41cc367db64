"""The cross-cutting work of a training run, one Lightning callback each; OneLLMModule's
configure_callbacks hands them the stage's settings."""

from .bad_samples import BadSamples, TooManyBadSamples
from .export import Export
from .learning_rate import LearningRate
from .rank_record import RankRecord
from .router import RouterStatistics
from .throughput import Throughput

__all__ = ["BadSamples", "Export", "LearningRate", "RankRecord", "RouterStatistics", "Throughput", "TooManyBadSamples"]
