"""The jitted update step of a training phase.

`make_phase_step(recipe, phase, settings)` builds one pure function
`(state, batch, aux) -> (state, metrics)` for any phase: it updates the
generators the phase trains on the sum of its loss terms, then the
discriminators on the adversarial objective plus their regularisers, in
BasicSR's order (D sees the generator's pre-update output). `aux` holds the
frozen networks' variables (one pytree, whatever the terms need). The
trainer jits it with explicit shardings (batch split over the mesh's 'data'
axis, state and aux replicated), so the same code runs on one CPU and on
every device of a pod. What a batch holds and how its LR inputs are made:
pairs.py.

The step is top-level pure functions: `train_step` (the random keys,
`step_keys`; the training pairs; each trained discriminator's pass over the
real batch, `real_batch_passes`; then `generator_update`, one
`discriminator_update` per trained discriminator and `guard_finite`), which
`make_phase_step` binds to the recipe, the phase and the run's
`StepSettings` with functools.partial.
"""
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import optax

from sr_jax import losses
from sr_jax.train import state as ts
# Re-exported: the pairs are part of the step's contract.
from sr_jax.train.pairs import hr_to_float  # noqa: F401
from sr_jax.train.pairs import make_training_pairs  # noqa: F401
from sr_jax.train.pairs import TrainingPairs
from sr_jax.train.recipe import MAIN_GENERATOR
from sr_jax.train.recipe import Network
from sr_jax.train.recipe import Phase
from sr_jax.train.recipe import Recipe
from sr_jax.train.recipe import short_name
# Re-exported: what make_phase_step takes besides the recipe.
from sr_jax.train.recipe import StepSettings


# fold_in constants of the step's random streams (StepKeys). Changing one
# changes every run's numbers and what a resumed run draws.
_PAIRS_STREAM = 1
_G_TERMS_STREAM = 2
_D_REGULARISERS_STREAM = 100  # + the discriminator's index.


class StepKeys(NamedTuple):
  """The random streams of one step, all from `root`.

  Fixed by (state.rng, state.step), so a resumed run draws exactly what an
  uninterrupted one would.
  """
  root: jax.Array  # fold_in(rng, step).
  # fold_in(root, 1): recipe.training_pairs (split there into degradation,
  # mixup and dropout keys; a synthetic real domain folds in 7).
  pairs: jax.Array
  # fold_in(root, 2): LossContext.key, shared by the generator loss terms
  # (a term that draws folds in a constant of its own; none does today).
  g_terms: jax.Array

  def d_regularisers(self, i: int) -> jax.Array:
    """fold_in(root, 100 + i): the regularisers of the phase's i-th trained
    discriminator (in phase.train order)."""
    return jax.random.fold_in(self.root, _D_REGULARISERS_STREAM + i)

  def regulariser(self, i: int, k: int) -> jax.Array:
    """fold_in(d_regularisers(i), k): RegulariserContext.key of the phase's
    k-th regulariser on discriminator i."""
    return jax.random.fold_in(self.d_regularisers(i), k)


def step_keys(rng: jax.Array, step) -> StepKeys:
  """The keys of global step `step` of a run with key `rng`."""
  root = jax.random.fold_in(rng, step)
  return StepKeys(root=root,
                  pairs=jax.random.fold_in(root, _PAIRS_STREAM),
                  g_terms=jax.random.fold_in(root, _G_TERMS_STREAM))


def run_network(network: Network, params, model_state: dict, x,
                train: bool):
  """Applies a network; in train mode its mutable collections (BatchNorm
  statistics, spectral-norm vectors) update and are returned."""
  variables = {'params': params, **model_state}
  if train and model_state:
    out, updates = network.module.apply(variables, x, train=True,
                                        mutable=list(model_state))
    return out.astype(jnp.float32), {**model_state, **updates}
  out = network.module.apply(variables, x, train=train)
  return out.astype(jnp.float32), model_state


def _ema(ema_params, params, decay):
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p,
                      ema_params, params)


