"""Tests for spectral_jax.labels: spec trees for stacked params and NNX models."""


import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import spectral_jax
from spectral_jax import MuonDimensionNumbers as DN
from spectral_jax import labels


def test_reexports_optax_class():
  assert spectral_jax.MuonDimensionNumbers is optax.contrib.MuonDimensionNumbers


def test_stacked_dimension_numbers():
  params = {"w": jnp.ones((3, 4)), "stack": jnp.ones((5, 3, 4)),
            "deep": jnp.ones((2, 5, 3, 4)), "b": jnp.ones((4,)),
            "s": jnp.ones(()), "embed": {"table": jnp.ones((10, 3))}}
  spec = spectral_jax.stacked_dimension_numbers(params, exclude=("EMBED",))
  assert spec["w"] == DN(0, 1)
  assert spec["stack"] == DN(1, 2)
  assert spec["deep"] == DN(2, 3)
  assert spec["b"] is None and spec["s"] is None
  assert spec["embed"]["table"] is None  # excluded, case-insensitively
  # Works with shapes only (jax.eval_shape output).
  shapes = jax.eval_shape(lambda: params)
  assert spectral_jax.stacked_dimension_numbers(shapes)["stack"] == DN(1, 2)


def test_stacked_spec_makes_muon_orthogonalise_each_layer(rng):
  params = {"stack": jnp.asarray(rng.normal(size=(3, 6, 4)), jnp.float32)}
  spec = spectral_jax.stacked_dimension_numbers(params)
  tx = spectral_jax.muon(1.0, muon_weight_dimension_numbers=spec,
                         polar_method="svd")
  u, _ = tx.update(params, tx.init(params), params)
  for i in range(3):
    # −lr·polar(g_i) (fan_out < fan_in: no width factor); σ(polar) = 1.
    s = np.linalg.svd(np.asarray(u["stack"][i]), compute_uv=False)
    np.testing.assert_allclose(s, 1.0, atol=1e-5)


class _Block(nnx.Module):

  def __init__(self, rngs):
    self.fc = nnx.Linear(8, 16, rngs=rngs)
    self.norm = nnx.LayerNorm(16, rngs=rngs)


class _Net(nnx.Module):

  def __init__(self, rngs):
    self.embed = nnx.Embed(10, 8, rngs=rngs)
    self.conv = nnx.Conv(3, 8, kernel_size=(3, 3), rngs=rngs)

    @nnx.split_rngs(splits=2)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def make(rngs):
      return _Block(rngs)

    self.blocks = make(rngs)
    self.proj = nnx.Linear(16, 8, rngs=rngs)
    self.lm_head = nnx.Linear(16, 10, rngs=rngs)


@pytest.fixture(scope="module")
def net():
  return _Net(nnx.Rngs(0))


def test_nnx_dimension_numbers(net):
  model = net
  spec = spectral_jax.nnx_dimension_numbers(model)
  assert spec["proj"]["kernel"] == DN(0, 1)
  assert spec["blocks"]["fc"]["kernel"] == DN(1, 2)  # nnx.vmap-stacked
  assert spec["conv"]["kernel"] == DN((0, 1, 2), 3)
  for path in (("embed", "embedding"), ("lm_head", "kernel"),
               ("blocks", "fc", "bias"), ("blocks", "norm", "scale"),
               ("proj", "bias")):
    node = spec
    for key in path:
      node = node[key]
    assert node is None, path
  assert spectral_jax.nnx_dimension_numbers(
      model, conv="adam")["conv"]["kernel"] is None
  assert spectral_jax.nnx_dimension_numbers(
      model, conv="per_tap")["conv"]["kernel"] == DN(2, 3)
  # The spec fits what nnx.Optimizer hands to optax.
  state = nnx.as_pure(nnx.state(model, nnx.Param))
  labels.check_dimension_numbers(state, spec)
  # From a state (no module types): same answer for these shapes.
  from_state = spectral_jax.nnx_dimension_numbers(state)
  assert from_state["blocks"]["fc"]["kernel"] == DN(1, 2)
  assert from_state["conv"]["kernel"] == DN((0, 1, 2), 3)
  with pytest.raises(ValueError, match="conv"):
    spectral_jax.nnx_dimension_numbers(model, conv="tap")


def test_nnx_spec_trains_with_nnx_optimizer(rng, net):
  model = nnx.clone(net)
  spec = spectral_jax.nnx_dimension_numbers(model)
  opt = nnx.Optimizer(model, spectral_jax.muon(
      1e-2, muon_weight_dimension_numbers=spec), wrt=nnx.Param)
  before = nnx.as_pure(nnx.state(model, nnx.Param))
  # Gradient-shaped State of Param variables, as nnx.grad returns.
  grads = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape),
                                             x.dtype),
                       nnx.state(model, nnx.Param))
  opt.update(model, grads)
  after = nnx.as_pure(nnx.state(model, nnx.Param))
  mu = opt.opt_state[0]["muon"][0][0][1]
  # nnx wraps state leaves in OptVariable; a MaskedNode then holds no array.
  assert [x.shape for x in jax.tree.leaves(mu["blocks"]["fc"]["kernel"])] == [
      (2, 8, 16)]
  assert not jax.tree.leaves(mu["lm_head"]["kernel"])
  # Each stacked layer's step is lr·polar-like: all σ of the update similar.
  step = np.asarray(after["blocks"]["fc"]["kernel"]
                    - before["blocks"]["fc"]["kernel"])
  assert step.shape == (2, 8, 16)
  s = np.linalg.svd(step[0], compute_uv=False)
  assert 0.3 < s.min() / s.max() <= 1.0


def test_describe_table():
  params = {"w": jnp.ones((3, 4)), "stack": jnp.ones((5, 3, 4)),
            "b": jnp.ones((4,))}
  spec = {"w": DN(), "stack": DN(1, 2), "b": None}
  table = spectral_jax.describe(params, spec)
  lines = table.splitlines()
  assert lines[0].split() == ["path", "shape", "optimizer", "batch", "fan_in",
                              "fan_out"]
  row = {line.split()[0]: line.split() for line in lines[2:]}
  assert row["stack"][-4:] == ["muon", "5", "3", "4"]
  assert row["b"][-1] == "adam"
  # Default rule (None): 2-D leaves are matrices, as muon's.
  default = spectral_jax.describe(params)
  assert "\nstack " in default and default.count("muon") == 1
  # Callable specs and prefix None are accepted.
  assert "adam" in spectral_jax.describe(
      {"a": {"x": jnp.ones((2, 2))}}, lambda p: {"a": None})


@pytest.mark.parametrize("spec, match", [
    ({"w": DN(0, 2), "b": None}, "out of range"),
    ({"w": DN(0, 0), "b": None}, "disjoint"),
    ({"w": DN(), "b": DN()}, "rank"),
    ({"w": DN()}, "structure"),
])
def test_bad_specs_name_the_path(spec, match):
  params = {"w": jnp.ones((3, 4)), "b": jnp.ones((4,))}
  with pytest.raises(ValueError, match=match) as info:
    spectral_jax.describe(params, spec)
  if match != "structure":
    assert " at w" in str(info.value) or " at b" in str(info.value)
  with pytest.raises(ValueError):
    spectral_jax.muon(1e-2, muon_weight_dimension_numbers=spec).init(params)
