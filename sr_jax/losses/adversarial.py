"""Adversarial losses: classic and relativistic GANs, and the gradient penalty.

Every variant is a pair of pure functions of discriminator logits
(`real`, `fake`: [N, 1] or [N] float32, raw critic outputs C(x)):
  d_loss(real, fake) -> scalar, minimised by the discriminator;
  g_loss(real, fake) -> scalar, minimised by the generator.
Non-relativistic generator losses ignore `real`. The trainer stops gradients
into the discriminator during the generator update, and into the generator
during the discriminator update.

Scale convention: every two-term loss AVERAGES its two terms (their sum / 2),
so one `adversarial` weight means the same across variants. The two-term
losses are the relativistic average and centred ones, d_loss and g_loss alike
(ragan,
ragan_basicsr, ragp, ralsgan, rahinge, rcgan, rclsgan, rchinge); averaging is
what the official ESRGAN and BasicSR code do for RaGAN, so ESRGAN's published
weights (GAN 5e-3) keep their meaning. (ralsgan and rahinge summed their terms
until issue 11: at the same weight they are now half as strong as then.) The
classic objectives stay as published: their generator losses (vanilla, lsgan,
hinge, wgan, rsgan) have one term, and their discriminator losses are the
papers' (and BasicSR's) real term + fake term, which the published
discriminator penalty weights (WGAN-GP's 10, R1's) are relative to.

With C the raw critic, s the sigmoid, x_r real and x_f generated samples:

Relativistic average (Ra; Jolicoeur-Martineau 2018, ESRGAN eq. 1-2): each
set's logits minus the OTHER set's mean,
  y_r = C(x_r) - E[C(x_f)],   y_f = C(x_f) - E[C(x_r)].
Relativistic centred (Rc; Jolicoeur-Martineau 2019, "On relativistic
f-divergences"): both sets minus the mean over real and fake together,
  m = (E[C(x_r)] + E[C(x_f)]) / 2,   y_r = C(x_r) - m,   y_f = C(x_f) - m.
On these logits (D's loss; G's swaps y_r and y_f):
  ragan, rcgan:     L_D = (-E[log s(y_r)] - E[log(1 - s(y_f))]) / 2
  ralsgan, rclsgan: L_D = (E[(y_r - 1)^2] + E[(y_f + 1)^2]) / 2
  rahinge, rchinge: L_D = (E[max(0, 1 - y_r)] + E[max(0, 1 + y_f)]) / 2
e.g. RaGAN's L_G = (-E[log(1 - s(y_r))] - E[log s(y_f)]) / 2.

Gradient through the other set's mean in RaGAN's discriminator loss: 'ragan'
(and 'ragp') keep the paper's form, where D's gradient also flows through
E[C(x_f)] in y_r and through E[C(x_r)] in y_f. 'ragan_basicsr' is BasicSR's
ESRGAN form: the same value, but D's loss treats both means as constants
(stop_gradient), so D's gradient differs. Its generator loss is 'ragan''s
(BasicSR's generator also lets the gradient flow through E[C(G(x))]; the
trainer already holds the real logits fixed for G). Select it with
`config.<phase>.adversarial_loss = 'ragan_basicsr'` (with RaGP's penalty:
add `gradient_penalty` to `config.<phase>.regularisers`). The Rc and the other
Ra variants use the paper's form (gradient through the means).

RaGP = RaGAN's discriminator loss + lambda * E[(||grad_x C(x_hat)||_2 - 1)^2]
with x_hat uniform random interpolates between real and generated images
(WGAN-GP's penalty, Gulrajani et al. 2017). 'ragp' and 'wgan_gp' name the
objective with that penalty: the trainer adds the registered regulariser
`gradient_penalty` (sr_jax.losses.gradient_penalty) to the discriminator
loss for them, which needs a per-sample critic (no BatchNorm in train mode).
The phase's `gp_weight` is that lambda as the papers write it, relative to
the SUMMED D loss (AlexiaJM's RelativisticGAN code adds `--penalty 10` to
the sum of RaGAN's two terms; WGAN-GP's 10 to real + fake): since sr_jax
averages RaGAN's terms, it adds gp_weight * d_loss_scale (0.5 for 'ragp',
1 for 'wgan_gp') times the penalty, the same ratio of penalty to GAN loss.
A `gradient_penalty` entry listed in a phase's `regularisers` has its own
weight, relative to the D loss as sr_jax computes it (averaged).

As a generator loss term ('adversarial'): weight * g_loss(C(real), C(sr))
with the phase's `adversarial_loss` and the discriminator held fixed
(option `discriminator`, default 'discriminator', for runs with several).
"""
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sr_jax import errors
from sr_jax.losses import terms


