"""A whole sr_jax run learns as BasicSR's does (sr_jax.tools.run_parity).

The slow test trains configs/esrgan.py:runlocal's recipe (PSNR phase, GAN
phase from its EMA, a GAN phase with net_d_iters=2 / net_d_init_iters=10;
milestones inside each) with sr_jax's trainer and with the PyTorch
reference of BasicSR's models and loop, on the same initial weights and
batches (`python -m sr_jax.bench learn`), and holds every step's losses,
the final networks and the validation PSNR to the float32 drift of the
PyTorch run itself (its distance to a float64 run). The pieces are tested
with their modules: the JAX -> PyTorch weights, BasicSR's schedule and
net_d_iters (tests/tools/test_torch_reference.py), sr_jax's Adam bias
corrections (tests/optimizers/test_adam.py) and skipped-update schedules
(tests/train/test_step.py).
"""
import json

import numpy as np
import pytest

from sr_jax.tools import run_parity as rp  # noqa: E402  (needs torch)
from tests.helpers.repo import run_python


# One torch thread: tests/conftest.py's one_torch_thread.
pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.mark.slow
def test_whole_run_learns_as_basicsr_does(tmp_path):
  """560 steps (300 PSNR, 200 GAN, 60 GAN with net_d_iters=2) on both
  sides, ~100 s on 2 cores. run_parity's tolerances and what they were
  measured on (9 seeds; an EMA decay, RaGAN form, milestone or skipped-
  update schedule changed on one side fails): see its PHASE_FACTOR."""
  out = tmp_path / 'parity.json'
  done = run_python(['-m', 'sr_jax.tools.bench', 'learn',
                     f'--workdir={tmp_path / "run"}', f'--json_out={out}',
                     '--every=100'], timeout=1200)
  report = done.stdout[-6000:] + done.stderr[-3000:]
  assert done.returncode == 0, report
  result = rp.Result.from_json(json.loads(out.read_text()))
  assert [p[0] for p in result.phases] == ['psnr', 'gan', 'gan_d_iters']
  assert result.steps[-1] >= 500
  t = result.torch
  # What the run exercises: every MultiStepLR milestone (BasicSR's
  # learning rates, which sr_jax's logged ones equal: `check`) ...
  np.testing.assert_allclose(t['lr_g'][[149, 150, 250, 300, 400, 500, 530]],
                             [2e-4, 1e-4, 5e-5, 1e-4, 5e-5, 1e-4, 5e-5])
  # ... skipped G updates (net_d_iters=2 after 10 D-only iterations) ...
  skipped = np.isnan(t['l_g_gan'][500:])
  assert skipped[:10].all() and skipped[10::2].all()
  assert not skipped[11::2].any()
  # ... a perceptual term that matters and learning on both sides.
  assert np.nanmin(t['l_g_percep']) > 0.1
  assert t['l_g_pix'][299] < 0.6 * t['l_g_pix'][0]
  assert result.jax['l_g_pix'][299] < 0.6 * result.jax['l_g_pix'][0]
  problems = rp.check(result)
  assert not problems, '\n'.join(problems) + '\n\n' + report
