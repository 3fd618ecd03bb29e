"""FID: the InceptionV3 against a PyTorch reference, the Frechet distance
against scipy and closed forms, features, patches and the weights.

The PyTorch reference below is written from pytorch-fid 0.3.0's FID
InceptionV3 (torchvision's Inception3 blocks with FIDInceptionA / C / E_1
average-pooling without the padding and FIDInceptionE_2 max-pooling; input
resized to 299x299 bilinearly, align_corners=False, and mapped to [-1, 1];
the mean of Mixed_7c) with torchvision's module names, so its state_dict()
has the keys of pt_inception-2015-12-05-6726825d.pth (including the unused
1008-way 'fc'). Weights are random, BatchNorm running statistics included.
"""
import hashlib
import sys

import jax
import numpy as np
import pytest
import scipy.linalg
import torch

from sr_jax import weights
from sr_jax.metrics import frechet_inception as fid_lib
from sr_jax.metrics import registry
from sr_jax.models import inception
from sr_jax.weights import __main__ as cli
from sr_jax.weights import inception as inception_weights


tnn = torch.nn
F = torch.nn.functional


# ------------------------------------------------- PyTorch reference model --

class TorchBasicConv(tnn.Module):
  """Conv without bias, BatchNorm(eps=1e-3), ReLU ('conv' / 'bn' keys)."""

  def __init__(self, cin, cout, kernel, stride=1, padding=0):
    super().__init__()
    self.conv = tnn.Conv2d(cin, cout, kernel, stride=stride, padding=padding,
                           bias=False)
    self.bn = tnn.BatchNorm2d(cout, eps=0.001)

  def forward(self, x):
    return F.relu(self.bn(self.conv(x)))


def _avg_pool(x):
  return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class TorchBlock(tnn.Module):
  """An Inception block from a table of branches: each branch is a list of
  (name, cout, kernel, stride, padding) convs, optionally preceded by a
  pool ('avg', 'max3x3s1' or 'max3x3s2' with no convs); a conv entry that
  is a pair of convs runs both on the same input and concatenates them."""

  def __init__(self, cin, branches):
    super().__init__()
    self.branches = []
    for pool, convs in branches:
      chain, c = [], cin
      for spec in convs:
        pair = spec if isinstance(spec[0], tuple) else (spec,)
        for name, cout, kernel, stride, padding in pair:
          self.add_module(name, TorchBasicConv(c, cout, kernel, stride,
                                               padding))
        chain.append([name for name, *_ in pair])
        c = sum(cout for _, cout, *_ in pair)
      self.branches.append((pool, chain))

  def forward(self, x):
    outs = []
    for pool, chain in self.branches:
      y = x
      if pool == 'avg':
        y = _avg_pool(y)
      elif pool == 'max3x3s1':
        y = F.max_pool2d(y, 3, stride=1, padding=1)
      elif pool == 'max3x3s2':
        y = F.max_pool2d(y, 3, stride=2)
      for names in chain:
        y = torch.cat([getattr(self, n)(y) for n in names], 1)
      outs.append(y)
    return torch.cat(outs, 1)


def _block_a(cin, pool_features):
  return TorchBlock(cin, [
      (None, [('branch1x1', 64, 1, 1, 0)]),
      (None, [('branch5x5_1', 48, 1, 1, 0), ('branch5x5_2', 64, 5, 1, 2)]),
      (None, [('branch3x3dbl_1', 64, 1, 1, 0),
              ('branch3x3dbl_2', 96, 3, 1, 1),
              ('branch3x3dbl_3', 96, 3, 1, 1)]),
      ('avg', [('branch_pool', pool_features, 1, 1, 0)])])


def _block_b(cin):
  return TorchBlock(cin, [
      (None, [('branch3x3', 384, 3, 2, 0)]),
      (None, [('branch3x3dbl_1', 64, 1, 1, 0),
              ('branch3x3dbl_2', 96, 3, 1, 1),
              ('branch3x3dbl_3', 96, 3, 2, 0)]),
      ('max3x3s2', [])])


