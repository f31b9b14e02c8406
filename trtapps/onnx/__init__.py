"""Model preparation at the ONNX level, shared by every backend.

* :mod:`trtapps.onnx.check`: find the export pitfalls that break a dynamic-batch TensorRT build (``trtapps onnx
  check``), reading the graph exactly as given.
* :mod:`trtapps.onnx.fix`: simplify the graph, make the batch (and only it) dynamic, rewrite the shape constants
  that bake the export batch, and prove the result equivalent with ONNX Runtime (``trtapps onnx fix``).
* :mod:`trtapps.onnx.precision`: fp16 conversion and INT8 explicit quantization (Q/DQ).
* :mod:`trtapps.onnx.metadata`: what a prepared model is, kept in its ``metadata_props``.
* :mod:`trtapps.onnx.graph`: the graph helpers they share (constants, producers/consumers, shape inference with
  the batch traced as a symbol).

The submodules import ``onnx`` (and ONNX Runtime, onnxslim) only when used, so importing this package is cheap.
"""
