"""sr_jax.registry.Registry: hooks are checked at registration and kept per
entry."""
import pytest

from sr_jax import models
from sr_jax.registry import Registry


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
