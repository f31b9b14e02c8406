"""Kalman filters of the reference trackers, vectorised over all tracks.

Two constant-velocity models, each a set of functions over stacked states (``(N, dim)`` means and ``(N, dim,
dim)`` covariances), so one call predicts or updates every track of a tracker with no per-track Python loop:

* :class:`SortKalman` — abewley/sort's filter on ``[x, y, s, r, vx, vy, vs]`` (centre, area, aspect ratio),
  with SORT's noise settings and filterpy's update equations (Joseph form, ``S⁻¹`` by explicit inverse).
* :class:`XyahKalman` — nwojke/deep_sort's filter on ``[x, y, a, h, vx, vy, va, vh]`` (centre, aspect ratio,
  height), noise proportional to the height with weights 1/20 (position) and 1/160 (velocity); ByteTrack uses
  the same filter. Also gives the squared Mahalanobis gating distance.

Everything is float64, like the references. The arrays are NumPy; the functions only use operations CuPy has
too, so a device variant can reuse them with ``xp=cupy`` later.
"""

from __future__ import annotations

import numpy as np

#: 0.95 quantile of the chi-square distribution with N degrees of freedom (deep_sort's gating thresholds)
CHI2INV95 = {1: 3.8415, 2: 5.9915, 3: 7.8147, 4: 9.4877, 5: 11.070, 6: 12.592, 7: 14.067, 8: 15.507, 9: 16.919}


