"""Natural-scene statistics shared by the no-reference metrics NIQE and BRISQUE.

Both metrics (Mittal et al., "No-Reference Image Quality Assessment in the
Spatial Domain", TIP 2012, and "Making a 'Completely Blind' Image Quality
Analyzer", SPL 2013) describe an image by the statistics of its MSCN
(mean-subtracted, contrast-normalised) coefficients

  mscn = (I - mu) / (sigma + C),

with mu and sigma the local mean and standard deviation under a 7x7 Gaussian
window (sigma 7/6, normalised to sum 1; MATLAB's `fspecial('gaussian', 7,
7/6)`), and of the products of horizontally, vertically and diagonally
adjacent MSCN coefficients. Those distributions are fitted by moment matching
over the grid gamma = 0.2:0.001:10 of the authors' MATLAB code:

* GGD (generalised Gaussian; BRISQUE's fit of the MSCN coefficients,
  `estimateggdparam.m`): alpha is the grid value whose
  Gamma(1/a) Gamma(3/a) / Gamma(2/a)^2 is nearest (absolute difference) to
  rho = E[x^2] / E[|x|]^2; sigma^2 = E[x^2].
* AGGD (asymmetric GGD, `estimateaggdparam.m`): left / right standard
  deviations over the strictly negative / strictly positive samples (zeros
  count in neither, but in the means of the ratio), gamma_hat = left / right,
  r_hat = E[|x|]^2 / E[x^2], R_hat = r_hat (gamma_hat^3 + 1) (gamma_hat + 1)
  / (gamma_hat^2 + 1)^2, and alpha the grid value whose
  Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)) is nearest (squared difference) to
  R_hat.

Degenerate samples (all zero, or no negative / positive values) give NaN
statistics exactly as in MATLAB and numpy: a NaN target makes MATLAB's `min`
(and numpy's `argmin`) return the first grid point, so alpha is 0.2 and the
spreads are NaN. NIQE relies on that (its NaN handling drops such blocks from
the covariance but keeps their alpha in the mean).

Everything here is vectorised numpy in float64 (the papers' MATLAB is double):
the fits run over the last axis of arrays holding many blocks or
orientations at once, and the grid search is a binary search (both ratio
tables are strictly monotonic on the grid) that returns the same index as
MATLAB's exhaustive `min`, ties included.
"""
import functools

import numpy as np
from scipy import special

# The package re-exports the function `imresize` under the module's name.
from sr_jax.degradations.imresize import _resize_matrix

WINDOW_SIZE = 7
WINDOW_SIGMA = 7.0 / 6.0

# The shifts of MATLAB's `circshift(structdis, shift)` for the horizontal,
# vertical, main-diagonal and anti-diagonal neighbour products, in the
# papers' feature order. The product of an image with its circular shift by
# (-1, 1) holds the same pairs as with (1, -1), which BasicSR uses.
PAIR_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))

# MATLAB's `rgb2gray` weights: the first row of inv(rgb2ntsc matrix).
MATLAB_GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121,
                       0.114020904255103)

# MATLAB's 0.2:0.001:10 (9801 values), as numpy (and BasicSR) builds it.
GAMMA_GRID = np.arange(0.2, 10.001, 0.001)
GAMMA_GRID.setflags(write=False)


def _ratio_tables():
  g = GAMMA_GRID
  aggd = special.gamma(2.0 / g) ** 2 / (
      special.gamma(1.0 / g) * special.gamma(3.0 / g))
  ggd = special.gamma(1.0 / g) * special.gamma(3.0 / g) / (
      special.gamma(2.0 / g) ** 2)
  for t in (aggd, ggd):
    t.setflags(write=False)
  return aggd, ggd


# AGGD table rises, GGD table falls (strictly, checked in the tests).
AGGD_RATIO, GGD_RATIO = _ratio_tables()


def gaussian_window_1d(size: int = WINDOW_SIZE,
                       sigma: float = WINDOW_SIGMA) -> np.ndarray:
  """[size] float64 Gaussian taps summing to 1.

  np.outer of this with itself is MATLAB's `fspecial('gaussian', size,
  sigma)` (to 1e-16); the 7x7 window that BasicSR ships with NIQE's pristine
  parameters is that too.
  """
  x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
  w = np.exp(-(x * x) / (2.0 * sigma * sigma))
  return w / w.sum()


