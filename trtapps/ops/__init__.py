"""Reusable array operations (box math, NMS, letterbox…). Each host (NumPy) function is the reference that the
GPU kernels in ``trtapps.ops.cuda`` are tested against."""
