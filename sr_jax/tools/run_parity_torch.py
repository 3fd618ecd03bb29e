"""The PyTorch side of sr_jax.tools.run_parity: an sr_jax config as BasicSR
runs it (`basicsr_options`, the config read once as BasicSR's option file
would say it; `torch_networks`, the perceptual term's VGG19), the layout
conversions, and what a finished BasicSR run gives the
comparison (`torch_curves`, `torch_params`). Imports torch; re-exported
from run_parity.
"""
import dataclasses
from typing import Any, Mapping

import ml_collections
import numpy as np
import torch

from sr_jax import weights
from sr_jax.tools import torch_reference as tr
from sr_jax.tools.run_parity_report import LEARNING_RATES
from sr_jax.tools.run_parity_report import LOSSES
from sr_jax.weights import params_io


def _adam_options(entry, where: str) -> dict[str, Any]:
  """An sr_jax optimizer entry as torch.optim.Adam + MultiStepLR options;
  ValueError for anything the reference does not model."""
  entry = dict(entry)
  unsupported = {
      'name': entry.get('name', 'adam') != 'adam',
      'schedule': entry.get('schedule', 'multistep') != 'multistep',
      'clip_grad_norm': bool(entry.get('clip_grad_norm', 0.0)),
      'weight_clip': bool(entry.get('weight_clip', 0.0)),
      'weight_decay': bool(entry.get('weight_decay', 0.0)),
      'eps': float(entry.get('eps', 1e-8)) != 1e-8}
  bad = [k for k, v in unsupported.items() if v]
  if bad:
    raise ValueError(f'{where}: the BasicSR reference models Adam with '
                     f'MultiStepLR only; not {bad}.')
  return dict(lr=float(entry['lr']),
              betas=(float(entry.get('b1', 0.9)), float(entry.get('b2',
                                                                  0.99))),
              milestones=tuple(int(m) for m in entry.get('milestones', ())),
              gamma=float(entry.get('gamma', 0.5)))


@dataclasses.dataclass(frozen=True)
class BasicSROptions:
  """An sr_jax config as BasicSR's option file says it: what the PyTorch
  reference run needs, read from the config once (basicsr_options)."""
  phases: tuple[tr.RunPhase, ...]
  scale: int
  gt_size: int
  generator: Mapping[str, int]  # RRDBNet: num_feat, num_block, num_grow_ch.
  discriminator: Mapping[str, Any]  # VGGStyleDiscriminator: num_feat, use_bn.
  perceptual_layers: tuple[str, ...]  # VGG19 layers the terms read.
  ema_decay: float


def basicsr_options(config: ml_collections.ConfigDict) -> BasicSROptions:
  """`config` as BasicSR's option file; ValueError naming a setting
  BasicSR's SRModel / ESRGANModel (RRDBNet, VGG-style D) do not have."""
  g, d = config.generator, config.discriminator
  if g.name != 'rrdbnet' or d.name != 'vgg_style':
    raise ValueError('The reference has rrdbnet / vgg_style only; got '
                     f'{g.name} / {d.name}.')
  gk, dk = dict(g.kwargs), dict(d.kwargs)
  entries = {name: config[name] for name in config.phases}
  layers = set()
  for entry in entries.values():
    term = entry.losses.get('perceptual', {})
    if term.get('weight'):
      layers.update(term.get('layer_weights', {'conv5_4': 1.0}))
  return BasicSROptions(
      phases=tuple(torch_phases(entries)), scale=int(config.scale),
      gt_size=int(config.data.gt_size),
      generator=dict(num_feat=gk.get('num_feat', 64),
                     num_block=gk.get('num_block', 23),
                     num_grow_ch=gk.get('num_grow_ch', 32)),
      discriminator=dict(num_feat=dk.get('num_feat', 64),
                         use_bn=dk.get('use_bn', True)),
      perceptual_layers=tuple(sorted(layers)) or ('conv5_4',),
      ema_decay=float(config.ema_decay))


