"""What the runners that keep data on the GPU share (``onnxruntime_cuda``, ``tensorrt``): refusing to start
where the backend cannot run, the device they run on, and the check that every feed is a CuPy array there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trtapps.errors import BackendUnavailableError
from trtapps.runners.base import Runner, TensorInfo
from trtapps.stages import Residency


class DeviceRunner(Runner):
    """A runner fed and read as CuPy arrays on one GPU.

    Attributes:
        device_id: the CUDA device ordinal (``device`` is ``"cuda:<device_id>"``).
    """

    residency = Residency.DEVICE
    device_id: int

    def _claim_device(self, model_path: str | Path, device: int, reason: str | None) -> None:
        """Refuse to start where the backend cannot run (*reason*, its ``available()``), else record the model
        file and the device.

        Raises:
            BackendUnavailableError: *reason* is not ``None`` (``backend '<name>' cannot run here: <reason>``).
        """
        if reason is not None:
            raise BackendUnavailableError(f"backend '{self.backend}' cannot run here: {reason}")
        self.model_path = Path(model_path)
        self.device_id = int(device)
        self.device = f"cuda:{self.device_id}"

    def _check_device_input(self, info: TensorInfo, array: Any, cupy: Any, holder: str) -> None:
        """Raise unless the feed *array* of input *info* is a CuPy array on this runner's device.

        Args:
            holder: what holds the model on the device, for the message (``"model"``, ``"engine"``).

        Raises:
            TypeError: not a CuPy array.
            ValueError: a CuPy array on another device.
        """
        if not isinstance(array, cupy.ndarray):
            raise TypeError(
                f"{self.model_path.name}: input {info.name!r} must be a CuPy array on {self.device} "
                f"(backend {self.backend} keeps data on the GPU), got {type(array).__name__}"
            )
        if array.device.id != self.device_id:
            raise ValueError(
                f"{self.model_path.name}: input {info.name!r} is on cuda:{array.device.id}, the {holder} on "
                f"{self.device}"
            )