def _bce(logits, target_is_real: bool):
  """Binary cross-entropy with logits against an all-real or all-fake label."""
  labels = jnp.full_like(logits, 1.0 if target_is_real else 0.0)
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))


def _f32(*xs):
  return [x.astype(jnp.float32) for x in xs]


# Classic (non-relativistic) GANs.
def vanilla_d_loss(real, fake):
  real, fake = _f32(real, fake)
  return _bce(real, True) + _bce(fake, False)


def vanilla_g_loss(real, fake):
  del real
  return _bce(fake.astype(jnp.float32), True)


def lsgan_d_loss(real, fake):
  real, fake = _f32(real, fake)
  return jnp.mean(jnp.square(real - 1.0)) + jnp.mean(jnp.square(fake))


def lsgan_g_loss(real, fake):
  del real
  return jnp.mean(jnp.square(fake.astype(jnp.float32) - 1.0))


def hinge_d_loss(real, fake):
  real, fake = _f32(real, fake)
  return jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))


def wgan_d_loss(real, fake):
  real, fake = _f32(real, fake)
  return jnp.mean(fake) - jnp.mean(real)


def critic_g_loss(real, fake):
  """-E[C(fake)]: the generator loss of hinge GAN and WGAN."""
  del real
  return -jnp.mean(fake.astype(jnp.float32))


# Relativistic GANs. Each objective scores relativistic logits y_pos (the set
# that should look real) and y_neg (the set that should look fake), and
# averages its two terms; D scores (real, fake), G the same with them swapped.
def _ra(real, fake):
  """Relativistic average logits: each set minus the other set's mean."""
  return real - jnp.mean(fake), fake - jnp.mean(real)


def _ra_detached(real, fake):
  """_ra with no gradient through the means (BasicSR's discriminator)."""
  return (real - jnp.mean(jax.lax.stop_gradient(fake)),
          fake - jnp.mean(jax.lax.stop_gradient(real)))


def _rc(real, fake):
  """Relativistic centred logits: both sets minus the mean over both."""
  m = 0.5 * (jnp.mean(real) + jnp.mean(fake))
  return real - m, fake - m


def _gan_pair(y_pos, y_neg):
  """(-E[log sigmoid(y_pos)] - E[log(1 - sigmoid(y_neg))]) / 2."""
  return 0.5 * (_bce(y_pos, True) + _bce(y_neg, False))


def _ls_pair(y_pos, y_neg):
  """(E[(y_pos - 1)^2] + E[(y_neg + 1)^2]) / 2."""
  return 0.5 * (jnp.mean(jnp.square(y_pos - 1.0)) +
                jnp.mean(jnp.square(y_neg + 1.0)))


def _hinge_pair(y_pos, y_neg):
  """(E[max(0, 1 - y_pos)] + E[max(0, 1 + y_neg)]) / 2."""
  return 0.5 * (jnp.mean(jax.nn.relu(1.0 - y_pos)) +
                jnp.mean(jax.nn.relu(1.0 + y_neg)))


def _relativistic(name, relative, pair):
  """(d_loss, g_loss) of a relativistic objective: pair(y_r, y_f) for D,
  pair(y_f, y_r) for G, with (y_r, y_f) = relative(real, fake)."""

  def d_loss(real, fake):
    y_real, y_fake = relative(*_f32(real, fake))
    return pair(y_real, y_fake)

  def g_loss(real, fake):
    y_real, y_fake = relative(*_f32(real, fake))
    return pair(y_fake, y_real)

  d_loss.__name__ = d_loss.__qualname__ = f'{name}_d_loss'
  g_loss.__name__ = g_loss.__qualname__ = f'{name}_g_loss'
  return d_loss, g_loss


