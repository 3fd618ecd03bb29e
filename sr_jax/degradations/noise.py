"""Real-ESRGAN's additive noise, per-sample random, as pure JAX functions.

Follows BasicSR's batched (`*_pt`) noise in basicsr/data/degradations.py,
which Real-ESRGAN's second-order degradation calls on the GPU:
  * Gaussian: std sigma / 255 with sigma ~ U(sigma_range) per image;
  * Poisson (shot noise): (Poisson(img * vals) / vals - img) * scale with
    scale ~ U(scale_range) per image;
  * "gray" noise: with probability gray_prob per image the same noise field
    is added to every channel (luminance-only noise), otherwise each channel
    gets its own ("colour" noise).
Both draw their parameters inside, so they run under `jax.jit` with static
shapes; the choices are per-sample `jnp.where`s, never Python branches.
"""
from typing import Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

# ITU-R BT.601 luma, as in the grayscale conversion BasicSR's Poisson noise
# uses (torchvision's rgb_to_grayscale).
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _per_sample(v, ndim: int = 4):
  """[N] -> [N, 1, 1, 1] for broadcasting against NHWC."""
  return v.reshape(v.shape + (1,) * (ndim - 1))


def _gray_mask(key, n: int, gray_prob: float):
  """[N, 1, 1, 1] bool: which samples get channel-shared noise."""
  return _per_sample(jax.random.uniform(key, (n,)) < gray_prob)


def _finish(x, noise, clip: bool):
  out = x + noise
  return jnp.clip(out, 0.0, 1.0) if clip else out


def gaussian_noise(key, x, sigma_range: Tuple[float, float] = (1.0, 30.0),
                   gray_prob: float = 0.0, clip: bool = True):
  """Adds Gaussian noise with a random std per image.

  Args:
    key: jax.random key.
    x: [N, H, W, C] float32 in [0, 1].
    sigma_range: std range on the 0-255 scale (Real-ESRGAN: (1, 30), then
      (1, 25) in the second stage); the std on x is sigma / 255.
    gray_prob: probability per image of gray noise (one [H, W] field shared
      by all channels); Real-ESRGAN uses 0.4.
    clip: clip the result to [0, 1] (BasicSR's default). BasicSR can also
      round to 8 bits (`rounds`), off by default in Real-ESRGAN; not offered.
  Returns:
    [N, H, W, C] float32, x + noise (in [0, 1] if clip).
  """
  n, h, w, c = x.shape
  k_sigma, k_gray, k_color, k_mono = jax.random.split(key, 4)
  sigma = jax.random.uniform(k_sigma, (n,), jnp.float32,
                             *sigma_range) / 255.0
  color = jax.random.normal(k_color, (n, h, w, c), jnp.float32)
  mono = jax.random.normal(k_mono, (n, h, w, 1), jnp.float32)
  noise = jnp.where(_gray_mask(k_gray, n, gray_prob), mono, color)
  return _finish(x, noise * _per_sample(sigma), clip)


def _to_gray(x):
  """[N, H, W, C] -> [N, H, W, 1]: BT.601 luma for RGB, else channel mean."""
  if x.shape[-1] == 3:
    return jnp.einsum('nhwc,c->nhw', x, _LUMA)[..., None]
  return jnp.mean(x, axis=-1, keepdims=True)


def basicsr_poisson_vals(q):
  """Per-image 2 ** ceil(log2(#distinct 8-bit levels)), BasicSR's `vals`.

  BasicSR scales by the number of distinct levels rounded up to a power of
  two, so a typical 8-bit photo (more than 128 levels) gets vals = 256 and a
  flat image gets vals = 1 (very strong noise). Counting distinct values is
  a 256-bin histogram here, which keeps it jittable.
  Args:
    q: [N, H, W, C] float32 already quantised to multiples of 1/255 in [0, 1].
  Returns:
    [N] float32.
  """
  levels = jnp.round(q * 255.0).astype(jnp.int32).reshape(q.shape[0], -1)
  hist = jax.vmap(lambda l: jnp.zeros(256, jnp.int32).at[l].add(1))(levels)
  distinct = jnp.sum(hist > 0, axis=-1).astype(jnp.float32)
  return jnp.exp2(jnp.ceil(jnp.log2(distinct)))


