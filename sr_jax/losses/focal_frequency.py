"""Focal frequency loss of Jiang et al., "Focal Frequency Loss for Image
Reconstruction and Synthesis" (ICCV 2021), with the conventions of its
official implementation:

  FFL = mean_{n, p, c, u, v} w(u, v) |F_r(u, v) - F_f(u, v)|^2

F the orthonormal 2D DFT (F / sqrt(h w)) of each channel of each patch:
with `patch_factor` k, each image is cut into a k x k grid of h = H / k by
w = W / k patches (H and W must divide). The spectrum weight matrix is

  w = |F_r - F_f|^alpha, then log(w + 1) if log_matrix, then divided by its
  maximum over (u, v) of the same image, patch and channel (or over the
  whole batch with batch_matrix), NaN (0 / 0) set to 0, clipped to [0, 1],

and is a constant to the gradient (stop_gradient): the loss is a squared
Euclidean distance whose per-frequency weights focus on the currently hard
frequencies. ave_spectrum: the spectra are averaged over the batch first
(one mean spectrum for pred, one for target).
"""
import jax
import jax.numpy as jnp

from sr_jax import errors
from sr_jax.losses import shards
from sr_jax.losses import terms


def _patch_spectra(x: jax.Array, patch_factor: int) -> jax.Array:
  """[N, H, W, C] -> orthonormal FFT of each patch, [N, k*k, C, h, w]."""
  n, height, width, c = x.shape
  k = patch_factor
  if height % k or width % k:
    raise ValueError(f'patch_factor {k} must divide the image size '
                     f'{height}x{width}.')
  h, w = height // k, width // k
  patches = x.reshape(n, k, h, k, w, c).transpose(0, 1, 3, 5, 2, 4)
  patches = patches.reshape(n, k * k, c, h, w)
  return jnp.fft.fft2(patches, norm='ortho')


def _batch_mean(x, axis_name):
  """The mean over the (global) batch, kept as a batch of one."""
  x = jnp.mean(x, axis=0, keepdims=True)
  return x if axis_name is None else jax.lax.pmean(x, axis_name)


def focal_frequency_loss(pred: jax.Array, target: jax.Array,
                         alpha: float = 1.0, patch_factor: int = 1,
                         ave_spectrum: bool = False,
                         log_matrix: bool = False,
                         batch_matrix: bool = False) -> jax.Array:
  """FFL between NHWC float images (see the module docstring); a scalar.
  In the train step it runs on each device's shard of the batch; the
  batch-wide options (ave_spectrum, batch_matrix) reduce over all shards."""
  if int(patch_factor) != patch_factor or patch_factor < 1:
    raise errors.ConfigError(
        f'patch_factor must be a positive integer, got '
        f'{patch_factor}.')
  return _focal_frequency_loss(
      pred, target, alpha=alpha, patch_factor=int(patch_factor),
      ave_spectrum=ave_spectrum, log_matrix=log_matrix,
      batch_matrix=batch_matrix)


@shards.per_shard
def _focal_frequency_loss(pred, target, axis_name, alpha, patch_factor,
                          ave_spectrum, log_matrix, batch_matrix):
  f_pred = _patch_spectra(pred.astype(jnp.float32), int(patch_factor))
  f_target = _patch_spectra(target.astype(jnp.float32), int(patch_factor))
  if ave_spectrum:
    f_pred = _batch_mean(f_pred, axis_name)
    f_target = _batch_mean(f_target, axis_name)
  diff = f_pred - f_target
  distance = jnp.square(diff.real) + jnp.square(diff.imag)

  weight = jnp.sqrt(jax.lax.stop_gradient(distance)) ** alpha
  if log_matrix:
    weight = jnp.log(weight + 1.0)
  if batch_matrix:
    batch_max = jnp.max(weight)
    if axis_name is not None:
      batch_max = jax.lax.pmax(batch_max, axis_name)
    weight = weight / batch_max
  else:
    weight = weight / jnp.max(weight, axis=(-2, -1), keepdims=True)
  weight = jnp.clip(jnp.where(jnp.isnan(weight), 0.0, weight), 0.0, 1.0)
  weight = jax.lax.stop_gradient(weight)
  return jnp.mean(weight * distance)


_OPTIONS = ('alpha', 'patch_factor', 'ave_spectrum', 'log_matrix',
            'batch_matrix')


@terms.register('focal_frequency')
def make_focal_frequency_term(options, dtype) -> terms.LossTerm:
  """focal_frequency_loss(sr, target, **options); options as its keyword
  arguments (alpha, patch_factor, ave_spectrum, log_matrix, batch_matrix)."""
  del dtype
  terms.unknown_options(options, _OPTIONS)
  kwargs = dict(options)
  for flag in ('ave_spectrum', 'log_matrix', 'batch_matrix'):
    if flag in kwargs and not isinstance(kwargs[flag], bool):
      raise errors.ConfigError(
          f'{flag} must be True or False, got {kwargs[flag]!r}.')
  if 'alpha' in kwargs:
    kwargs['alpha'] = float(kwargs['alpha'])
  patch = kwargs.get('patch_factor', 1)
  if int(patch) != patch or patch < 1:
    raise errors.ConfigError(
        f'patch_factor must be a positive integer, got {patch}.')
  return terms.LossTerm(
      lambda ctx: focal_frequency_loss(ctx.sr, ctx.target, **kwargs),
      log_name='focal_frequency')
