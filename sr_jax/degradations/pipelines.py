"""Degradation pipelines: HR batch -> (LR batch, HR target), chosen by name.

`get_pipeline(name, **overrides)` returns a pure `fn(key, hr) -> (lr, hr)`
that the train step calls inside `jax.jit`, so LR images are made on the
accelerator, batched, with per-sample random parameters:

  bicubic      MATLAB bicubic down-sampling (the classic DIV2K/Set5 setting).
  srrescgan    bicubic, then per image either Gaussian noise (sigma 8) or JPEG
               (quality 30): the NTIRE 2020 / AIM 2019 real-world tracks that
               SRResCGAN and SRResCycGAN train for.
  realesrgan   Real-ESRGAN's second-order model (Wang et al. 2021, sec. 3):
               [blur, random resize, noise, JPEG] twice, then the final
               resize + sinc filter and a JPEG in random order.
  denoise      Gaussian noise of one level at scale 1, for denoising runs.
  perspective  a random 30-70 degree rotation of the image plane about the
               vertical axis (SRResCycGAN's licence-plate study), then
               bicubic; `aligned=True` warps the HR target the same way.
  dsgan        bicubic, then a trained DSGAN generator (configs/dsgan.py;
               `checkpoint` = its workdir or a 'dsgan' weights file): the
               real-world degradation it learned, made inside the jitted
               step (a `NetworkPipeline`: the trainer loads the generator's
               weights once and passes them in with the frozen networks).

Every pipeline ends on the 8-bit grid (LR images are 8-bit files in every
benchmark and in Real-ESRGAN's training), with LR in [0, 1] of shape
[N, H / scale, W / scale, C]. Each pipeline registers its builder in
`DEGRADATIONS` with its options' defaults:

  @DEGRADATIONS.register('name', defaults=dict(scale=4, my_option=1.0))
  def name(scale: int, my_option: float) -> Pipeline: ...

`PIPELINE_DEFAULTS` lists them all; `default_degradation_config()` exposes
them in the training config so any of them can be overridden from the
command line.
"""
import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sr_jax import errors
from sr_jax.degradations import blur
from sr_jax.degradations.imresize import imresize
from sr_jax.degradations import jpeg_compression as jpeg_lib
from sr_jax.degradations import kernels as kernels_lib
from sr_jax.degradations import noise as noise_lib
from sr_jax.degradations import perspective as perspective_lib
from sr_jax.degradations import resampling as resize_lib
from sr_jax.registry import Registry

Pipeline = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]

_REAL_ESRGAN_KERNELS = ('iso', 'aniso', 'generalized_iso', 'generalized_aniso',
                        'plateau_iso', 'plateau_aniso')
_REAL_ESRGAN_KERNEL_PROB = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)

# Every pipeline registers its builder `(scale, **options) -> Pipeline` with
# its options' defaults (`scale` included): the ones PIPELINE_DEFAULTS and
# `default_degradation_config()` list.
DEGRADATIONS = Registry('degradation', hooks=('defaults',))


def _to_8bit(x):
  return jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0) / 255.0


def _bicubic_down(hr, scale: int):
  return imresize(hr, 1.0 / scale)


def bicubic_lr(hr, scale: int):
  """hr: [N, H, W, C] float in [0, 1] -> MATLAB-bicubic LR on the 8-bit grid,
  as the LR images of the standard benchmarks (and validation) are made."""
  return _to_8bit(_bicubic_down(hr, scale))


@functools.partial(jax.jit, static_argnums=1)
def _bicubic_lr_of_uint8(hr, scale: int):
  return jnp.round(bicubic_lr(hr.astype(jnp.float32) / 255.0, scale) * 255.0
                   ).astype(jnp.uint8)


def bicubic_lr_uint8(hr: np.ndarray, scale: int) -> np.ndarray:
  """uint8 [H, W, C] (H, W multiples of `scale`) -> its MATLAB-bicubic LR,
  uint8: how the benchmarks' LR files are made (BasicSR's protocol)."""
  return np.asarray(_bicubic_lr_of_uint8(hr[None], scale)[0])


def _check_scale(name: str, scale) -> int:
  if not isinstance(scale, int) or scale < 1:
    raise errors.ConfigError(
        f'Degradation {name!r}: scale must be a positive int, '
        f'got {scale!r}.')
  return scale


