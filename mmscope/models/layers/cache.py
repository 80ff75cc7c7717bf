"""A value derived from parameters, kept until one of them changes."""
from typing import Any, Callable, Optional, Sequence

import torch


class DerivedCache:
    """The last value computed from some tensors (parameters, buffers), for eager inference.

    :meth:`get` returns the stored value while its key holds, else computes and stores a
    new one. The key is the caller's ``key`` plus the inference-mode state and, for every
    source tensor, its storage address and version counter: an optimizer step or another
    in-place operation on the tensor, ``load_state_dict`` (a copy into the tensor) and
    ``.to()`` / ``.half()`` (new storage) all invalidate it. Writes that bypass the version
    counter are not seen: through ``.data``, and a kernel's own update of a buffer (a
    train-mode BatchNorm's running statistics; :func:`~.conv.conv_bn` clears its cache
    there). The value is never stored while a gradient could flow into a source: then it
    is computed in the graph on every call.
    """

    def __init__(self):
        self._entry = None

    def clear(self) -> None:
        self._entry = None

    def get(self, sources: Sequence[Optional[torch.Tensor]], key: tuple,
            compute: Callable[[], Any]) -> Any:
        sources = [t for t in sources if t is not None]
        if torch.is_grad_enabled() and any(t.requires_grad for t in sources):
            self._entry = None
            return compute()
        key = tuple(key) + (torch.is_inference_mode_enabled(), ) + tuple(
            (t.data_ptr(), t._version) for t in sources)
        if self._entry is None or self._entry[0] != key:
            self._entry = (key, compute())
        return self._entry[1]


__all__ = ['DerivedCache']
