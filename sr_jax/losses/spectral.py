"""Spectral loss of Durall et al., "Watch your Up-Convolution" (CVPR 2020).

The binary cross-entropy between the normalised 1D azimuthal power spectra
of SR (the prediction) and HR (the target), per image, averaged over the
batch:

  L = mean_n mean_r BCE(s_n^HR[r], clip(s_n^SR[r], eps, 1 - eps))
  BCE(t, p) = -(t log p + (1 - t) log(1 - p))

s is the evaluation's spectrum profile (`sr_jax.metrics.spectrum`, steps
1-5), computed by the same functions on jax.numpy: grey level (Y = 0.299 R
+ 0.587 G + 0.114 B on [0, 255], so images in [0, 1] are scaled by 255,
which only matters through the 1e-8 of the log), centred 2D FFT, log power
20 log10(|F| + 1e-8), the mean over each integer ring around Durall's centre
((W - 1) / 2, (H - 1) / 2) out to the corner, min-max normalisation to
[0, 1]. Single-channel images are taken as grey. Every image of a batch has
the same size, so no resampling (the metric's step for sets of mixed sizes).

Gradients: min-max normalisation is differentiable almost everywhere; the
gradient also flows through the min and the max (to the extreme rings), and
a flat profile (max == min, e.g. a constant image) gives a 0 profile with a
zero gradient, never NaN. The normalised SR profile is exactly 0 at its
minimum ring and 1 at its maximum, where log(p) or log(1 - p) is -inf, so
p is clipped to [eps, 1 - eps] (eps = 1e-6 by default): those rings then add
a bounded constant (at most -log(eps) = 13.8 times the target's distance
from them) and get no gradient through p (they still steer the others
through the min and max). |F| has a zero gradient where F == 0.

The minimum over SR for a fixed HR is not 0 but the HR spectrum's mean
binary entropy (BCE(t, t)), as in Durall et al.; only differences of the
loss are meaningful.
"""
import jax
import jax.numpy as jnp

from sr_jax import errors
from sr_jax.losses import shards
from sr_jax.losses import terms
from sr_jax.metrics import spectrum


def spectral_profiles(images: jax.Array) -> jax.Array:
  """[N, H, W, C] in [0, 1] (C = 3 RGB or 1 grey) -> [N, R + 1], the
  metric's normalised 1D spectra (`spectrum.radial_spectrum` of the
  images as [0, 255] values), in float32."""
  images = images.astype(jnp.float32) * 255.0
  if images.shape[-1] == 3:
    grey = images @ jnp.asarray(spectrum.GREY, jnp.float32)
  elif images.shape[-1] == 1:
    grey = images[..., 0]
  else:
    raise ValueError(f'spectral loss needs 1 or 3 channels, got shape '
                     f'{images.shape}.')
  profile = spectrum.azimuthal_average(spectrum.log_power(grey, jnp), jnp)
  return spectrum.min_max_normalise(profile, jnp)


def spectral_loss(pred: jax.Array, target: jax.Array,
                  eps: float = 1e-6) -> jax.Array:
  """Durall et al.'s BCE of the 1D spectra; pred, target [N, H, W, C]
  (per sample; on each device's shard in the train step)."""
  return _spectral_loss(pred, target, eps=eps)


@shards.per_shard
def _spectral_loss(pred, target, axis_name, eps):
  del axis_name
  p = jnp.clip(spectral_profiles(pred), eps, 1.0 - eps)
  t = spectral_profiles(target)
  bce = -(t * jnp.log(p) + (1.0 - t) * jnp.log1p(-p))
  return jnp.mean(jnp.mean(bce, axis=-1))


@terms.register('spectral')
def make_spectral_term(options, dtype) -> terms.LossTerm:
  """spectral_loss(sr, target); option 'eps' (the BCE clip, 1e-6)."""
  del dtype
  terms.unknown_options(options, ('eps',))
  eps = float(options.get('eps', 1e-6))
  if not 0 < eps < 0.5:
    raise errors.ConfigError(f'eps must be in (0, 0.5), got {eps}.')
  return terms.LossTerm(lambda ctx: spectral_loss(ctx.sr, ctx.target, eps),
                        log_name='spectral')
