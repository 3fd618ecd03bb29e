"""Cycle-consistency terms of a down-sampling generator (SRResCycGAN, Umer
and Micheloni, ECCVW 2020, Sec. 3):

  'cycle'       || G_LR(G_SR(y)) - y ||_1: the SR output, taken back down by
                the down-sampling generator, must give the LR input again
                (the gradient reaches both generators);
  'down_pixel'  || G_LR(x) - y ||_1: the down-sampling generator's own
                fidelity term, HR target x against its LR y.

`network` names the down-sampling generator's config entry (default
'generator_lr'); the phase must train it or have it among its networks.
`criterion` is a pixel criterion ('l1', as the paper, 'mse', 'charbonnier').
"""
from sr_jax.losses import terms
from sr_jax.losses.pixel import get_pixel_loss

_OPTIONS = ('network', 'criterion')


def _parse(options):
  terms.unknown_options(options, _OPTIONS)
  return (str(options.get('network', 'generator_lr')),
          get_pixel_loss(options.get('criterion', 'l1')))


@terms.register('cycle')
def make_cycle_term(options, dtype) -> terms.LossTerm:
  del dtype
  network, distance = _parse(options)
  return terms.LossTerm(
      lambda ctx: distance(ctx.apply(network, ctx.sr), ctx.lr),
      log_name='cycle', networks=(network,))


@terms.register('down_pixel')
def make_down_pixel_term(options, dtype) -> terms.LossTerm:
  del dtype
  network, distance = _parse(options)
  return terms.LossTerm(
      lambda ctx: distance(ctx.apply(network, ctx.target), ctx.lr),
      log_name='down_pix', networks=(network,))
