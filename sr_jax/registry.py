"""Small name -> constructor registries, so configs pick components by name.

Every registry of sr_jax (generators, discriminators, loss terms,
regularisers, metrics, optimizers, degradations, ...) is a `Registry`, and a
component registers itself in its own file:

  GENERATORS = Registry('generator', hooks=('convert_torch', 'recognise'))

  @GENERATORS.register('mynet', recognise=my_recognise)
  class MyNet(nn.Module): ...

  GENERATORS.get('mynet')            # MyNet (a typo: ValueError, did you mean)
  GENERATORS.hooks('mynet')          # {'recognise': my_recognise}

A registry may name the hooks (extra functions or values) its entries can be
registered with; registering with any other name is a typo and fails at
import time, not silently later.
"""
import difflib
from typing import Any, Callable, Iterable

from sr_jax import errors


class Registry:
  """Maps names to callables; `get` fails with the list of known names.

  kind: what the entries are, for messages ('generator').
  hooks: the names of the keyword arguments `register` takes besides the
    name (none by default); each entry keeps the ones it was given.
  """

  def __init__(self, kind: str, hooks: Iterable[str] = ()):
    self.kind = kind
    self.hook_names: tuple[str, ...] = tuple(sorted(set(hooks)))
    self._entries: dict[str, Callable[..., Any]] = {}
    self._hooks: dict[str, dict[str, Any]] = {}

  def register(self, name: str, **hooks):
    """Decorator registering its argument as `name`, with `hooks`.

    Raises ValueError at once for a hook this registry does not take (a
    misspelt one), and when decorating, for a name registered before.
    """
    unknown = sorted(set(hooks) - set(self.hook_names))
    if unknown:
      allowed = ', '.join(self.hook_names) or 'none'
      close = [m for u in unknown for m in
               difflib.get_close_matches(u, self.hook_names, n=1)]
      hint = f' Did you mean {", ".join(map(repr, close))}?' if close else ''
      raise ValueError(
          f'The {self.kind} registry: {name!r} is registered with unknown '
          f'hook(s) {", ".join(map(repr, unknown))}.{hint} Allowed hooks: '
          f'{allowed}.')

    def decorator(fn):
      if name in self._entries:
        raise ValueError(f'{self.kind} {name!r} is registered twice.')
      self._entries[name] = fn
      self._hooks[name] = dict(hooks)
      return fn
    return decorator

  def get(self, name: str) -> Callable[..., Any]:
    try:
      return self._entries[name]
    except KeyError:
      close = difflib.get_close_matches(str(name), list(self._entries), n=1)
      hint = f' Did you mean {close[0]!r}?' if close else ''
      raise errors.ConfigError(
          f'Unknown {self.kind} {name!r}.{hint} Known: '
          f'{", ".join(sorted(self._entries))}.') from None

  def hooks(self, name: str) -> dict[str, Any]:
    """The hooks `name` was registered with (a copy; ValueError if unknown)."""
    self.get(name)
    return dict(self._hooks[name])

  def names(self) -> list[str]:
    return sorted(self._entries)

  def __contains__(self, name: object) -> bool:
    return name in self._entries
