"""The contract every registered component keeps, for every registry.

Each test is parametrized over a registry's `names()`: a new generator,
discriminator, loss term, regulariser, metric, optimizer or degradation is
checked here as soon as it is registered, with no test to edit. The checks
are the cheap, generic ones of each kind (tiny sizes, no jit); deeper ones
live in the component's own tests (PyTorch parity of the converters:
test_convert*.py, test_srrescgan.py, test_wdrn.py, test_dsgan.py,
test_unet_sn.py; running every pipeline: test_pipelines.py).
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sr_jax import degradations
from sr_jax import losses
from sr_jax import metrics
from sr_jax import models
from sr_jax import optimizers
from sr_jax import weights
from sr_jax.degradations import pipelines
from sr_jax.registry import Registry


def _input_side(multiple: int, at_least: int = 16) -> int:
  """The smallest multiple of `multiple` that is >= at_least and >= 2x it."""
  return multiple * max(2, math.ceil(at_least / multiple))


def _shapes(tree):
  return jax.tree.map(np.shape, tree)


def _init_and_apply(module, x):
  """(variables, module(x)) in eval mode. The variables have the shapes of
  `module.init` (traced, not run: compiling every initialiser costs seconds
  per model) and small positive random values (BatchNorm variances too);
  apply is one jitted program."""
  shapes = jax.eval_shape(
      lambda x: module.init(jax.random.key(0), x, train=False), x)
  rng = np.random.default_rng(0)
  variables = jax.tree.map(
      lambda a: rng.uniform(0.0, 0.1, a.shape).astype(a.dtype), shapes)
  out = jax.jit(lambda v, x: module.apply(v, x, train=False))(variables, x)
  return variables, out


# ------------------------------------------------------------------ models --

def test_model_names_are_unique_across_generators_and_discriminators():
  # arch_spec, weights conversion and configs look a name up in both.
  assert not set(models.GENERATORS.names()) & set(
      models.DISCRIMINATORS.names())
  assert models.arch_names() == (models.GENERATORS.names()
                                 + models.DISCRIMINATORS.names())


@pytest.mark.parametrize('name', models.GENERATORS.names())
def test_generator_contract(name, tmp_path):
  spec = models.arch_spec(name)
  assert spec.kind == 'generator' and spec.module is models.GENERATORS.get(
      name)
  assert spec.tiny_kwargs is not None, f'{name}: no TINY_KWARGS'
  module = models.get_generator(name, **spec.tiny_kwargs)
  assert isinstance(module, spec.module)
  multiple = int(spec.input_multiple(module))
  assert multiple >= 1
  h = _input_side(multiple)
  w = h + multiple  # H != W: catches a transposed output.
  x = jax.random.uniform(jax.random.key(0), (1, h, w, 3))
  variables, out = _init_and_apply(module, x)
  scale = models.output_scale(module)
  assert out.dtype == jnp.float32
  assert out.shape == (1, int(h * scale), int(w * scale), 3), (out.shape,
                                                                scale)
  assert bool(jnp.isfinite(out).all())

  hooks = models.GENERATORS.hooks(name)
  if 'kwargs_from_params' in hooks:
    # sr_jax's own export: a plain .npz of the parameters, loaded back with
    # the settings read off their shapes (kwargs_from_params).
    inferred = spec.kwargs_from_params(variables['params'])
    for key, value in inferred.items():
      assert getattr(module, key) == value, (key, value)
    path = tmp_path / f'{name}.npz'
    weights.save_params(path, variables)
    loaded, loaded_vars, loaded_scale = weights.load_generator_file(
        path, arch=name)
    # The same module and the same values: the same function.
    assert loaded == module and loaded_scale == scale
    jax.tree.map(np.testing.assert_array_equal, loaded_vars,
                 jax.device_get(variables))
  if spec.convert_torch is not None:
    _check_converter(name, spec)


def _check_converter(name, spec):
  """The torch-free part of a converter's contract: it is offered by the
  weights tools, and refuses a state dict that is not its own with a
  ValueError (naming the keys) rather than a crash. Numerical round trips
  against PyTorch modules: the parity tests."""
  assert name in weights.SUPPORTED_ARCHS
  foreign = {'not_this.net.weight': np.zeros((4, 3, 3, 3), np.float32)}
  for state_dict in ({}, foreign):
    with pytest.raises(ValueError):
      spec.convert_torch(state_dict)
    assert not spec.recognise(state_dict)


@pytest.mark.parametrize('name', models.DISCRIMINATORS.names())
def test_discriminator_contract(name):
  spec = models.arch_spec(name)
  assert spec.kind == 'discriminator'
  assert spec.module is models.DISCRIMINATORS.get(name)
  kwargs = dict(spec.tiny_kwargs or {})
  side = _input_side(int(spec.input_multiple(spec.module(**kwargs))))
  if 'input_size' in models.module_fields(spec.module):
    kwargs['input_size'] = side  # As the trainer sets it (data.gt_size).
  module = models.get_discriminator(name, **kwargs)
  min_size = getattr(module, 'min_input_size', None)
  if callable(min_size):
    assert min_size() <= side
  x = jax.random.uniform(jax.random.key(0), (2, side, side, 3))
  _, logits = _init_and_apply(module, x)
  assert logits.dtype == jnp.float32 and logits.shape[0] == 2
  assert bool(jnp.isfinite(logits).all())
  if spec.convert_torch is not None:
    _check_converter(name, spec)


# ---------------------------------------------------------------- registry --

def test_misspelt_hook_fails_at_registration():
  registry = Registry('widget', hooks=('convert_torch', 'recognise'))
  with pytest.raises(ValueError, match=r"widget registry: 'w1' .*"
                     r"'convert_troch'.*Did you mean 'convert_torch'.*"
                     r'Allowed hooks: convert_torch, recognise'):
    registry.register('w1', convert_troch=lambda sd: None)
  assert 'w1' not in registry and registry.names() == []
  with pytest.raises(ValueError, match='Allowed hooks: none'):
    Registry('gadget').register('g', defaults={})
  # The real registries check too: a typo never silently drops a hook.
  with pytest.raises(ValueError, match='generator registry.*recognize'):
    models.GENERATORS.register('typo_net', recognize=lambda sd: False)
  assert 'typo_net' not in models.GENERATORS


def test_hooks_are_kept_per_entry():
  registry = Registry('widget', hooks=('recognise',))
  recognise = lambda sd: True
  registry.register('a', recognise=recognise)(dict)
  registry.register('b')(list)
  assert registry.get('a') is dict and registry.hooks('a') == {
      'recognise': recognise}
  assert registry.hooks('b') == {}
  with pytest.raises(ValueError, match='twice'):
    registry.register('a')(set)
  with pytest.raises(ValueError, match="Did you mean 'a'"):
    registry.hooks('aa')


# ------------------------------------------------- losses and regularisers --

def _loss_context():
  keys = jax.random.split(jax.random.key(0), 4)
  image = lambda k: jax.random.uniform(k, (2, 16, 16, 3))
  sr, target, real = image(keys[0]), image(keys[1]), image(keys[2])
  # Scale 1, so that any network of the run (identity here) maps an image
  # to the LR's shape.
  return losses.LossContext(
      sr=sr, target=target, real=real, lr=(sr + target) / 2, key=keys[3],
      aux={}, apply=lambda network, x: x,
      critic=lambda x, which='discriminator': jnp.mean(x, axis=(1, 2, 3))[
          :, None],
      adversarial=losses.get_adversarial_loss('vanilla'))


@pytest.mark.parametrize('name', losses.LOSS_TERMS.names())
def test_loss_term_contract(name):
  term = losses.LOSS_TERMS.get(name)({}, jnp.float32)  # Default options.
  assert isinstance(term, losses.LossTerm) and term.log_name
  for network in term.frozen:  # Loadable by name.
    weights.FROZEN_NETWORKS.get(network.name)
  if term.frozen:
    return  # Pretrained networks: checked in their own tests.
  context = _loss_context()
  value = jax.jit(lambda: term.fn(context))()
  assert value.shape == () and value.dtype == jnp.float32
  assert bool(jnp.isfinite(value))


@pytest.mark.parametrize('name', losses.REGULARISERS.names())
def test_regulariser_contract(name):
  regulariser = losses.REGULARISERS.get(name)({})
  assert isinstance(regulariser, losses.Regulariser) and regulariser.log_name
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  context = losses.RegulariserContext(
      critic=lambda x: jnp.sum(x ** 2, axis=(1, 2, 3))[:, None],
      real=jax.random.uniform(k1, (2, 8, 8, 3)),
      fake=jax.random.uniform(k2, (2, 8, 8, 3)), key=k3)
  value = jax.jit(lambda: regulariser.fn(context))()
  assert value.shape == () and value.dtype == jnp.float32
  assert bool(jnp.isfinite(value))


# ----------------------------------------------------------------- metrics --

@pytest.mark.parametrize('name', metrics.METRICS.names())
def test_metric_contract(name):
  metric = metrics.METRICS.get(name)
  assert metric.kind in metrics.registry.KINDS
  assert isinstance(metric.higher_is_better, bool)
  if metric.frozen:  # Needs pretrained weights: loadable by name.
    weights.FROZEN_NETWORKS.get(metric.frozen)
    return
  rng = np.random.default_rng(0)
  # 96x192: NIQE's two 96x96 blocks, the smallest any metric needs.
  image = lambda: rng.integers(0, 256, (96, 192, 3), dtype=np.uint8)
  if metric.kind == 'full_reference':
    value = metric.fn(image(), image(), 4)
  elif metric.kind == 'no_reference':
    value = metric.fn(image(), 0)
  else:
    value = metric.fn([image(), image()], [image(), image()], 4)
  assert isinstance(value, float) and math.isfinite(value)


# -------------------------------------------------------------- optimizers --

@pytest.mark.parametrize('name', optimizers.OPTIMIZERS.names())
def test_optimizer_contract(name):
  tx, _ = optimizers.build_optimizer(dict(name=name, lr=1e-2))
  params = {'w': jnp.ones((3,)), 'b': jnp.zeros(())}
  grads = {'w': jnp.array([1.0, -1.0, 0.5]), 'b': jnp.array(2.0)}
  updates, _ = tx.update(grads, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  assert _shapes(new) == _shapes(params)
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(new))
  # A step against the gradient lowers <grads, params>.
  dot = lambda p: sum(jnp.vdot(g, v) for g, v in zip(
      jax.tree.leaves(grads), jax.tree.leaves(p)))
  assert float(dot(new)) < float(dot(params))


# ------------------------------------------------------------ degradations --

@pytest.mark.parametrize('name', degradations.DEGRADATIONS.names())
def test_degradation_contract(name):
  """Registered with defaults (an int scale among them) that are its config
  options; builds with them, or says which option to set. (Running every
  pipeline: test_pipelines.py.)"""
  assert name in degradations.PIPELINES
  defaults = degradations.DEGRADATIONS.hooks(name)['defaults']
  assert isinstance(defaults['scale'], int) and defaults['scale'] >= 1
  assert pipelines.PIPELINE_DEFAULTS[name] == defaults
  config = pipelines.default_degradation_config()
  assert set(config[name]) == set(defaults) - {'scale'}
  try:
    fn = degradations.get_pipeline(name)
  except ValueError as e:
    assert any(option in str(e) for option in defaults), e
  else:
    assert callable(fn)
