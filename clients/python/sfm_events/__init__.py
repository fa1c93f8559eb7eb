"""sfm_events: produce memory.event v1 for SomaFractalMemory v2 (sfm-streams) from Python."""

from . import outbox
from .event import EventError, build_event, encode_event, validate_event
from .memory_id import legacy_memory_id
from .producer import ConfigError, MemoryEvents, PublishError, kafka_config_from_env

__all__ = [
    "ConfigError",
    "EventError",
    "MemoryEvents",
    "PublishError",
    "build_event",
    "encode_event",
    "kafka_config_from_env",
    "legacy_memory_id",
    "outbox",
    "validate_event",
]
