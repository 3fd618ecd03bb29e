"""PyTorch references of sr_jax's ESRGAN networks, step and whole run.

Written from the published code (BasicSR's `rrdbnet_arch.py`,
`discriminator_arch.py`, `vgg_arch.py`, `base_model.py`, `sr_model.py`,
`srgan_model.py`, `esrgan_model.py` and `train.py`), with BasicSR's
state-dict names, so `sr_jax.weights.convert_state_dict` maps their weights
onto sr_jax's modules ('rrdbnet', 'vgg_style', 'vgg19') and
`torch_state_dict` maps sr_jax's back. tests/test_torch_reference.py checks
that both compute the same step on the same weights, so a speed comparison
(`python -m sr_jax.bench compare | suite`) compares the same computation;
`SRModel`, `ESRGANModel`, `train_iterations` and `train_run` are BasicSR's
models and training loop, which `sr_jax.tools.run_parity` (tests/
test_run_parity.py, `python -m sr_jax.bench learn`) trains beside sr_jax's
trainer for a whole run.

Nothing in sr_jax imports this file except `sr_jax.tools.bench` and
`sr_jax.tools.run_parity`, and only when torch is installed. Tensors are NCHW,
images in [0, 1].
"""
import copy
import dataclasses
import functools
import math
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence
import warnings

import jax
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sr_jax import weights as convert

PRECISIONS = ('fp32', 'bf16')


def _lrelu(x: torch.Tensor) -> torch.Tensor:
  return F.leaky_relu(x, 0.2)


class ResidualDenseBlock(nn.Module):
  """Five densely connected 3x3 convs, residual scaled by 0.2."""

  def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
    super().__init__()
    for i in range(1, 5):
      setattr(self, f'conv{i}',
              nn.Conv2d(num_feat + (i - 1) * num_grow_ch, num_grow_ch, 3, 1,
                        1))
    self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
    # BasicSR's default_init_weights(scale=0.1).
    for i in range(1, 6):
      conv = getattr(self, f'conv{i}')
      nn.init.kaiming_normal_(conv.weight)
      conv.weight.data.mul_(0.1)
      conv.bias.data.zero_()

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    feats = [x]
    for i in range(1, 5):
      feats.append(_lrelu(getattr(self, f'conv{i}')(torch.cat(feats, 1))))
    return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
  """Residual-in-Residual Dense Block: three RDBs and a 0.2-scaled skip."""

  def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
    super().__init__()
    self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
    self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
    self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


