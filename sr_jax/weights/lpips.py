"""LPIPS weights from PyTorch: torchvision backbone + `lpips` lin layers.

LPIPS needs two files: torchvision's ImageNet backbone
(`alexnet-owt-7be5be79.pth` / `vgg16-397923af.pth`, keys
'features.{i}.weight|bias') and the `lpips` package's v0.1 linear layers
(`alex.pth` / `vgg.pth`, keys 'lin{k}.model.1.weight' of shape [1, C, 1, 1];
'model.0' is a Dropout, which is why the conv is 'model.1').

  variables = convert_lpips(torch.load(backbone), torch.load(lin), 'alex')
  metrics.lpips.LPIPS(net='alex').apply(variables, x, y)

Also accepted: a whole `lpips.LPIPS` state dict as the backbone argument
(keys 'net.slice{s}.{i}.weight', which keep torchvision's index i, and
'lin{k}...' / 'lins.{k}...'); lin_state_dict may then be None. torch is
only imported to read .pth files (convert_lpips_files, fetch_lpips).
"""
import os
import pathlib
import re
from typing import Any, BinaryIO, Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from sr_jax.weights.files import load_torch_file
from sr_jax.models import torch_layout as core
from sr_jax.models.torch_layout import unwrap_state_dict
from sr_jax.weights.files import require_torch
from sr_jax.metrics import lpips as lpips_lib
from sr_jax.models import alexnet as alexnet_lib
from sr_jax.models import vgg16 as vgg16_lib
from sr_jax.weights import download as download_lib
from sr_jax.weights import params_io
from sr_jax.weights.vgg19 import FetchError

Path = tuple[str, ...]

# torchvision 'features.3.weight', bare Sequential '3.weight' or lpips
# 'net.slice2.3.weight': the backbone conv at torchvision index 3.
_BACKBONE_KEY = re.compile(
    r'^(?:features\.|net\.slice\d+\.)?(\d+)\.(weight|bias)$')
# 'lin3.model.1.weight'; lpips >= 0.1.4 also lists them as 'lins.3.model...'.
_LIN_KEY = re.compile(r'^lin(?:s\.)?(\d+)\.model\.[01]\.weight$')
_SCALING_KEY = re.compile(r'^scaling_layer\.(shift|scale)$')


def _torchvision_index(net: str) -> dict[str, int]:
  if net == 'alex':
    return alexnet_lib.TORCHVISION_INDEX
  return vgg16_lib.TORCHVISION_INDEX


def _template(net: str) -> dict[Path, tuple[int, ...]]:
  """{('params', ..., leaf): shape} of LPIPS(net), computed abstractly."""
  size = lpips_lib.min_image_size(net)
  x = jnp.zeros((1, size, size, 3))
  variables = jax.eval_shape(
      lambda: lpips_lib.LPIPS(net=net).init(jax.random.key(0), x, x))
  flat = jax.tree_util.tree_flatten_with_path(variables)[0]
  return {tuple(k.key for k in path): leaf.shape for path, leaf in flat}


def _torch_name(path: Path, net: str) -> str:
  if path[1] == 'net':
    leaf = 'weight' if path[-1] == 'kernel' else 'bias'
    return f'features.{_torchvision_index(net)[path[2]]}.{leaf}'
  return f'{path[1]}.model.1.weight'


def _torch_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
  if len(shape) == 4:  # HWIO -> OIHW.
    return (shape[3], shape[2], shape[0], shape[1])
  return tuple(shape)