ragan_d_loss, ragan_g_loss = _relativistic('ragan', _ra, _gan_pair)
ralsgan_d_loss, ralsgan_g_loss = _relativistic('ralsgan', _ra, _ls_pair)
rahinge_d_loss, rahinge_g_loss = _relativistic('rahinge', _ra, _hinge_pair)
rcgan_d_loss, rcgan_g_loss = _relativistic('rcgan', _rc, _gan_pair)
rclsgan_d_loss, rclsgan_g_loss = _relativistic('rclsgan', _rc, _ls_pair)
rchinge_d_loss, rchinge_g_loss = _relativistic('rchinge', _rc, _hinge_pair)
# BasicSR's ESRGAN: D detaches the other set's mean; G is the paper's form.
ragan_basicsr_d_loss, _ = _relativistic('ragan_basicsr', _ra_detached,
                                        _gan_pair)


def rsgan_d_loss(real, fake):
  """Relativistic standard GAN: pairs each real with a fake sample."""
  real, fake = _f32(real, fake)
  return _bce(real - fake, True)


def rsgan_g_loss(real, fake):
  real, fake = _f32(real, fake)
  return _bce(fake - real, True)


class AdversarialLoss(NamedTuple):
  d_loss: Callable[[jax.Array, jax.Array], jax.Array]
  g_loss: Callable[[jax.Array, jax.Array], jax.Array]
  # Whether the objective includes the gradient penalty (the trainer adds
  # the `gradient_penalty` regulariser with the phase's gp_weight).
  gradient_penalty: bool = False
  # d_loss / the published (summed) D loss: 0.5 for the averaged two-term
  # losses. The trainer's penalty weight is gp_weight * d_loss_scale, so
  # gp_weight is the papers' lambda.
  d_loss_scale: float = 1.0


ADVERSARIAL_LOSSES = {
    'vanilla': AdversarialLoss(vanilla_d_loss, vanilla_g_loss),
    'lsgan': AdversarialLoss(lsgan_d_loss, lsgan_g_loss),
    'hinge': AdversarialLoss(hinge_d_loss, critic_g_loss),
    'wgan': AdversarialLoss(wgan_d_loss, critic_g_loss),
    'wgan_gp': AdversarialLoss(wgan_d_loss, critic_g_loss, True),
    'ragan': AdversarialLoss(ragan_d_loss, ragan_g_loss, d_loss_scale=0.5),
    'ragp': AdversarialLoss(ragan_d_loss, ragan_g_loss, True, 0.5),
    'rsgan': AdversarialLoss(rsgan_d_loss, rsgan_g_loss),
    'ralsgan': AdversarialLoss(ralsgan_d_loss, ralsgan_g_loss,
                               d_loss_scale=0.5),
    'rahinge': AdversarialLoss(rahinge_d_loss, rahinge_g_loss,
                               d_loss_scale=0.5),
    'ragan_basicsr': AdversarialLoss(ragan_basicsr_d_loss, ragan_g_loss,
                                     d_loss_scale=0.5),
    'rcgan': AdversarialLoss(rcgan_d_loss, rcgan_g_loss, d_loss_scale=0.5),
    'rclsgan': AdversarialLoss(rclsgan_d_loss, rclsgan_g_loss,
                               d_loss_scale=0.5),
    'rchinge': AdversarialLoss(rchinge_d_loss, rchinge_g_loss,
                               d_loss_scale=0.5),
}


def get_adversarial_loss(name: str) -> AdversarialLoss:
  try:
    return ADVERSARIAL_LOSSES[name]
  except KeyError:
    raise errors.ConfigError(
        f'Unknown adversarial loss {name!r}; known: '
        f'{sorted(ADVERSARIAL_LOSSES)}.') from None


@terms.register('adversarial')
def make_adversarial_term(options, dtype) -> terms.LossTerm:
  """The phase's adversarial g_loss against the fixed discriminator
  options['discriminator'] (default 'discriminator')."""
  del dtype
  terms.unknown_options(options, ('discriminator',))
  which = options.get('discriminator', 'discriminator')

  def fn(ctx: terms.LossContext):
    real = jax.lax.stop_gradient(ctx.critic(ctx.real, which))
    return ctx.adversarial.g_loss(real, ctx.critic(ctx.sr, which))

  return terms.LossTerm(fn, log_name='gan', needs_critic=True)