def pixel_unshuffle(x: torch.Tensor, scale: int) -> torch.Tensor:
  """BasicSR's pixel_unshuffle: [B, C, H, W] -> [B, C s^2, H / s, W / s]."""
  b, c, hh, ww = x.shape
  x = x.view(b, c, hh // scale, scale, ww // scale, scale)
  return x.permute(0, 1, 3, 5, 2, 4).reshape(b, c * scale * scale,
                                             hh // scale, ww // scale)


class RRDBNet(nn.Module):
  """BasicSR's RRDBNet (ESRGAN's generator), x1 / x2 / x4 (and x8).

  x: [B, num_in_ch, h, w] -> [B, num_out_ch, h scale, w scale], unclipped.
  x2 and x1 pixel-unshuffle the input first (Real-ESRGAN); x8 adds conv_up3.
  """

  def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4,
               num_feat: int = 64, num_block: int = 23,
               num_grow_ch: int = 32):
    super().__init__()
    self.scale = scale
    in_ch = num_in_ch * {1: 16, 2: 4}.get(scale, 1)
    self.conv_first = nn.Conv2d(in_ch, num_feat, 3, 1, 1)
    self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch)
                                for _ in range(num_block)])
    self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
    self.num_up = 3 if scale == 8 else 2
    for i in range(1, self.num_up + 1):
      setattr(self, f'conv_up{i}', nn.Conv2d(num_feat, num_feat, 3, 1, 1))
    self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
    self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if self.scale in (1, 2):
      x = pixel_unshuffle(x, 4 // self.scale)
    feat = self.conv_first(x)
    feat = feat + self.conv_body(self.body(feat))
    for i in range(1, self.num_up + 1):
      up = F.interpolate(feat, scale_factor=2, mode='nearest')
      feat = _lrelu(getattr(self, f'conv_up{i}')(up))
    return self.conv_last(_lrelu(self.conv_hr(feat)))


class VGGStyleDiscriminator(nn.Module):
  """BasicSR's VGGStyleDiscriminator, stages generalised to any 4 * 2^k.

  input_size 128 is BasicSR's layout exactly (conv0_0 ... conv4_1, BN after
  every conv but the first, linear1 8nf*4*4 -> 100, linear2 100 -> 1);
  256 adds stage 5 as BasicSR does. use_bn=False drops the BN layers and
  gives those convs a bias (sr_jax's per-sample critic).
  x: [B, num_in_ch, input_size, input_size] -> logits [B, 1].
  """

  def __init__(self, num_in_ch: int = 3, num_feat: int = 64,
               input_size: int = 128, use_bn: bool = True):
    super().__init__()
    self.stages = int(math.log2(input_size // 4))
    if 4 * 2**self.stages != input_size or self.stages < 1:
      raise ValueError(f'input_size must be 4 * 2^k, k >= 1; got '
                       f'{input_size}.')
    self.use_bn = use_bn
    self.conv0_0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=True)
    prev = num_feat
    for i in range(self.stages):
      ch = num_feat * min(2**i, 8)
      if i > 0:
        setattr(self, f'conv{i}_0',
                nn.Conv2d(prev, ch, 3, 1, 1, bias=not use_bn))
        if use_bn:
          setattr(self, f'bn{i}_0', nn.BatchNorm2d(ch, affine=True))
      setattr(self, f'conv{i}_1', nn.Conv2d(ch, ch, 4, 2, 1, bias=not use_bn))
      if use_bn:
        setattr(self, f'bn{i}_1', nn.BatchNorm2d(ch, affine=True))
      prev = ch
    self.linear1 = nn.Linear(prev * 4 * 4, 100)
    self.linear2 = nn.Linear(100, 1)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = _lrelu(self.conv0_0(x))
    for i in range(self.stages):
      for j in ((0, 1) if i > 0 else (1,)):
        x = getattr(self, f'conv{i}_{j}')(x)
        if self.use_bn:
          x = getattr(self, f'bn{i}_{j}')(x)
        x = _lrelu(x)
    x = _lrelu(self.linear1(x.flatten(1)))
    return self.linear2(x)


# torchvision's vgg19 `features`: channels, 'M' a 2x2 max-pool.
VGG19_CFG = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M',
             512, 512, 512, 512, 'M', 512, 512, 512, 512, 'M')


def vgg19_layer_names() -> list[str]:
  """BasicSR's names of torchvision's vgg19 features, index for index:
  conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ..., pool5."""
  names, block, conv = [], 1, 1
  for v in VGG19_CFG:
    if v == 'M':
      names.append(f'pool{block}')
      block, conv = block + 1, 1
    else:
      names += [f'conv{block}_{conv}', f'relu{block}_{conv}']
      conv += 1
  return names


def vgg19_features(last: int | None = None) -> nn.Sequential:
  """torchvision's vgg19().features (module indices 0 ... 36, so its
  state-dict keys are torchvision's), up to index `last` (default all)."""
  modules, prev = [], 3
  for v in VGG19_CFG:
    if v == 'M':
      modules.append(nn.MaxPool2d(2, 2))
    else:
      modules += [nn.Conv2d(prev, v, 3, padding=1), nn.ReLU()]
      prev = v
  return nn.Sequential(*modules[:None if last is None else last + 1])


class VGGFeatureExtractor(nn.Module):
  """BasicSR's VGGFeatureExtractor: {layer: features} of an image batch.

  The network stops at the deepest requested layer (conv5_4 for ESRGAN's
  perceptual loss: 35 of torchvision's 37 modules). Its parameters are
  frozen. use_input_norm: ImageNet mean / std first; range_norm: x in
  [-1, 1]. State-dict keys are `features.N.weight` (torchvision's).
  """

  def __init__(self, layer_name_list: Sequence[str] = ('conv5_4',),
               use_input_norm: bool = True, range_norm: bool = False):
    super().__init__()
    names = vgg19_layer_names()
    self.layer_name_list = tuple(layer_name_list)
    self.index = {n: names.index(n) for n in self.layer_name_list}
    self.features = vgg19_features(max(self.index.values()))
    self.use_input_norm = use_input_norm
    self.range_norm = range_norm
    self.register_buffer(
        'mean', torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
        persistent=False)
    self.register_buffer(
        'std', torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
        persistent=False)
    for p in self.parameters():
      p.requires_grad = False

  def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
    if self.range_norm:
      x = (x + 1) / 2
    if self.use_input_norm:
      x = (x - self.mean) / self.std
    out = {}
    for i, module in enumerate(self.features):
      x = module(x)
      for name, index in self.index.items():
        if index == i:
          out[name] = x.clone()
    return out


def esrgan_networks(num_block: int = 23, num_feat: int = 64,
                    num_grow_ch: int = 32, d_num_feat: int = 64,
                    gt_size: int = 128, use_bn: bool = True,
                    device: str = 'cpu'):
  """(RRDBNet x4, VGG-style D, VGG19 to conv5_4) of BasicSR's ESRGAN, with
  random weights (PyTorch's and BasicSR's initialisations), on `device`."""
  net_g = RRDBNet(3, 3, 4, num_feat, num_block, num_grow_ch)
  net_d = VGGStyleDiscriminator(3, d_num_feat, gt_size, use_bn)
  vgg = VGGFeatureExtractor(('conv5_4',))
  return net_g.to(device), net_d.to(device), vgg.to(device).eval()


# ------------------------------------------------- JAX -> PyTorch weights --


def torch_state_dict(arch: str, variables, module: nn.Module
                     ) -> dict[str, torch.Tensor]:
  """sr_jax variables of `arch` as `module`'s state dict: the inverse of
  `sr_jax.weights.convert_state_dict(arch, ...)` ('rrdbnet', 'vgg_style',
  'vgg19', ...), exact (a re-layout, no arithmetic).

  Where each PyTorch tensor lives in the flax tree is read off the forward
  converter itself: it converts a probe state dict of `module` whose k-th
  floating tensor is filled with the number k (exact in float32), so every
  renaming the converter does is followed without being restated here.
  Conv kernels go HWIO -> OIHW and dense kernels [in, out] -> [out, in].
  Non-float buffers (BatchNorm's num_batches_tracked, which sr_jax does not
  keep) come from `module`. Extra flax collections (e.g. 'flipped') are
  ignored. Raises ValueError naming a tensor the variables do not give.
  """
  template = module.state_dict()
  keys = [k for k, v in template.items() if v.is_floating_point()]
  probe = {k: np.full(tuple(template[k].shape), i, np.float32)
           for i, k in enumerate(keys)}
  where = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(
      convert.convert_state_dict(arch, probe))[0]:
    values = np.unique(np.asarray(leaf))
    if values.size != 1:
      raise ValueError(f'{arch}: the converter mixes tensors into '
                       f'{jax.tree_util.keystr(path)}; no exact inverse.')
    where[keys[int(values[0])]] = tuple(p.key for p in path)
  out = dict(template)
  for k in keys:
    if k not in where:
      raise ValueError(f'{arch}: the converter drops {k}; no inverse.')
    node = variables
    try:
      for name in where[k]:
        node = node[name]
    except (KeyError, TypeError):
      raise ValueError(f'{arch}: the variables have no '
                       f'{"/".join(where[k])} (for {k}).') from None
    array = np.asarray(node, np.float32)
    if array.ndim == 4:  # HWIO -> OIHW.
      array = array.transpose(3, 2, 0, 1)
    elif array.ndim == 2:  # [in, out] -> [out, in].
      array = array.T
    if array.shape != tuple(template[k].shape):
      raise ValueError(f'{arch}: {"/".join(where[k])} has shape '
                       f'{array.shape} in PyTorch layout; {k} needs '
                       f'{tuple(template[k].shape)}.')
    out[k] = torch.from_numpy(np.array(array, np.float32))  # A copy.
  return out


# ----------------------------------------------------- BasicSR's models --
# basicsr/models/{base,sr,srgan,esrgan}_model.py and basicsr/train.py, for
# the losses sr_jax's ESRGAN recipe uses (L1 pixel, VGG19 perceptual with an
# L1 criterion, vanilla GAN loss in its relativistic form), Adam, MultiStepLR
# (BasicSR's MultiStepRestartLR without restarts is torch's MultiStepLR) and
# the EMA generator. Hyper-parameters are arguments instead of an options
# dict; the order of every operation is BasicSR's.


def _bce(logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
  """BasicSR's GANLoss('vanilla') without its loss_weight: BCE with logits
  against an all-1 / all-0 target."""
  logits = logits.float()
  return F.binary_cross_entropy_with_logits(
      logits, torch.full_like(logits, 1.0 if target_is_real else 0.0))


class SRModel:
  """BasicSR's SRModel: the PSNR-oriented run (pixel loss only).

  net_g trains in train mode with Adam (lr, betas) and a MultiStepLR
  (milestones, gamma); net_g_ema is BasicSR's EMA copy: a copy of net_g
  (BasicSR's model_ema(0)) unless given (a pretrained 'params_ema'), updated
  after every iteration with decay ema_decay. optimize_parameters(it) is
  BasicSR's; after it, `log_dict` holds the iteration's losses (floats, as
  BasicSR's reduce_loss_dict logs them) and `loss_tensors` the tensors.
  """

  def __init__(self, net_g: nn.Module, net_g_ema: nn.Module | None = None,
               *, lr: float, betas: tuple[float, float] = (0.9, 0.99),
               milestones: Sequence[int] = (), gamma: float = 0.5,
               ema_decay: float = 0.999, pixel_weight: float = 1.0):
    self.net_g = net_g
    self.ema_decay = ema_decay
    if ema_decay > 0:
      self.net_g_ema = (copy.deepcopy(net_g) if net_g_ema is None
                        else net_g_ema)
      for p in self.net_g_ema.parameters():
        p.requires_grad_(False)
      self.net_g_ema.eval()
    self.pixel_weight = pixel_weight
    self.net_g.train()
    self.optimizer_g = torch.optim.Adam(self.net_g.parameters(), lr,
                                        betas=betas)
    self.optimizers = [self.optimizer_g]
    self.schedulers = [torch.optim.lr_scheduler.MultiStepLR(
        self.optimizer_g, list(milestones), gamma)]
    self.log_dict, self.loss_tensors = {}, {}

  def update_learning_rate(self, current_iter: int) -> None:
    """BasicSR's: the schedulers step from the second iteration on, once
    per iteration (whether or not an optimizer stepped)."""
    if current_iter > 1:
      with warnings.catch_warnings():
        # "lr_scheduler.step() before optimizer.step()": G's optimizer has
        # not stepped yet during net_d_init_iters, as in BasicSR.
        warnings.simplefilter('ignore', UserWarning)
        for scheduler in self.schedulers:
          scheduler.step()

  def current_learning_rates(self) -> list[float]:
    return [o.param_groups[0]['lr'] for o in self.optimizers]

  def feed_data(self, lq: torch.Tensor, gt: torch.Tensor) -> None:
    self.lq, self.gt = lq, gt

  def model_ema(self, decay: float) -> None:
    """ema <- decay ema + (1 - decay) p for every parameter, BasicSR's
    mul_(decay).add_(p, alpha=1 - decay) (in one foreach call)."""
    ema = list(self.net_g_ema.parameters())
    with torch.no_grad():
      torch._foreach_mul_(ema, decay)
      torch._foreach_add_(ema, [p.detach() for p in self.net_g.parameters()],
                          alpha=1 - decay)

  def _log(self, losses: dict[str, torch.Tensor]) -> None:
    self.loss_tensors = {k: v.detach() for k, v in losses.items()}
    self.log_dict = {k: float(v.mean()) for k, v in self.loss_tensors.items()}

  def optimize_parameters(self, current_iter: int) -> None:
    del current_iter
    self.optimizer_g.zero_grad()
    self.output = self.net_g(self.lq)
    l_pix = self.pixel_weight * F.l1_loss(self.output, self.gt)
    l_pix.backward()
    self.optimizer_g.step()
    self._log({'l_pix': l_pix})
    if self.ema_decay > 0:
      self.model_ema(self.ema_decay)


class ESRGANModel(SRModel):
  """BasicSR's ESRGANModel (SRGANModel's setup, ESRGAN's iteration).

  G: L1 pixel (pixel_weight) + VGG perceptual (sum of layer_weights[k] *
  L1 of the layer-k features, times perceptual_weight; the target's
  features carry no gradient) + RaGAN (gan_weight) against D in train mode
  with its parameters frozen, on iterations with current_iter % net_d_iters
  == 0 and current_iter > net_d_init_iters; Adam (lr_g).
  D: RaGAN real / fake halves (each 0.5; the other set's mean detached, the
  fake detached from G), backward after each, every iteration; Adam (lr_d).
  Both MultiStepLR (milestones, gamma); the EMA of G after every
  iteration. D runs three times in the D update, as in BasicSR.

  precision 'bf16' runs the forward passes and losses under
  torch.autocast(bfloat16); parameters, gradients and Adam stay float32.
  """

  def __init__(self, net_g: nn.Module, net_d: nn.Module,
               vgg: VGGFeatureExtractor, net_g_ema: nn.Module | None = None,
               *, lr_g: float, lr_d: float,
               betas: tuple[float, float] = (0.9, 0.99),
               milestones: Sequence[int] = (), gamma: float = 0.5,
               milestones_d: Sequence[int] | None = None,
               gamma_d: float | None = None, ema_decay: float = 0.999,
               pixel_weight: float = 1e-2, perceptual_weight: float = 1.0,
               layer_weights: dict[str, float] | None = None,
               gan_weight: float = 5e-3, net_d_iters: int = 1,
               net_d_init_iters: int = 0, precision: str = 'fp32',
               betas_d: tuple[float, float] | None = None):
    if precision not in PRECISIONS:
      raise ValueError(f'precision={precision!r}; use one of {PRECISIONS}.')
    super().__init__(net_g, net_g_ema, lr=lr_g, betas=betas,
                     milestones=milestones, gamma=gamma, ema_decay=ema_decay,
                     pixel_weight=pixel_weight)
    self.net_d, self.vgg = net_d, vgg
    self.net_d.train()
    self.perceptual_weight = perceptual_weight
    self.layer_weights = dict(layer_weights or {'conv5_4': 1.0})
    self.gan_weight = gan_weight
    self.net_d_iters, self.net_d_init_iters = net_d_iters, net_d_init_iters
    self.optimizer_d = torch.optim.Adam(self.net_d.parameters(), lr_d,
                                        betas=betas_d or betas)
    self.optimizers.append(self.optimizer_d)
    self.schedulers.append(torch.optim.lr_scheduler.MultiStepLR(
        self.optimizer_d,
        list(milestones if milestones_d is None else milestones_d),
        gamma if gamma_d is None else gamma_d))
    device = next(net_g.parameters()).device
    self._autocast = lambda: torch.autocast(
        device_type=device.type, dtype=torch.bfloat16,
        enabled=precision == 'bf16')

  def _perceptual(self, x: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """BasicSR's PerceptualLoss (criterion l1, no style term)."""
    x_features = self.vgg(x)
    gt_features = self.vgg(gt.detach())
    loss = 0
    for k, weight in self.layer_weights.items():
      loss = loss + F.l1_loss(x_features[k].float(),
                              gt_features[k].float()) * weight
    return loss * self.perceptual_weight

  def optimize_parameters(self, current_iter: int) -> None:
    net_d, losses = self.net_d, {}
    # optimize net_g
    for p in net_d.parameters():
      p.requires_grad = False
    self.optimizer_g.zero_grad()
    with self._autocast():
      self.output = self.net_g(self.lq)
    if (current_iter % self.net_d_iters == 0
        and current_iter > self.net_d_init_iters):
      with self._autocast():
        l_g_pix = self.pixel_weight * F.l1_loss(self.output.float(),
                                                self.gt)
        l_g_percep = self._perceptual(self.output, self.gt)
        real_d_pred = net_d(self.gt).detach().float()
        fake_g_pred = net_d(self.output).float()
        l_g_real = self.gan_weight * _bce(
            real_d_pred - torch.mean(fake_g_pred), False)
        l_g_fake = self.gan_weight * _bce(
            fake_g_pred - torch.mean(real_d_pred), True)
        l_g_gan = (l_g_real + l_g_fake) / 2
        l_g_total = l_g_pix + l_g_percep + l_g_gan
      l_g_total.backward()
      self.optimizer_g.step()
      losses.update(l_g_pix=l_g_pix, l_g_percep=l_g_percep, l_g_gan=l_g_gan,
                    l_g_total=l_g_total)

    # optimize net_d: real and fake halves, a backward after each; the
    # other set's mean detached (BasicSR's comment: in-place BatchNorm).
    for p in net_d.parameters():
      p.requires_grad = True
    self.optimizer_d.zero_grad()
    with self._autocast():
      fake_d_pred = net_d(self.output).detach().float()
      real_d_pred = net_d(self.gt).float()
      l_d_real = _bce(real_d_pred - torch.mean(fake_d_pred), True) * 0.5
    l_d_real.backward()
    with self._autocast():
      fake_d_pred = net_d(self.output.detach()).float()
      l_d_fake = _bce(fake_d_pred - torch.mean(real_d_pred.detach()),
                      False) * 0.5
    l_d_fake.backward()
    self.optimizer_d.step()
    losses.update(l_d_real=l_d_real, l_d_fake=l_d_fake,
                  out_d_real=torch.mean(real_d_pred.detach()),
                  out_d_fake=torch.mean(fake_d_pred.detach()))
    self._log(losses)
    if self.ema_decay > 0:
      self.model_ema(self.ema_decay)


def train_iterations(model: SRModel, batches: Iterator, total_iter: int,
                     on_iter: Callable[[int, dict], None] | None = None
                     ) -> list[dict[str, float]]:
  """basicsr/train.py's loop: for current_iter = 1 .. total_iter, set the
  learning rates, feed the next (lq, gt) of `batches`, optimise. Returns
  each iteration's log: the model's log_dict plus the learning rates the
  iteration used (lr_g, and lr_d for a GAN model)."""
  logs = []
  for current_iter in range(1, total_iter + 1):
    model.update_learning_rate(current_iter)
    model.feed_data(*next(batches))
    lrs = model.current_learning_rates()
    model.optimize_parameters(current_iter)
    log = dict(model.log_dict, lr_g=lrs[0])
    if len(lrs) > 1:
      log['lr_d'] = lrs[1]
    logs.append(log)
    if on_iter is not None:
      on_iter(current_iter, log)
  return logs


@dataclasses.dataclass(frozen=True)
class RunPhase:
  """One BasicSR training run of a multi-stage recipe.

  model: 'sr' (SRModel: pixel loss only, trains G) or 'esrgan'
  (ESRGANModel: trains G and D). start: how the run's G starts from the
  previous run's model file (BasicSR's pretrain_network_g):
  'ema' = param_key_g 'params_ema' (G starts from the EMA generator, as
  sr_jax's start='ema'), 'continue' = 'params' (G as it was). The EMA
  generator always loads 'params_ema', D its previous weights
  (pretrain_network_d); optimizers and schedulers start fresh and
  current_iter counts from 1 again, as in a new BasicSR run.
  kwargs: the model's hyper-parameters (SRModel's / ESRGANModel's
  keyword arguments).
  """
  model: str
  steps: int
  start: str = 'continue'
  kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RunResult:
  logs: list[list[dict[str, float]]]  # Per phase, per iteration.
  net_g: nn.Module
  net_g_ema: nn.Module
  net_d: nn.Module | None


def train_run(net_g: nn.Module, net_d: nn.Module | None,
              vgg: VGGFeatureExtractor | None, phases: Sequence[RunPhase],
              batches: Iterable, ema_decay: float,
              on_iter: Callable[[str, int, dict], None] | None = None
              ) -> RunResult:
  """A whole multi-stage recipe as consecutive BasicSR runs (e.g. the PSNR
  run, then the ESRGAN run from its EMA generator), on the (lq, gt)
  batches in order (one per iteration, over all phases). The networks are
  trained in place; net_g_ema starts as a copy of net_g (BasicSR's
  model_ema(0))."""
  batches = iter(batches)
  net_g_ema = copy.deepcopy(net_g)
  logs = []
  for index, phase in enumerate(phases):
    if phase.start not in ('ema', 'continue'):
      raise ValueError(f'RunPhase.start={phase.start!r}; use ema / continue.')
    if phase.start == 'ema' and index > 0:
      net_g.load_state_dict(net_g_ema.state_dict())
    if phase.model == 'sr':
      model = SRModel(net_g, net_g_ema, ema_decay=ema_decay, **phase.kwargs)
    elif phase.model == 'esrgan':
      model = ESRGANModel(net_g, net_d, vgg, net_g_ema, ema_decay=ema_decay,
                          **phase.kwargs)
    else:
      raise ValueError(f'RunPhase.model={phase.model!r}; use sr / esrgan.')
    logs.append(train_iterations(
        model, batches, phase.steps,
        None if on_iter is None else functools.partial(on_iter, index)))
  return RunResult(logs=logs, net_g=net_g, net_g_ema=net_g_ema, net_d=net_d)


def make_esrgan_gan_step(net_g: nn.Module, net_d: nn.Module,
                         vgg: VGGFeatureExtractor, precision: str = 'fp32',
                         pixel_weight: float = 1e-2,
                         perceptual_weight: float = 1.0,
                         gan_weight: float = 5e-3, lr: float = 1e-4,
                         betas: tuple[float, float] = (0.9, 0.99),
                         ema_decay: float = 0.999) -> Callable:
  """BasicSR's ESRGANModel.optimize_parameters as `step(lq, gt) -> losses`.

  lq: [B, 3, h, w], gt: [B, 3, 4h, 4w] float32 in [0, 1], on the networks'
  device. One call is one iteration of train_ESRGAN_x4.yml's GAN stage
  (`ESRGANModel`, VGG19 conv5_4 perceptual, at a constant learning rate):
  G on L1 + perceptual + RaGAN, then D on RaGAN's halves, then the EMA of
  G. precision 'bf16' runs the forward passes and losses under
  torch.autocast(bfloat16).

  Returns a dict of detached scalars: l_g_pix, l_g_percep, l_g_gan,
  l_g_total, l_d_real, l_d_fake, out_d_real, out_d_fake (sr_jax's names;
  its l_d is l_d_real + l_d_fake). After a step, `.grad` of every
  parameter holds that step's gradient; `step.ema` is the EMA generator's
  parameter list and `step.model` the ESRGANModel.
  """
  model = ESRGANModel(net_g, net_d, vgg, lr_g=lr, lr_d=lr, betas=betas,
                      ema_decay=ema_decay, pixel_weight=pixel_weight,
                      perceptual_weight=perceptual_weight,
                      gan_weight=gan_weight, precision=precision)

  def step(lq: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    model.feed_data(lq, gt)
    model.optimize_parameters(1)
    return dict(model.loss_tensors)

  step.ema = list(model.net_g_ema.parameters())
  step.model = model
  return step
