"""config.remat: per-block rematerialisation changes memory, not numbers.

Each generator with blocks (models.layers.maybe_remat) gives the same
loss and gradients with and without it, and the program really holds a
rematerialised block (JAX's remat primitive); config.remat reaches the
train step through the recipe.
"""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.helpers.repo import load_config
from sr_jax import models
from sr_jax.train import state as ts
from sr_jax.train import recipe as recipe_lib
from sr_jax.train.step import make_phase_step
from sr_jax.train.step import StepSettings

REMAT_PRIMITIVE = re.compile(r'\b(remat\w*|checkpoint)\[')
# XLA's CPU backend expands remat's optimisation barriers early, and its
# common-subexpression elimination then merges the recomputation back into
# the forward pass (GPU and TPU keep the barriers). Without CSE the
# rematerialised blocks really run twice on the CPU too, which is what these
# tests need to see.
KEEP_RECOMPUTATION = {'xla_disable_hlo_passes': 'cse'}


def has_remat(jaxpr) -> bool:
  return bool(REMAT_PRIMITIVE.search(str(jaxpr)))


def compile_keeping_recomputation(fn, *args):
  """(compiled fn, its XLA FLOP count)."""
  compiled = jax.jit(fn).lower(*args).compile(KEEP_RECOMPUTATION)
  return compiled, compiled.cost_analysis()['flops']


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


def _psnr_step(remat: bool):
  """The tiny rrdbnet PSNR-phase step of configs/esrgan.py:runlocal, jitted
  and traced, with its inputs (random parameters: numbers, not speed)."""
  config = load_config('esrgan')
  config.remat = remat
  recipe = recipe_lib.build_recipe(config)
  phase = recipe.phases[0]
  abstract = jax.eval_shape(lambda: ts.init_train_state(
      recipe, jax.random.key(0), phase))
  rng = np.random.default_rng(0)
  params = jax.tree.map(
      lambda s: jnp.asarray(0.1 * rng.standard_normal(s.shape), s.dtype),
      abstract.params)
  state = ts.TrainState(
      step=jnp.zeros((), jnp.int32), params=params,
      model_state=jax.tree.map(jnp.zeros_like, abstract.model_state),
      opt_state={n: phase.optimizers[n].init(params[n]) for n in phase.train},
      ema_params={n: jax.tree.map(jnp.copy, params[n])
                  for n in recipe.generators()},
      rng=jax.random.key(0), health=ts.initial_health())
  hr = rng.integers(0, 256, (config.batch_size, config.data.gt_size,
                             config.data.gt_size, 3), np.uint8)
  traced = jax.jit(make_phase_step(
      recipe, phase, StepSettings.from_config(config))).trace(
      state, {'hr': hr}, {})
  return recipe, traced, state, hr


@pytest.mark.slow
def test_config_remat_reaches_the_train_step_and_changes_no_number():
  runs, flops = {}, {}
  for remat in (False, True):
    recipe, traced, state, hr = _psnr_step(remat)
    assert recipe.generator.remat == remat
    assert has_remat(traced.jaxpr) == remat
    compiled = traced.lower().compile(KEEP_RECOMPUTATION)
    flops[remat] = compiled.cost_analysis()['flops']
    new_state, metrics = compiled(state, {'hr': hr}, {})
    runs[remat] = (metrics, new_state.params['generator'])
  assert flops[True] > flops[False]
  (m0, p0), (m1, p1) = runs[False], runs[True]
  for key in ('l_g_pix', 'l_g_total', 'grad_norm_g'):
    np.testing.assert_allclose(m1[key], m0[key], rtol=1e-5, err_msg=key)
  # Adam's first step is lr * g / (|g| + eps) per parameter: the same
  # gradients give the same update.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-7), p1,
               p0)


def test_remat_on_a_generator_without_blocks_says_which_have_them():
  config = load_config('esrgan')
  config.remat = True
  config.generator.name = 'wdrn'
  config.generator.kwargs = dict(models.arch_spec('wdrn').tiny_kwargs)
  with pytest.raises(ValueError, match=r"config\.remat=True.*'wdrn'.*"
                                       r"'msrresnet', 'rrdbnet'"):
    recipe_lib.build_recipe(config)
