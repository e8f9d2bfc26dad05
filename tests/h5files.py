"""Comparison of two HDF5 files, shared by the tests of regenerated tables and of sweeps."""

import h5py
import numpy as np


def _same_attrs(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def assert_same_h5(a_path, b_path, rtol=0.0, last_bits=0.0, complete=False):
    """Same attributes, names and datasets. Floats equal bit for bit, or to rtol, or to last_bits
    times the dataset's largest entry (rounding of the linear-algebra library that made a file);
    complete: no float dataset may hold a NaN (a row never written)."""
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        _same_attrs(a.attrs, b.attrs)
        names_a, names_b = [], []
        a.visit(names_a.append)
        b.visit(names_b.append)
        assert sorted(names_a) == sorted(names_b)
        for name in names_a:
            if isinstance(a[name], h5py.Dataset):
                x, y = a[name][()], b[name][()]
                floats = x.dtype.kind == "f"
                assert not (complete and floats and np.isnan(x).any()), name
                if floats and (rtol or last_bits):
                    atol = max(1e-300, last_bits * np.abs(x).max())
                    np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=name)
                else:
                    np.testing.assert_array_equal(x, y, err_msg=name)
                _same_attrs(a[name].attrs, b[name].attrs)
