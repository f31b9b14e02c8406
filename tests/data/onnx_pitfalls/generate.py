"""Generate the tiny ONNX models of ``tests/onnx``: each export pitfall of the guide exported the WRONG way and
the RIGHT way with PyTorch, as a user would.

torch is not a dependency of trtapps, so the models are committed (a few KB each) and this script documents how
they were made. Regenerate with::

    pip install torch onnxscript      # CPU is enough
    python tests/data/onnx_pitfalls/generate.py

``manifest.json`` records, per model, the exporter, what it demonstrates and what ``trtapps onnx check`` must find
(``expect``: rule → severity) or must not find (``absent``), and whether ``trtapps onnx fix`` must repair it.
Exports use the TorchScript exporter (``dynamo=False``, what most export guides and the shared models use) at opset
17, plus two with the torch.export-based exporter that is the default since PyTorch 2.9.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
SIZE = 32  # input height/width: tiny models, tiny files


class Stem(nn.Module):
    """Conv-BN-ReLU twice: 3×32×32 → 8×8×8, the part every model shares."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SizeChainWrong(Stem):
    """``b, c, h, w = y.shape; y.view(b, c, h * w)``: the sizes are traced, Shape→Gather chains appear."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        b, c, h, w = y.shape
        return y.view(b, c, h * w)


class SizeChainRight(Stem):
    """``y.view(-1, int(c), int(h * w))``: -1 on the batch, int() for the rest: a constant shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        _, c, h, w = y.shape
        return y.view(-1, int(c), int(h * w))


class UpsampleSizeWrong(Stem):
    """``F.interpolate(y, size=(h * 2, w * 2))``: Resize fed by sizes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        h, w = y.shape[2:]
        return F.interpolate(y, size=(h * 2, w * 2), mode="nearest") + 1.0


class UpsampleScaleRight(Stem):
    """``F.interpolate(y, scale_factor=2)``: Resize fed by constant scales."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return F.interpolate(y, scale_factor=2.0, mode="nearest") + 1.0


class ReshapeBatchWrong(Stem):
    """``y.view(int(y.shape[0]), 8, -1)``: int() on the batch bakes the export batch into the Reshape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return y.view(int(y.shape[0]), 8, -1).transpose(1, 2)


class ReshapeBatchRight(Stem):
    """``y.view(-1, 8, int(h * w))``: -1 on the batch axis, the others computed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        h, w = y.shape[2:]
        return y.view(-1, 8, int(h * w)).transpose(1, 2)


class Dense(Stem):
    """A fully convolutional head: any batch, any size."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.body(x)))


class Unique(Stem):
    """``torch.unique``: an operator TensorRT does not import."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.unique(torch.round(self.body(x)))


