"""Small but real GGUF files for the tests, written with gguf.GGUFWriter (tests/ is on sys.path via its conftest)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def write_gguf_file(path, tensors: dict, *, arch: str = "llama", meta: dict | None = None,
                    setup: Callable | None = None) -> str:
    """A GGUF file at `path`; returns the path as text.

    `meta`: key -> (GGUFWriter add_ kind, value), added first; `setup(writer)`: any other metadata;
    `tensors`: name -> a shape (zeros, fp16) or an array, in this order.
    """
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    for key, (kind, value) in (meta or {}).items():
        getattr(w, "add_" + kind)(key, value)
    if setup is not None:
        setup(w)
    for name, t in tensors.items():
        w.add_tensor(name, np.zeros(t, dtype=np.float16) if isinstance(t, tuple) else t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(path)
