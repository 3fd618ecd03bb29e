"""Shared building blocks for configs/*.py.

A run has two phases, taken from one config, as ESRGAN trains:
  1. `psnr`: `psnr.steps` steps of pixel loss only (the PSNR-oriented warm-up);
  2. `gan`: `gan.steps` steps of pixel + perceptual + FFT + adversarial losses,
     starting from the warm-up's EMA generator (BasicSR's pretrain_network_g).
Either phase may have 0 steps. The global step runs over both.
"""
import ml_collections

from sr_jax.data import default_data_config
from sr_jax.degradations import default_degradation_config


def base_config() -> ml_collections.ConfigDict:
  """Every field a run reads, with ESRGAN's defaults."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.scale = 4
  c.batch_size = 16  # Global, split over all devices of all processes.
  # Compute dtype of the networks: 'float32' or 'bfloat16' (params stay f32).
  c.dtype = 'float32'

  c.data = default_data_config()
  c.data.gt_size = 128
  # How LR inputs are made from HR patches on the accelerator (ignored for
  # paired LR/HR sources): 'bicubic', 'realesrgan', 'srrescgan', 'denoise'
  # or 'perspective', each with its options under its own name.
  c.degradation = default_degradation_config()

  c.generator = ml_collections.ConfigDict(dict(
      name='rrdbnet',
      kwargs=dict(num_feat=64, num_block=23, num_grow_ch=32),
      # BasicSR's pretrain_network_g: start the generator (and its EMA) from
      # these weights at step 0: a converted .npz (python -m sr_jax.convert
      # or python -m sr_jax.weights fetch NAME), or a .pth / .safetensors of
      # the architecture `name`. '' = random init. Set psnr.steps=0 to go
      # straight to the GAN phase from, e.g., a PSNR-trained model.
      init_from=''))
  c.discriminator = ml_collections.ConfigDict(dict(
      name='vgg_style', kwargs=dict(num_feat=64)))

  c.ema_decay = 0.999

  # Phase 1: PSNR warm-up (ESRGAN paper: L1, lr 2e-4 halved every 200k).
  c.psnr = ml_collections.ConfigDict(dict(
      steps=1_000_000,
      pixel_loss='l1',
      lr=2e-4, b1=0.9, b2=0.99,
      milestones=(200_000, 400_000, 600_000, 800_000), gamma=0.5,
  ))
  # Phase 2: GAN (BasicSR's ESRGAN recipe).
  c.gan = ml_collections.ConfigDict(dict(
      steps=400_000,
      pixel_loss='l1', pixel_weight=1e-2,
      perceptual_weight=1.0,
      fft_weight=0.0,
      adversarial_loss='ragan', adversarial_weight=5e-3,
      gp_weight=10.0,  # Used by adversarial losses with a gradient penalty.
      lr_g=1e-4, lr_d=1e-4, b1=0.9, b2=0.99,
      milestones=(50_000, 100_000, 200_000, 300_000), gamma=0.5,
      net_d_iters=1,  # Update G every k-th step (BasicSR's net_d_iters).
      net_d_init_iters=0,  # Only D is trained for this many GAN steps.
  ))
  c.perceptual = ml_collections.ConfigDict(dict(
      layer_weights={'conv5_4': 1.0},  # conv = before ReLU (ESRGAN).
      criterion='l1',
      use_input_norm=True,
      range_norm=False,
      # Converted VGG19 weights (.npz) or torchvision's vgg19-dcbb9e9d.pth;
      # '' = $SR_JAX_VGG19_WEIGHTS or the cache (python -m sr_jax.weights).
      vgg_weights='',
      # Only for the offline demo: without weights, drop the perceptual term
      # with a loud warning instead of stopping. Never trains a random VGG.
      drop_if_missing=False,
  ))

  # Stop after this global step (0 = run to the end), e.g. to fit a time
  # slot; the run resumes from its checkpoint next time.
  c.stop_at_step = 0
  c.log_every = 100
  c.eval_every = 5_000
  c.checkpoint_every = 5_000
  c.keep_checkpoints = 3
  c.num_val_strips = 3  # LR | bicubic | SR | HR strips written per eval.
  return c


# `:runlocal` sizes of each generator: the smallest that still has every
# kind of layer.
_TINY_GENERATORS = {
    'rrdbnet': dict(num_feat=8, num_block=1, num_grow_ch=4),
    'srresnet': dict(num_feat=8, num_block=1),
    'msrresnet': dict(num_feat=8, num_block=1),
    'srvgg': dict(num_feat=8, num_conv=2),
}


def apply_variant(c: ml_collections.ConfigDict, arg) -> ml_collections.ConfigDict:
  """Applies a named variant: '' (full size), 'runlocal' or 'demo'."""
  arg = arg or ''
  if arg == '':
    return c
  if arg == 'runlocal':
    # Tiny model and 2 steps: what the tests run, in seconds on a CPU.
    c.batch_size = 4
    c.data.gt_size = 32
    c.data.val_max_images = 1
    c.data.val_max_size = 64
    c.generator.kwargs = _TINY_GENERATORS[c.generator.name]
    c.discriminator.kwargs = dict(num_feat=4)
    # Two steps: one per phase, or two warm-up steps for PSNR-only configs.
    c.gan.steps = min(c.gan.steps, 1)
    c.psnr.steps = min(c.psnr.steps, 2 - c.gan.steps)
    c.psnr.milestones = (1,)
    c.gan.milestones = (1,)
    c.log_every = 1
    c.eval_every = 2
    c.checkpoint_every = 1
    c.num_val_strips = 1
    return c
  if arg == 'demo':
    # Fits in ~10 minutes on a 2-core CPU on the embedded sample photos.
    c.batch_size = 8
    c.data.gt_size = 64
    c.data.val_max_size = 192
    c.generator.kwargs = dict(num_feat=32, num_block=2, num_grow_ch=16)
    c.discriminator.kwargs = dict(num_feat=16)
    # EMA 0.999 averages over ~1000 steps: far too slow for a run this short.
    c.ema_decay = 0.99
    c.psnr.steps = min(c.psnr.steps, 1_500)
    c.psnr.lr = 5e-4
    c.psnr.milestones = (1_000, 1_300)
    c.gan.steps = min(c.gan.steps, 200)
    c.gan.milestones = (150,)
    c.perceptual.drop_if_missing = True
    c.log_every = 50
    c.eval_every = 500
    c.checkpoint_every = 500
    c.num_val_strips = 2
    return c
  raise ValueError(f'Unknown config variant {arg!r}; use "", "runlocal" or '
                   '"demo", e.g. --config=configs/esrgan_fft.py:runlocal.')
