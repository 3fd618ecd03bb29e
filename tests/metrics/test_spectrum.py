"""Spectrum discrepancy (Durall et al.'s preprocessing) on images with known
spectra, and against a loop-by-loop implementation of the definition."""
import numpy as np
import pytest
from skimage import data as skdata

from sr_jax import metrics
from sr_jax.metrics import spectrum


def _sinusoid(size, cycles, vertical=False, noise=0.0):
  """A grey sinusoid of `cycles` periods per image, plus white noise of
  std `noise` (a pure sinusoid's other frequencies are exact zeros, whose
  log power is rounding noise)."""
  x = np.arange(size)
  wave = 128 + 100 * np.sin(2 * np.pi * cycles * x / size)
  grey = np.tile(wave[:, None] if vertical else wave[None, :], (size, 1)
                 if not vertical else (1, size))
  grey = grey + np.random.default_rng(cycles).normal(0, noise, grey.shape)
  grey = np.clip(np.round(grey), 0, 255)
  return np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)


def _noise(seed, size=64):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def _reference_profile(img):
  """The definition, ring by ring with explicit loops."""
  img = img.astype(np.float64)
  grey = 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]
  f = np.fft.fftshift(np.fft.fft2(grey))
  log_power = 20 * np.log10(np.abs(f) + 1e-8)
  h, w = grey.shape
  rings = {}
  for i in range(h):
    for j in range(w):
      r = int(np.hypot(j - (w - 1) / 2, i - (h - 1) / 2))
      rings.setdefault(r, []).append(log_power[i, j])
  profile = np.array([np.mean(rings[r]) for r in range(max(rings) + 1)])
  return (profile - profile.min()) / (profile.max() - profile.min())


def test_a_sinusoid_peaks_at_its_frequency():
  # Log power averaged over a ring dilutes one frequency's two pixels
  # among the ring's ~2 pi r: low frequencies stand out most.
  for cycles in (4, 6):
    for vertical in (False, True):
      profile = spectrum.radial_spectrum(
          _sinusoid(64, cycles, vertical, noise=1.0), normalise=False)
      # Durall's centre puts frequency k in rings k - 1 and k; the rest is
      # the noise's flat floor.
      peak = int(np.argmax(profile[2:32])) + 2
      assert peak in (cycles - 1, cycles), (cycles, peak)
      floor = np.median(profile[2:32])
      assert profile[peak] > floor + 1.5  # dB


def test_white_noise_has_a_flat_spectrum_and_photos_do_not():
  noise = spectrum.radial_spectrum(_noise(0, 128), normalise=False)
  photo = spectrum.radial_spectrum(skdata.astronaut()[:128, :128],
                                   normalise=False)
  band = slice(4, 64)
  assert np.std(noise[band]) < 1.5  # dB
  assert photo[4] - photo[63] > 20  # A natural image's fall-off, dB.
  # Two noise sets have nearly the same spectra; noise and sinusoids not.
  twins = metrics.spectrum_discrepancy([_noise(1), _noise(2)],
                                       [_noise(3), _noise(4)])
  apart = metrics.spectrum_discrepancy([_sinusoid(64, 5)], [_noise(3)])
  assert twins < 1e-2 < apart


def test_matches_the_definition_worked_ring_by_ring():
  photos = [skdata.astronaut()[:96, :80], skdata.coffee()[:70, :90],
            skdata.chelsea()[:64, :64]]
  blurred = [np.round((p.astype(float) + np.roll(p, 1, 0) + np.roll(p, 1, 1))
                      / 3).astype(np.uint8) for p in photos]
  for p in photos:
    np.testing.assert_allclose(spectrum.radial_spectrum(p),
                               _reference_profile(p), atol=1e-12)
  bins = min(len(_reference_profile(p)) for p in photos + blurred)
  grid = np.linspace(0, 1, bins)

  def average(images):
    return np.mean([np.interp(grid, np.linspace(0, 1, len(q)), q)
                    for q in map(_reference_profile, images)], axis=0)

  want = float(np.mean((average(blurred) - average(photos)) ** 2))
  got = metrics.spectrum_discrepancy(blurred, photos)
  assert got == pytest.approx(want, rel=1e-10)
  assert got > 0
  assert metrics.spectrum_discrepancy(photos, photos) == 0.0
  # A fixed number of bins is honoured.
  sr, hr = spectrum.average_spectra(blurred, photos, num_bins=17)
  assert sr.shape == hr.shape == (17,)


def test_registered_as_a_set_metric_and_plotted(tmp_path):
  metric = metrics.METRICS.get('spectrum')
  assert metric.kind == 'set' and not metric.higher_is_better
  images = [_noise(5)]
  assert metric.fn(images, images, 4) == 0.0
  sr, hr = spectrum.average_spectra([_sinusoid(64, 8)], [_noise(6)])
  path = tmp_path / 'spectra.png'
  spectrum.plot_spectra(str(path), {'HR': hr, 'SR': sr})
  assert path.stat().st_size > 1000
