"""Seeing rematerialisation in a program: JAX's remat primitive in a jaxpr,
and XLA's FLOP count with the recomputation kept on the CPU."""
import re

import jax

REMAT_PRIMITIVE = re.compile(r'\b(remat\w*|checkpoint)\[')


# XLA's CPU backend expands remat's optimisation barriers early, and its
# common-subexpression elimination then merges the recomputation back into
# the forward pass (GPU and TPU keep the barriers). Without CSE the
# rematerialised blocks really run twice on the CPU too, which is what these
# tests need to see.
KEEP_RECOMPUTATION = {'xla_disable_hlo_passes': 'cse'}


def has_remat(jaxpr) -> bool:
  return bool(REMAT_PRIMITIVE.search(str(jaxpr)))


def compile_keeping_recomputation(fn, *args):
  """(compiled fn, its XLA FLOP count)."""
  compiled = jax.jit(fn).lower(*args).compile(KEEP_RECOMPUTATION)
  return compiled, compiled.cost_analysis()['flops']
