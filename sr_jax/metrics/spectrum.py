"""Spectrum discrepancy: how far SR images' frequency content is from HR's.

The frequency score of the thesis behind configs/esrgan_fft.py, with the
preprocessing of Durall et al., "Watch your Up-Convolution" (CVPR 2020):

  1. grey level: Y = 0.299 R + 0.587 G + 0.114 B, in [0, 255];
  2. 2D FFT, zero frequency moved to the centre;
  3. log power: 20 log10(|F| + 1e-8) (in dB, as Durall et al.);
  4. azimuthal average: the mean of the log power over each ring of
     integer radius r = floor(hypot(x - cx, y - cy)) around the centre
     (cx, cy) = ((W - 1) / 2, (H - 1) / 2), r = 0 .. the image's corner,
     giving a 1D spectrum from low to high frequency. (Durall et al.'s
     centre, kept for comparable numbers: for even sizes it is half a pixel
     from the shifted zero frequency, so a frequency of k cycles per image
     lands in rings k - 1 and k.);
  5. min-max normalisation of that 1D spectrum to [0, 1].

Images of one set may differ in size, so their 1D spectra differ in length:
each is resampled linearly onto `num_bins` points of normalised frequency
(the ring radius over the largest radius, 0 .. 1); by default `num_bins` is
the shortest spectrum's length among both sets. The spectra of each set are
averaged, and the score is the mean over frequency of the squared difference
of the two average spectra:

  D = mean_k (mean_i s_i^SR[k] - mean_j s_j^HR[k])^2      (lower is better)

so 0 means the same average spectrum, 1 the largest possible difference.

Steps 2-5 are shared with the differentiable spectral loss
(`sr_jax.losses.spectral`): `ring_index`, `log_power`, `azimuthal_average`
and `min_max_normalise` take an array namespace `xp` (numpy here, in
float64; jax.numpy there, in float32) and compute the same definition.
"""
from typing import Sequence

import jax
import jax.numpy as jnp
from matplotlib.figure import Figure
import numpy as np

from sr_jax.metrics import registry

GREY = np.array([0.299, 0.587, 0.114])  # Step 1's weights of R, G, B.
_EPS = 1e-8


def ring_index(height: int, width: int) -> np.ndarray:
  """Step 4's ring of each pixel of the centred spectrum: int [H, W],
  floor(hypot(x - (W - 1) / 2, y - (H - 1) / 2)) (Durall's centre)."""
  y, x = np.indices((height, width))
  return np.hypot(x - (width - 1) / 2, y - (height - 1) / 2).astype(int)


def _magnitude(z, xp):
  if xp is np:
    return np.abs(z)
  # |z| with a zero (not NaN) gradient where z == 0.
  square = jnp.square(z.real) + jnp.square(z.imag)
  positive = square > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, square, 1.0)), 0.0)


def log_power(grey, xp=np):
  """Steps 2-3: 20 log10(|fftshift(fft2(grey))| + 1e-8) over the last two
  axes of grey [..., H, W]."""
  axes = (-2, -1)
  spectrum = xp.fft.fftshift(xp.fft.fft2(grey, axes=axes), axes=axes)
  return 20 * xp.log10(_magnitude(spectrum, xp) + _EPS)


def azimuthal_average(values, xp=np):
  """Step 4: the mean of values [..., H, W] over each ring of `ring_index`
  -> [..., R + 1], R the largest ring (every ring 0..R holds pixels)."""
  height, width = values.shape[-2:]
  rings = ring_index(height, width).ravel()
  counts = np.bincount(rings)
  lead = values.shape[:-2]
  flat = values.reshape(lead + (height * width,))
  if xp is np:
    sums = np.stack([np.bincount(rings, v, len(counts))
                     for v in flat.reshape(-1, height * width)])
    sums = sums.reshape(lead + (len(counts),))
  else:
    sums = jax.ops.segment_sum(jnp.moveaxis(flat, -1, 0), jnp.asarray(rings),
                               num_segments=len(counts))
    sums = jnp.moveaxis(sums, 0, -1)
  return sums / counts.astype(sums.dtype)


def min_max_normalise(profile, xp=np):
  """Step 5 over the last axis: (p - min) / (max - min), 0 where max ==
  min. Under jax.grad the gradient flows through min and max too (to the
  extreme rings), and is 0 for a flat profile (no NaN)."""
  low = profile.min(axis=-1, keepdims=True)
  span = profile.max(axis=-1, keepdims=True) - low
  positive = span > 0
  return xp.where(positive, (profile - low) / xp.where(positive, span, 1.0),
                  0.0)


def radial_spectrum(img: np.ndarray, normalise: bool = True) -> np.ndarray:
  """The 1D azimuthally averaged log power spectrum of one image.

  img: uint8 HxWx3 RGB (or HxW grey). Returns float64 [R + 1] where R is
  the largest integer ring radius; index r is the ring of radius r (0 is the
  zero frequency). normalise: min-max scaled to [0, 1] (step 5).
  """
  img = np.asarray(img, np.float64)
  grey = img @ GREY if img.ndim == 3 else img
  profile = azimuthal_average(log_power(grey))
  return min_max_normalise(profile) if normalise else profile


def _resample(profile: np.ndarray, num_bins: int) -> np.ndarray:
  source = np.linspace(0.0, 1.0, len(profile))
  return np.interp(np.linspace(0.0, 1.0, num_bins), source, profile)


def average_spectra(sr_images: Sequence[np.ndarray],
                    hr_images: Sequence[np.ndarray],
                    num_bins: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
  """The two sets' average normalised 1D spectra, on `num_bins` points of
  normalised frequency (default: the shortest spectrum's length)."""
  if not len(sr_images) or not len(hr_images):
    raise ValueError('spectrum_discrepancy needs at least one SR and one HR '
                     'image.')
  sr = [radial_spectrum(x) for x in sr_images]
  hr = [radial_spectrum(x) for x in hr_images]
  bins = num_bins or min(len(p) for p in sr + hr)
  mean = lambda profiles: np.mean([_resample(p, bins) for p in profiles], 0)
  return mean(sr), mean(hr)


def spectrum_discrepancy(sr_images: Sequence[np.ndarray],
                         hr_images: Sequence[np.ndarray],
                         num_bins: int | None = None) -> float:
  """Mean squared difference of the SR and HR sets' average spectra (see
  the module docstring); lower is better, 0 for identical spectra."""
  sr, hr = average_spectra(sr_images, hr_images, num_bins)
  return float(np.mean((sr - hr) ** 2))


@registry.register('spectrum', higher_is_better=False, kind='set')
def spectrum_metric(sr_images, hr_images, crop_border) -> float:
  """Spectrum discrepancy of a set (no border crop: a crop would change the
  spectrum's frequency grid, and the thesis takes whole images)."""
  del crop_border
  return spectrum_discrepancy(sr_images, hr_images)


def plot_spectra(path: str, curves: dict[str, np.ndarray],
                 title: str = 'Average spectra') -> None:
  """Writes a PNG plot of average 1D spectra, e.g. {'HR': hr, 'SR': sr}
  from `average_spectra`, over normalised frequency."""
  figure = Figure(figsize=(6, 4), dpi=100)
  axes = figure.add_subplot()
  for label, curve in curves.items():
    axes.plot(np.linspace(0, 1, len(curve)), curve, label=label)
  axes.set_xlabel('normalised spatial frequency')
  axes.set_ylabel('normalised log power')
  axes.set_title(title)
  axes.legend()
  axes.grid(alpha=0.3)
  figure.tight_layout()
  figure.savefig(path)