def _pad_axis(x: np.ndarray, axis: int, r: int, mode: str) -> np.ndarray:
  """Pads `r` samples at both ends of `axis`.

  mode 'nearest' repeats the edge pixel (MATLAB imfilter 'replicate', scipy
  'nearest'); 'constant' pads with zeros (MATLAB filter2(..., 'same')).
  """
  pad = [(0, 0)] * x.ndim
  pad[axis] = (r, r)
  if mode == 'nearest':
    return np.pad(x, pad, mode='edge')
  if mode == 'constant':
    return np.pad(x, pad, mode='constant')
  raise ValueError(f"mode must be 'nearest' or 'constant', got {mode!r}.")


def _window(xp: np.ndarray, axis: int, start: int, n: int) -> np.ndarray:
  return xp[(slice(None),) * axis + (slice(start, start + n),)]


def _smooth_valid(xp: np.ndarray, axis: int) -> np.ndarray:
  """Gaussian taps along `axis` of an already padded array ('valid')."""
  w = gaussian_window_1d()
  n = xp.shape[axis] - len(w) + 1
  out = w[0] * _window(xp, axis, 0, n)
  for i in range(1, len(w)):
    out = out + w[i] * _window(xp, axis, i, n)
  return out


def _deviation(x: np.ndarray, axis: int, mode: str) -> np.ndarray:
  """sum_a w_a (x[i + a] - x[i]) along `axis`: the 1-D local mean minus x.

  Summed as differences, the two taps at +-a first, so a neighbourhood that
  is flat (or odd-symmetric about i) gives exactly 0, as in exact arithmetic.
  """
  w = gaussian_window_1d()
  r = len(w) // 2
  n = x.shape[axis]
  xp = _pad_axis(x, axis, r, mode)
  out = None
  for a in range(1, r + 1):
    pair = ((_window(xp, axis, r + a, n) - x) +
            (_window(xp, axis, r - a, n) - x))
    out = w[r + a] * pair if out is None else out + w[r + a] * pair
  return out


def local_mean_deviation(img: np.ndarray, mode: str) -> np.ndarray:
  """G * img - img over the last two axes (7x7 Gaussian, sigma 7/6).

  NIQE and BRISQUE fit the signs of the MSCN coefficients, so where the
  exact value of G * I - I is 0 (a flat 7x7 neighbourhood, or one whose
  pixels balance: equal sums of differences on every ring of equal weights)
  the computed one must be exactly 0 too. Computing G * I and subtracting I
  leaves rounding noise of either sign there (1e-14 in float64, 1e-5 in
  float32), and the fits count those pixels as negative or positive samples:
  on photos with flat areas (saturated highlights, black backgrounds) NIQE
  then moves by up to 0.03 between implementations that round differently
  (scipy's 2-D convolution or a separable one; float32 or float64).

  Here the separable sum_ab w_a w_b (I[y+a, x+b] - I[y, x]) is the vertical
  smoothing of the horizontal deviations plus the vertical deviation, each
  term a difference of pixels, so flat neighbourhoods give exactly 0. The few
  other results within rounding of 0 are then checked exactly: the 2-D
  window's weights take one value per ring a^2 + b^2 (10 rings, weights
  exp(-(a^2 + b^2) / (2 sigma^2)) that no integer combination cancels), so
  the exact value is 0 iff every ring's sum of pixel differences is 0, sums
  that are exact in float64 for the integer images (and their exact
  half-size MATLAB resizes) of NIQE and BRISQUE. The result is that of exact
  arithmetic up to the rounding of non-zero values.
  """
  img = np.asarray(img, np.float64)
  axis_v, axis_h = img.ndim - 2, img.ndim - 1
  r = WINDOW_SIZE // 2
  rows = _pad_axis(img, axis_v, r, mode)
  dev = _smooth_valid(_deviation(rows, axis_h, mode), axis_v)
  dev = dev + _deviation(img, axis_v, mode)

  near = np.nonzero((dev != 0) & (np.abs(dev) < _NEAR_ZERO))
  if near[0].size:
    padded = _pad_axis(rows, axis_h, r, mode)
    *lead, ys, xs = near
    centre = img[near]
    ring_sums = {}
    for a in range(-r, r + 1):
      for b in range(-r, r + 1):
        diff = padded[(*lead, ys + r + a, xs + r + b)] - centre
        k = a * a + b * b
        ring_sums[k] = ring_sums.get(k, 0.0) + diff
    exact_zero = np.all([v == 0 for v in ring_sums.values()], axis=0)
    dev[tuple(i[exact_zero] for i in near)] = 0.0
  return dev