def _block_c(cin, c7):
  row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
  return TorchBlock(cin, [
      (None, [('branch1x1', 192, 1, 1, 0)]),
      (None, [('branch7x7_1', c7, 1, 1, 0),
              ('branch7x7_2', c7, row[0], 1, row[1]),
              ('branch7x7_3', 192, col[0], 1, col[1])]),
      (None, [('branch7x7dbl_1', c7, 1, 1, 0),
              ('branch7x7dbl_2', c7, col[0], 1, col[1]),
              ('branch7x7dbl_3', c7, row[0], 1, row[1]),
              ('branch7x7dbl_4', c7, col[0], 1, col[1]),
              ('branch7x7dbl_5', 192, row[0], 1, row[1])]),
      ('avg', [('branch_pool', 192, 1, 1, 0)])])


def _block_d(cin):
  return TorchBlock(cin, [
      (None, [('branch3x3_1', 192, 1, 1, 0), ('branch3x3_2', 320, 3, 2, 0)]),
      (None, [('branch7x7x3_1', 192, 1, 1, 0),
              ('branch7x7x3_2', 192, (1, 7), 1, (0, 3)),
              ('branch7x7x3_3', 192, (7, 1), 1, (3, 0)),
              ('branch7x7x3_4', 192, 3, 2, 0)]),
      ('max3x3s2', [])])


def _block_e(cin, pool):
  return TorchBlock(cin, [
      (None, [('branch1x1', 320, 1, 1, 0)]),
      (None, [('branch3x3_1', 384, 1, 1, 0),
              (('branch3x3_2a', 384, (1, 3), 1, (0, 1)),
               ('branch3x3_2b', 384, (3, 1), 1, (1, 0)))]),
      (None, [('branch3x3dbl_1', 448, 1, 1, 0),
              ('branch3x3dbl_2', 384, 3, 1, 1),
              (('branch3x3dbl_3a', 384, (1, 3), 1, (0, 1)),
               ('branch3x3dbl_3b', 384, (3, 1), 1, (1, 0)))]),
      (pool, [('branch_pool', 192, 1, 1, 0)])])


class TorchFIDInception(tnn.Module):
  """x [N, 3, H, W] in [0, 1] -> [N, 2048] pool3 features."""

  def __init__(self, resize_input=True):
    super().__init__()
    self.resize_input = resize_input
    self.Conv2d_1a_3x3 = TorchBasicConv(3, 32, 3, stride=2)
    self.Conv2d_2a_3x3 = TorchBasicConv(32, 32, 3)
    self.Conv2d_2b_3x3 = TorchBasicConv(32, 64, 3, padding=1)
    self.Conv2d_3b_1x1 = TorchBasicConv(64, 80, 1)
    self.Conv2d_4a_3x3 = TorchBasicConv(80, 192, 3)
    self.Mixed_5b = _block_a(192, 32)
    self.Mixed_5c = _block_a(256, 64)
    self.Mixed_5d = _block_a(288, 64)
    self.Mixed_6a = _block_b(288)
    self.Mixed_6b = _block_c(768, 128)
    self.Mixed_6c = _block_c(768, 160)
    self.Mixed_6d = _block_c(768, 160)
    self.Mixed_6e = _block_c(768, 192)
    self.Mixed_7a = _block_d(768)
    self.Mixed_7b = _block_e(1280, 'avg')
    self.Mixed_7c = _block_e(2048, 'max3x3s1')
    self.fc = tnn.Linear(2048, 1008)  # In the file; not part of FID.

  def forward(self, x):
    if self.resize_input:
      x = F.interpolate(x, size=(299, 299), mode='bilinear',
                        align_corners=False)
    x = 2 * x - 1
    x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
    x = F.max_pool2d(x, 3, stride=2)
    x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
    x = F.max_pool2d(x, 3, stride=2)
    for name in ('Mixed_5b', 'Mixed_5c', 'Mixed_5d', 'Mixed_6a', 'Mixed_6b',
                 'Mixed_6c', 'Mixed_6d', 'Mixed_6e', 'Mixed_7a', 'Mixed_7b',
                 'Mixed_7c'):
      x = getattr(self, name)(x)
    return F.adaptive_avg_pool2d(x, 1).flatten(1)