def torch_phases(entries: Mapping[str, ml_collections.ConfigDict]
                 ) -> list[tr.RunPhase]:
  """The phases (config.<name> by name, in config.phases order) as
  BasicSR runs (torch_reference.RunPhase); ValueError naming a setting
  BasicSR's SRModel / ESRGANModel do not have."""
  phases = []
  for name, cfg in entries.items():
    if not cfg.steps:
      continue
    where = f'config.{name}'
    losses = {k: dict(v) for k, v in cfg.losses.items() if v.get('weight')}
    if cfg.regularisers:
      raise ValueError(f'{where}.regularisers: not in BasicSR\'s ESRGAN.')
    pixel = losses.pop('pixel', None)
    if pixel is None or pixel.get('criterion', 'l1') != 'l1':
      raise ValueError(f'{where}.losses.pixel: the reference needs an L1 '
                       'pixel term.')
    g = _adam_options(cfg.optimizers.generator, f'{where}.optimizers.'
                      'generator')
    if tuple(cfg.train) == ('generator',):
      if losses:
        raise ValueError(f'{where}.losses: SRModel runs the pixel term '
                         f'only, not {sorted(losses)}.')
      phases.append(tr.RunPhase('sr', cfg.steps, cfg.start, dict(
          g, pixel_weight=float(pixel['weight']))))
      continue
    if sorted(cfg.train) != ['discriminator', 'generator']:
      raise ValueError(f'{where}.train={cfg.train}: the reference trains G '
                       'alone (SRModel) or G and D (ESRGANModel).')
    if cfg.adversarial_loss != 'ragan_basicsr':
      raise ValueError(f'{where}.adversarial_loss={cfg.adversarial_loss!r}:'
                       " BasicSR's ESRGAN is 'ragan_basicsr'.")
    percep = losses.pop('perceptual', {'weight': 0.0})
    adversarial = losses.pop('adversarial', {'weight': 0.0})
    if losses:
      raise ValueError(f'{where}.losses: ESRGANModel has no {sorted(losses)}.')
    if percep['weight'] and (
        percep.get('criterion', 'l1') != 'l1' or
        float(percep.get('feature_scale', 1.0)) != 1.0 or
        not percep.get('use_input_norm', True) or
        percep.get('range_norm', False)):
      raise ValueError(f'{where}.losses.perceptual: the reference is '
                       "BasicSR's (l1, input norm, no range norm, scale 1).")
    d = _adam_options(cfg.optimizers.discriminator,
                      f'{where}.optimizers.discriminator')
    phases.append(tr.RunPhase('esrgan', cfg.steps, cfg.start, dict(
        lr_g=g['lr'], lr_d=d['lr'], betas=g['betas'], betas_d=d['betas'],
        milestones=g['milestones'], gamma=g['gamma'],
        milestones_d=d['milestones'], gamma_d=d['gamma'],
        pixel_weight=float(pixel['weight']),
        perceptual_weight=float(percep['weight']),
        layer_weights=dict(percep.get('layer_weights', {'conv5_4': 1.0})),
        gan_weight=float(adversarial['weight']),
        net_d_iters=int(cfg.net_d_iters),
        net_d_init_iters=int(cfg.net_d_init_iters))))
  return phases


def torch_networks(options: BasicSROptions):
  """The generator and discriminator as the PyTorch reference modules
  (weights to be loaded)."""
  g, d = options.generator, options.discriminator
  net_g = tr.RRDBNet(3, 3, options.scale, g['num_feat'], g['num_block'],
                     g['num_grow_ch'])
  net_d = tr.VGGStyleDiscriminator(3, d['num_feat'], options.gt_size,
                                   d['use_bn'])
  return net_g, net_d


def random_vgg19(seed: int = 0) -> tr.VGGFeatureExtractor:
  """VGG19 (to conv5_4) with Kaiming-normal conv weights (fan-in, ReLU
  gain): features stay O(1) through the 16 convs, so a perceptual term on
  random weights is not ~1e-7 (what default initialisations give)."""
  torch.manual_seed(seed)
  vgg = tr.VGGFeatureExtractor(('conv5_4',)).eval()
  for m in vgg.features:
    if isinstance(m, torch.nn.Conv2d):
      torch.nn.init.kaiming_normal_(m.weight, nonlinearity='relu')
  return vgg


def write_vgg19(vgg: tr.VGGFeatureExtractor, path: str) -> str:
  """Saves the reference VGG19's weights as sr_jax's frozen 'vgg19' file."""
  params_io.save_params(path, weights.convert_state_dict(
      'vgg19', vgg.state_dict()))
  return path


def perceptual_extractor(options: BasicSROptions,
                         vgg: tr.VGGFeatureExtractor
                         ) -> tr.VGGFeatureExtractor:
  """BasicSR's VGGFeatureExtractor for the layers the perceptual terms
  read, with `vgg`'s weights."""
  extractor = tr.VGGFeatureExtractor(options.perceptual_layers).eval()
  wanted = extractor.state_dict()
  extractor.load_state_dict({k: v for k, v in vgg.state_dict().items()
                             if k in wanted})
  return extractor


def nchw(x) -> torch.Tensor:
  return torch.from_numpy(np.ascontiguousarray(
      np.asarray(x, np.float32).transpose(0, 3, 1, 2)))


def nhwc(t: torch.Tensor) -> np.ndarray:
  return t.detach().numpy().transpose(0, 2, 3, 1)


def torch_curves(result: tr.RunResult) -> dict[str, np.ndarray]:
  """{name: per-global-step values} of a torch run (NaN where BasicSR
  logged nothing: G's losses on iterations without a G update)."""
  total = sum(len(logs) for logs in result.logs)
  out = {k: np.full(total, np.nan) for k in LOSSES + LEARNING_RATES}
  step = 0
  for logs in result.logs:
    for log in logs:
      log = dict(log)
      if 'l_pix' in log:
        log['l_g_pix'] = log.pop('l_pix')
      if 'l_d_real' in log:
        log['l_d'] = log['l_d_real'] + log['l_d_fake']
      for k in out:
        if k in log:
          out[k][step] = log[k]
      step += 1
  return out


def torch_params(result: tr.RunResult) -> dict[str, Any]:
  """The torch run's final G, EMA G and D parameters as sr_jax params."""
  g = lambda net: weights.convert_state_dict('rrdbnet',
                                             net.state_dict())['params']
  return {'generator': g(result.net_g),
          'generator_ema': g(result.net_g_ema),
          'discriminator': weights.convert_state_dict(
              'vgg_style', result.net_d.state_dict())['params']}
