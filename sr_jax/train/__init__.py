"""Training: `train_and_evaluate(config, workdir)` (in `loop`).

  config_lib  load configs (`path.py:variant`), overrides, defaults
  checks      every check on a config before anything is written
  state       the recipe (networks, phases, terms) and the TrainState
  pairs       training pairs (HR -> LR) made on the device
  step        one jitted step per phase, data-parallel over a mesh
  progress    the console progress line
  loop        the loop: log, evaluate, checkpoint, resume, preemption
"""
from sr_jax.train.loop import train_and_evaluate

__all__ = ['train_and_evaluate']
