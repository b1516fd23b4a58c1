"""The callback interfaces, at the path that earlier documentation gave.

:class:`Callback`, :class:`CallbackList` and :class:`RunInfo` live in
:mod:`seqlm.interfaces` with the other interfaces; ``from seqlm.callbacks import
Callback`` keeps working.
"""

from seqlm.interfaces import Callback, CallbackList, RunInfo

__all__ = ["Callback", "CallbackList", "RunInfo"]
