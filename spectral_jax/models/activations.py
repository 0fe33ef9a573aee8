"""Pointwise activations shared by the random-feature, MLP and GPT models.

The paper's stable-rank bounds depend on the activation (arXiv:2512.04299,
§2, Lemma 2.4 and Figure 12):
non-centred ones (ReLU, |t|, ReLU², GELU, SiLU, sigmoid) give post-activations
of O(1) stable rank; centred ones (tanh) and gated ones (SwiGLU) do not.

References:
  Davis & Drusvyatskiy, *When do spectral gradient updates help in deep
  learning?*, arXiv:2512.04299, §2.
"""

from typing import Callable

import jax
import jax.numpy as jnp


def relu2(x: jax.Array) -> jax.Array:
  """ReLU², max(0, t)², the activation of the paper's MLP and modded-nanogpt."""
  return jnp.square(jax.nn.relu(x))


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "relu2": relu2,
    "abs": jnp.abs,
    # Exact erf GELU, t·Φ(t), the form analysed in the paper's Figure 12.
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "silu": jax.nn.silu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
}


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
  """Returns the activation function called ``name``.

  Args:
    name: one of ``ACTIVATIONS`` ('relu', 'relu2', 'abs', 'gelu', 'silu',
      'tanh', 'sigmoid').

  Returns:
    The pointwise function.
  """
  try:
    return ACTIVATIONS[name]
  except (KeyError, TypeError):
    raise ValueError(
        f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}."
    ) from None
