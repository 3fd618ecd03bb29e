"""Training: `train_and_evaluate(config, workdir)` (in `loop`).

  config_lib  load configs (`path.py:variant`), overrides, defaults
  recipe      Recipe.from_config: the config parsed and checked once, and
              each subsystem's part of it
  checks      the checks across settings; what a resume may change
  state       the TrainState, its init and phase changes
  warm_start  frozen networks, generator.init_from, pretrained parts
  pairs       training pairs (HR -> LR) made on the device
  step        one jitted step per phase, data-parallel over a mesh
  setup       setup(recipe, mesh): frozen networks, state and steps on a
              mesh, for the loop, the bench and the tests
  preemption  signals, emergency saves, the finite guard
  progress    the console progress line
  loop        the loop: log, evaluate, checkpoint, resume
"""
from sr_jax.train.loop import train_and_evaluate

__all__ = ['train_and_evaluate']