# Rounding errors of `local_mean_deviation` on the 0-255 scale are < 1e-12.
_NEAR_ZERO = 1e-9


def gaussian_filter(x: np.ndarray, mode: str) -> np.ndarray:
  """7x7 Gaussian (sigma 7/6) local mean over the last two axes of `x`.

  Two 7-tap passes (the window is separable); `mode` as in `_pad_axis`.
  """
  r = WINDOW_SIZE // 2
  x = np.asarray(x, np.float64)
  for axis in (x.ndim - 2, x.ndim - 1):
    x = _smooth_valid(_pad_axis(x, axis, r, mode), axis)
  return x


def mscn(img: np.ndarray, mode: str, c: float = 1.0) -> np.ndarray:
  """MSCN coefficients (I - mu) / (sigma + c) over the last two axes.

  mu = G * I and sigma = sqrt(|G * I^2 - mu^2|), G the 7x7 Gaussian window,
  as in the authors' MATLAB. `img` is on the 0-255 scale (c = 1 there, the
  papers' constant); `mode` is the border handling: 'nearest' for NIQE
  (imfilter 'replicate'), 'constant' (zeros) for BRISQUE (filter2 'same').
  I - mu is computed as differences (`local_mean_deviation`), so it is
  exactly 0 on flat neighbourhoods.
  """
  img = np.asarray(img, np.float64)
  dev = local_mean_deviation(img, mode)
  mu = img + dev
  sigma = np.sqrt(np.abs(gaussian_filter(img * img, mode) - mu * mu))
  return -dev / (sigma + c)


def pair_products(m: np.ndarray) -> np.ndarray:
  """[4, ..., H, W]: `m` times its circular shifts along PAIR_SHIFTS.

  The shifts wrap around the last two axes (MATLAB `circshift` of the image
  or, for NIQE, of each block).
  """
  return np.stack([m * np.roll(m, s, axis=(-2, -1)) for s in PAIR_SHIFTS])


def _nearest_on_grid(table: np.ndarray, target: np.ndarray,
                     squared: bool) -> np.ndarray:
  """Index of the first minimum of cost(table - target) over the grid.

  Same result as np.argmin((table - t) ** 2) (squared) or
  np.argmin(|t - table|) for every element t of `target`, but by binary
  search on the strictly monotonic `table`: the nearest entry is next to the
  insertion point, and the few candidates around it are compared with the
  exhaustive search's own cost, in grid order, so ties resolve alike. A NaN
  target gives 0, like MATLAB's `min` and numpy's `argmin` of all-NaN costs
  (and so does an infinite one, whose costs are all infinite).
  """
  target = np.asarray(target, np.float64)
  n = table.size
  if table[0] < table[-1]:
    pos = np.searchsorted(table, target)
  else:
    pos = n - np.searchsorted(table[::-1], target)
  cand = np.clip(pos[..., None] + np.arange(-3, 4), 0, n - 1)
  diff = table[cand] - target[..., None]
  cost = diff * diff if squared else np.abs(diff)
  # Non-finite costs only occur for non-finite targets, whole rows at once.
  k = np.argmin(np.where(np.isnan(cost), np.inf, cost), axis=-1)
  idx = np.take_along_axis(cand, k[..., None], axis=-1)[..., 0]
  return np.where(np.isfinite(target), idx, 0)


def ggd_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """GGD moment fit over the last axis: (alpha, sigma^2).

  `estimateggdparam.m`: sigma^2 = mean(x^2), rho = sigma^2 / mean(|x|)^2,
  alpha the grid value nearest rho in Gamma(1/a) Gamma(3/a) / Gamma(2/a)^2.
  """
  x = np.asarray(x, np.float64)
  with np.errstate(invalid='ignore', divide='ignore'):
    sigma_sq = np.mean(x * x, axis=-1)
    e_abs = np.mean(np.abs(x), axis=-1)
    rho = sigma_sq / (e_abs * e_abs)
  alpha = GAMMA_GRID[_nearest_on_grid(GGD_RATIO, rho, squared=False)]
  return alpha, sigma_sq


