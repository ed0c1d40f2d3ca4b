"""unique_indices is np.unique for page-index arrays (by sorting: numpy 2.4's
np.unique hashes, ~60x slower on these), whatever order and repeats come in."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from protocol.guest.ramcache import unique_indices


@given(arrays(np.int64, st.integers(0, 300), elements=st.integers(0, 2**20)))
def test_it_is_np_unique(idx):
    got = unique_indices(idx)
    want = np.unique(idx)
    assert got.dtype == want.dtype and np.array_equal(got, want)