def randomise(model, seed):
  """Kaiming-normal convs (activations keep their scale through the 94
  convs) and random BatchNorm affine parameters and running statistics."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, tnn.Conv2d):
        fan_in = m.weight[0].numel()
        m.weight.normal_(0, (2 / fan_in) ** 0.5, generator=gen)
      elif isinstance(m, tnn.BatchNorm2d):
        m.weight.uniform_(0.5, 1.5, generator=gen)
        m.bias.normal_(0, 0.2, generator=gen)
        m.running_mean.normal_(0, 0.2, generator=gen)
        m.running_var.uniform_(0.5, 2.0, generator=gen)
  return model.eval()


@pytest.fixture(scope='module', autouse=True)
def one_torch_thread():
  """On a loaded 2-core machine torch's two OpenMP threads wait on each
  other: a 299x299 Inception takes 4 s instead of 0.15 s."""
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def reference():
  """(torch model, converted variables), shared by the tests (~22M
  parameters: building it takes seconds)."""
  model = randomise(TorchFIDInception(), seed=0)
  variables = weights.convert_state_dict('inception_fid', model.state_dict())
  return model, variables


def rand_images(shape, seed):
  return np.random.default_rng(seed).random(shape, dtype=np.float32)


def errors(ours, ref) -> tuple[float, float]:
  """(max abs error, max abs error / max |ref|)."""
  ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
  assert ours.shape == ref.shape, (ours.shape, ref.shape)
  err = float(np.abs(ours - ref).max())
  return err, err / float(np.abs(ref).max())


def torch_features(model, x_nhwc):
  with torch.no_grad():
    return model(torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2))).numpy()


# --------------------------------------------------------------- parity --

@pytest.mark.slow
def test_trunk_matches_torch_on_small_inputs(reference):
  model, variables = reference
  # The smallest input the trunk takes (75) and a non-square one, without
  # the resize to 299.
  model.resize_input = False
  try:
    for shape in ((2, 75, 75, 3), (1, 83, 101, 3)):
      x = rand_images(shape, seed=shape[1])
      ref = torch_features(model, x)
      ours = jax.jit(inception.InceptionV3FID(resize_input=False).apply)(
          variables, x)
      abs_err, rel_err = errors(ours, ref)
      assert ref.shape == (shape[0], 2048) and ref.std() > 0.05
      assert rel_err < 1e-4, (abs_err, rel_err)
  finally:
    model.resize_input = True


@pytest.mark.parametrize('h,w', [(20, 33), (300, 299), (512, 384),
                                 (299, 299), (1, 7)])
def test_resize_matches_torch_interpolate(h, w):
  x = rand_images((2, h, w, 3), seed=h * w)
  with torch.no_grad():
    ref = F.interpolate(torch.from_numpy(x.transpose(0, 3, 1, 2)),
                        size=(299, 299), mode='bilinear',
                        align_corners=False).numpy().transpose(0, 2, 3, 1)
  ours = np.asarray(inception.resize_bilinear(x, 299))
  np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-6)


@pytest.mark.slow
def test_features_of_uint8_images_of_any_size_match_torch(reference):
  """fid_features (each image resized to 299 by itself, then batched,
  the last batch padded) against the whole PyTorch model, image by image."""
  model, variables = reference
  rng = np.random.default_rng(3)
  images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            for h, w in ((40, 56), (299, 299), (350, 310))]
  ours = fid_lib.fid_features(images, variables, batch_size=2)
  ref = np.concatenate([torch_features(model, (im / 255.0).astype(
      np.float32)[None]) for im in images])
  abs_err, rel_err = errors(ours, ref)
  assert ours.shape == (3, 2048) and ours.dtype == np.float32
  assert rel_err < 1e-4, (abs_err, rel_err)
  # A different batching gives the same features.
  np.testing.assert_allclose(
      fid_lib.fid_features(images[::-1], variables, batch_size=3)[::-1],
      ours, rtol=0, atol=1e-5 * np.abs(ours).max())


# ------------------------------------------------------ Frechet distance --

def fid_scipy(mu1, s1, mu2, s2):
  """The textbook formula with scipy.linalg.sqrtm (pytorch-fid's way)."""
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(s1) + np.trace(s2)
               - 2 * np.trace(covmean).real)


