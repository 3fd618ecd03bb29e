"""sr_jax.models.layers: pixel (un)shuffle, per-block rematerialisation, and
the CPU fast paths of the GAN step: a strided conv's input gradient in
space-to-depth form (or lax's with a cheaper kernel layout), frozen
networks' input-gradient kernels laid out once, VGG's 2x2 max pool as a
reshape. Each must give what it replaces: checked against PyTorch's
autograd and lax's own convolution gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from sr_jax import models
from sr_jax.models import layers
from sr_jax.models import vgg19 as vgg19_lib
from tests.helpers.models import image
from tests.helpers.remat import compile_keeping_recomputation
from tests.helpers.remat import has_remat
from tests.helpers.torch_nets import rand_image
from tests.helpers.torch_nets import to_nhwc

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


@pytest.mark.parametrize('r', [2, 3])
def test_pixel_shuffle_matches_torch(r):
  x = rand_image(2, 4 * r * r, 3, 5)
  np.testing.assert_array_equal(layers.pixel_shuffle(to_nhwc(x), r),
                                to_nhwc(F.pixel_shuffle(x, r)))
  y = rand_image(2, 4, 3 * r, 5 * r)
  np.testing.assert_array_equal(layers.pixel_unshuffle(to_nhwc(y), r),
                                to_nhwc(F.pixel_unshuffle(y, r)))


def test_pixel_shuffle_inverts_unshuffle():
  x = image(2, 6, 8, 5)
  np.testing.assert_array_equal(
      layers.pixel_shuffle(layers.pixel_unshuffle(x, 2), 2), x)


@pytest.mark.slow
@pytest.mark.parametrize('name', ['rrdbnet', 'srresnet', 'msrresnet',
                                  'srvgg'])
def test_remat_gives_the_same_loss_and_gradients(name):
  kwargs = models.arch_spec(name).tiny_kwargs
  plain = models.get_generator(name, scale=2, **kwargs)
  remat = models.get_generator(name, scale=2, remat=True, **kwargs)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.random((2, 6, 6, 3), np.float32))
  abstract = jax.eval_shape(plain.init, jax.random.key(0), x)
  # Same parameter tree (names and shapes) either way.
  assert jax.eval_shape(remat.init, jax.random.key(0), x) == abstract
  # Random values (initialisers compile slowly on CPU); BatchNorm running
  # statistics of 1.
  params = jax.tree.map(
      lambda s: jnp.asarray(0.1 * rng.standard_normal(s.shape), s.dtype),
      abstract['params'])
  state = {k: jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), v)
           for k, v in abstract.items() if k != 'params'}

  def loss_fn(module):
    def loss(p):
      # train=True: BatchNorm (srresnet) normalises with batch statistics
      # and updates its running ones inside the rematerialised blocks.
      out, updates = module.apply({'params': p, **state}, x, train=True,
                                  mutable=list(state))
      return jnp.mean(jnp.square(out - 0.5)), updates
    return jax.value_and_grad(loss, has_aux=True)

  fn0, flops0 = compile_keeping_recomputation(loss_fn(plain), params)
  fn1, flops1 = compile_keeping_recomputation(loss_fn(remat), params)
  # The blocks' forward pass runs again in the backward pass.
  assert flops1 > flops0
  (loss0, updates0), grads0 = fn0(params)
  (loss1, updates1), grads1 = fn1(params)
  assert float(loss0) > 0
  np.testing.assert_allclose(loss1, loss0, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5,
                                                       atol=1e-7),
               (grads1, updates1), (grads0, updates0))
  assert has_remat(jax.make_jaxpr(loss_fn(remat))(params))
  assert not has_remat(jax.make_jaxpr(loss_fn(plain))(params))