def ema_decay_schedule(decay: float, update_after_step: int = 0,
                       power: float = 0.0) -> Callable[[jax.Array],
                                                       jax.Array]:
  """The EMA decay of the update that makes global step k (1, 2, ...).

  power 0 and update_after_step 0: `decay` from the first update
  (BasicSR's model_ema). update_after_step N: the EMA copies the weights
  (decay 0) up to step N. power p > 0: a warm-up, ema_pytorch's (as
  traiNNer-redux's ema_update_after_step / ema_power use it): with
  e = k - N - 1 updates since the copies, decay min(`decay`,
  1 - (1 + e)^-p), and 0 at e = 0. Its averaging window, 1 / (1 - decay),
  grows as (1 + e)^p: with p = 2/3 about 100 steps at e = 1000 and 210 at
  e = 3000 (decay 0.999 from e ~ 31.6k on), where a fixed decay 0.999
  averages over ~1000 steps from the start and keeps a short run's EMA
  behind its weights.
  """
  if update_after_step < 0 or power < 0:
    raise ValueError('ema_update_after_step and ema_power must be >= 0.')

  def at(k):
    if not power and not update_after_step:
      return decay  # A Python float: 1 - decay as BasicSR computes it.
    k = jnp.asarray(k, jnp.float32)
    if power > 0:
      e = k - update_after_step - 1.0
      warm = 1.0 - (1.0 + jnp.maximum(e, 0.0)) ** -power
      return jnp.where(e <= 0, 0.0, jnp.minimum(decay, warm))
    return jnp.where(k <= update_after_step, 0.0, decay)

  return at


def _select(pred, on_true, on_false):
  return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def _update(phase, name, grads, state):
  updates, opt_state = phase.optimizers[name].update(
      grads, state.opt_state[name], state.params[name])
  return optax.apply_updates(state.params[name], updates), opt_state


def _advance_schedules(opt_state):
  """`opt_state` with every learning-rate schedule's count one step on and
  nothing else changed: for an iteration that skips a network's update
  (net_d_iters / net_d_init_iters). BasicSR steps its schedulers every
  iteration, whether or not the optimizer stepped; Adam's own count (its
  bias correction) advances only with the updates, as torch's."""
  is_schedule = lambda x: isinstance(x, optax.ScaleByScheduleState)
  return jax.tree.map(
      lambda x: (x._replace(count=optax.safe_increment(x.count))
                 if is_schedule(x) else x),
      opt_state, is_leaf=is_schedule)


def guard_finite(state, new_state, metrics: dict, updated: list, skip: bool):
  """The finite guard: one all-finite reduction over the metrics (losses,
  gradient norms) and the updated parameters' squared norm, recorded in
  state.health.

  Without `skip`, the first non-finite update's step and metrics are
  recorded (the trainer stops before saving anything); with it, the update
  is dropped (the step still advances) and counted.
  """
  names = sorted(metrics)
  term_ok = [jnp.all(jnp.isfinite(metrics[k])) for k in names]
  # The updated parameters' squared norm in float32: non-finite if any
  # parameter is, and also once any |p| passes ~1e19 (where every
  # activation overflows: with a learning rate of 1e30 the parameters are
  # "finite" 1e30s, and the next forward pass is all NaN).
  squares = sum(jnp.sum(jnp.square(x.astype(jnp.float32)))
                for x in jax.tree.leaves(updated))
  finite = jnp.all(jnp.stack(term_ok + [jnp.isfinite(squares)]))
  bad_terms = sum(jnp.where(ok, 0, 1 << i).astype(jnp.int32)
                  for i, ok in enumerate(term_ok))
  health = dict(state.health)
  if skip:
    keep = lambda field: _select(finite, getattr(new_state, field),
                                 getattr(state, field))
    new_state = new_state.replace(
        params=keep('params'), model_state=keep('model_state'),
        opt_state=keep('opt_state'), ema_params=keep('ema_params'))
    health['streak'] = jnp.where(finite, 0, health['streak'] + 1)
    health['skipped'] = health['skipped'] + jnp.where(finite, 0, 1)
  else:
    first = (health['first_bad_step'] < 0) & ~finite
    health['first_bad_step'] = jnp.where(first, state.step + 1,
                                         health['first_bad_step'])
    health['bad_terms'] = jnp.where(first, bad_terms, health['bad_terms'])
  return new_state.replace(health=health), metrics


