"""Image quality metrics with BasicSR's evaluation protocol.

Full-reference: `psnr`, `ssim` (Y or RGB), LPIPS, DISTS. No-reference:
`niqe` (MATLAB's / BasicSR's), `brisque` (the LIVE release's SVR). Sets:
`fid` (pytorch-fid's InceptionV3; `frechet_distance`), and
`spectrum_discrepancy`. All are registered by name in METRICS for
validation and `python -m sr_jax.evaluate`.

`psnr` and `ssim` (numpy, float64) are the reference for reported numbers;
`spectrum_discrepancy` compares the average 1D spectra of two image sets;
`psnr_jax` and `ssim_jax` are batched float32 versions for jitted validation.
`LPIPS` / `make_lpips_fn` is the learned perceptual distance (lower is
better), with weights from `sr_jax.weights.load_lpips_params('alex' | 'vgg')`.
"""
from sr_jax.metrics.brisque_metric import brisque
from sr_jax.metrics.brisque_metric import brisque_features
from sr_jax.metrics.color import rgb_to_y
from sr_jax.metrics.color import rgb_to_y_jax
from sr_jax.metrics.dists_metric import DISTS
from sr_jax.metrics.dists_metric import dists
from sr_jax.metrics.dists_metric import make_dists_fn
from sr_jax.metrics.frechet_inception import fid
from sr_jax.metrics.frechet_inception import fid_features
from sr_jax.metrics.frechet_inception import fid_from_features
from sr_jax.metrics.frechet_inception import frechet_distance
from sr_jax.metrics.lpips import LPIPS
from sr_jax.metrics.lpips import make_lpips_fn
from sr_jax.metrics.niqe_metric import niqe
from sr_jax.metrics.niqe_metric import niqe_features
from sr_jax.metrics.psnr_ssim import psnr
from sr_jax.metrics.registry import METRICS
from sr_jax.metrics.registry import Metric
from sr_jax.metrics.psnr_ssim import psnr_jax
from sr_jax.metrics.psnr_ssim import ssim
from sr_jax.metrics.psnr_ssim import ssim_jax
from sr_jax.metrics.spectrum import spectrum_discrepancy