class SortKalman:
    """SORT's constant-velocity filter on ``[x, y, s, r, vx, vy, vs]``, batched.

    Noise exactly as abewley/sort sets up its filterpy ``KalmanFilter(dim_x=7, dim_z=4)``: ``R[2:, 2:] *= 10``,
    ``P[4:, 4:] *= 1000`` then ``P *= 10``, ``Q[-1, -1] *= 0.01`` then ``Q[4:, 4:] *= 0.01`` (all starting from
    identity). The update is filterpy's: ``K = P Hᵀ (H P Hᵀ + R)⁻¹`` and the Joseph form
    ``P = (I − KH) P (I − KH)ᵀ + K R Kᵀ``.
    """

    dim_x = 7
    dim_z = 4

    def __init__(self) -> None:
        f = np.eye(7)
        f[0, 4] = f[1, 5] = f[2, 6] = 1.0
        self.F = f
        self.FT = np.ascontiguousarray(f.T)
        r = np.eye(4)
        r[2:, 2:] *= 10.0
        self.R = r
        p = np.eye(7)
        p[4:, 4:] *= 1000.0
        p *= 10.0
        self.P0 = p
        q = np.eye(7)
        q[-1, -1] *= 0.01
        q[4:, 4:] *= 0.01
        self.Q = q
        self._eye = np.eye(7)

    def initiate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """States for new tracks from ``(N, 4)`` measurements ``[x, y, s, r]``: zero velocity, ``P0``."""
        n = z.shape[0]
        x = np.zeros((n, 7))
        x[:, :4] = z
        return x, np.broadcast_to(self.P0, (n, 7, 7)).copy()

    def predict(self, x: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step ahead for every track, with SORT's rule that a shrinking area never goes negative.

        ``if x[6] + x[2] <= 0: x[6] = 0`` (the area velocity is zeroed), then ``x = F x``, ``P = F P Fᵀ + Q``.
        """
        x = x.copy()
        x[(x[:, 6] + x[:, 2]) <= 0, 6] = 0.0
        x = x @ self.FT
        p = self.F @ p @ self.FT + self.Q
        return x, p

    def update(self, x: np.ndarray, p: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Measurement update of ``(M, 7)`` states with ``(M, 4)`` measurements (filterpy's equations)."""
        y = z - x[:, :4]
        pht = p[:, :, :4]  # P Hᵀ
        s = pht[:, :4, :] + self.R  # H P Hᵀ + R
        k = pht @ np.linalg.inv(s)  # (M, 7, 4)
        x = x + (k @ y[:, :, None])[:, :, 0]
        i_kh = np.broadcast_to(self._eye, p.shape).copy()
        i_kh[:, :, :4] -= k  # I − K H
        p = i_kh @ p @ i_kh.transpose(0, 2, 1) + k @ self.R @ k.transpose(0, 2, 1)
        return x, p


def xyxy_to_sort_z(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` corners → SORT measurements ``[x, y, s, r]`` (centre, area ``w·h``, aspect ``w/h``)."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    z = np.empty((boxes.shape[0], 4))
    z[:, 0] = boxes[:, 0] + w / 2.0
    z[:, 1] = boxes[:, 1] + h / 2.0
    z[:, 2] = w * h
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero-height box gives inf/nan, as in the reference
        z[:, 3] = w / h
    return z


def sort_x_to_xyxy(x: np.ndarray) -> np.ndarray:
    """SORT states → ``(N, 4)`` corners (``w = √(s·r)``, ``h = s / w``); NaN where ``s·r < 0``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.sqrt(x[:, 2] * x[:, 3])
        h = x[:, 2] / w
    out = np.empty((x.shape[0], 4))
    out[:, 0] = x[:, 0] - w / 2.0
    out[:, 1] = x[:, 1] - h / 2.0
    out[:, 2] = x[:, 0] + w / 2.0
    out[:, 3] = x[:, 1] + h / 2.0
    return out


class XyahKalman:
    """deep_sort's (and ByteTrack's) constant-velocity filter on ``[x, y, a, h, vx, vy, va, vh]``, batched.

    Standard deviations are proportional to the box height ``h`` (``mean[:, 3]``) with ``σ_p = 1/20`` and
    ``σ_v = 1/160``; the aspect ratio has fixed noise (1e-2 position, 1e-5 velocity, 1e-1 measurement).
    """

    ndim = 4

    def __init__(self, std_weight_position: float = 1.0 / 20, std_weight_velocity: float = 1.0 / 160) -> None:
        motion = np.eye(8)
        motion[:4, 4:] = np.eye(4)
        self.motion = motion
        self.motion_t = np.ascontiguousarray(motion.T)
        self.std_weight_position = std_weight_position
        self.std_weight_velocity = std_weight_velocity

    def initiate(self, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks from ``(N, 4)`` ``[x, y, a, h]`` measurements: zero velocity, height-scaled covariance."""
        n = measurement.shape[0]
        mean = np.zeros((n, 8))
        mean[:, :4] = measurement
        h = measurement[:, 3]
        wp, wv = self.std_weight_position, self.std_weight_velocity
        std = np.empty((n, 8))
        std[:, 0] = std[:, 1] = std[:, 3] = 2 * wp * h
        std[:, 2] = 1e-2
        std[:, 4] = std[:, 5] = std[:, 7] = 10 * wv * h
        std[:, 6] = 1e-5
        cov = np.zeros((n, 8, 8))
        idx = np.arange(8)
        cov[:, idx, idx] = np.square(std)
        return mean, cov

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step ahead for every track: ``x = F x``, ``P = F P Fᵀ + Q(h)`` with ``h`` before the step."""
        h = mean[:, 3]
        wp, wv = self.std_weight_position, self.std_weight_velocity
        var = np.empty((mean.shape[0], 8))
        var[:, 0] = var[:, 1] = var[:, 3] = np.square(wp * h)
        var[:, 2] = 1e-4  # (1e-2)²
        var[:, 4] = var[:, 5] = var[:, 7] = np.square(wv * h)
        var[:, 6] = 1e-10  # (1e-5)²
        mean = mean @ self.motion_t
        cov = self.motion @ cov @ self.motion_t
        idx = np.arange(8)
        cov[:, idx, idx] += var
        return mean, cov

    def project(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Measurement-space mean ``(N, 4)`` and covariance ``(N, 4, 4)`` (``H P Hᵀ + R(h)``)."""
        h = mean[:, 3]
        wp = self.std_weight_position
        var = np.empty((mean.shape[0], 4))
        var[:, 0] = var[:, 1] = var[:, 3] = np.square(wp * h)
        var[:, 2] = 1e-2  # (1e-1)²
        s = cov[:, :4, :4].copy()
        idx = np.arange(4)
        s[:, idx, idx] += var
        return mean[:, :4].copy(), s

    def update(
        self, mean: np.ndarray, cov: np.ndarray, measurement: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Measurement update of ``(M, 8)`` states with ``(M, 4)`` measurements.

        ``K = P Hᵀ S⁻¹`` solved through the Cholesky factor of ``S`` (as the reference's ``cho_solve``), then
        ``x += K (z − Hx)``, ``P −= K S Kᵀ``.
        """
        projected_mean, s = self.project(mean, cov)
        pht = cov[:, :, :4]  # P Hᵀ, (M, 8, 4)
        chol = np.linalg.cholesky(s)
        # K = P Hᵀ S⁻¹  ⇔  Kᵀ = S⁻¹ (P Hᵀ)ᵀ, with S = L Lᵀ
        tmp = np.linalg.solve(chol, pht.transpose(0, 2, 1))
        kt = np.linalg.solve(chol.transpose(0, 2, 1), tmp)  # (M, 4, 8)
        innovation = measurement - projected_mean
        new_mean = mean + (innovation[:, None, :] @ kt)[:, 0, :]
        new_cov = cov - kt.transpose(0, 2, 1) @ s @ kt
        return new_mean, new_cov

    def gating_distance(
        self, mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray, only_position: bool = False
    ) -> np.ndarray:
        """Squared Mahalanobis distances ``(N, M)`` of ``(M, 4)`` measurements to ``N`` projected states."""
        pm, s = self.project(mean, cov)
        if only_position:
            pm, s, measurements = pm[:, :2], s[:, :2, :2], measurements[:, :2]
        chol = np.linalg.cholesky(s)  # (N, d, d)
        d = measurements[None, :, :] - pm[:, None, :]  # (N, M, d)
        z = np.linalg.solve(chol, d.transpose(0, 2, 1))  # (N, d, M): L z = d
        return np.einsum("ndm,ndm->nm", z, z)


def tlwh_to_xyah(tlwh: np.ndarray) -> np.ndarray:
    """``(N, 4)`` top-left + size → ``[cx, cy, w/h, h]``."""
    out = np.array(tlwh, dtype=np.float64, copy=True)
    out[:, :2] += out[:, 2:] / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        out[:, 2] /= out[:, 3]
    return out


def xyah_to_tlwh(mean: np.ndarray) -> np.ndarray:
    """``(N, ≥4)`` ``[cx, cy, a, h, …]`` → top-left + size (the references' ``to_tlwh``)."""
    out = np.array(mean[:, :4], dtype=np.float64, copy=True)
    out[:, 2] *= out[:, 3]
    out[:, :2] -= out[:, 2:] / 2
    return out