class NetworkUpdates(NamedTuple):
  """What an update made, by network name; train_step merges these into
  the state's dicts."""
  params: dict[str, Any]
  model_state: dict[str, Any]
  opt_state: dict[str, Any]
  ema_params: dict[str, Any]  # Generators only.


class RealPass(NamedTuple):
  """A trained discriminator's pass over the real batch (jax.vjp's)."""
  logits: jax.Array
  vjp: Callable  # Cotangent of `logits` -> (gradient of the parameters,).
  model_state: dict  # Its statistics after the pass.


def _trained(phase: Phase, networks, kind: str) -> list[str]:
  return [n for n in phase.train if networks[n].kind == kind]


def _train_mode_output(x, *, network: Network, params, model_state):
  """`network` on x in train mode, the updated statistics discarded."""
  return run_network(network, params, model_state, x, True)[0]


def real_batch_passes(state: 'ts.TrainState', real, *, networks,
                      discs: list[str]) -> dict[str, RealPass]:
  """Each trained discriminator's pass over the real batch, by name.

  Run once and kept for its backward pass: the G loss's critic(real) reads
  its logits (the same values: D in train mode with the same parameters)
  and the D update backpropagates through it. XLA merges the two passes
  over the fakes itself, but not a plain pass with a differentiated one, so
  without this D ran three times over the batch, BasicSR's G step pass
  over the reals included.
  """
  passes = {}
  for name in discs:
    on_real = functools.partial(run_network, networks[name],
                                model_state=state.model_state[name], x=real,
                                train=True)
    passes[name] = RealPass(*jax.vjp(on_real, state.params[name],
                                     has_aux=True))
  return passes


def critic_fixed(x, name: str = 'discriminator', *, state: 'ts.TrainState',
                 networks, real, real_passes: dict[str, RealPass]):
  """LossContext.critic: discriminator `name` in train mode (as BasicSR's
  G step sees it) with the step's parameters, statistics discarded; on the
  real batch, a trained one's logits from its real pass."""
  if x is real and name in real_passes:
    return jax.lax.stop_gradient(real_passes[name].logits)
  return _train_mode_output(x, network=networks[name],
                            params=state.params[name],
                            model_state=state.model_state[name])


def _apply_in_g_loss(name: str, x, *, networks, params, model_state,
                     trained, updated: dict):
  """LossContext.apply: network `name` with `params`; in train mode if it
  is `trained`, its new statistics recorded in `updated` (and used by its
  next pass)."""
  out, new_state = run_network(networks[name], params[name],
                               updated.get(name, model_state[name]), x,
                               name in trained)
  if name in trained:
    updated[name] = new_state
  return out


def generator_loss(g_params, *, state: 'ts.TrainState', pairs: TrainingPairs,
                   aux, key, critic, networks, phase: Phase):
  """The sum of the phase's weighted terms, and (terms by metric name, the
  main generator's output, the trained generators' new statistics)."""
  updated = {}
  apply = functools.partial(
      _apply_in_g_loss, networks=networks, params={**state.params, **g_params},
      model_state=state.model_state, trained=g_params, updated=updated)
  sr = apply(MAIN_GENERATOR, pairs.lr)
  ctx = losses.LossContext(
      sr=sr, target=pairs.target, real=pairs.real, lr=pairs.lr, key=key,
      aux=aux, apply=apply, critic=critic, adversarial=phase.adversarial)
  terms = {f'l_g_{t.term.log_name}': t.weight * t.term.fn(ctx)
           for t in phase.terms}
  return sum(terms.values()), (terms, sr, updated)


