"""Pipeline files: schema, positions and loading."""

from __future__ import annotations

from trtapps.config.loader import load_config, load_config_text, validate_data
from trtapps.config.schema import PipelineConfig, PipelineFile

__all__ = ["PipelineConfig", "PipelineFile", "load_config", "load_config_text", "validate_data"]
