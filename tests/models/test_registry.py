"""sr_jax.models.registry: the contract every registered generator and
discriminator keeps.

Each test is parametrized over the registry's `names()`: a new model is
checked here as soon as it is registered, with no test to edit. The checks
are the cheap, generic ones (tiny sizes, no jit); deeper ones live in the
model's own tests (PyTorch parity of the converters:
tests/weights/test_state_dict.py, tests/models/test_srrescgan.py,
test_wdrn.py, test_dsgan.py, test_unet_sn.py). The other registries' own
contracts are in tests/<package>/test_registry.py (or test_terms.py,
test_regularisers.py, test_pipelines.py).
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import models
from sr_jax import weights


def _input_side(multiple: int, at_least: int = 16) -> int:
  """The smallest multiple of `multiple` that is >= at_least and >= 2x it."""
  return multiple * max(2, math.ceil(at_least / multiple))


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