def generator_update(state: 'ts.TrainState', pairs: TrainingPairs, aux, key,
                     critic, *, networks, phase: Phase,
                     ema_decay: Callable):
  """The phase's generators one step on (generator_loss, key: the terms'),
  their EMA with them: (NetworkUpdates, metrics, the main generator's
  pre-update output)."""
  gens = _trained(phase, networks, 'generator')
  # BasicSR counts iterations from 1 within a phase.
  phase_iter = state.step - phase.start + 1
  update_g = ((phase_iter % phase.net_d_iters == 0) &
              (phase_iter > phase.net_d_init_iters))
  loss = functools.partial(generator_loss, state=state, pairs=pairs, aux=aux,
                           key=key, critic=critic, networks=networks,
                           phase=phase)
  (l_g_total, (g_terms, sr, g_state)), g_grads = jax.value_and_grad(
      loss, has_aux=True)({n: state.params[n] for n in gens})
  new = NetworkUpdates({}, {}, {}, {})
  metrics = {}
  for name in gens:
    new_params, new_opt = _update(phase, name, g_grads[name], state)
    new_ms = g_state.get(name, state.model_state[name])
    # A skipped update still moves the schedule: the learning rate is
    # the phase iteration's (BasicSR's), not the update count's.
    new.params[name], new.opt_state[name], new.model_state[name] = _select(
        update_g, (new_params, new_opt, new_ms),
        (state.params[name], _advance_schedules(state.opt_state[name]),
         state.model_state[name]))
    new.ema_params[name] = _ema(state.ema_params[name], new.params[name],
                                ema_decay(state.step + 1))
    metrics[f'grad_norm_{short_name(name)}'] = optax.tree.norm(
        g_grads[name])
  metrics.update(g_terms, l_g_total=l_g_total)
  return new, metrics, sr


def discriminator_loss(d_params, real_logits, *, network: Network,
                       phase: Phase, real_pass: RealPass, real, fake,
                       keys: StepKeys, index: int, suffix: str):
  """The adversarial objective on (real_logits, D(fake)) plus the phase's
  regularisers (keys: keys.regulariser(index, k)), and (terms and mean
  logits by metric name, D's statistics after the fake pass)."""
  fake_logits, ms = run_network(network, d_params, real_pass.model_state,
                                fake, True)
  terms = {f'l_d{suffix}': phase.adversarial.d_loss(real_logits,
                                                   fake_logits)}
  critic = functools.partial(_train_mode_output, network=network,
                             params=d_params, model_state=ms)
  for k, reg in enumerate(phase.regularisers):
    ctx = losses.RegulariserContext(critic=critic, real=real, fake=fake,
                                    key=keys.regulariser(index, k))
    terms[f'l_d_{reg.regulariser.log_name}{suffix}'] = (
        reg.weight * reg.regulariser.fn(ctx))
  aux_out = dict(terms, **{f'out_d_real{suffix}': jnp.mean(real_logits),
                           f'out_d_fake{suffix}': jnp.mean(fake_logits)})
  return sum(terms.values()), (aux_out, ms)


def discriminator_update(state: 'ts.TrainState', name: str, index: int,
                         real_pass: RealPass, real, fake, keys: StepKeys, *,
                         networks, phase: Phase):
  """Discriminator `name` (the phase's `index`-th trained one) one step on
  discriminator_loss: (NetworkUpdates, metrics), D metrics suffixed
  `_<name>` but for the main discriminator."""
  suffix = '' if name == 'discriminator' else f'_{name}'
  loss = functools.partial(
      discriminator_loss, network=networks[name], phase=phase,
      real_pass=real_pass, real=real, fake=fake, keys=keys, index=index,
      suffix=suffix)
  # The real logits are an argument, so their cotangent comes back and
  # the kept real pass's vjp adds its part of D's gradient.
  (l_d_total, (d_aux, d_ms)), (d_grads, d_real) = jax.value_and_grad(
      loss, argnums=(0, 1), has_aux=True)(state.params[name],
                                          real_pass.logits)
  d_grads = jax.tree.map(jnp.add, d_grads, real_pass.vjp(d_real)[0])
  new_params, new_opt = _update(phase, name, d_grads, state)
  metrics = dict(d_aux)
  metrics[f'l_d_total{suffix}'] = l_d_total
  metrics[f'grad_norm_{short_name(name)}'] = optax.tree.norm(d_grads)
  return NetworkUpdates({name: new_params}, {name: d_ms}, {name: new_opt},
                        {}), metrics


