"""A frozen network made from one downloadable PyTorch file: fetch,
convert, cache and load it, with how-to messages.

  INCEPTION_FID = FrozenFile(name='inception_fid', ...)
  INCEPTION_FID.fetch()        # python -m sr_jax.weights fetch inception_fid
  INCEPTION_FID.convert_file(src)           # ... convert inception_fid SRC
  variables = INCEPTION_FID.load(path)      # load_frozen('inception_fid')

The converted file is `<cache>/<name>.npz` with the arch metadata of
sr_jax.weights.files (so load_converted / build_model also read it). Loaded
variables are checked against the model's shapes. torch is only needed to
convert the .pth.
"""
import dataclasses
import os
import pathlib
from typing import Any, BinaryIO, Callable, Optional

from sr_jax.weights import download as download_lib
from sr_jax.weights import files
from sr_jax.weights import params_io
from sr_jax.weights import state_dict as state_dict_lib
from sr_jax.weights.vgg19 import FetchError

PathLike = str | os.PathLike


@dataclasses.dataclass(frozen=True)
class FrozenFile:
  """name: the frozen-network, CLI, cache and converter (NETWORKS) name.
  what: how messages name the network. url: the PyTorch file.
  sha256_prefix: what its SHA-256 must start with (None: not checked; the
  conversion still checks every key and shape). like: () -> the model's
  abstract variables, to check loaded files against.
  """
  name: str
  what: str
  url: str
  sha256_prefix: Optional[str]
  like: Callable[[], Any]

  @property
  def file_name(self) -> str:
    return self.url.rsplit('/', 1)[-1]

  def cached_path(self) -> pathlib.Path:
    """<$SR_JAX_CACHE_DIR or ~/.cache/sr_jax>/<name>.npz."""
    return params_io.cache_dir() / f'{self.name}.npz'

  def how_to(self) -> str:
    return (
        f'Get the {self.what} weights one of these ways:\n'
        f'  * online:  python -m sr_jax.weights fetch {self.name}\n'
        f'  * offline: download {self.url} elsewhere, then run (needs '
        'torch)\n'
        f'             python -m sr_jax.weights convert {self.name} '
        f'/path/to/{self.file_name}\n'
        '  * or pass a converted .npz or the .pth itself (path=... / '
        f'config.frozen.{self.name}).\n'
        f'Converted weights are cached in {self.cached_path()} (directory '
        f'from ${params_io.CACHE_ENV_VAR}).')

  def convert_file(self, src: PathLike,
                   out: Optional[PathLike] = None) -> pathlib.Path:
    """The .pth -> .npz (default: the cache); returns the path written
    (atomically; nothing is written on error). Needs torch."""
    src = pathlib.Path(src).expanduser()
    if not src.is_file():
      raise params_io.WeightsNotFoundError(f'{src} does not exist.\n'
                                           + self.how_to())
    checkpoint = files.load_torch_file(src)
    try:
      variables, kwargs = state_dict_lib.convert_with_config(self.name,
                                                             checkpoint)
    except ValueError as e:
      raise ValueError(f'Converting {src} as {self.what}: {e} Nothing was '
                       'saved.') from None
    out = pathlib.Path(out).expanduser() if out else self.cached_path()
    return files.save_converted(out, self.name, variables, kwargs,
                                source=src.name)

  def fetch(self, out: Optional[PathLike] = None, *,
            download: Optional[Callable[[str, BinaryIO, bool], str]] = None,
            progress: bool = True) -> pathlib.Path:
    """Downloads, verifies and converts the file; returns the .npz path.

    download: fn(url, file, progress) -> SHA-256 hex of what it wrote
      (default: sr_jax.weights.download.download_file); tests pass a fake.
    The download goes to a temporary file next to `out` that is always
    deleted. Raises FetchError (offline, wrong checksum), ImportError (no
    torch: checked before downloading), ValueError (not the expected file).
    """
    files.require_torch(f'Converting the {self.what} weights')
    download = download or download_lib.download_file
    out = pathlib.Path(out).expanduser() if out else self.cached_path()
    with download_lib.temporary_path(out.parent, '.pth') as tmp:
      try:
        with open(tmp, 'wb') as f:
          digest = download(self.url, f, progress)
      except download_lib.DOWNLOAD_ERRORS as e:
        raise FetchError(
            f'Could not download {self.url}: {e}.\nIf this machine is '
            f'offline, download {self.url} elsewhere, copy it here and run '
            f'(needs torch)\n  python -m sr_jax.weights convert {self.name} '
            f'/path/to/{self.file_name}') from e
      if self.sha256_prefix and not digest.startswith(self.sha256_prefix):
        raise FetchError(
            f'Downloaded file from {self.url} has SHA-256 {digest}, which '
            f'does not start with {self.sha256_prefix}; it is corrupt or not '
            'the expected file. Nothing was saved; try again, or download it '
            'by hand.')
      return self.convert_file(tmp, out)

  def _check(self, variables: Any, source: Any) -> Any:
    try:
      return files.check_like(variables, self.like(), self.what, str(source))
    except ValueError as e:
      raise ValueError(f'{e}\n{self.how_to()}') from None

  def load(self, path: Optional[PathLike] = None) -> Any:
    """Variables from `path` (a converted .npz, or the .pth: converted with
    torch into the cache), else the cache. Raises WeightsNotFoundError with
    the how-to when there are none: random weights would give meaningless
    numbers."""
    if path:
      path = pathlib.Path(path).expanduser()
      if not path.is_file():
        raise params_io.WeightsNotFoundError(
            f'{self.what} weights not found at {path}.\n' + self.how_to())
      if path.suffix != '.npz':
        path = self.convert_file(path, self.cached_path())
      return self._check(params_io.load_params(path), path)
    cached = self.cached_path()
    if cached.is_file():
      return self._check(params_io.load_params(cached), cached)
    raise params_io.WeightsNotFoundError(
        f'No {self.what} weights: no path given and no {cached}.\n'
        + self.how_to())

  def cli_entries(self) -> dict[str, tuple[Callable, Callable, Callable]]:
    """{name: (fetch(out), convert(file, out), cached_path())}, the triple
    `python -m sr_jax.weights` holds per name."""
    return {self.name: (self.fetch, self.convert_file, self.cached_path)}
