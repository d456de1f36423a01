"""Scale-out: ``Evaluate`` and compile jobs on a Ray cluster with the same results.

``dx.RayBackend(...)`` (needs ``pip install 'dspex-actors[ray]'``) is a backend
for ``Evaluate(backend=...)`` and ``system.compile(..., backend=...)``. Importing
this package does not import Ray; building a ``RayBackend`` does. Modules
(import downward only): ``_ship`` (what travels) < ``_worker`` (the Ray actor's
body) < ``_coordinator`` (the driver-side actor owning the workers) <
``_fanout`` (the stream) < ``_backend``. See docs/scale-out.md.
"""

from dspex_actors.distributed._backend import RayBackend
from dspex_actors.distributed._coordinator import WorkersGaveUp

__all__ = ["RayBackend", "WorkersGaveUp"]
