"""Adversarial losses: classic and relativistic GANs, and the gradient penalty.

Every variant is a pair of pure functions of discriminator logits
(`real`, `fake`: [N, 1] or [N] float32, raw critic outputs C(x)):
  d_loss(real, fake) -> scalar, minimised by the discriminator;
  g_loss(real, fake) -> scalar, minimised by the generator.
Non-relativistic generator losses ignore `real`. The trainer stops gradients
into the discriminator during the generator update, and into the generator
during the discriminator update.

Relativistic average GAN (RaGAN, Jolicoeur-Martineau 2018; ESRGAN eq. 1-2):
  D_Ra(x_r, x_f) = sigmoid(C(x_r) - E[C(x_f)])
  L_D = -E[log D_Ra(x_r, x_f)] - E[log(1 - D_Ra(x_f, x_r))]
  L_G = -E[log(1 - D_Ra(x_r, x_f))] - E[log D_Ra(x_f, x_r)]
We average the two terms (divide by 2) as the official ESRGAN and BasicSR code
do, so ESRGAN's published loss weights (GAN 5e-3) keep their meaning.

RaGP = RaGAN's discriminator loss + lambda * E[(||grad_x C(x_hat)||_2 - 1)^2]
with x_hat uniform random interpolates between real and generated images
(WGAN-GP's penalty, Gulrajani et al. 2017). 'ragp' and 'wgan_gp' name the
objective with that penalty: the trainer adds the registered regulariser
`gradient_penalty` (sr_jax.losses.gradient_penalty) to the discriminator
loss for them, which needs a per-sample critic (no BatchNorm in train mode).

As a generator loss term ('adversarial'): weight * g_loss(C(real), C(sr))
with the phase's `adversarial_loss` and the discriminator held fixed
(option `discriminator`, default 'discriminator', for runs with several).
"""
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

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


# Relativistic GANs.
def ragan_d_loss(real, fake):
  real, fake = _f32(real, fake)
  return 0.5 * (_bce(real - jnp.mean(fake), True) +
                _bce(fake - jnp.mean(real), False))


def ragan_g_loss(real, fake):
  real, fake = _f32(real, fake)
  return 0.5 * (_bce(real - jnp.mean(fake), False) +
                _bce(fake - jnp.mean(real), True))


def rsgan_d_loss(real, fake):
  """Relativistic standard GAN: pairs each real with a fake sample."""
  real, fake = _f32(real, fake)
  return _bce(real - fake, True)


def rsgan_g_loss(real, fake):
  real, fake = _f32(real, fake)
  return _bce(fake - real, True)


def ralsgan_d_loss(real, fake):
  real, fake = _f32(real, fake)
  return (jnp.mean(jnp.square(real - jnp.mean(fake) - 1.0)) +
          jnp.mean(jnp.square(fake - jnp.mean(real) + 1.0)))


def ralsgan_g_loss(real, fake):
  real, fake = _f32(real, fake)
  return (jnp.mean(jnp.square(fake - jnp.mean(real) - 1.0)) +
          jnp.mean(jnp.square(real - jnp.mean(fake) + 1.0)))


def rahinge_d_loss(real, fake):
  real, fake = _f32(real, fake)
  return (jnp.mean(jax.nn.relu(1.0 - (real - jnp.mean(fake)))) +
          jnp.mean(jax.nn.relu(1.0 + (fake - jnp.mean(real)))))


def rahinge_g_loss(real, fake):
  real, fake = _f32(real, fake)
  return (jnp.mean(jax.nn.relu(1.0 - (fake - jnp.mean(real)))) +
          jnp.mean(jax.nn.relu(1.0 + (real - jnp.mean(fake)))))


class AdversarialLoss(NamedTuple):
  d_loss: Callable[[jax.Array, jax.Array], jax.Array]
  g_loss: Callable[[jax.Array, jax.Array], jax.Array]
  # Whether the objective includes the gradient penalty (the trainer adds
  # the `gradient_penalty` regulariser with the phase's gp_weight).
  gradient_penalty: bool = False


ADVERSARIAL_LOSSES = {
    'vanilla': AdversarialLoss(vanilla_d_loss, vanilla_g_loss),
    'lsgan': AdversarialLoss(lsgan_d_loss, lsgan_g_loss),
    'hinge': AdversarialLoss(hinge_d_loss, critic_g_loss),
    'wgan': AdversarialLoss(wgan_d_loss, critic_g_loss),
    'wgan_gp': AdversarialLoss(wgan_d_loss, critic_g_loss, True),
    'ragan': AdversarialLoss(ragan_d_loss, ragan_g_loss),
    'ragp': AdversarialLoss(ragan_d_loss, ragan_g_loss, True),
    'rsgan': AdversarialLoss(rsgan_d_loss, rsgan_g_loss),
    'ralsgan': AdversarialLoss(ralsgan_d_loss, ralsgan_g_loss),
    'rahinge': AdversarialLoss(rahinge_d_loss, rahinge_g_loss),
}


def get_adversarial_loss(name: str) -> AdversarialLoss:
  try:
    return ADVERSARIAL_LOSSES[name]
  except KeyError:
    raise ValueError(f'Unknown adversarial loss {name!r}; known: '
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