def fid_scipy_features(fa, fb):
  """fid_scipy of two feature sets, with the covariances restricted to the
  span of the centred features, where both live (exact; sqrtm then runs on
  an (Na + Nb)-sized matrix instead of 2048)."""
  q = np.linalg.qr(np.concatenate([fa - fa.mean(0), fb - fb.mean(0)]).T)[0]
  diff = fa.mean(0) - fb.mean(0)
  sa, sb = np.cov(fa @ q, rowvar=False), np.cov(fb @ q, rowvar=False)
  return fid_scipy(np.zeros(1), sa, np.zeros(1), sb) + float(diff @ diff)


def random_spd(rng, d, n):
  a = rng.standard_normal((n, d))
  return np.cov(a, rowvar=False)


def test_frechet_distance_matches_scipy_sqrtm():
  rng = np.random.default_rng(0)
  d = 64
  for _ in range(3):
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = random_spd(rng, d, 500), random_spd(rng, d, 300) * 2.0
    ours = fid_lib.frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(fid_scipy(mu1, s1, mu2, s2), rel=1e-10)
  # Symmetric, 0 for equal distributions.
  assert fid_lib.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(
      ours, rel=1e-10)
  assert fid_lib.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(
      0, abs=1e-9)


def test_frechet_distance_closed_forms_including_singular():
  rng = np.random.default_rng(1)
  d = 50
  mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
  # Diagonal covariances: d^2 = |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2,
  # also with zero (singular) and tiny variances.
  a, b = rng.uniform(0, 3, d), rng.uniform(0, 3, d)
  a[:10], b[5:15] = 0.0, 1e-14
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  assert fid_lib.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == \
      pytest.approx(expected, rel=1e-12)
  # Covariances sharing a random eigenbasis: tr sqrt(S1 S2) = sum
  # sqrt(a_i b_i); rank 20 of 50, as with 21 images' features.
  q = np.linalg.qr(rng.standard_normal((d, d)))[0]
  a[20:] = 0.0
  s1, s2 = (q * a) @ q.T, (q * b) @ q.T
  expected = (np.sum((mu1 - mu2) ** 2) + np.sum(a) + np.sum(b)
              - 2 * np.sum(np.sqrt(a * b)))
  # Rounding (~1e-15) in the 30 zero eigenvalues becomes ~3e-8 each under
  # the square root, for any method (scipy's sqrtm: complex, 6e-7 off).
  assert fid_lib.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
      expected, abs=1e-5)


def test_frechet_distance_of_near_singular_sample_covariances():
  """Fewer samples than dimensions (FID on small test sets): both agree
  where sqrtm is well-conditioned enough, after a tiny ridge."""
  rng = np.random.default_rng(2)
  d = 40
  f1, f2 = rng.standard_normal((30, d)), rng.standard_normal((35, d)) + 0.3
  mu1, s1 = fid_lib.statistics(f1)
  mu2, s2 = fid_lib.statistics(f2)
  assert np.linalg.matrix_rank(s1) == 29
  ridge = 1e-6 * np.eye(d)
  ours = fid_lib.frechet_distance(mu1, s1 + ridge, mu2, s2 + ridge)
  assert ours == pytest.approx(
      fid_scipy(mu1, s1 + ridge, mu2, s2 + ridge), rel=1e-6)
  # Without the ridge: finite and continuous.
  assert fid_lib.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
      ours, rel=1e-3)
  # From the features (exact, low rank) and from the statistics agree.
  assert fid_lib.fid_from_features(f1, f2) == pytest.approx(
      fid_lib.frechet_distance(mu1, s1, mu2, s2), rel=1e-6)
  assert fid_lib.fid_from_features(f1, f2) == pytest.approx(
      fid_scipy_features(f1, f2), rel=1e-6)


def test_fid_from_features_with_more_samples_than_dimensions():
  rng = np.random.default_rng(5)
  f1 = rng.standard_normal((100, 20))
  f2 = rng.standard_normal((120, 20)) * 1.5 + 0.2
  expected = fid_scipy(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0),
                       np.cov(f2, rowvar=False))
  assert fid_lib.fid_from_features(f1, f2) == pytest.approx(expected,
                                                            rel=1e-10)


