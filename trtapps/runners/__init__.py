"""Inference backends behind one interface (:class:`Runner`), and backend selection."""

from __future__ import annotations

from trtapps.runners.base import Runner, TensorInfo, select_backend

__all__ = ["Runner", "TensorInfo", "select_backend"]