def _check_divisible(name: str, hr, scale: int):
  h, w = hr.shape[1:3]
  if h % scale or w % scale:
    raise errors.ConfigError(
        f'Degradation {name!r}: HR size {h}x{w} is not a '
        f'multiple of the scale {scale}.')


# --------------------------------------------------------------- pipelines


@DEGRADATIONS.register('bicubic', defaults=dict(scale=4))
def bicubic(scale: int) -> Pipeline:
  def fn(key, hr):
    del key
    _check_divisible('bicubic', hr, scale)
    return bicubic_lr(hr, scale), hr
  return fn


@DEGRADATIONS.register('srrescgan', defaults=dict(
    scale=4,
    noise_prob=0.5,  # Per image: noise with this probability, else JPEG.
    noise_sigma=8.0,  # On the 0-255 scale.
    jpeg_quality=30))
def srrescgan(scale: int, noise_prob: float, noise_sigma: float,
              jpeg_quality: int) -> Pipeline:
  def fn(key, hr):
    _check_divisible('srrescgan', hr, scale)
    k_choice, k_noise = jax.random.split(key)
    lr = bicubic_lr(hr, scale) if scale > 1 else hr
    noisy = noise_lib.gaussian_noise(k_noise, lr, (noise_sigma, noise_sigma))
    quality = jnp.full((hr.shape[0],), jpeg_quality, jnp.int32)
    compressed = jpeg_lib.jpeg(lr, quality)
    use_noise = (jax.random.uniform(k_choice, (hr.shape[0], 1, 1, 1))
                 < noise_prob)
    return _to_8bit(jnp.where(use_noise, noisy, compressed)), hr
  return fn


@DEGRADATIONS.register('denoise', defaults=dict(
    scale=1,
    # Sigma on the 0-255 scale; a range varies it.
    noise_range=(25.0, 25.0),
    gray_noise_prob=0.0))
def denoise(scale: int, noise_range, gray_noise_prob: float) -> Pipeline:
  if scale != 1:
    raise errors.ConfigError(
        f"Degradation 'denoise' works at scale 1 (the output has "
        f'the input size); got scale={scale}. Set config.scale=1.')

  def fn(key, hr):
    noisy = noise_lib.gaussian_noise(key, hr, tuple(noise_range),
                                     gray_prob=gray_noise_prob)
    return _to_8bit(noisy), hr
  return fn


@DEGRADATIONS.register('perspective', defaults=dict(
    scale=4,
    angle_range=(30.0, 70.0),  # Degrees about the vertical axis.
    random_sign=True,  # Turn left or right with probability 1/2 each.
    aligned=False))  # True: warp the HR target the same way.
def perspective(scale: int, angle_range, random_sign: bool,
                aligned: bool) -> Pipeline:
  def fn(key, hr):
    _check_divisible('perspective', hr, scale)
    warped, _ = perspective_lib.random_perspective(
        key, hr, tuple(angle_range), random_sign=random_sign)
    lr = _bicubic_down(warped, scale) if scale > 1 else warped
    return _to_8bit(lr), (warped if aligned else hr)
  return fn


@dataclasses.dataclass(frozen=True)
class NetworkPipeline:
  """A pipeline whose degradation is a trained generator of the run's
  registry: `fn(key, hr, network) -> (lr, hr)`, with network(x) applying
  the generator `arch` whose weights come from `source`. Whoever runs it
  loads the weights (the trainer: as a frozen network in `aux`)."""
  fn: Callable[..., tuple[jax.Array, jax.Array]]
  arch: str
  source: str

  def __call__(self, key, hr, network=None):
    if network is None:
      raise errors.ConfigError(
          f'This degradation runs a trained {self.arch!r} generator '
          f'({self.source}); it needs that network (the trainer passes it; '
          'for validation LR use lr_from=<another pipeline> or lr_dir).')
    return self.fn(key, hr, network)


@DEGRADATIONS.register('dsgan', defaults=dict(
    scale=4,
    # A trained DSGAN: its workdir (the best, else the newest checkpoint's
    # EMA generator) or a weights file of the 'dsgan' generator (.npz from
    # sr_jax, or DSGAN's released .pth / .tar).
    checkpoint=''))
