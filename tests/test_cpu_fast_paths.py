"""The CPU fast paths of the GAN step: a strided conv's input gradient in
space-to-depth form, VGG's 2x2 max pool as a reshape, and each trained
discriminator's pass over the real batch run once (shared by the G loss and
the D update). Each must give what it replaces: checked against PyTorch's
autograd and lax's own convolution gradients, and in the compiled step."""
import collections
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import bench
from sr_jax.models import layers

torch = pytest.importorskip('torch')
F = torch.nn.functional

# (kernel, stride, pad, height, width): BasicSR's VGG-style D (4, 2, 1), the
# SRGAN D (3, 2, 1), LPIPS' AlexNet conv1 (11, 4, 2), odd sizes, no padding,
# kernels that are not a multiple of the stride and ones the stride skips.
CASES = [(4, 2, 1, 64, 64), (3, 2, 1, 33, 20), (11, 4, 2, 35, 31),
         (4, 2, 1, 9, 7), (3, 2, 0, 17, 16), (5, 3, 2, 19, 23),
         (1, 2, 0, 8, 9), (2, 2, 0, 8, 8)]


def _case(k, h, w, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((2, h, w, 5)).astype(np.float32)
  kernel = rng.standard_normal((k, k, 5, 6)).astype(np.float32)
  return x, kernel


@pytest.mark.parametrize('k,s,pad,h,w', CASES)
def test_space_to_depth_conv_gradients_match_torch(k, s, pad, h, w):
  x, kernel = _case(k, h, w)
  conv = lambda v, kk: layers._strided_conv(v, kk, s, pad)
  y, vjp = jax.vjp(conv, jnp.asarray(x), jnp.asarray(kernel))
  g = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
  dx, dk = vjp(jnp.asarray(g))

  xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
  kt = torch.tensor(kernel.transpose(3, 2, 0, 1), requires_grad=True)
  yt = F.conv2d(xt, kt, stride=s, padding=pad)
  yt.backward(torch.from_numpy(g.transpose(0, 3, 1, 2)))
  np.testing.assert_allclose(np.asarray(y), yt.detach().numpy()
                             .transpose(0, 2, 3, 1), atol=1e-4)
  np.testing.assert_allclose(np.asarray(dx), xt.grad.numpy()
                             .transpose(0, 2, 3, 1), atol=1e-4)
  np.testing.assert_allclose(np.asarray(dk), kt.grad.numpy()
                             .transpose(2, 3, 1, 0), atol=2e-4)


@pytest.mark.parametrize('k,s,pad,h,w', CASES[:4])
def test_space_to_depth_conv_second_order_matches_lax(k, s, pad, h, w):
  """A gradient penalty differentiates the input gradient again."""
  x, kernel = map(jnp.asarray, _case(k, h, w))

  def penalty(conv):
    def fn(kk):
      gx = jax.grad(lambda v: jnp.sum(jnp.sin(conv(v, kk))))(x)
      return jnp.sum(gx ** 2)
    return jax.value_and_grad(fn)(kernel)

  ours = penalty(lambda v, kk: layers._strided_conv(v, kk, s, pad))
  ref = penalty(lambda v, kk: layers._conv(v, kk, s, pad))
  np.testing.assert_allclose(ours[0], ref[0], rtol=1e-5)
  np.testing.assert_allclose(ours[1], ref[1], rtol=1e-4,
                             atol=1e-4 * float(jnp.max(jnp.abs(ref[1]))))


def test_conv2d_takes_the_space_to_depth_path_only_for_large_strided_maps():
  def calls(shape, stride):
    x = jnp.zeros(shape)
    jaxpr = jax.make_jaxpr(lambda v: layers.conv2d(
        v, jnp.zeros((4, 4, shape[-1], 8)), stride, 1))(x)
    return 'custom_vjp' in str(jaxpr)
  assert jax.default_backend() == 'cpu'
  assert calls((1, 64, 64, 3), 2)  # 32^2 output pixels.
  assert not calls((1, 32, 32, 3), 2)  # 16^2: lax's own is faster.
  assert not calls((1, 64, 64, 3), 1)


@pytest.mark.parametrize('h,w', [(8, 8), (9, 7), (16, 5)])
def test_max_pool_2x2_matches_torch_forward_and_backward(h, w):
  rng = np.random.default_rng(h * w)
  x = rng.standard_normal((2, h, w, 3)).astype(np.float32)
  y, vjp = jax.vjp(layers.max_pool_2x2, jnp.asarray(x))
  g = rng.standard_normal(y.shape).astype(np.float32)
  (dx,) = vjp(jnp.asarray(g))
  xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
  yt = F.max_pool2d(xt, 2, 2)
  yt.backward(torch.from_numpy(g.transpose(0, 3, 1, 2)))
  np.testing.assert_array_equal(np.asarray(y),
                                yt.detach().numpy().transpose(0, 2, 3, 1))
  np.testing.assert_array_equal(np.asarray(dx),
                                xt.grad.numpy().transpose(0, 2, 3, 1))


def test_gan_step_runs_the_discriminator_over_each_batch_once():
  """BasicSR's ESRGAN step at tiny sizes: every forward conv of the
  BatchNorm VGG-style D appears twice in the compiled step (the reals, the
  fakes), not three times (XLA does not merge the G loss's plain pass over
  the reals with the D update's differentiated one), and the backward
  passes are the three needed (the G loss through the fakes, the D update
  through both)."""
  config = bench.compare_config(gan_batch=2, gan_gt_size=32, gan_blocks=1,
                                num_feat=8)
  config.discriminator.kwargs = dict(config.discriminator.kwargs,
                                     num_feat=8)
  assert config.discriminator.kwargs.get('use_bn', True)
  step = bench.build_train_step(config, 'gan')
  hlo = step.compiled.as_text()
  counts = collections.Counter()
  # Convolution instructions (in the entry computation or a fusion's body;
  # a library fusion's call site names its conv too, so is not counted).
  for op in re.findall(r' convolution\([^\n]*op_name="([^"]*'
                       r'VGGStyleDiscriminator[^"]*/conv\d_\d/[^"]*)"', hlo):
    layer = re.search(r'/(conv\d_\d)/', op).group(1)
    counts[(layer, 'bwd' if 'transpose(' in op else 'fwd')] += 1
  layers_seen = sorted({layer for layer, _ in counts})
  assert len(layers_seen) == 6, counts  # conv0_0 .. conv2_1 at 32 px.
  for layer in layers_seen:
    assert counts[(layer, 'fwd')] == 2, (layer, counts)
