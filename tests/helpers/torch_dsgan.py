"""DSGAN's high-pass filter in PyTorch, and the layout conversions."""
import numpy as np
import torch

nn = torch.nn


def torch_high_pass(x, k=5):
  low = nn.functional.avg_pool2d(x, k, 1, k // 2, count_include_pad=False)
  return 0.5 + 0.5 * (x - low)


def _nchw(x):
  return torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())


def _nhwc(t):
  return t.detach().numpy().transpose(0, 2, 3, 1)