def convert_lpips(backbone_state_dict: Mapping[str, Any],
                  lin_state_dict: Optional[Mapping[str, Any]],
                  net: str) -> dict[str, Any]:
  """PyTorch state dicts -> variables for sr_jax.metrics.lpips.LPIPS(net).

  backbone_state_dict: torchvision alexnet / vgg16 ('features.*'; the
    'classifier.*' keys are ignored), or a whole lpips.LPIPS state dict.
  lin_state_dict: the lpips v0.1 'lin{k}.model.1.weight' tensors, or None
    when they are in backbone_state_dict.
  net: 'alex' or 'vgg'.
  Returns {'params': {'net': {...}, 'lin0'..'lin4': {...}}} of float32
  numpy arrays. Raises ValueError naming missing, unexpected and mis-shaped
  keys (PyTorch names and layouts).
  """
  lpips_lib.check_net(net)
  conv_at = {i: name for name, i in _torchvision_index(net).items()}
  sources = [('backbone', unwrap_state_dict(backbone_state_dict))]
  if lin_state_dict is not None:
    sources.append(('lin', unwrap_state_dict(lin_state_dict)))

  flat: dict[Path, np.ndarray] = {}
  torch_key: dict[Path, str] = {}
  unexpected, problems = [], []
  for source, sd in sources:
    for key, array in sd.items():
      if key.startswith('classifier.'):
        continue
      if m := _SCALING_KEY.match(key):
        expected = lpips_lib.SHIFT if m.group(1) == 'shift' else lpips_lib.SCALE
        if not np.allclose(np.ravel(array), expected, atol=1e-6):
          problems.append(f'{key} is {np.ravel(array).tolist()}, not the '
                          f'LPIPS v0.1 constants {list(expected)}')
        continue
      if (m := _BACKBONE_KEY.match(key)) and int(m.group(1)) in conv_at:
        leaf = 'kernel' if m.group(2) == 'weight' else 'bias'
        path = ('params', 'net', conv_at[int(m.group(1))], leaf)
      elif m := _LIN_KEY.match(key):
        path = ('params', f'lin{m.group(1)}', 'kernel')
      else:
        unexpected.append(f'{key} ({source})')
        continue
      array = np.asarray(array)
      array = array.transpose(2, 3, 1, 0) if array.ndim == 4 else array
      if path in flat:
        if not np.array_equal(flat[path], array):
          problems.append(f'{key} ({source}) differs from '
                          f'{torch_key[path]}, the same weight')
        continue
      flat[path] = array
      torch_key[path] = f'{key} ({source})'

  template = _template(net)
  unexpected += [torch_key.pop(p) for p in list(flat) if p not in template]
  missing = sorted(_torch_name(p, net) for p in template if p not in flat)
  mismatched = [
      f'{torch_key[p]}: got {_torch_shape(flat[p].shape)}, expected '
      f'{_torch_shape(shape)}'
      for p, shape in template.items()
      if p in flat and flat[p].shape != tuple(shape)]
  problems += core.key_problems(missing, unexpected, mismatched)
  if problems:
    raise ValueError(
        f'State dicts do not match LPIPS(net={net!r}) (torchvision '
        f'{"alexnet" if net == "alex" else "vgg16"} features + lpips v0.1 '
        'lin layers); ' + '; '.join(problems) + '.')

  return core.nest({path: flat[path] for path in template})


# ------------------------------------------------------------ files, fetch


def _file_name(url: str) -> str:
  return url.rsplit('/', 1)[-1]


def _find_backbone(net: str, lin_file: pathlib.Path) -> pathlib.Path:
  """torchvision's backbone file next to lin_file or in the torch hub cache
  (where torchvision, and so the lpips package, downloads it)."""
  name = _file_name(lpips_lib.BACKBONE_URLS[net])
  torch_home = os.environ.get('TORCH_HOME') or os.path.join(
      os.environ.get('XDG_CACHE_HOME') or '~/.cache', 'torch')
  candidates = [lin_file.parent / name,
                pathlib.Path(torch_home).expanduser() / 'hub' / 'checkpoints'
                / name]
  for candidate in candidates:
    if candidate.is_file():
      return candidate
  raise params_io.WeightsNotFoundError(
      f'LPIPS ({net}) also needs the torchvision backbone {name}; looked in '
      f'{[str(c) for c in candidates]}. Download '
      f'{lpips_lib.BACKBONE_URLS[net]} next to {lin_file}, or pass its path '
      '(backbone_file=...).')


