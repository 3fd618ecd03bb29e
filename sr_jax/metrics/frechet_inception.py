"""FID (Heusel et al. 2017), as pytorch-fid computes it, plus the patch
protocol SR papers use on small test sets.

  variables = weights.load_frozen('inception_fid')   # sr_jax.weights
  score = fid(sr_images, hr_images, variables)       # lists of uint8 HxWx3
  score = fid(sr_images, hr_images, variables, patch_size=64)

1. Features: each image as float in [0, 1] (v / 255), resized to 299x299
   bilinearly and mapped to [-1, 1] by the FID InceptionV3
   (models.inception), 2048-d pool3 features.
2. Statistics: mean and covariance (np.cov, ddof=1) of each set's features,
   in float64.
3. d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).

tr((S1 S2)^(1/2)) is the sum of the square roots of the eigenvalues of
S1 S2, which are those of the symmetric PSD matrix R^T S2 R for any R with
R R^T = S1 (its Cholesky factor, or its symmetric square root when S1 is
singular): symmetric eigenvalues (eigvalsh), so near-singular and singular
covariances need no eps * I and give no complex parts, where
scipy.linalg.sqrtm of S1 S2 (pytorch-fid's) may; and 10x faster than sqrtm
at 2048 dimensions. From features of N1, N2 <= 2048 images (small test
sets) `fid_from_features` is exact without forming the covariances: the sum
is the nuclear norm of A B^T, A and B the centred features / sqrt(N - 1).

FID compares distributions: with few images the covariance estimate is
poor and FID biased upwards. For small test sets (Set5, Set14, BSD100) SR
papers compute it over non-overlapping patch_size x patch_size crops of
each image (patch_size=...; the remainders at the right and bottom are
dropped); always report the protocol with the score (`metric_name`).
"""
from typing import Any, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sr_jax.metrics import registry
from sr_jax.models import inception

_TRUNK = inception.InceptionV3FID(resize_input=False)


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
  """Symmetric square root of a symmetric PSD matrix (negative eigenvalues
  from rounding clipped to 0)."""
  w, v = np.linalg.eigh(sigma)
  return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _as_covariance(sigma, name: str, dim: int) -> np.ndarray:
  sigma = np.atleast_2d(np.asarray(sigma, np.float64))
  if sigma.shape != (dim, dim):
    raise ValueError(f'{name} has shape {sigma.shape}; expected ({dim}, '
                     f'{dim}) for {dim}-d means.')
  if not np.all(np.isfinite(sigma)):
    raise ValueError(f'{name} has non-finite entries.')
  return (sigma + sigma.T) / 2


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
  """tr((sigma1 sigma2)^(1/2)) for symmetric PSD sigma1, sigma2."""
  try:
    root = np.linalg.cholesky(sigma1)
  except np.linalg.LinAlgError:  # Singular (e.g. fewer samples than dims).
    root = _sqrt_psd(sigma1)
  product = root.T @ sigma2 @ root
  eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
  return float(np.sum(np.sqrt(np.clip(eigenvalues, 0, None))))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """Squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

  Float64 throughout; stable for singular and near-singular covariances
  (see the module docstring). Returns a float >= 0 (rounding below 0 is
  clipped). Raises ValueError for mismatched shapes or non-finite input.
  """
  mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
  mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
  if mu1.ndim != 1 or mu1.shape != mu2.shape:
    raise ValueError(f'Means must be vectors of one length; got '
                     f'{mu1.shape} and {mu2.shape}.')
  if not (np.all(np.isfinite(mu1)) and np.all(np.isfinite(mu2))):
    raise ValueError('The means have non-finite entries.')
  sigma1 = _as_covariance(sigma1, 'sigma1', mu1.shape[0])
  sigma2 = _as_covariance(sigma2, 'sigma2', mu1.shape[0])
  return _distance(mu1 - mu2, np.trace(sigma1), np.trace(sigma2),
                   _trace_sqrt_product(sigma1, sigma2))


