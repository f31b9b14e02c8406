"""The vectorised Kalman filters against textbook equations evaluated one track at a time."""

from __future__ import annotations

import numpy as np
import pytest

from trtapps_plugins.trackers.kalman import CHI2INV95, SortKalman, XyahKalman


def _random_sort_states(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.column_stack(
        [
            rng.uniform(0, 1000, n), rng.uniform(0, 600, n), rng.uniform(500, 20000, n), rng.uniform(0.3, 0.8, n),
            rng.normal(0, 3, n), rng.normal(0, 3, n), rng.normal(0, 200, n),
        ]
    )
    a = rng.normal(size=(n, 7, 7))
    p = a @ a.transpose(0, 2, 1) + 7 * np.eye(7)  # symmetric positive definite
    return x, p


def test_sort_predict_matches_per_track_textbook() -> None:
    rng = np.random.default_rng(0)
    x, p = _random_sort_states(rng, 12)
    x[3, 6] = -x[3, 2] - 5.0  # area would go negative: SORT zeroes the area velocity first
    kf = SortKalman()
    xp, pp = kf.predict(x, p)
    f = np.eye(7)
    f[0, 4] = f[1, 5] = f[2, 6] = 1
    q = np.diag([1, 1, 1, 1, 0.01, 0.01, 0.0001])
    for i in range(12):
        xi = x[i].copy()
        if xi[6] + xi[2] <= 0:
            xi[6] = 0.0
        np.testing.assert_allclose(xp[i], f @ xi, rtol=1e-12)
        np.testing.assert_allclose(pp[i], f @ p[i] @ f.T + q, rtol=1e-12)
    assert xp[3, 6] == 0.0
    assert xp[3, 2] == x[3, 2]


def test_sort_noise_settings_are_the_references() -> None:
    kf = SortKalman()
    np.testing.assert_array_equal(np.diag(kf.R), [1, 1, 10, 10])
    np.testing.assert_array_equal(np.diag(kf.P0), [10, 10, 10, 10, 10000, 10000, 10000])
    np.testing.assert_array_equal(np.diag(kf.Q), [1, 1, 1, 1, 0.01, 0.01, 0.0001])


def test_sort_update_matches_per_track_joseph_form() -> None:
    rng = np.random.default_rng(1)
    x, p = _random_sort_states(rng, 9)
    z = x[:, :4] + rng.normal(0, 2, (9, 4))
    kf = SortKalman()
    xu, pu = kf.update(x, p, z)
    h = np.eye(4, 7)
    r = np.diag([1.0, 1.0, 10.0, 10.0])
    for i in range(9):
        s = h @ p[i] @ h.T + r
        k = p[i] @ h.T @ np.linalg.inv(s)
        want_x = x[i] + k @ (z[i] - h @ x[i])
        ikh = np.eye(7) - k @ h
        want_p = ikh @ p[i] @ ikh.T + k @ r @ k.T
        np.testing.assert_allclose(xu[i], want_x, rtol=1e-10)
        np.testing.assert_allclose(pu[i], want_p, rtol=1e-9, atol=1e-9)


def _random_xyah(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    z = np.column_stack([rng.uniform(0, 1900, n), rng.uniform(0, 1000, n), rng.uniform(0.3, 0.7, n),
                         rng.uniform(40, 400, n)])
    kf = XyahKalman()
    mean, cov = kf.initiate(z)
    mean[:, 4:] = rng.normal(0, 2, (n, 4))
    for _ in range(3):  # make the covariances non-diagonal
        mean, cov = kf.predict(mean, cov)
    return mean, cov


def _q(h: float) -> np.ndarray:
    sp, sv = h / 20, h / 160
    return np.diag(np.square([sp, sp, 1e-2, sp, sv, sv, 1e-5, sv]))


def test_xyah_initiate_predict_update_match_per_track_textbook() -> None:
    rng = np.random.default_rng(2)
    kf = XyahKalman()
    z0 = np.array([[100.0, 200.0, 0.5, 120.0]])
    mean0, cov0 = kf.initiate(z0)
    std = [2 * 120 / 20, 2 * 120 / 20, 1e-2, 2 * 120 / 20, 10 * 120 / 160, 10 * 120 / 160, 1e-5, 10 * 120 / 160]
    np.testing.assert_allclose(cov0[0], np.diag(np.square(std)))
    np.testing.assert_array_equal(mean0[0], [100, 200, 0.5, 120, 0, 0, 0, 0])

    mean, cov = _random_xyah(rng, 10)
    f = np.eye(8)
    f[:4, 4:] = np.eye(4)
    mp, cp = kf.predict(mean, cov)
    for i in range(10):
        np.testing.assert_allclose(mp[i], f @ mean[i], rtol=1e-12)
        np.testing.assert_allclose(cp[i], f @ cov[i] @ f.T + _q(mean[i, 3]), rtol=1e-10)

    z = mp[:, :4] + rng.normal(0, 1, (10, 4)) * [3, 3, 0.01, 3]
    mu, cu = kf.update(mp, cp, z)
    h = np.eye(4, 8)
    for i in range(10):
        hi = mp[i, 3]
        r = np.diag(np.square([hi / 20, hi / 20, 1e-1, hi / 20]))
        s = h @ cp[i] @ h.T + r
        k = cp[i] @ h.T @ np.linalg.inv(s)
        np.testing.assert_allclose(mu[i], mp[i] + k @ (z[i] - h @ mp[i]), rtol=1e-9)
        np.testing.assert_allclose(cu[i], cp[i] - k @ s @ k.T, rtol=1e-7, atol=1e-9)


def test_gating_distance_is_squared_mahalanobis_and_threshold_is_chi2_95() -> None:
    rng = np.random.default_rng(3)
    kf = XyahKalman()
    mean, cov = _random_xyah(rng, 5)
    meas = np.column_stack([rng.uniform(0, 1900, 7), rng.uniform(0, 1000, 7), rng.uniform(0.3, 0.7, 7),
                            rng.uniform(40, 400, 7)])
    got = kf.gating_distance(mean, cov, meas)
    pos = kf.gating_distance(mean, cov, meas, only_position=True)
    assert got.shape == (5, 7)
    for i in range(5):
        hi = mean[i, 3]
        s = cov[i, :4, :4] + np.diag(np.square([hi / 20, hi / 20, 1e-1, hi / 20]))
        for j in range(7):
            d = meas[j] - mean[i, :4]
            assert got[i, j] == pytest.approx(d @ np.linalg.inv(s) @ d, rel=1e-9)
            assert pos[i, j] == pytest.approx(d[:2] @ np.linalg.inv(s[:2, :2]) @ d[:2], rel=1e-9)
    assert CHI2INV95[4] == 9.4877
    assert CHI2INV95[2] == 5.9915
