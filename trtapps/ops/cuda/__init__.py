"""GPU twins of :mod:`trtapps.ops` (CuPy + CUDA kernels from ``kernels/*.cu``).

* :mod:`trtapps.ops.cuda.preprocess`: one fused launch per batch: crop/letterbox resize bit-exact with
  ``cv2.resize`` (INTER_LINEAR, uint8), pad, BGR→RGB, scale/mean/std, HWC→CHW, float32 or float16.
* :mod:`trtapps.ops.cuda.decode`: YOLOv8 / YOLOv5 / YOLOX / RetinaFace heads → fixed-size candidate buffers
  (``atomicAdd`` compaction, one thread per anchor).
* :mod:`trtapps.ops.cuda.nms`: exact greedy NMS for all images of a batch (bitmask method) and one compact
  device→host copy per batch.
* :mod:`trtapps.ops.cuda.candidates`: the candidate buffer sizes between decode and NMS and the best-*k*
  gather in NMS order (NumPy or CuPy).
* :mod:`trtapps.ops.cuda.buffers`: the device input buffer and pinned download buffer an app's device path
  reuses batch after batch.

Each kernel's NumPy reference lives in :mod:`trtapps.ops.preprocess`, :mod:`trtapps.ops.decode` and
:mod:`trtapps.ops.nms`. Importing these modules does not import CuPy; calling them does.
"""
