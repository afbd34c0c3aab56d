"""Hypothesis strategies for keyrack's domain values."""

from __future__ import annotations

from hypothesis import strategies as st

from keyrack.domain import keys
from keyrack.domain.base62 import ALPHABET
from keyrack.domain.permissions import Permission

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_part = st.builds(
    str.__add__, st.sampled_from(_LOWER), st.text(_LOWER + "0123456789", min_size=1, max_size=15)
)
prefixes = st.builds(
    lambda first, env: first if env is None else f"{first}_{env}", _part, st.none() | _part
).filter(lambda p: not p.startswith(keys.ROOT_PREFIX + "_") and p != keys.ROOT_PREFIX)
"""Every prefix a tenant may choose (``kr``, ``sk_live`` …), never the root prefix."""

entropies = st.binary(min_size=keys.RANDOM_BYTES, max_size=keys.RANDOM_BYTES)
"""The random bytes one key is made from."""

api_keys = st.builds(lambda p, e: keys.generate(p, entropy=e), prefixes, entropies)
"""Well-formed end-user keys."""

root_keys = st.builds(lambda e: keys.generate(keys.ROOT_PREFIX, entropy=e), entropies)
"""Well-formed root (management) keys."""

base62_chars = st.sampled_from(ALPHABET)

permission_sets = st.frozensets(st.sampled_from(list(Permission)))

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text(max_size=8)
)


def _nest(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return (
        json_scalars
        | st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=5), children, max_size=3)
    )


json_values = _nest(_nest(_nest(json_scalars)))
"""JSON values nested at most three levels, so any ``meta`` of them stays within bounds."""

meta_objects = st.dictionaries(st.text(max_size=5), json_values, max_size=4)
"""Small JSON objects as ``meta`` holds them."""
