"""Small name -> constructor registries, so configs pick components by name."""
import difflib
from typing import Any, Callable


class Registry:
  """Maps names to callables; `get` fails with the list of known names."""

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: dict[str, Callable[..., Any]] = {}

  def register(self, name: str):
    def decorator(fn):
      if name in self._entries:
        raise ValueError(f'{self.kind} {name!r} is registered twice.')
      self._entries[name] = fn
      return fn
    return decorator

  def get(self, name: str) -> Callable[..., Any]:
    try:
      return self._entries[name]
    except KeyError:
      close = difflib.get_close_matches(str(name), list(self._entries), n=1)
      hint = f' Did you mean {close[0]!r}?' if close else ''
      raise ValueError(
          f'Unknown {self.kind} {name!r}.{hint} Known: '
          f'{", ".join(sorted(self._entries))}.') from None

  def names(self) -> list[str]:
    return sorted(self._entries)