def _quantise(img):
  # BasicSR quantises to 8 bits before drawing (it models sensor counts of an
  # 8-bit image) and measures the noise against the quantised image.
  return jnp.clip(jnp.round(img * 255.0), 0.0, 255.0) / 255.0


def _poisson_vals(q, vals: Optional[float]):
  """[N, 1, 1, 1] per-image count scale of quantised images q."""
  v = basicsr_poisson_vals(q) if vals is None else jnp.full(
      (q.shape[0],), vals, jnp.float32)
  return _per_sample(v)


def poisson_noise(key, x, scale_range: Tuple[float, float] = (0.05, 3.0),
                  gray_prob: float = 0.0, clip: bool = True,
                  vals: Optional[float] = None):
  """Adds Poisson (shot) noise with a random strength per image.

  noise = (Poisson(q * vals) / vals - q) * scale, q = round(255 x) / 255, so
  E[noise] = 0 and Var[noise] = scale^2 * q / vals: brighter pixels are
  noisier, as for photon counts. Gray noise is computed on the luma image
  and added to every channel.

  Args:
    key: jax.random key.
    x: [N, H, W, C] float32 in [0, 1].
    scale_range: uniform range of `scale` (Real-ESRGAN: (0.05, 3), then
      (0.05, 2.5) in the second stage).
    gray_prob: probability per image of gray noise (Real-ESRGAN: 0.4).
    clip: clip the result to [0, 1].
    vals: None (default) for BasicSR's data-dependent per-image value,
      2 ** ceil(log2(#distinct 8-bit levels)) (`basicsr_poisson_vals`; 256
      for typical photos, computed on the luma image for gray noise); or a
      fixed float such as 255 to make the strength independent of content.
  Returns:
    [N, H, W, C] float32, x + noise (in [0, 1] if clip).
  """
  n = x.shape[0]
  k_scale, k_gray, k_draw = jax.random.split(key, 3)
  scale = jax.random.uniform(k_scale, (n,), jnp.float32, *scale_range)
  # Unscaled shot noise Poisson(q * vals) / vals - q for the colour image and
  # its luma, drawn in one call: the sampler's rejection loop dominates the
  # cost, and one loop over C + 1 channels beats two.
  q_color, q_mono = _quantise(x), _quantise(_to_gray(x))
  v_color, v_mono = _poisson_vals(q_color, vals), _poisson_vals(q_mono, vals)
  rates = jnp.concatenate([q_color * v_color, q_mono * v_mono], axis=-1)
  counts = jax.random.poisson(k_draw, rates, rates.shape).astype(jnp.float32)
  color = counts[..., :-1] / v_color - q_color
  mono = counts[..., -1:] / v_mono - q_mono
  noise = jnp.where(_gray_mask(k_gray, n, gray_prob), mono, color)
  return _finish(x, noise * _per_sample(scale), clip)


def apply_with_prob(key, prob: float, fn: Callable, x):
  """Applies `fn` to each sample independently with probability `prob`.

  Args:
    key: jax.random key; split into the choice and the key passed to fn.
    prob: probability per sample, in [0, 1].
    fn: (key, x) -> same shape as x, e.g.
      `functools.partial(gaussian_noise, sigma_range=(1, 30))`.
    x: [N, ...] array.
  Returns:
    [N, ...]: fn(key, x)[i] where chosen, else x[i]. fn always runs on the
    whole batch (static shapes under jit) and unchosen samples are dropped.
  """
  k_choice, k_fn = jax.random.split(key)
  chosen = jax.random.uniform(k_choice, (x.shape[0],)) < prob
  return jnp.where(_per_sample(chosen, x.ndim), fn(k_fn, x), x)