def test_frechet_distance_refuses_bad_input():
  with pytest.raises(ValueError, match='shape'):
    fid_lib.frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
  with pytest.raises(ValueError, match='non-finite'):
    fid_lib.frechet_distance(np.zeros(2), np.eye(2) * np.nan, np.zeros(2),
                             np.eye(2))
  with pytest.raises(ValueError, match='N >= 2'):
    fid_lib.statistics(np.zeros((1, 2048)))


# --------------------------------------------------------- FID, patches --

def test_patches_are_non_overlapping_and_drop_remainders():
  image = np.arange(10 * 7 * 3, dtype=np.uint8).reshape(10, 7, 3)
  got = list(fid_lib.patches(image, 3))
  assert len(got) == 3 * 2
  np.testing.assert_array_equal(got[0], image[:3, :3])
  np.testing.assert_array_equal(got[1], image[:3, 3:6])
  np.testing.assert_array_equal(got[-1], image[6:9, 3:6])
  with pytest.raises(ValueError, match='8x8 patches from a 10x7'):
    list(fid_lib.patches(image, 8))
  assert fid_lib.metric_name(None) == 'fid'
  assert fid_lib.metric_name(64) == 'fid_patch64'


@pytest.mark.slow
def test_fid_whole_images_and_patches(reference):
  model, variables = reference
  rng = np.random.default_rng(4)
  hr = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(3)]
  sr = [np.clip(im.astype(int) + rng.integers(-40, 40, im.shape), 0,
                255).astype(np.uint8) for im in hr]

  def reference_fid(a, b):
    # One PyTorch batch per set (all images have one size).
    fa, fb = (torch_features(model, (np.stack(images) / 255.0).astype(
        np.float32)) for images in (a, b))
    return fid_scipy_features(fa.astype(np.float64), fb.astype(np.float64))

  # batch_size=3 throughout: one compiled shape (also used above).
  whole = fid_lib.fid(sr, hr, variables, batch_size=3)
  assert whole > 0
  assert whole == pytest.approx(reference_fid(sr, hr), rel=1e-4)
  # 48x48 patches: 1 x 2 per image, 6 per set.
  patched = fid_lib.fid(sr, hr, variables, patch_size=48, batch_size=3)
  cut = lambda images: [p for im in images for p in fid_lib.patches(im, 48)]
  assert len(cut(sr)) == 6
  assert patched == pytest.approx(reference_fid(cut(sr), cut(hr)), rel=1e-4)
  assert fid_lib.fid(hr, hr, variables, batch_size=3) == pytest.approx(
      0, abs=1e-6)
  # The registered set metric is whole-image FID (no border crop).
  metric = registry.METRICS.get('fid')
  assert (metric.kind, metric.frozen, metric.higher_is_better) == (
      'set', 'inception_fid', False)
  assert metric.fn(sr, hr, 4, variables=variables) == pytest.approx(
      whole, rel=1e-6)
  with pytest.raises(ValueError, match='>= 2 SR samples'):
    fid_lib.fid(sr[:1], hr, variables)
  with pytest.raises(ValueError, match='uint8 HxWx3'):
    fid_lib.fid([im / 255.0 for im in sr], hr, variables)


# -------------------------------------------------------------- weights --

def test_convert_names_bad_keys(reference):
  model, _ = reference
  sd = model.state_dict()
  with pytest.raises(ValueError, match=r"missing keys: \['Mixed_6e\."
                     r"branch7x7dbl_3\.bn\.running_var'\]"):
    weights.convert_state_dict('inception_fid', {
        k: v for k, v in sd.items()
        if k != 'Mixed_6e.branch7x7dbl_3.bn.running_var'})
  bad = dict(sd, **{'Mixed_7c.branch_pool.conv.weight':
                    torch.zeros(192, 2048, 3, 3)})
  with pytest.raises(ValueError, match=r'Mixed_7c\.branch_pool\.conv\.weight'
                     r': got \(192, 2048, 3, 3\), expected '
                     r'\(192, 2048, 1, 1\)'):
    weights.convert_state_dict('inception_fid', bad)
  aux = dict(sd, **{'AuxLogits.fc.weight': torch.zeros(1000, 768)})
  with pytest.raises(ValueError, match="torchvision's inception_v3"):
    weights.convert_state_dict('inception_fid', aux)