def train_step(state: 'ts.TrainState', batch, aux, *, recipe: Recipe,
               phase: Phase, ema_decay: Callable, skip_nonfinite: bool):
  """One step of `phase`: (state, metrics). make_phase_step binds it.

  Metrics: l_g_<term> (weighted), l_g_total, l_d, l_d_<regulariser>,
  l_d_total, out_d_real / out_d_fake (mean logits) and grad_norm_<network>,
  with 'g' / 'd' for the main generator / discriminator (BasicSR's names)
  and a `_<name>` suffix on the D metrics of other discriminators.
  """
  networks, main = recipe.networks, MAIN_GENERATOR
  gens = _trained(phase, networks, 'generator')
  discs = _trained(phase, networks, 'discriminator')
  keys = step_keys(state.rng, state.step)
  pairs = TrainingPairs(*recipe.training_pairs(keys.pairs, batch, aux))
  passes = real_batch_passes(state, pairs.real, networks=networks,
                             discs=discs)
  critic = None
  if any(net.kind == 'discriminator' for net in networks.values()):
    critic = functools.partial(critic_fixed, state=state, networks=networks,
                               real=pairs.real, real_passes=passes)
  updates, metrics = [], {}
  if gens:
    g_new, g_metrics, sr = generator_update(
        state, pairs, aux, keys.g_terms, critic, networks=networks,
        phase=phase, ema_decay=ema_decay)
    updates.append(g_new)
    metrics.update(g_metrics)
  if main not in gens:
    sr = run_network(networks[main], state.params[main],
                     state.model_state[main], pairs.lr, False)[0]
  # Discriminators on the same (pre-update) fakes, as BasicSR does.
  fake = jax.lax.stop_gradient(sr)
  for i, name in enumerate(discs):
    d_new, d_metrics = discriminator_update(
        state, name, i, passes[name], pairs.real, fake, keys,
        networks=networks, phase=phase)
    updates.append(d_new)
    metrics.update(d_metrics)
  merged = {f: {**getattr(state, f), **{k: v for u in updates
                                         for k, v in getattr(u, f).items()}}
            for f in NetworkUpdates._fields}
  new_state = state.replace(step=state.step + 1, **merged)
  return guard_finite(state, new_state, metrics,
                      [merged['params'][n] for n in phase.train],
                      skip_nonfinite)


def make_phase_step(recipe: Recipe, phase: Phase,
                    settings: StepSettings) -> Callable:
  """The (unjitted) step of `phase`: (state, batch, aux) -> (state, metrics),
  train_step with the recipe, the phase and `settings` bound."""
  ema_decay = ema_decay_schedule(settings.ema_decay,
                                 settings.ema_update_after_step,
                                 settings.ema_power)
  return functools.partial(train_step, recipe=recipe, phase=phase,
                           ema_decay=ema_decay,
                           skip_nonfinite=settings.skip_nonfinite)


def data_parallel_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh ('data',) over `devices` (default: all devices).

  Axis type Auto: XLA propagates the batch sharding through the convolutions
  (jax.make_mesh's default, Explicit, would ask every op for its sharding).
  """
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh((len(devices),), ('data',), devices=devices,
                       axis_types=(jax.sharding.AxisType.Auto,))


def jit_for_mesh(step_fn: Callable, mesh: jax.sharding.Mesh) -> Callable:
  """Jits a step with the batch split over the mesh's 'data' axis.

  The state and the frozen networks (aux) are replicated and the state is
  donated, so an update happens in place. The same code serves 1 device
  and N. Nothing in the step gathers the batch: the HLO test in
  tests/train/multidevice_check.py finds no all-gather of image-sized arrays.
  """
  replicated = NamedSharding(mesh, P())

  def on_mesh(*args):
    # Traced with the mesh known, so per-sample losses run on each device's
    # shard (sr_jax.losses.shards) instead of gathering the batch.
    with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
      return step_fn(*args)

  return jax.jit(on_mesh,
                 in_shardings=(replicated, NamedSharding(mesh, P('data')),
                               replicated),
                 out_shardings=(replicated, replicated), donate_argnums=0)