def dsgan(scale: int, checkpoint: str) -> NetworkPipeline:
  if not checkpoint:
    raise errors.ConfigError(
        "Degradation 'dsgan' needs a trained DSGAN: set "
        'config.degradation.dsgan.checkpoint to the workdir of a '
        'configs/dsgan.py run or to a weights file of the dsgan generator.')

  def fn(key, hr, network):
    del key
    _check_divisible('dsgan', hr, scale)
    return _to_8bit(network(_bicubic_down(hr, scale))), hr
  return NetworkPipeline(fn, 'dsgan', checkpoint)


# -------------------------------------------------------------- Real-ESRGAN


def _random_kernel_size(key, n: int, max_size: int):
  """Per-sample odd size in {7, 9, ..., max_size} (Real-ESRGAN's draw)."""
  choices = jnp.arange(7, max_size + 1, 2)
  return jax.random.choice(key, choices, (n,))


def realesrgan_blur_kernels(key, n: int, ksize: int, kernel_list, kernel_prob,
                            sinc_prob: float, blur_sigma, betag_range,
                            betap_range):
  """Real-ESRGAN's per-image blur kernels: [n, ksize, ksize], each sums to 1.

  Per image: a size k in {7, ..., ksize}; with probability sinc_prob a sinc
  kernel with omega_c ~ U(pi/3, pi) for k < 13, else U(pi/5, pi); otherwise
  a `random_mixed_kernel`; all masked to their k x k support.
  """
  if ksize < 7 or ksize % 2 == 0:
    raise errors.ConfigError(
        f'Real-ESRGAN blur kernel size must be odd and >= 7, '
        f'got {ksize}.')
  k_size, k_sinc, k_choice, k_mixed = jax.random.split(key, 4)
  sizes = _random_kernel_size(k_size, n, ksize)
  mixed = kernels_lib.random_kernels(
      k_mixed, n, ksize, tuple(kernel_list), tuple(kernel_prob),
      tuple(blur_sigma), tuple(blur_sigma), (-math.pi, math.pi),
      tuple(betag_range), tuple(betap_range))
  u = jax.random.uniform(k_sinc, (n,))
  low = jnp.where(sizes < 13, math.pi / 3, math.pi / 5)
  omegas = low + (math.pi - low) * u
  sinc = jax.vmap(lambda w: kernels_lib.sinc_kernel(ksize, w))(omegas)
  use_sinc = jax.random.uniform(k_choice, (n, 1, 1)) < sinc_prob
  chosen = jnp.where(use_sinc, sinc, mixed)
  return jax.vmap(kernels_lib.mask_kernel_support)(chosen, sizes)