@pytest.fixture()
def isolated_cache(tmp_path, monkeypatch):
  cache = tmp_path / 'cache'
  monkeypatch.setenv('SR_JAX_CACHE_DIR', str(cache))
  return cache


@pytest.mark.slow
def test_load_frozen_explains_converts_and_caches(reference, tmp_path,
                                                  isolated_cache,
                                                  monkeypatch):
  model, variables = reference
  with pytest.raises(weights.WeightsNotFoundError) as info:
    weights.load_frozen('inception_fid')
  for needle in ('python -m sr_jax.weights fetch inception_fid',
                 inception_weights.INCEPTION_FID_URL,
                 'python -m sr_jax.weights convert inception_fid /path/to/'
                 'pt_inception-2015-12-05-6726825d.pth',
                 'config.frozen.inception_fid',
                 str(isolated_cache / 'inception_fid.npz')):
    assert needle in str(info.value)

  pth = tmp_path / 'pt_inception.pth'
  torch.save(model.state_dict(), pth)
  loaded = weights.load_frozen('inception_fid', str(pth))
  jax.tree.map(np.testing.assert_array_equal, loaded, variables)
  cached = isolated_cache / 'inception_fid.npz'
  assert cached.is_file()
  # Later: from the cache, without torch; a converted file says its arch.
  monkeypatch.setitem(sys.modules, 'torch', None)
  jax.tree.map(np.testing.assert_array_equal,
               weights.load_frozen('inception_fid'), variables)
  arch, kwargs, _ = weights.load_converted(cached)
  assert (arch, kwargs) == ('inception_fid', {})
  assert isinstance(weights.build_model(arch), inception.InceptionV3FID)
  # Weights of another network are refused with the how-to.
  other = tmp_path / 'other.npz'
  weights.save_params(other, {'params': {'conv1_1': {'bias': np.zeros(3)}}})
  with pytest.raises(ValueError, match='(?s)missing from the file.*fetch '
                     'inception_fid'):
    weights.load_frozen('inception_fid', str(other))


@pytest.mark.slow
def test_fetch_checks_the_hash_then_converts(reference, tmp_path,
                                             isolated_cache, capsys,
                                             monkeypatch):
  model, variables = reference
  served = tmp_path / 'served.pth'
  torch.save(model.state_dict(), served)
  payload = served.read_bytes()
  urls = []

  def fake_download(url, f, progress):
    del progress
    urls.append(url)
    f.write(payload)
    return hashlib.sha256(payload).hexdigest()

  from sr_jax.weights import download  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(download, 'download_file', fake_download)
  # The random file does not have the real file's SHA-256: nothing saved.
  assert cli.main(['fetch', 'inception_fid']) == 1
  assert urls == [inception_weights.INCEPTION_FID_URL]
  assert 'does not start with 6726825d' in capsys.readouterr().err
  assert not isolated_cache.exists() or not any(isolated_cache.iterdir())

  import dataclasses  # pylint: disable=g-import-not-at-top
  fetcher = dataclasses.replace(
      inception_weights.INCEPTION_FID,
      sha256_prefix=hashlib.sha256(payload).hexdigest()[:8])
  out = fetcher.fetch(progress=False)
  assert sorted(p.name for p in isolated_cache.iterdir()) == [
      'inception_fid.npz'] and out == isolated_cache / 'inception_fid.npz'
  jax.tree.map(np.testing.assert_array_equal, weights.load_frozen(
      'inception_fid'), variables)

  def offline(url, f, progress):
    raise OSError('network is unreachable')

  with pytest.raises(weights.FetchError,
                     match='(?s)Could not download.*convert inception_fid'):
    fetcher.fetch(tmp_path / 'x.npz', download=offline, progress=False)
  assert not (tmp_path / 'x.npz').exists()
