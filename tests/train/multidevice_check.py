"""Run by tests/train/test_step.py with 4 faked CPU devices (XLA_FLAGS set by
the test).

Takes one PSNR step and one GAN step (RaGP, perceptual, FFT) on the same
batch with a 1-device mesh and a 4-device mesh, and checks that losses and
updated parameters agree; then that the 4-device GAN step's compiled HLO
has no all-gather of image-sized arrays (each device computes the
per-sample losses on its own shard), and that this check finds the gathers
XLA makes for a plain FFT loss; and that the spectral and focal frequency
losses (with FFL's batch-wide options) on 4 shards equal them on the whole
batch, values and gradients, without gathers.
"""
import importlib.util
import os
import re
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from sr_jax.train import recipe as recipe_lib
from sr_jax.train import state as ts
from sr_jax.train import warm_start
from sr_jax.train.setup import setup
from sr_jax.train.step import data_parallel_mesh

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def run_steps(vgg_path):
  """Returns compare(broken): one PSNR and one GAN step on 1 and 4 devices,
  compared. The jitted steps are built once and shared by both calls."""
  assert jax.device_count() == 4, jax.devices()
  spec = importlib.util.spec_from_file_location(
      'esrgan_fft', os.path.join(REPO, 'configs', 'esrgan_fft.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config('runlocal')
  config.batch_size = 8
  config.frozen.vgg19 = vgg_path
  recipe = recipe_lib.Recipe.from_config(config)
  aux, _ = warm_start.load_aux(recipe)
  psnr, gan = recipe.phases
  gt = config.data.gt_size
  hr = np.random.default_rng(0).integers(0, 256, (8, gt, gt, 3), np.uint8)
  # The trainer's setup on a 1-device and a 4-device mesh.
  pieces = {n: setup(recipe, data_parallel_mesh(jax.devices()[:n]), aux=aux)
            for n in (1, 4)}
  jitted = {n: (p.step(psnr), p.step(gan)) for n, p in pieces.items()}

  def gan_step_hlo():
    mesh = data_parallel_mesh(jax.devices())
    batch = {'hr': jax.device_put(hr, jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec('data')))}
    state = ts.start_phase(ts.init_train_state(recipe, jax.random.key(0)),
                           gan)
    return jitted[4][1].lower(state, batch,
                              pieces[4].aux).compile().as_text()

  def compare(broken):
    """broken=True simulates a sharding error on the 4-device mesh: every
    device sees the first device's shard (as if gradients were not reduced
    over the batch); the comparison must then fail."""
    results = {}
    for n in (1, 4):
      mesh = data_parallel_mesh(jax.devices()[:n])
      images = np.concatenate([hr[:2]] * 4) if broken and n == 4 else hr
      batch = {'hr': jax.device_put(images, jax.sharding.NamedSharding(
          mesh, jax.sharding.PartitionSpec('data')))}
      assert len(batch['hr'].addressable_shards) == n
      # A fresh (identical) initial state for each mesh: steps donate it.
      state0 = ts.init_train_state(recipe, jax.random.key(0))
      state, psnr_metrics = jitted[n][0](state0, batch, pieces[n].aux)
      state = ts.start_phase(state, gan)
      state = state.replace(step=state.step * 0 + gan.start)
      state, gan_metrics = jitted[n][1](state, batch, pieces[n].aux)
      results[n] = jax.device_get((psnr_metrics, gan_metrics, state))
    _compare(results)

  return compare, gan_step_hlo, hr


def gathers(hlo: str, min_elements: int) -> list[str]:
  """The all-gathers of `hlo` with an operand of >= min_elements."""
  found = []
  for line in hlo.splitlines():
    if not re.search(r' all-gather(-start)?\(', line):
      continue
    shapes = re.findall(r'\w+\[([\d,]+)\]', line.split(' all-gather')[0])
    sizes = [int(np.prod([int(d) for d in shape.split(',')]))
             for shape in shapes]
    if sizes and max(sizes) >= min_elements:
      found.append(line.strip()[:200])
  return found


def check_no_batch_gathers(gan_step_hlo, hr):
  """No image-sized all-gather in the 4-device GAN step; the same check
  fires on a plain FFT loss, which XLA computes on the gathered batch."""
  one_image = int(np.prod(hr.shape[1:]))
  t0 = time.perf_counter()
  hlo = gan_step_hlo()
  print(f'HLO of the 4-device GAN step in {time.perf_counter() - t0:.1f} s')
  big = gathers(hlo, one_image // 3)
  assert not big, '\n'.join(big)
  print('no image-sized all-gather in the 4-device GAN step')
  sharding = jax.sharding.NamedSharding(
      data_parallel_mesh(jax.devices()), jax.sharding.PartitionSpec('data'))
  images = jax.device_put(hr.astype(np.float32), sharding)
  plain = jax.jit(jax.grad(lambda a, b: jnp.mean(jnp.abs(
      jnp.fft.fft2(a - b, axes=(1, 2))))), in_shardings=(sharding, sharding))
  assert gathers(plain.lower(images, images).compile().as_text(),
                 one_image // 3), 'no gather found where XLA makes one'
  print('the check finds the gathers of a plain FFT loss')


def check_frequency_losses_on_shards(hr):
  """FFT, spectral and focal frequency (ave_spectrum, batch_matrix) losses
  on 4 shards equal them on the whole batch, values and gradients."""
  from sr_jax import losses  # pylint: disable=g-import-not-at-top
  mesh = data_parallel_mesh(jax.devices())
  sharding = jax.sharding.NamedSharding(mesh,
                                        jax.sharding.PartitionSpec('data'))
  rng = np.random.default_rng(1)
  pred = rng.random(hr.shape, np.float32)
  target = hr.astype(np.float32) / 255.0

  def total(p, t):
    return (losses.fft_loss(p, t, norm='l1')
            + losses.fft_loss(p, t, norm='amplitude_phase')
            + losses.spectral_loss(p, t)
            + losses.focal_frequency_loss(p, t, ave_spectrum=True,
                                          batch_matrix=True))

  def on_mesh(p, t):
    with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
      return jax.value_and_grad(total)(p, t)

  value, grad = jax.jit(jax.value_and_grad(total))(pred, target)
  sharded = jax.jit(on_mesh, in_shardings=(sharding, sharding))
  args = (jax.device_put(pred, sharding), jax.device_put(target, sharding))
  value4, grad4 = sharded(*args)
  np.testing.assert_allclose(float(value4), float(value), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(grad4), np.asarray(grad), rtol=1e-4,
                             atol=1e-4 * float(np.max(np.abs(grad))))
  one_image = int(np.prod(hr.shape[1:]))
  assert not gathers(sharded.lower(*args).compile().as_text(),
                     one_image // 3)
  print('frequency losses on 4 shards equal the whole batch')


def _compare(results):
  (p1, g1, s1), (p4, g4, s4) = results[1], results[4]
  for name in list(p1) + list(g1):
    a = p1.get(name, g1.get(name))
    b = p4.get(name, g4.get(name))
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-5, err_msg=name)
    print(f'{name}: 1 device {float(a):.6g}, 4 devices {float(b):.6g}')
  # Gradients: Adam's first moments are 0.1 g (+ 0.09 g' for G's two steps).
  # (Parameters after an Adam step are not compared: its first update is
  # lr * g / (|g| + eps), which turns rounding in near-zero gradients into
  # differences of order lr.)
  # The tolerance is on the scale of the whole field (e.g. all of D's Adam
  # moments), not of each leaf: a one-element leaf whose exact value is 0
  # comes out 6e-9 on one mesh and 0.0 on the other, which a per-leaf
  # relative tolerance would call a failure.
  fields = {f'opt_state/{n}': (s1.opt_state[n], s4.opt_state[n])
            for n in s1.opt_state}
  fields.update({f'model_state/{n}': (s1.model_state[n], s4.model_state[n])
                 for n in s1.model_state if s1.model_state[n]})
  for field, (t1, t4) in fields.items():
    leaves1 = [np.asarray(x, np.float64) for x in jax.tree.leaves(t1)]
    leaves4 = [np.asarray(x, np.float64) for x in jax.tree.leaves(t4)]
    scale = max(float(np.max(np.abs(x))) for x in leaves1 if x.size)
    for x, y in zip(leaves1, leaves4):
      np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-4 * scale,
                                 err_msg=field)



def main(vgg_path):
  t0 = time.perf_counter()
  compare, gan_step_hlo, hr = run_steps(vgg_path)
  compare(broken=False)
  print(f'first comparison in {time.perf_counter() - t0:.1f} s')
  print('devices=4 same as devices=1')
  try:
    compare(broken=True)
  except AssertionError as e:
    print(f'a sharding error is caught: {str(e).splitlines()[1]}')
  else:
    raise AssertionError('the comparison passed with a broken batch split')
  check_no_batch_gathers(gan_step_hlo, hr)
  check_frequency_losses_on_shards(hr)


if __name__ == '__main__':
  main(sys.argv[1])