def final_sinc_kernels(key, n: int, ksize: int, prob: float):
  """Real-ESRGAN's last filter: sinc (omega ~ U(pi/3, pi)) or identity."""
  k_size, k_omega, k_choice = jax.random.split(key, 3)
  sizes = _random_kernel_size(k_size, n, ksize)
  omegas = jax.random.uniform(k_omega, (n,), jnp.float32, math.pi / 3, math.pi)
  sinc = jax.vmap(lambda w: kernels_lib.sinc_kernel(ksize, w))(omegas)
  sinc = jax.vmap(kernels_lib.mask_kernel_support)(sinc, sizes)
  pulse = jnp.zeros((ksize, ksize), jnp.float32).at[ksize // 2,
                                                    ksize // 2].set(1.0)
  use = jax.random.uniform(k_choice, (n, 1, 1)) < prob
  return jnp.where(use, sinc, pulse)


def _random_noise(key, x, gaussian_prob, sigma_range, poisson_range,
                  gray_prob):
  """Per image: Gaussian noise with probability gaussian_prob, else Poisson."""
  k_choice, k_gauss, k_poisson = jax.random.split(key, 3)
  gauss = noise_lib.gaussian_noise(k_gauss, x, tuple(sigma_range),
                                   gray_prob=gray_prob)
  poisson = noise_lib.poisson_noise(k_poisson, x, tuple(poisson_range),
                                    gray_prob=gray_prob)
  use_gauss = (jax.random.uniform(k_choice, (x.shape[0], 1, 1, 1))
               < gaussian_prob)
  return jnp.where(use_gauss, gauss, poisson)


def _blur_canvas(x, valid_hw, kernels):
  # Re-extend each image past its valid region first: noise and JPEG broke
  # the reflect-101 fill that makes a canvas blur equal an image blur.
  return blur.apply_kernels(resize_lib.refill(x, valid_hw), kernels)


# Real-ESRGAN's options/train_realesrgan_x4plus.yml and its dataset defaults,
# under the same names (the second stage's with a trailing 2).
REALESRGAN_DEFAULTS: dict[str, Any] = dict(
    scale=4,
    # Blur kernels, first stage.
    blur_kernel_size=21,  # Largest size; each draw is odd in [7, this].
    kernel_list=_REAL_ESRGAN_KERNELS,
    kernel_prob=_REAL_ESRGAN_KERNEL_PROB,
    sinc_prob=0.1,
    blur_sigma=(0.2, 3.0),
    betag_range=(0.5, 4.0),
    betap_range=(1.0, 2.0),
    # First stage: resize, noise, JPEG.
    resize_prob=(0.2, 0.7, 0.1),  # up, down, keep
    resize_range=(0.15, 1.5),
    gaussian_noise_prob=0.5,  # Else Poisson noise.
    noise_range=(1.0, 30.0),
    poisson_scale_range=(0.05, 3.0),
    gray_noise_prob=0.4,
    jpeg_range=(30, 95),
    # Second stage.
    second_blur_prob=0.8,
    blur_kernel_size2=21,
    kernel_list2=_REAL_ESRGAN_KERNELS,
    kernel_prob2=_REAL_ESRGAN_KERNEL_PROB,
    sinc_prob2=0.1,
    blur_sigma2=(0.2, 1.5),
    betag_range2=(0.5, 4.0),
    betap_range2=(1.0, 2.0),
    resize_prob2=(0.3, 0.4, 0.3),
    resize_range2=(0.3, 1.2),
    gaussian_noise_prob2=0.5,
    noise_range2=(1.0, 25.0),
    poisson_scale_range2=(0.05, 2.5),
    gray_noise_prob2=0.4,
    jpeg_range2=(30, 95),
    final_sinc_prob=0.8,
    resize_modes=('area', 'bilinear', 'bicubic'),
)


def _realesrgan_first_stage(keys, o, hr, modes):
  """Blur, random resize onto a canvas, noise, JPEG at HR size; consumes 4
  keys. Returns (images on the canvas, their valid [n, 2] sizes)."""
  n, h, w, _ = hr.shape
  k1 = realesrgan_blur_kernels(
      next(keys), n, o.blur_kernel_size, o.kernel_list, o.kernel_prob,
      o.sinc_prob, o.blur_sigma, o.betag_range, o.betap_range)
  out = blur.apply_kernels(hr, k1)
  # The canvas leaves room for the second blur's radius past the largest
  # image, so that blur reflects at the image's edge, not the canvas's.
  margin = o.blur_kernel_size2 // 2
  canvas1 = (math.ceil(h * o.resize_range[1]) + margin,
             math.ceil(w * o.resize_range[1]) + margin)
  out, valid = resize_lib.random_resize(
      next(keys), out, None, resize_prob=tuple(o.resize_prob),
      resize_range=tuple(o.resize_range), modes=modes, canvas_hw=canvas1)
  out = _random_noise(next(keys), out, o.gaussian_noise_prob, o.noise_range,
                      o.poisson_scale_range, o.gray_noise_prob)
  out = jpeg_lib.random_jpeg(next(keys), jnp.clip(out, 0.0, 1.0),
                             tuple(o.jpeg_range))
  return out, valid


def _realesrgan_second_stage(keys, o, out, valid, lr_hw, modes):
  """Optional blur, resize relative to the LR size, noise; consumes 5 keys.
  Returns (images on the second canvas, their valid [n, 2] sizes)."""
  n = out.shape[0]
  lr_h, lr_w = lr_hw
  k2 = realesrgan_blur_kernels(
      next(keys), n, o.blur_kernel_size2, o.kernel_list2, o.kernel_prob2,
      o.sinc_prob2, o.blur_sigma2, o.betag_range2, o.betap_range2)
  blurred = _blur_canvas(out, valid, k2)
  use_blur = jax.random.uniform(next(keys), (n, 1, 1, 1)) < o.second_blur_prob
  out = jnp.where(use_blur, blurred, out)
  # Real-ESRGAN's second resize is relative to the final LR size.
  scale2 = resize_lib.random_scales(next(keys), n, tuple(o.resize_prob2),
                                    tuple(o.resize_range2))
  valid2 = jnp.maximum(1, jnp.floor(
      scale2[:, None] * jnp.array([lr_h, lr_w], jnp.float32))).astype(
          jnp.int32)
  canvas2 = (math.ceil(lr_h * o.resize_range2[1]),
             math.ceil(lr_w * o.resize_range2[1]))
  mode2 = resize_lib.random_mode_index(next(keys), n, modes)
  out = resize_lib.resize_canvas(out, valid, canvas2, valid2, mode2, modes)
  out = _random_noise(next(keys), out, o.gaussian_noise_prob2,
                      o.noise_range2, o.poisson_scale_range2,
                      o.gray_noise_prob2)
  return out, valid2


def _realesrgan_final_stage(keys, o, out, valid2, lr_hw, modes):
  """[resize to LR + sinc, JPEG] in a random order per image; consumes 4
  keys. Returns the LR batch, float in [0, 1]."""
  n = out.shape[0]
  lr_h, lr_w = lr_hw
  sinc = final_sinc_kernels(next(keys), n, o.blur_kernel_size2,
                            o.final_sinc_prob)
  low, high = o.jpeg_range2
  quality = jax.random.randint(next(keys), (n,), low, high + 1)
  mode3 = resize_lib.random_mode_index(next(keys), n, modes)
  full = jnp.broadcast_to(jnp.array([lr_h, lr_w], jnp.int32), (n, 2))

  def resize_and_sinc(x):
    x = resize_lib.resize_canvas(x, valid2, (lr_h, lr_w), full, mode3, modes)
    return blur.apply_kernels(x, sinc)

  def compress(x):
    return jpeg_lib.jpeg(jnp.clip(x, 0.0, 1.0), quality)

  first = compress(resize_and_sinc(out))
  second = resize_and_sinc(compress(resize_lib.refill(out, valid2)))
  order = jax.random.uniform(next(keys), (n, 1, 1, 1)) < 0.5
  return jnp.where(order, first, second)


@DEGRADATIONS.register('realesrgan', defaults=REALESRGAN_DEFAULTS)
def realesrgan(scale: int, **opts) -> Pipeline:
  """Real-ESRGAN's second-order degradation, per sample, static shapes.

  Real-ESRGAN resizes by a random factor mid-pipeline, which makes the size
  dynamic; here every image lives on a fixed canvas with its own valid size
  (see `resampling.py`), so each sample gets its own factor and mode. (Real-
  ESRGAN itself draws one factor and mode per batch.)
  """
  o = dataclasses.make_dataclass('Opts', list(opts))(**opts)
  modes = tuple(o.resize_modes)

  def fn(key, hr):
    _check_divisible('realesrgan', hr, scale)
    _, h, w, _ = hr.shape
    lr_h, lr_w = h // scale, w // scale
    radius = max(o.blur_kernel_size, o.blur_kernel_size2) // 2
    if min(lr_h, lr_w) <= radius:
      raise errors.ConfigError(
          f'realesrgan: LR patches of {lr_h}x{lr_w} are too small for '
          f'{2 * radius + 1}x{2 * radius + 1} blur kernels; use HR patches of '
          f'at least {(radius + 1) * scale} pixels (data.gt_size) or smaller '
          'blur_kernel_size / blur_kernel_size2.')
    keys = iter(jax.random.split(key, 16))
    # ----- first stage, at HR size
    out, valid = _realesrgan_first_stage(keys, o, hr, modes)
    # ----- second stage
    out, valid2 = _realesrgan_second_stage(keys, o, out, valid, (lr_h, lr_w),
                                           modes)
    # ----- final: [resize to LR + sinc, JPEG] in a random order per image
    out = _realesrgan_final_stage(keys, o, out, valid2, (lr_h, lr_w), modes)
    return _to_8bit(out), hr

  return fn


# ----------------------------------------------------------------- registry

# Snapshots of the registry, for callers that list the pipelines.
PIPELINES = tuple(DEGRADATIONS.names())
PIPELINE_DEFAULTS: dict[str, dict[str, Any]] = {
    name: DEGRADATIONS.hooks(name)['defaults'] for name in PIPELINES}


def _plain(value):
  """Config values (tuples, ConfigDict lists) -> hashable Python values."""
  if isinstance(value, (list, tuple)):
    return tuple(_plain(v) for v in value)
  return value


def get_pipeline(name: str, **overrides) -> Pipeline:
  """The degradation pipeline `name` with some defaults overridden.

  Args:
    name: one of PIPELINES.
    **overrides: any of `PIPELINE_DEFAULTS[name]`, e.g. `scale=2` or
      `noise_range=(1, 20)`; unknown names raise ConfigError listing the valid
      ones.
  Returns:
    fn(key, hr) -> (lr, hr_target): hr [N, H, W, C] float32 in [0, 1] with H
    and W multiples of scale; lr [N, H / scale, W / scale, C] in [0, 1] on the
    8-bit grid; hr_target [N, H, W, C] (hr itself unless the pipeline warps
    it). Pure and jittable; deterministic for a key.
  """
  if name not in DEGRADATIONS:
    raise errors.ConfigError(
        f'Unknown degradation {name!r}; choose one of '
        f'{", ".join(DEGRADATIONS.names())} '
        '(config.degradation.name).')
  defaults = DEGRADATIONS.hooks(name)['defaults']
  unknown = sorted(set(overrides) - set(defaults))
  if unknown:
    raise errors.ConfigError(
        f'Degradation {name!r} has no option(s) {", ".join(unknown)}; its '
        f'options are: {", ".join(sorted(defaults))}.')
  opts = {k: _plain(v) for k, v in dict(defaults, **overrides).items()}
  opts['scale'] = _check_scale(name, opts['scale'])
  return DEGRADATIONS.get(name)(**opts)


# ------------------------------------------------------------------ config


def default_degradation_config() -> ml_collections.ConfigDict:
  """`config.degradation`: the pipeline's name and every pipeline's options.

  All pipelines' options are present (under their names) so any of them can
  be overridden from the command line, e.g.
  `--config.degradation.name=realesrgan
   --config.degradation.realesrgan.jpeg_range='(40, 95)'`.
  `scale` is not among them: it is always the run's `config.scale`.
  """
  c = ml_collections.ConfigDict()
  c.name = 'bicubic'
  for name in DEGRADATIONS.names():
    defaults = DEGRADATIONS.hooks(name)['defaults']
    c[name] = ml_collections.ConfigDict(
        {k: v for k, v in defaults.items() if k != 'scale'})
  # Batch-level augmentations applied after the pipeline (0 = off).
  c.mixup_prob = 0.0  # Per-sample probability of mixup (Yoo et al. 2020).
  c.mixup_alpha = 1.2  # Beta(alpha, alpha) mixing weights.
  c.coarse_dropout_prob = 0.0  # Per-sample probability of holes in the LR.
  # Real-ESRGAN's USM-sharpened ground truth: the LR is made from it and the
  # pixel / perceptual / FFT losses aim at it; D sees the plain HR.
  c.usm_sharpen_gt = False
  # What the loss terms aim at: 'hr' (super-resolution) or 'lr', the
  # generator's own LR input (a down-sampling generator: DSGAN). With 'lr'
  # the discriminator's real images are the batch's unpaired 'real' patches
  # (data.real_dir), or this pipeline's output on other HR patches of the
  # batch (a synthetic real domain, e.g. 'srrescgan'); see training_pairs.
  c.target = 'hr'
  c.real_domain = ''
  return c


def pipeline_from_config(degradation: ml_collections.ConfigDict | None,
                         scale: int, name: str | None = None) -> Pipeline:
  """The pipeline of a run's `degradation` settings (config.degradation) at
  `scale`, or the pipeline `name` with its options from
  degradation.<name> (a synthetic real domain, a validation LR).

  Without a `degradation` block: the classic bicubic pipeline.
  """
  if degradation is None:
    return get_pipeline(name or 'bicubic', scale=scale)
  name = name or degradation.name
  options = degradation.get(name)
  overrides = dict(options) if options is not None else {}
  return get_pipeline(name, scale=scale, **overrides)
