"""PyTorch references of sr_jax's ESRGAN networks, step and whole run.

Written from the published code (BasicSR's `rrdbnet_arch.py`,
`discriminator_arch.py`, `vgg_arch.py`, `base_model.py`, `sr_model.py`,
`srgan_model.py`, `esrgan_model.py` and `train.py`), with BasicSR's
state-dict names, so `sr_jax.convert.convert_state_dict` maps their weights
onto sr_jax's modules ('rrdbnet', 'vgg_style', 'vgg19') and
`torch_state_dict` maps sr_jax's back.
tests/tools/test_torch_reference.py checks that both compute the same step on
the same weights, so a speed comparison (`python -m sr_jax.bench compare |
suite`) compares the same computation;
`SRModel`, `ESRGANModel`, `train_iterations` and `train_run` are BasicSR's
models and training loop, which `sr_jax.tools.run_parity`
(tests/tools/test_run_parity.py, `python -m sr_jax.bench learn`) trains
beside sr_jax's trainer for a whole run.

The networks and `torch_state_dict` are in torch_reference_nets (re-exported
here); this file holds BasicSR's models, step and training loop. Nothing in
sr_jax imports either except `sr_jax.tools.bench_torch` and
`sr_jax.tools.run_parity`, and only when torch is installed. Tensors are
NCHW, images in [0, 1].
"""
import copy
import dataclasses
import functools
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence
import warnings

import torch
from torch import nn
from torch.nn import functional as F

from sr_jax.tools.torch_reference_nets import esrgan_networks
from sr_jax.tools.torch_reference_nets import pixel_unshuffle
from sr_jax.tools.torch_reference_nets import RRDB
from sr_jax.tools.torch_reference_nets import RRDBNet
from sr_jax.tools.torch_reference_nets import ResidualDenseBlock
from sr_jax.tools.torch_reference_nets import torch_state_dict
from sr_jax.tools.torch_reference_nets import VGG19_CFG
from sr_jax.tools.torch_reference_nets import vgg19_features
from sr_jax.tools.torch_reference_nets import vgg19_layer_names
from sr_jax.tools.torch_reference_nets import VGGFeatureExtractor
from sr_jax.tools.torch_reference_nets import VGGStyleDiscriminator

PRECISIONS = ('fp32', 'bf16')


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


__all__ = ['ESRGANModel', 'PRECISIONS', 'RRDB', 'RRDBNet',
           'ResidualDenseBlock', 'RunPhase', 'RunResult', 'SRModel',
           'VGG19_CFG', 'VGGFeatureExtractor', 'VGGStyleDiscriminator',
           'esrgan_networks', 'make_esrgan_gan_step', 'pixel_unshuffle',
           'torch_state_dict', 'train_iterations', 'train_run',
           'vgg19_features', 'vgg19_layer_names']
