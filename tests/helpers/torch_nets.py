"""PyTorch networks written from the published architectures (BasicSR's
RRDBNet, Real-ESRGAN's SRVGGNetCompact) and the comparison helpers of the
converter tests."""
import jax
import jax.numpy as jnp
import numpy as np
import torch

from sr_jax.tools import torch_reference  # noqa: E402  (needs torch)

tnn = torch.nn


F = torch.nn.functional


def rel_err(ours, ref) -> float:
  ours, ref = np.asarray(ours), np.asarray(ref)
  assert ours.shape == ref.shape, (ours.shape, ref.shape)
  return float(np.abs(ours - ref).max() / np.abs(ref).max())


def to_nhwc(t):
  return jnp.asarray(t.detach().numpy().transpose(0, 2, 3, 1))


def rand_image(n, c, h, w, seed=0):
  return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def TorchRRDBNet(scale, nf=8, nb=2, gc=4, nin=3, nout=3):
  net = torch_reference.RRDBNet(nin, nout, scale, nf, nb, gc)
  # PyTorch's default init everywhere: BasicSR's 0.1-scaled dense blocks
  # would hide an error inside them behind the 0.2-scaled residuals.
  for m in net.modules():
    if isinstance(m, tnn.Conv2d):
      m.reset_parameters()
  return net


def randomise_bn(module):
  for m in module.modules():
    if isinstance(m, tnn.BatchNorm2d):
      m.running_mean.normal_(0, 0.5)
      m.running_var.uniform_(0.5, 2.0)
      m.weight.data.uniform_(0.5, 1.5)
      m.bias.data.normal_(0, 0.1)
  return module.eval()


class TorchSRVGG(tnn.Module):
  """Real-ESRGAN's SRVGGNetCompact: one `body` ModuleList."""

  def __init__(self, nin=3, nout=3, nf=8, nc=2, upscale=4, act='prelu'):
    super().__init__()
    self.upscale = upscale

    def activation():
      return {'prelu': lambda: tnn.PReLU(num_parameters=nf),
              'relu': lambda: tnn.ReLU(inplace=True),
              'lrelu': lambda: tnn.LeakyReLU(0.1, inplace=True)}[act]()

    self.body = tnn.ModuleList([tnn.Conv2d(nin, nf, 3, 1, 1), activation()])
    for _ in range(nc):
      self.body.append(tnn.Conv2d(nf, nf, 3, 1, 1))
      self.body.append(activation())
    self.body.append(tnn.Conv2d(nf, nout * upscale * upscale, 3, 1, 1))
    self.upsampler = tnn.PixelShuffle(upscale)
    for m in self.body:  # Slopes away from 0.25, so they must be converted.
      if isinstance(m, tnn.PReLU):
        m.weight.data.uniform_(-0.5, 0.5)

  def forward(self, x):
    out = x
    for layer in self.body:
      out = layer(out)
    out = self.upsampler(out)
    return out + F.interpolate(x, scale_factor=self.upscale, mode='nearest')


def run_ref(ref, x):
  with torch.no_grad():
    return to_nhwc(ref(x))


def kernel_leaves(variables):
  return jax.tree_util.tree_flatten_with_path(variables)[0]


def assert_same_variables(a, b):
  leaves_a, leaves_b = kernel_leaves(a), kernel_leaves(b)
  assert [p for p, _ in leaves_a] == [p for p, _ in leaves_b]
  for (path, x), (_, y) in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))
