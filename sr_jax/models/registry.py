"""The generator and discriminator registries, and what they know of each.

Its own module so that every model file can register its module itself
(`sr_jax/models/__init__.py` imports the files, which runs their
registrations):

  @GENERATORS.register('mynet')
  class MyNet(nn.Module): ...

or, for a module with hooks, after the hook functions at the end of its file:

  GENERATORS.register('rrdbnet', convert_torch=convert_torch,
                      recognise=recognise,
                      kwargs_from_params=kwargs_from_params,
                      input_multiple=input_multiple)(RRDBNet)

The hooks (all optional; see ArchSpec) are named at registration, so a
misspelt one fails at import instead of being silently ignored.
"""
import dataclasses
import fractions
from typing import Any, Callable

from sr_jax.registry import Registry

# What a generator or discriminator may be registered with (ArchSpec's
# fields of the same names).
HOOKS = ('convert_torch', 'recognise', 'kwargs_from_params', 'input_multiple',
         'output_scale')

GENERATORS = Registry('generator', hooks=HOOKS)
DISCRIMINATORS = Registry('discriminator', hooks=HOOKS)


@dataclasses.dataclass(frozen=True)
class ArchSpec:
  """What sr_jax knows of one registered architecture, from its registration.

  module: the Flax module class (with TINY_KWARGS, the `:runlocal` size).
  convert_torch: (state_dict, **kwargs) -> (variables, kwargs), or None.
  recognise: state_dict -> whether its key names are this architecture's.
  kwargs_from_params: (params, **given) -> the module's kwargs, read off
    parameter shapes (given ones win).
  input_multiple: module -> what H and W of its input must divide.
  output_scale: module -> output side / input side: `module.scale` by
    default; a fraction for a down-sampling generator (DSGAN).
  """
  name: str
  kind: str  # 'generator' or 'discriminator'.
  module: type
  convert_torch: Callable[..., Any] | None
  recognise: Callable[[Any], bool]
  kwargs_from_params: Callable[..., dict]
  input_multiple: Callable[[Any], int]
  output_scale: Callable[[Any], int | fractions.Fraction]

  @property
  def tiny_kwargs(self) -> dict | None:
    return getattr(self.module, 'TINY_KWARGS', None)


def _no_kwargs_from_params(params, **given):
  del params
  return dict(given)


def arch_spec(name: str) -> ArchSpec:
  """The spec of a registered generator or discriminator: the hooks it was
  registered with (convert_torch / recognise / kwargs_from_params /
  input_multiple / output_scale), defaults for the others. ValueError (the
  discriminators' list) for an unknown name."""
  if name in GENERATORS:
    kind, registry = 'generator', GENERATORS
  else:
    kind, registry = 'discriminator', DISCRIMINATORS
  cls = registry.get(name)
  hooks = registry.hooks(name)
  return ArchSpec(
      name=name, kind=kind, module=cls,
      convert_torch=hooks.get('convert_torch'),
      recognise=hooks.get('recognise', lambda sd: False),
      kwargs_from_params=hooks.get('kwargs_from_params',
                                   _no_kwargs_from_params),
      input_multiple=hooks.get('input_multiple', lambda module: 1),
      output_scale=hooks.get('output_scale',
                             lambda module: int(module.scale)))
