"""Run by test_train.py with 4 faked CPU devices (XLA_FLAGS set by the test).

Takes one PSNR step and one GAN step (RaGP, perceptual, FFT) on the same
batch with a 1-device mesh and a 4-device mesh, and checks that losses and
updated parameters agree.
"""
import importlib.util
import os
import sys

import jax
import numpy as np

from sr_jax import models
from sr_jax import train_state as ts
from sr_jax import weights
from sr_jax.train_step import data_parallel_mesh
from sr_jax.train_step import jit_for_mesh
from sr_jax.train_step import make_train_steps

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(vgg_path):
  assert jax.device_count() == 4, jax.devices()
  spec = importlib.util.spec_from_file_location(
      'esrgan_fft', os.path.join(REPO, 'configs', 'esrgan_fft.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config('runlocal')
  config.batch_size = 8
  networks, optimizers = ts.build_networks(config), ts.build_optimizers(config)
  vgg = models.VGG19(layers=tuple(config.perceptual.layer_weights))
  vgg_variables = weights.load_vgg19_params(vgg_path)
  steps = make_train_steps(config, networks, optimizers, vgg)
  gt = config.data.gt_size
  hr = np.random.default_rng(0).integers(0, 256, (8, gt, gt, 3), np.uint8)

  results = {}
  for n in (1, 4):
    mesh = data_parallel_mesh(jax.devices()[:n])
    batch = {'hr': jax.device_put(hr, jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec('data')))}
    assert len(batch['hr'].addressable_shards) == n
    # A fresh (identical) initial state for each mesh: steps donate it.
    state0 = ts.init_train_state(config, networks, optimizers,
                                 jax.random.key(0))
    state, psnr_metrics = jit_for_mesh(steps.psnr, mesh)(
        state0, batch, vgg_variables)
    state = state.replace(step=state.step * 0 + config.psnr.steps)
    state, gan_metrics = jit_for_mesh(steps.gan, mesh)(
        state, batch, vgg_variables)
    results[n] = jax.device_get((psnr_metrics, gan_metrics, state))

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
  for field in ('g_opt_state', 'd_opt_state', 'd_batch_stats'):
    for x, y in zip(jax.tree.leaves(getattr(s1, field)),
                    jax.tree.leaves(getattr(s4, field))):
      x, y = np.asarray(x), np.asarray(y)
      atol = 1e-4 * float(np.max(np.abs(x))) if x.size else 0.0
      np.testing.assert_allclose(x, y, rtol=1e-3, atol=atol, err_msg=field)
  print('devices=4 same as devices=1')


if __name__ == '__main__':
  main(sys.argv[1])
