"""The CPU fast paths of the GAN step: a strided conv's input gradient in
space-to-depth form (or lax's with a cheaper kernel layout), frozen
networks' input-gradient kernels laid out once, VGG's 2x2 max pool as a
reshape, and each trained discriminator's pass over the real batch run once
(shared by the G loss and the D update). Each must give what it
replaces: checked against PyTorch's autograd and lax's own convolution
gradients, and in the compiled step."""
import collections
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from sr_jax.tools import bench
from sr_jax.train import recipe as recipe_lib
from sr_jax.train import warm_start
from sr_jax.models import layers
from sr_jax.models import vgg19 as vgg19_lib


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


def test_conv2d_takes_its_own_gradient_for_strided_convs_on_the_cpu():
  def custom(stride):
    jaxpr = jax.make_jaxpr(lambda v: layers.conv2d(
        v, jnp.zeros((4, 4, 3, 8)), stride, 1))(jnp.zeros((1, 16, 16, 3)))
    return 'custom_vjp' in str(jaxpr)
  assert jax.default_backend() == 'cpu'
  assert custom(2)
  assert not custom(1)


@pytest.mark.slow
def test_frozen_network_input_gradient_with_flipped_kernels_is_the_same():
  """VGG19 (a perceptual loss' network) given its kernels' input-gradient
  layout once: the same features and input gradient, through it."""
  vgg = vgg19_lib.VGG19(layers=('relu1_2', 'relu2_2'))
  x = jnp.asarray(np.random.default_rng(0).random((2, 10, 12, 3)),
                  jnp.float32)
  variables = jax.jit(vgg.init)(jax.random.key(0), x)
  flipped = layers.with_flipped_kernels(variables)
  assert set(flipped) == {'params', 'flipped'}
  assert flipped['flipped']['conv2_1']['kernel'].shape == (3, 3, 128, 64)

  def loss(v, image):
    return sum(jnp.sum(jnp.abs(f) ** 1.5) for f in vgg.apply(v, image)
               .values())

  assert 'custom_vjp' in str(jax.make_jaxpr(loss)(flipped, x))
  assert 'custom_vjp' not in str(jax.make_jaxpr(loss)(variables, x))
  value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=1))
  value, grad = value_and_grad(variables, x)
  value_f, grad_f = value_and_grad(flipped, x)
  np.testing.assert_allclose(value_f, value, rtol=1e-6)
  np.testing.assert_allclose(grad_f, grad, rtol=1e-4,
                             atol=1e-5 * float(jnp.max(jnp.abs(grad))))


@pytest.mark.slow  # Initialises a whole random VGG19 (not-slow budget).
def test_load_aux_gives_frozen_networks_their_flipped_kernels_on_the_cpu():
  config = bench.compare_config(gan_batch=2, gan_gt_size=32, gan_blocks=1,
                                num_feat=8)
  aux, missing = warm_start.load_aux(recipe_lib.build_recipe(config), config,
                                     random=True)
  assert not missing
  vgg = aux['vgg19']
  np.testing.assert_array_equal(
      vgg['flipped']['conv1_2']['kernel'],
      np.asarray(vgg['params']['conv1_2']['kernel'])[::-1, ::-1]
      .swapaxes(2, 3))


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


@pytest.mark.slow  # Compiles a GAN step (not-slow budget).
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