def _distance(diff, trace1, trace2, trace_sqrt) -> float:
  return float(max(diff @ diff + trace1 + trace2 - 2 * trace_sqrt, 0.0))


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mean, covariance) of [N, D] features in float64, as pytorch-fid's
  (np.cov with rowvar=False, i.e. divided by N - 1). Needs N >= 2."""
  features = _features64(features, 'features')
  return features.mean(axis=0), np.cov(features, rowvar=False)


def _features64(features: np.ndarray, what: str) -> np.ndarray:
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or features.shape[0] < 2:
    raise ValueError(f'FID needs [N, D] features of N >= 2 images; {what} '
                     f'has shape {features.shape}.')
  if not np.all(np.isfinite(features)):
    raise ValueError(f'{what} has non-finite entries.')
  return features


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
  """FID of two sets of [N, D] features (e.g. from fid_features), float64.

  Equals frechet_distance(*statistics(features1), *statistics(features2));
  with N1 or N2 <= D computed exactly from the features instead (the
  nuclear norm of A B^T, see the module docstring): faster, and free of
  the rounding of D - N zero eigenvalues.
  """
  f1 = _features64(features1, 'features1')
  f2 = _features64(features2, 'features2')
  if f1.shape[1] != f2.shape[1]:
    raise ValueError(f'Features of different sizes: {f1.shape} and '
                     f'{f2.shape}.')
  if min(len(f1), len(f2)) > f1.shape[1]:
    return frechet_distance(*statistics(f1), *statistics(f2))
  mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
  a = (f1 - mu1) / np.sqrt(len(f1) - 1)  # S1 = a^T a.
  b = (f2 - mu2) / np.sqrt(len(f2) - 1)
  trace_sqrt = np.sum(np.linalg.svd(a @ b.T, compute_uv=False))
  return _distance(mu1 - mu2, np.sum(a * a), np.sum(b * b), trace_sqrt)


def _check_image(image, what: str) -> np.ndarray:
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f'FID takes uint8 HxWx3 RGB images; {what} is '
                     f'{image.dtype} {image.shape}.')
  return image


@jax.jit
def _prepare(image: jax.Array) -> jax.Array:
  """uint8 [H, W, 3] -> [299, 299, 3] float32 in [0, 1], as the model's
  resize_input does (one compile per image size; cheap)."""
  x = image.astype(jnp.float32)[None] / 255.0
  return inception.resize_bilinear(x, inception.FID_INPUT_SIZE)[0]


@jax.jit
def _pool3(variables: Any, x: jax.Array) -> jax.Array:
  # Full float32 convs even where the default is TF32 / bf16 passes.
  with jax.default_matmul_precision('highest'):
    return _TRUNK.apply(variables, x)


def fid_features(images: Sequence[np.ndarray], variables: Any,
                 batch_size: int = 50) -> np.ndarray:
  """[N, 2048] float32 pool3 features of uint8 HxWx3 images (any sizes).

  Each image is resized to 299x299 on its own (InceptionV3FID's
  resize_input, so its features do not depend on the other images), then
  the trunk runs on batches of min(batch_size, N) (the last one padded, so
  one compile per set size up to batch_size, then one in all).
  variables: the frozen network 'inception_fid'.
  """
  if batch_size < 1:
    raise ValueError(f'batch_size must be >= 1; got {batch_size}.')
  images = list(images)
  size = min(batch_size, len(images))
  out = []
  for start in range(0, len(images), size):
    chunk = images[start:start + size]
    batch = jnp.stack([
        _prepare(_check_image(image, f'image {start + k}'))
        for k, image in enumerate(chunk)])
    if len(chunk) < size:
      batch = jnp.pad(batch, ((0, size - len(chunk)), (0, 0), (0, 0),
                              (0, 0)))
    out.append(np.asarray(_pool3(variables, batch))[:len(chunk)])
  if not out:
    return np.zeros((0, inception.FEATURE_DIM), np.float32)
  return np.concatenate(out)


def patches(image: np.ndarray, patch_size: int) -> Iterator[np.ndarray]:
  """Non-overlapping patch_size x patch_size crops of image, row by row
  from the top left; the right and bottom remainders are dropped."""
  h, w = image.shape[:2]
  if patch_size < 1 or min(h, w) < patch_size:
    raise ValueError(f'Cannot cut {patch_size}x{patch_size} patches from a '
                     f'{h}x{w} image.')
  for top in range(0, h - patch_size + 1, patch_size):
    for left in range(0, w - patch_size + 1, patch_size):
      yield image[top:top + patch_size, left:left + patch_size]


def _samples(images: Sequence[np.ndarray], patch_size: int | None,
             what: str) -> list[np.ndarray]:
  images = [_check_image(image, f'{what} image {i}')
            for i, image in enumerate(images)]
  if patch_size is None:
    return images
  return [p for image in images for p in patches(image, patch_size)]


def fid(sr_images: Sequence[np.ndarray], hr_images: Sequence[np.ndarray],
        variables: Any, patch_size: int | None = None,
        batch_size: int = 50) -> float:
  """FID between two sets of uint8 HxWx3 RGB images (lower is better).

  patch_size: None: whole images (each resized to 299x299); an int: all
    non-overlapping patch_size x patch_size crops of every image (see
    `patches`), each then resized to 299x299. Report it with the score
    (metric_name(patch_size)).
  The sets need not have equal sizes, nor their images equal shapes.
  Raises ValueError for fewer than 2 samples in a set or bad images.
  """
  sr = _samples(sr_images, patch_size, 'SR')
  hr = _samples(hr_images, patch_size, 'HR')
  for what, samples in (('SR', sr), ('HR', hr)):
    if len(samples) < 2:
      raise ValueError(f'FID needs >= 2 {what} samples (images or patches); '
                       f'got {len(samples)}.')
  return fid_from_features(fid_features(sr, variables, batch_size),
                           fid_features(hr, variables, batch_size))


def metric_name(patch_size: int | None = None) -> str:
  """'fid' for whole images, 'fid_patch64' for patch_size=64: the name to
  report a score under, so that the two protocols are never mixed up."""
  return 'fid' if patch_size is None else f'fid_patch{patch_size}'


@registry.register('fid', higher_is_better=False, frozen='inception_fid',
                   kind='set')
def fid_metric(sr_images, hr_images, crop_border, variables) -> float:
  """FID of whole images (pytorch-fid's protocol: no border crop)."""
  del crop_border
  return fid(sr_images, hr_images, variables)


def patch_metric(patch_size: int) -> str:
  """Registers (once) FID over patch_size crops as metric_name(patch_size),
  e.g. 'fid_patch64', and returns that name: the protocol for small SR
  test sets, reported under its own name."""
  name = metric_name(patch_size)
  if name not in registry.METRICS.names():
    registry.register(name, higher_is_better=False, frozen='inception_fid',
                      kind='set')(
                          lambda srs, hrs, crop_border, variables: fid(
                              srs, hrs, variables, patch_size))
  return name


patch_metric(64)  # 'fid_patch64', the common choice; --fid-patch N others.