def convert_lpips_files(net: str, lin_file: str | os.PathLike,
                        backbone_file: Optional[str | os.PathLike] = None,
                        out: Optional[str | os.PathLike] = None
                        ) -> pathlib.Path:
  """alex.pth / vgg.pth (+ torchvision backbone .pth) -> one .npz.

  backbone_file: default: the torchvision file name (e.g.
    alexnet-owt-7be5be79.pth) next to lin_file, then in the torch hub cache.
  out: default: the sr_jax cache (metrics.lpips.cached_lpips_path(net)).
  Returns the path written (atomically; nothing is written on error).
  Needs torch (ImportError saying so otherwise).
  """
  lpips_lib.check_net(net)
  lin_file = pathlib.Path(lin_file).expanduser()
  if not lin_file.is_file():
    raise params_io.WeightsNotFoundError(
        f'{lin_file} does not exist.\n' + how_to_get_lpips(net))
  if backbone_file is None:
    backbone_file = _find_backbone(net, lin_file)
  backbone_file = pathlib.Path(backbone_file).expanduser()
  if not backbone_file.is_file():
    raise params_io.WeightsNotFoundError(
        f'{backbone_file} does not exist.\n' + how_to_get_lpips(net))
  try:
    variables = convert_lpips(load_torch_file(backbone_file),
                              load_torch_file(lin_file), net)
  except ValueError as e:
    raise ValueError(f'Converting {lin_file} + {backbone_file}: {e}') from e
  out = pathlib.Path(out).expanduser() if out else cached_lpips_path(
      net)
  params_io.save_params(out, variables)
  return out


def fetch_lpips(net: str, out: Optional[str | os.PathLike] = None, *,
                download: Optional[Callable[[str, BinaryIO, bool], str]] = None,
                backbone_sha256_prefix: Optional[str] = None,
                progress: bool = True) -> pathlib.Path:
  """Downloads the lin layers and the backbone, converts, returns the .npz.

  download: fn(url, file, progress) -> SHA-256 hex of what it wrote
    (default: sr_jax.weights.download.download_file); tests pass a fake.
  backbone_sha256_prefix: default: the hash prefix in torchvision's file
    name (7be5be79 / 397923af). The lpips lin files have no published hash;
    converting them checks every key and shape instead.
  Downloads go to temporary files next to `out` that are always deleted.
  Raises FetchError (offline, wrong checksum), ImportError (no torch).
  """
  lpips_lib.check_net(net)
  require_torch('Converting the LPIPS weights')  # Before downloading.
  download = download or download_lib.download_file
  backbone_url = lpips_lib.BACKBONE_URLS[net]
  if backbone_sha256_prefix is None:
    backbone_sha256_prefix = re.search(r'-([0-9a-f]{8})\.pth$',
                                       backbone_url).group(1)
  out = pathlib.Path(out).expanduser() if out else cached_lpips_path(
      net)
  with download_lib.temporary_path(out.parent, '.pth') as lin_tmp, \
      download_lib.temporary_path(out.parent, '.pth') as backbone_tmp:
    digests = {}
    for url, tmp in ((lpips_lib.LIN_URLS[net], lin_tmp),
                     (backbone_url, backbone_tmp)):
      try:
        with open(tmp, 'wb') as f:
          digests[url] = download(url, f, progress)
      except download_lib.DOWNLOAD_ERRORS as e:
        raise FetchError(f'Could not download {url}: {e}.\n'
                         + how_to_get_lpips(net)) from e
    if not digests[backbone_url].startswith(backbone_sha256_prefix):
      raise FetchError(
          f'Downloaded file from {backbone_url} has SHA-256 '
          f'{digests[backbone_url]}, which does not start with '
          f'{backbone_sha256_prefix}; it is corrupt or not the expected file. '
          'Nothing was saved; try again, or download it by hand.')
    return convert_lpips_files(net, lin_tmp, backbone_tmp, out)