class MaskSelect(Stem):
    """``y[y > 0.5]``: NonZero, a data-dependent output shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return y[y > 0.5]


def _legacy(model: nn.Module, name: str, *, dynamic: dict[int, str] | None, opset: int = 17,
            training: bool = False) -> None:
    model.eval()
    axes = {"images": dynamic, "output": {0: "batch"} if dynamic and 0 in dynamic else {}} if dynamic else None
    mode = torch.onnx.TrainingMode.TRAINING if training else torch.onnx.TrainingMode.EVAL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.rand(1, 3, SIZE, SIZE),), str(HERE / f"{name}.onnx"), dynamo=False, opset_version=opset,
            input_names=["images"], output_names=["output"], dynamic_axes=axes, training=mode,
            do_constant_folding=not training,
        )


def _simplified(name: str) -> None:
    """Run onnxslim on an export, as users do (onnxsim/onnxslim after a static export folds every shape)."""
    import onnxslim

    import onnx

    path = HERE / f"{name}.onnx"
    onnx.save(onnxslim.slim(onnx.load(str(path))), str(path))


def _dynamo(model: nn.Module, name: str, *, dynamic: bool) -> None:
    model.eval()
    shapes = {"x": {0: torch.export.Dim("batch", min=1, max=64)}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (torch.rand(2, 3, SIZE, SIZE),), dynamo=True, dynamic_shapes=shapes,
                                    input_names=["images"], output_names=["output"], opset_version=18)
        program.save(str(HERE / f"{name}.onnx"))


#: name → (build, exporter call, manifest entry)
CASES: list[tuple[str, Any, dict[str, Any]]] = [
    ("size_chain_wrong", lambda n: _legacy(SizeChainWrong(), n, dynamic={0: "batch"}),
     {"rule": "size() used without int()", "expect": {"shape-chain": "warning"}, "fix": True}),
    ("size_chain_right", lambda n: _legacy(SizeChainRight(), n, dynamic={0: "batch"}),
     {"rule": "size() used without int()", "absent": ["shape-chain"]}),
    ("upsample_size_wrong", lambda n: _legacy(UpsampleSizeWrong(), n, dynamic={0: "batch"}),
     {"rule": "interpolate with size", "expect": {"resize-sizes": "warning"}, "fix": True}),
    ("upsample_size_static_wrong", lambda n: (_legacy(UpsampleSizeWrong(), n, dynamic=None), _simplified(n)),
     {"rule": "interpolate with size, static export simplified", "expect": {"resize-sizes": "error",
                                                                            "batch-fixed": "error"}, "fix": True}),
    ("upsample_scale_right", lambda n: _legacy(UpsampleScaleRight(), n, dynamic={0: "batch"}),
     {"rule": "interpolate with size", "absent": ["resize-sizes", "shape-chain"]}),
    ("reshape_batch_wrong", lambda n: _legacy(ReshapeBatchWrong(), n, dynamic={0: "batch"}),
     {"rule": "-1 on the batch axis", "expect": {"reshape-batch": "error"}, "fix": True}),
    ("reshape_batch_right", lambda n: _legacy(ReshapeBatchRight(), n, dynamic={0: "batch"}),
     {"rule": "-1 on the batch axis", "absent": ["reshape-batch", "batch-baked", "shape-chain"]}),
    ("dynamic_axes_wrong", lambda n: _legacy(Dense(), n, dynamic={0: "batch", 2: "height", 3: "width"}),
     {"rule": "dynamic_axes on the batch only", "expect": {"symbolic-dims": "warning"}}),
    ("dynamic_axes_right", lambda n: _legacy(Dense(), n, dynamic={0: "batch"}),
     {"rule": "dynamic_axes on the batch only", "absent": ["symbolic-dims", "batch-fixed"]}),
    ("fixed_batch_wrong", lambda n: _legacy(Dense(), n, dynamic=None),
     {"rule": "dynamic_axes on the batch only", "expect": {"batch-fixed": "error"}, "fix": True}),
    ("training_mode_wrong", lambda n: _legacy(Dense(), n, dynamic={0: "batch"}, training=True),
     {"rule": "export after model.eval()", "expect": {"training-mode": "error"}, "fix": False}),
    ("unique_op_wrong", lambda n: _legacy(Unique(), n, dynamic={0: "batch"}),
     {"rule": "operators TensorRT does not import", "expect": {"unsupported-op": "error"}, "fix": False}),
    ("nonzero_wrong", lambda n: _legacy(MaskSelect(), n, dynamic={0: "batch"}),
     {"rule": "data-dependent shapes", "expect": {"data-dependent": "warning"}, "fix": False}),
    ("dynamo_static_wrong", lambda n: _dynamo(SizeChainWrong(), n, dynamic=False),
     {"rule": "torch.export without dynamic_shapes", "expect": {"batch-fixed": "error", "reshape-batch": "error"},
      "fix": True}),
    ("dynamo_dynamic_right", lambda n: _dynamo(SizeChainWrong(), n, dynamic=True),
     {"rule": "torch.export with a dynamic batch", "absent": ["batch-fixed", "reshape-batch", "batch-baked"]}),
]


def main() -> None:
    manifest: dict[str, Any] = {"torch": torch.__version__, "models": {}}
    for name, export, entry in CASES:
        torch.manual_seed(0)
        export(name)
        exporter = "torch.export (dynamo=True)" if name.startswith("dynamo") else "TorchScript (dynamo=False)"
        manifest["models"][name] = {"exporter": exporter, **entry}
        print(f"{name}.onnx  {(HERE / f'{name}.onnx').stat().st_size} bytes")
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
