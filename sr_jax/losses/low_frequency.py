"""DSGAN's colour loss (Fritsche et al. 2019, Sec. 3.2): L1 between the
low frequencies of the output and of the target,

  L_col = || w_L * G(x) - w_L * target ||_1,

w_L a 5x5 box filter ('valid', no padding, as released) or a Gaussian one.
A down-sampling generator keeps its input's colours and coarse content this
way while the GAN term, on the high frequencies only, makes its texture.
Options: kernel_size (5), gaussian (False). Registered as 'low_frequency'.
"""
from sr_jax.degradations import frequency_split
from sr_jax.losses import terms
from sr_jax.losses.pixel import l1_loss


@terms.register('low_frequency')
def make_low_frequency_term(options, dtype) -> terms.LossTerm:
  del dtype
  terms.unknown_options(options, ('kernel_size', 'gaussian'))
  size = int(options.get('kernel_size', 5))
  gaussian = bool(options.get('gaussian', False))
  low = lambda x: frequency_split.low_pass(x, size, gaussian, pad=False)
  return terms.LossTerm(lambda ctx: l1_loss(low(ctx.sr), low(ctx.target)),
                        log_name='low_freq')