def aggd_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """AGGD moment fit over the last axis: (alpha, left_std, right_std).

  `estimateaggdparam.m` (and BasicSR's `estimate_aggd_param`): the spreads
  are the root mean squares of the strictly negative and strictly positive
  samples (NaN where there are none); alpha as in the module docstring.
  """
  x = np.asarray(x, np.float64)
  n = x.shape[-1]
  neg_part = np.minimum(x, 0.0)
  pos_part = np.maximum(x, 0.0)
  left_sq = np.einsum('...i,...i->...', neg_part, neg_part)
  right_sq = np.einsum('...i,...i->...', pos_part, pos_part)
  with np.errstate(invalid='ignore', divide='ignore'):
    left_std = np.sqrt(left_sq / np.count_nonzero(x < 0, axis=-1))
    right_std = np.sqrt(right_sq / np.count_nonzero(x > 0, axis=-1))
    gamma_hat = left_std / right_std
    e_abs = (np.sum(pos_part, axis=-1) - np.sum(neg_part, axis=-1)) / n
    r_hat = e_abs * e_abs / ((left_sq + right_sq) / n)
    r_hat_norm = (r_hat * (gamma_hat ** 3 + 1) * (gamma_hat + 1) /
                  (gamma_hat ** 2 + 1) ** 2)
  alpha = GAMMA_GRID[_nearest_on_grid(AGGD_RATIO, r_hat_norm, squared=True)]
  return alpha, left_std, right_std


def aggd_scale(std: np.ndarray, alpha: np.ndarray) -> np.ndarray:
  """AGGD scale beta = std sqrt(Gamma(1/alpha) / Gamma(3/alpha))."""
  return std * np.sqrt(special.gamma(1.0 / alpha) / special.gamma(3.0 / alpha))


def aggd_mean(alpha: np.ndarray, beta_left: np.ndarray,
              beta_right: np.ndarray) -> np.ndarray:
  """AGGD mean (beta_r - beta_l) Gamma(2/alpha) / Gamma(1/alpha)."""
  return (beta_right - beta_left) * (
      special.gamma(2.0 / alpha) / special.gamma(1.0 / alpha))


def to_gray_matlab(img: np.ndarray) -> np.ndarray:
  """MATLAB `rgb2gray` of a uint8 RGB image, as float64 on the 0-255 scale.

  The weighted sum with MATLAB_GRAY_WEIGHTS, rounded half away from zero (as
  MATLAB rounds to uint8). Float inputs on the 0-255 scale are rounded the
  same way.
  """
  img = np.asarray(img)
  if img.ndim != 3 or img.shape[-1] != 3:
    raise ValueError(f'Expected an [H, W, 3] RGB image, got shape {img.shape}.')
  gray = img.astype(np.float64) @ np.asarray(MATLAB_GRAY_WEIGHTS, np.float64)
  return np.floor(gray + 0.5)


def imresize_half(img: np.ndarray) -> np.ndarray:
  """MATLAB `imresize(img, 0.5)` (bicubic, antialiased) over the last 2 axes.

  The weights are those of sr_jax.degradations.imresize (MATLAB's
  `contributions()`, mirrored borders folded in), applied in float64 numpy
  like MATLAB on double images, without rounding or clipping; the output is
  ceil(H / 2) x ceil(W / 2). Each output pixel has at most 8 non-zero taps
  per axis, so they are gathered rather than multiplied as dense matrices.
  The half-size weights are multiples of 2^-8, so on integer images (and on
  the first pass's output) every product and sum is exact: the result is
  MATLAB's exactly, in any summation order.
  """
  img = np.asarray(img, np.float64)
  for axis in (img.ndim - 2, img.ndim - 1):
    idx, wts = _half_taps(img.shape[axis])
    taps = np.take(img, idx, axis=axis)  # [..., out, K, ...] along `axis`.
    shape = [1] * taps.ndim
    shape[axis:axis + 2] = wts.shape
    img = np.sum(taps * wts.reshape(shape), axis=axis + 1)
  return img


@functools.lru_cache(maxsize=64)
def _half_taps(n: int) -> tuple[np.ndarray, np.ndarray]:
  """([out, K] source indices, [out, K] weights) of the half-size resize."""
  mat = _resize_matrix(n, 0.5, True)
  k = int(np.max(np.count_nonzero(mat, axis=1)))
  idx = np.zeros((mat.shape[0], k), np.int64)
  wts = np.zeros((mat.shape[0], k), np.float64)
  for i, row in enumerate(mat):
    (cols,) = np.nonzero(row)
    idx[i, :len(cols)] = cols
    wts[i, :len(cols)] = row[cols]
  for a in (idx, wts):
    a.setflags(write=False)
  return idx, wts