def _cli_entries(net: str):
  return (lambda out=None: fetch_lpips(net, out),
          lambda src, out=None: convert_lpips_files(net, src, out=out),
          lambda: cached_lpips_path(net))


# For `python -m sr_jax.weights`: name -> (fetch(out), convert(file, out),
# cached_path()), the triple its _WEIGHTS table holds.
WEIGHTS_CLI_ENTRIES = {f'lpips_{net}': _cli_entries(net)
                       for net in lpips_lib.NETS}


# ------------------------------------------------------------ loading




def cached_lpips_path(net: str) -> pathlib.Path:
  """<$SR_JAX_CACHE_DIR or ~/.cache/sr_jax>/lpips_<net>.npz."""
  return params_io.cache_dir() / f'lpips_{lpips_lib.check_net(net)}.npz'


def how_to_get_lpips(net: str) -> str:
  lin_name = lpips_lib.LIN_URLS[net].rsplit('/', 1)[-1]
  backbone_name = lpips_lib.BACKBONE_URLS[net].rsplit('/', 1)[-1]
  return (
      f'Get the LPIPS ({net}) weights one of these ways:\n'
      f'  * online:  python -m sr_jax.weights fetch lpips_{net}\n'
      f'  * offline: download\n'
      f'               {lpips_lib.LIN_URLS[net]}\n'
      f'               {lpips_lib.BACKBONE_URLS[net]}\n'
      f'             into one folder, then run (needs torch)\n'
      f'               python -m sr_jax.weights convert lpips_{net} '
      f'/path/to/{lin_name}\n'
      f'             ({backbone_name} is looked for next to {lin_name} and '
      f'in the torch hub cache)\n'
      '  * or pass a converted .npz explicitly (path=... / --lpips-weights).\n'
      f'Converted weights are cached in {cached_lpips_path(net)} '
      f'(directory from ${params_io.CACHE_ENV_VAR}).')


def _check_lpips(variables: Any, net: str, source: Any) -> dict[str, Any]:
  params = variables.get('params', {}) if hasattr(variables, 'get') else {}
  backbone = params.get('net', {})
  if net == 'alex':
    convs = alexnet_lib.CONV_NAMES
  else:
    convs = vgg16_lib.CONV_NAMES
  missing = [f'net/{c}' for c in convs if c not in backbone]
  missing += [f'lin{k}' for k in range(5) if f'lin{k}' not in params]
  if missing:
    raise ValueError(
        f'{source} does not hold LPIPS ({net}) weights: no params {missing}. '
        'Is it the file for the other net, or not an LPIPS file?\n'
        + how_to_get_lpips(net))
  return variables


def load_lpips_params(net: str = 'alex',
                      path: Optional[str | os.PathLike] = None
                      ) -> dict[str, Any]:
  """Variables for LPIPS(net): from `path`, else the sr_jax cache.

  path: a converted .npz, or the `lpips` package's lin-layer .pth
    (alex.pth / vgg.pth; converted on the spot with torch, together with
    the torchvision backbone file found next to it, and cached).
  Raises WeightsNotFoundError with download/convert instructions when there
  are no weights: a randomly initialised LPIPS would give meaningless numbers.
  """
  lpips_lib.check_net(net)
  if path:
    path = pathlib.Path(path).expanduser()
    if not path.is_file():
      raise params_io.WeightsNotFoundError(
          f'LPIPS ({net}) weights not found at {path}.\n'
          + how_to_get_lpips(net))
    if path.suffix != '.npz':
      path = convert_lpips_files(
          net, path, out=cached_lpips_path(net))
    return _check_lpips(params_io.load_params(path), net, path)
  cached = cached_lpips_path(net)
  if cached.is_file():
    return _check_lpips(params_io.load_params(cached), net, cached)
  raise params_io.WeightsNotFoundError(
      f'No LPIPS ({net}) weights: no path given and no {cached}.\n'
      + how_to_get_lpips(net))
