"""Tests for experiments/bench/mesh.py: the HLO reading and the mesh specs
(the measurements themselves run in ``spectral-jax bench --mesh``)."""

import pytest

from experiments.bench import mesh as B

_HLO = """\
HloModule m

%body.1 (p: (s32[], f32[2,4])) -> (s32[], f32[2,4]) {
  %ar = f32[2,4]{1,0} all-reduce(f32[2,4]{1,0} %x), replica_groups={}
  ROOT %t = (s32[], f32[2,4]) tuple(%i, %ar)
}

ENTRY %main (a: f32[8,4]) -> f32[8,4] {
  %a2a = (f32[1,4]{1,0}, f32[1,4]{1,0}) all-to-all(%p, %q), dimensions={0}
  %ag = bf16[8,4]{1,0} all-gather(bf16[1,4]{1,0} %y), dimensions={0}
  %w = (s32[], f32[2,4]) while(%init), condition=%cond.1, body=%body.1
  ROOT %r = f32[8,4]{1,0} add(%b, %c)
}
"""


def test_hlo_collectives():
  out = B.hlo_collectives(_HLO)
  # all-to-all: two f32[1,4] results (32 B); all-gather bf16[8,4] (64 B);
  # all-reduce f32[2,4] (32 B), inside the while body.
  assert out["count"] == 3
  assert out["bytes"] == 32 + 64 + 32
  assert out["in_loop"] == ["all-reduce"]


def test_parse_mesh():
  assert B.parse_mesh("data=2,fsdp=4") == {"data": 2, "fsdp": 4}
  assert B.parse_mesh("fsdp=4,model=2") == {"fsdp": 4, "model": 2}
  for bad in ("pipe=2", "fsdp=0", "fsdp", "fsdp=x"):
    with pytest.raises(ValueError, match="--mesh"):
      B.parse_mesh(bad)
