"""Instruction data: schema, task generators, the dataset builder and the joined dataset view."""

from .build import BuildConfig, build_dataset
from .schema import SAMPLE_FEATURES, SampleError, validate_sample
from .tasks import TASKS

__all__ = [
    "SAMPLE_FEATURES",
    "TASKS",
    "BuildConfig",
    "SampleError",
    "build_dataset",
    "validate_sample",
]
