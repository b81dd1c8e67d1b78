"""CIELAB as computed by the MATLAB ``colorspace`` function used in the original SO code.

The SO code converts the *mean* R'G'B' colour of every superpixel with
``colorspace('Lab<-', meanRGB / 255)`` (P. Getreuer's ``colorspace.m``). That conversion is not
the sRGB one of :func:`skimage.color.rgb2lab`:

* the input is treated as Rec.709 gamma-corrected R'G'B'. Inverse gamma:
  ``R = ((R' + 0.099) / 1.099) ** (1 / 0.45)``, replaced by ``R' / 4.5138`` wherever that
  power-law *result* is below 0.018 (the test is on the linear value, not on R');
  sRGB instead uses ``((R' + 0.055) / 1.055) ** 2.4`` and ``R' / 12.92`` below R' = 0.04045;
* linear RGB -> XYZ with the numerical inverse of the XYZ -> RGB matrix
  ``[[3.240479, -1.53715, -0.498535], [-0.969256, 1.875992, 0.041556],
  [0.055648, -0.204043, 1.057311]]`` (skimage uses the rounded forward sRGB matrix; the two
  agree to about 1e-6);
* D65 white ``[0.950456, 1, 1.088754]`` (skimage: ``[0.95047, 1, 1.08883]``);
* ``f(t) = t ** (1/3)``, or ``t * 841/108 + 4/29`` for ``t < 0.008856``.

So for the same R'G'B' input the two differ through the gamma curve: by up to 7.8 L* units
(dark greys around R' = 22/255) and about 3 L* units on average over random colours. Where the
gammas coincide they agree to within 0.005 (white point and matrix rounding): on the corners
of the RGB cube (R', G', B' in {0, 1}), and when both get the same *linear* RGB. Because the
rounded matrix's rows do not sum exactly to the white point, white comes out as
L* = 99.9999965, a* = 4e-5, b* = -8e-5 rather than exactly (100, 0, 0); black is exactly 0.
"""

from __future__ import annotations

import numpy as np

__all__ = ["WHITE_D65", "XYZ_TO_RGB", "RGB_TO_XYZ", "rec709_inverse_gamma", "lab_f",
           "linear_rgb_to_lab", "matlab_rgb_to_lab"]

#: D65 reference white of ``colorspace.m`` (2 degree observer).
WHITE_D65 = np.array([0.950456, 1.0, 1.088754])

#: XYZ -> linear RGB (Rec.709 primaries) as written in ``colorspace.m``.
XYZ_TO_RGB = np.array([[3.240479, -1.53715, -0.498535],
                       [-0.969256, 1.875992, 0.041556],
                       [0.055648, -0.204043, 1.057311]])

#: linear RGB -> XYZ: MATLAB computes ``inv(XYZ_TO_RGB)`` at run time; so do we.
RGB_TO_XYZ = np.linalg.inv(XYZ_TO_RGB)


def rec709_inverse_gamma(rgb_prime: np.ndarray) -> np.ndarray:
    """Rec.709 R'G'B' in [0, 1] -> linear RGB, exactly as ``colorspace.m``'s ``invgammacorrection``."""
    rp = np.asarray(rgb_prime, dtype=np.float64)
    lin = ((rp + 0.099) / 1.099) ** (1.0 / 0.45)
    # the switch to the linear segment is decided on the power-law result (MATLAB: R < 0.018)
    return np.where(lin < 0.018, rp / 4.5138, lin)


def lab_f(t: np.ndarray) -> np.ndarray:
    """CIE ``f``: cube root, linear ``t * 841/108 + 4/29`` below 0.008856."""
    t = np.asarray(t, dtype=np.float64)
    return np.where(t < 0.008856, t * (841.0 / 108.0) + 4.0 / 29.0, np.cbrt(t))


def linear_rgb_to_lab(rgb_linear: np.ndarray) -> np.ndarray:
    """Linear RGB ``(..., 3)`` -> CIELAB ``(..., 3)`` with ``colorspace.m``'s matrix and white point."""
    xyz = np.asarray(rgb_linear, dtype=np.float64) @ RGB_TO_XYZ.T
    fx, fy, fz = np.moveaxis(lab_f(xyz / WHITE_D65), -1, 0)
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def matlab_rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """``colorspace('Lab<-', rgb)``: Rec.709 R'G'B' ``(..., 3)`` in [0, 1] -> CIELAB (float64).

    Parameters
    ----------
    rgb : array_like, shape (..., 3)
        Gamma-corrected colours in [0, 1] (e.g. ``mean_uint8_rgb / 255``).

    Returns
    -------
    lab : ndarray, shape (..., 3)
        ``L*`` in [0, 100], ``a*``, ``b*``.

    Raises
    ------
    ValueError
        If the last axis is not of length 3 or values are not finite.
    """
    arr = np.asarray(rgb, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] != 3:
        raise ValueError(f"colours must have shape (..., 3), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("colours contain NaN or infinite values")
    return linear_rgb_to_lab(rec709_inverse_gamma(arr))
