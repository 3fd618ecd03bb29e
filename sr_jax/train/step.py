"""The jitted update step of a training phase.

`make_phase_step(config, recipe, phase)` builds one pure function
`(state, batch, aux) -> (state, metrics)` for any phase: it updates the
generators the phase trains on the sum of its loss terms, then the
discriminators on the adversarial objective plus their regularisers, in
BasicSR's order (D sees the generator's pre-update output). `aux` holds the
frozen networks' variables (one pytree, whatever the terms need). The
trainer jits it with explicit shardings (batch split over the mesh's 'data'
axis, state and aux replicated), so the same code runs on one CPU and on
every device of a pod. What a batch holds and how its LR inputs are made:
training_pairs.py.
"""
from typing import Callable

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import optax

from sr_jax import losses
from sr_jax.train import state as ts
# Re-exported: the pairs are part of the step's contract.
from sr_jax.train.pairs import hr_to_float  # noqa: F401
from sr_jax.train.pairs import make_training_pairs  # noqa: F401
from sr_jax.train.pairs import TrainingPairs  # noqa: F401


def run_network(network: 'ts.Network', params, model_state: dict, x,
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


def make_phase_step(config: ml_collections.ConfigDict, recipe: 'ts.Recipe',
                    phase: 'ts.Phase') -> Callable:
  """The (unjitted) step of `phase`: (state, batch, aux) -> (state, metrics).

  Metrics: l_g_<term> (weighted), l_g_total, l_d, l_d_<regulariser>,
  l_d_total, out_d_real / out_d_fake (mean logits) and grad_norm_<network>,
  with 'g' / 'd' for the main generator / discriminator (BasicSR's names)
  and a `_<name>` suffix on the D metrics of other discriminators.
  """
  networks = recipe.networks
  ema_decay = ema_decay_schedule(
      config.ema_decay, int(config.get('ema_update_after_step', 0)),
      float(config.get('ema_power', 0.0)))
  training_pairs = recipe.training_pairs
  gens = [n for n in phase.train if networks[n].kind == 'generator']
  discs = [n for n in phase.train if networks[n].kind == 'discriminator']
  critics = [n for n, net in networks.items() if net.kind == 'discriminator']
  main = ts.MAIN_GENERATOR
  sr_trained = main in gens
  skip = config.get('on_nonfinite', 'stop') == 'skip'

  def step(state: ts.TrainState, batch, aux):
    # Keys are fixed by (rng, step), so a resumed run is the same run.
    step_key = jax.random.fold_in(state.rng, state.step)
    lr, target, real = training_pairs(jax.random.fold_in(step_key, 1), batch,
                                      aux)
    # BasicSR counts iterations from 1 within a phase.
    phase_iter = state.step - phase.start + 1
    update_g = ((phase_iter % phase.net_d_iters == 0) &
                (phase_iter > phase.net_d_init_iters))
    metrics = {}
    params, model_state = dict(state.params), dict(state.model_state)
    opt_state, ema = dict(state.opt_state), dict(state.ema_params)

    # Each trained discriminator's pass over the real batch, run once and
    # kept for its backward pass: the G loss's critic(real) reads its logits
    # (the same values: D in train mode with the same parameters) and the D
    # update backpropagates through it. XLA merges the two passes over the
    # fakes itself, but not a plain pass with a differentiated one, so
    # without this D ran three times over the batch, BasicSR's G step pass
    # over the reals included.
    real_passes = {}
    for name in discs:
      net = networks[name]
      logits, real_vjp, ms = jax.vjp(
          lambda p, net=net, name=name: run_network(
              net, p, state.model_state[name], real, True),
          state.params[name], has_aux=True)
      real_passes[name] = (logits, real_vjp, ms)

    def critic_fixed(x, name='discriminator'):
      # D in train mode (as BasicSR's G step sees it), statistics discarded.
      if x is real and name in real_passes:
        return jax.lax.stop_gradient(real_passes[name][0])
      return run_network(networks[name], state.params[name],
                         state.model_state[name], x, True)[0]

    if gens:
      def g_loss_fn(g_params):
        current = {**state.params, **g_params}
        new_state = {}

        def apply(name, x):
          out, updated = run_network(networks[name], current[name],
                                     new_state.get(name,
                                                   state.model_state[name]),
                                     x, name in g_params)
          if name in g_params:
            new_state[name] = updated
          return out

        sr = apply(main, lr)
        ctx = losses.LossContext(
            sr=sr, target=target, real=real, lr=lr,
            key=jax.random.fold_in(step_key, 2), aux=aux, apply=apply,
            critic=critic_fixed if critics else None,
            adversarial=phase.adversarial)
        terms = {f'l_g_{t.term.log_name}': t.weight * t.term.fn(ctx)
                 for t in phase.terms}
        return sum(terms.values()), (terms, sr, new_state)

      (l_g_total, (g_terms, sr, g_state)), g_grads = jax.value_and_grad(
          g_loss_fn, has_aux=True)({n: state.params[n] for n in gens})
      for name in gens:
        new_params, new_opt = _update(phase, name, g_grads[name], state)
        new_ms = g_state.get(name, state.model_state[name])
        # A skipped update still moves the schedule: the learning rate is
        # the phase iteration's (BasicSR's), not the update count's.
        params[name], opt_state[name], model_state[name] = _select(
            update_g, (new_params, new_opt, new_ms),
            (state.params[name], _advance_schedules(state.opt_state[name]),
             state.model_state[name]))
        ema[name] = _ema(state.ema_params[name], params[name],
                         ema_decay(state.step + 1))
        metrics[f'grad_norm_{ts.short_name(name)}'] = optax.tree.norm(
            g_grads[name])
      metrics.update(g_terms, l_g_total=l_g_total)
    if not sr_trained:
      sr = run_network(networks[main], state.params[main],
                       state.model_state[main], lr, False)[0]

    # Discriminators on the same (pre-update) fakes, as BasicSR does.
    fake = jax.lax.stop_gradient(sr)
    for i, name in enumerate(discs):
      suffix = '' if name == 'discriminator' else f'_{name}'
      reg_key = jax.random.fold_in(step_key, 100 + i)

      real_logits, real_vjp, real_ms = real_passes[name]

      def d_loss_fn(d_params, real_logits, name=name, reg_key=reg_key,
                    suffix=suffix, real_ms=real_ms):
        net = networks[name]
        fake_logits, ms = run_network(net, d_params, real_ms, fake, True)
        terms = {f'l_d{suffix}': phase.adversarial.d_loss(real_logits,
                                                         fake_logits)}
        critic = lambda x: run_network(net, d_params, ms, x, True)[0]
        for k, reg in enumerate(phase.regularisers):
          ctx = losses.RegulariserContext(
              critic=critic, real=real, fake=fake,
              key=jax.random.fold_in(reg_key, k))
          terms[f'l_d_{reg.regulariser.log_name}{suffix}'] = (
              reg.weight * reg.regulariser.fn(ctx))
        aux_out = dict(terms, **{f'out_d_real{suffix}': jnp.mean(real_logits),
                                 f'out_d_fake{suffix}': jnp.mean(fake_logits)})
        return sum(terms.values()), (aux_out, ms)

      (l_d_total, (d_aux, d_ms)), (d_grads, d_real) = jax.value_and_grad(
          d_loss_fn, argnums=(0, 1), has_aux=True)(state.params[name],
                                                   real_logits)
      d_grads = jax.tree.map(jnp.add, d_grads, real_vjp(d_real)[0])
      params[name], opt_state[name] = _update(phase, name, d_grads, state)
      model_state[name] = d_ms
      metrics.update(d_aux)
      metrics[f'l_d_total{suffix}'] = l_d_total
      metrics[f'grad_norm_{ts.short_name(name)}'] = optax.tree.norm(d_grads)

    new_state = state.replace(step=state.step + 1, params=params,
                              model_state=model_state, opt_state=opt_state,
                              ema_params=ema)
    return guard_finite(state, new_state, metrics,
                        [params[n] for n in phase.train], skip)

  return step


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
  tests/multidevice_check.py finds no all-gather of image-sized arrays.
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
