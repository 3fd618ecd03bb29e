r"""The thesis's frequency-loss ablation: ESRGAN + RaGP with no frequency
term, the FFT loss, the spectral loss or the focal frequency loss, each at
weight 0.3 and 0.5.

  python -m sr_jax.sweep --config=configs/ablations/frequency.py --workdir=W
  python -m sr_jax.main --config=configs/ablations/frequency.py:ffl_0.3 ...

Arg: 'VARIANT[,SIZE]', VARIANT one of none, fft_0.3, fft_0.5, fft_l1_0.3,
fft_l1_0.5, spectral_0.3, spectral_0.5, ffl_0.3, ffl_0.5 (default none);
SIZE '', 'tiny' or 'runlocal' (sr_jax.train.config_lib.ablation_size).
- fft: the thesis's FFT loss, ||F(G) - F(HR)|| / max(||F(G)||, ||F(HR)||)
  (norm 'l2'; configs/esrgan_fft.py is fft_0.3). By Parseval it equals the
  same ratio of pixel-space norms.
- fft_l1: the `fft` term with norm 'l1' (L1 over the orthonormal spectrum's
  real and imaginary parts), not equivalent to any pixel loss: sr_jax's
  alternative, compared here (`--set gan.losses.fft.norm=amplitude_phase`
  for Fuoli et al.'s form).
- spectral: BCE of the 1D azimuthal spectra (Durall et al.).
- ffl: the focal frequency loss (Jiang et al.), alpha 1, whole images.
The base is configs/esrgan_fft.py's GAN phase without its FFT term: L1 +
VGG19 perceptual + RaGP with a BatchNorm-free VGG-style critic.
"""
from sr_jax.train import config_lib

VARIANTS = {
    'none': None,
    'fft_0.3': ('fft', 0.3), 'fft_0.5': ('fft', 0.5),
    'fft_l1_0.3': ('fft', 0.3, 'l1'), 'fft_l1_0.5': ('fft', 0.5, 'l1'),
    'spectral_0.3': ('spectral', 0.3), 'spectral_0.5': ('spectral', 0.5),
    'ffl_0.3': ('focal_frequency', 0.3), 'ffl_0.5': ('focal_frequency', 0.5),
}
# (term, weight[, the fft term's norm: 'l2', the thesis's, by default]).
_OPTIONS = {'fft': dict(norm='l2'), 'spectral': {},
            'focal_frequency': dict(alpha=1.0)}


def get_config(arg=None):
  name, size = config_lib.split_ablation_arg(arg, VARIANTS)
  config = config_lib.base_config()
  config.gan.adversarial_loss = 'ragp'
  config.discriminator.kwargs.use_bn = False
  config.gan.losses.fft.weight = 0.0
  if VARIANTS[name] is not None:
    term, weight, *norm = VARIANTS[name]
    config.gan.losses[term] = dict(_OPTIONS[term], weight=weight)
    if norm:
      config.gan.losses[term].norm = norm[0]
  return config_lib.ablation_size(config, size)
