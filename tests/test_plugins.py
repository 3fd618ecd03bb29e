"""One file plus one registration per idea, proven end to end.

A copy of the package gets a made-up generator, loss term, discriminator
regulariser and validation metric, each as one new file plus one import /
register line, and `python -m sr_jax.main` trains a `:runlocal` config
that uses all four. Nothing else (trainer, step, bench, CLIs) is edited.
"""
import os
import shutil
import textwrap

import pytest

from tests.helpers.repo import REPO
from tests.helpers.repo import run_python

NEW_FILES = {
    'sr_jax/models/tiny_upsampler.py': '''
        """A made-up generator: one conv to scale^2 * 3 maps, pixel shuffle."""
        from typing import Any
        import flax.linen as nn
        import jax.numpy as jnp
        from sr_jax.models import layers


        class TinyUpsampler(nn.Module):
          TINY_KWARGS = dict(num_feat=6)
          scale: int = 4
          num_feat: int = 16
          dtype: Any = jnp.float32

          @nn.compact
          def __call__(self, x, train=False):
            x = layers.leaky_relu(layers.Conv(self.num_feat, 3)(x))
            x = layers.Conv(3 * self.scale ** 2, 3)(x)
            return layers.pixel_shuffle(x, self.scale).astype(jnp.float32)
        ''',
    'sr_jax/losses/edge_l1.py': '''
        """A made-up term: L1 between Laplacians of sr and target."""
        import jax.numpy as jnp
        from sr_jax.losses import terms


        def laplacian(x):
          return (x[:, 1:-1, 2:] + x[:, 1:-1, :-2] + x[:, 2:, 1:-1]
                  + x[:, :-2, 1:-1] - 4 * x[:, 1:-1, 1:-1])


        @terms.register('edge_l1')
        def make(options, dtype):
          return terms.LossTerm(
              lambda ctx: jnp.mean(jnp.abs(laplacian(ctx.sr)
                                           - laplacian(ctx.target))),
              log_name='edge')
        ''',
    'sr_jax/losses/logit_l2.py': '''
        """A made-up regulariser: keeps real logits near 0."""
        import jax.numpy as jnp
        from sr_jax.losses import regularisers


        @regularisers.register('logit_l2')
        def make(options):
          return regularisers.Regulariser(
              lambda ctx: jnp.mean(jnp.square(ctx.critic(ctx.real))),
              log_name='logit_l2', per_sample=False)
        ''',
    'sr_jax/metrics/mae.py': '''
        """A made-up metric: mean absolute error in 8-bit levels."""
        import numpy as np
        from sr_jax.metrics import registry


        @registry.register('mae', higher_is_better=False)
        def mae(sr, hr, crop_border):
          c = crop_border
          a, b = (np.asarray(x, np.float64)[c:-c or None, c:-c or None]
                  for x in (sr, hr))
          return float(np.mean(np.abs(a - b)))
        ''',
    'configs/plugin.py': '''
        from sr_jax.train import config_lib


        def get_config(arg=None):
          c = config_lib.base_config()
          c.generator.name = 'tiny_upsampler'
          c.generator.kwargs = dict(num_feat=16)
          c.discriminator.kwargs = dict(num_feat=64, use_bn=False)
          c.gan.losses = {'pixel': dict(weight=1.0),
                          'edge_l1': dict(weight=0.5),
                          'adversarial': dict(weight=1e-3)}
          c.gan.regularisers = {'logit_l2': dict(weight=0.1)}
          c.evals.val.metrics = ('psnr', 'mae')
          c.best_metric = 'val/mae'
          return config_lib.apply_variant(c, arg)
        ''',
}
REGISTRATIONS = {
    'sr_jax/models/__init__.py': (
        'from sr_jax.models.tiny_upsampler import TinyUpsampler\n'
        "GENERATORS.register('tiny_upsampler')(TinyUpsampler)\n"),
    'sr_jax/losses/__init__.py': 'from sr_jax.losses import edge_l1\n'
                                 'from sr_jax.losses import logit_l2\n',
    'sr_jax/metrics/__init__.py': 'from sr_jax.metrics import mae\n',
}


@pytest.mark.slow
def test_made_up_components_train_through_main(tmp_path):
  root = tmp_path / 'repo'
  shutil.copytree(os.path.join(REPO, 'sr_jax'), root / 'sr_jax',
                  ignore=shutil.ignore_patterns('__pycache__'))
  shutil.copytree(os.path.join(REPO, 'configs'), root / 'configs',
                  ignore=shutil.ignore_patterns('__pycache__'))
  for path, text in NEW_FILES.items():
    (root / path).write_text(textwrap.dedent(text).lstrip())
  for path, line in REGISTRATIONS.items():
    with open(root / path, 'a') as f:
      f.write(line)
  env = {'PYTHONPATH': str(root)}
  result = run_python(
      ['-c', 'import sys, runpy; sys.path.insert(0, sys.argv.pop(1)); '
       "runpy.run_module('sr_jax.main', run_name='__main__')", str(root),
       '--config=configs/plugin.py:runlocal',
       f'--workdir={tmp_path / "run"}'],
      env_extra=env, cwd=str(root))
  out = result.stdout + result.stderr
  assert result.returncode == 0, out[-3000:]
  for needle in ('l_g_edge', 'l_d_logit_l2', 'l_g_pix', 'l_g_gan', 'MAE'):
    assert needle in out, (needle, out[-3000:])
  assert os.path.isdir(tmp_path / 'run' / 'best' / 'gan')
