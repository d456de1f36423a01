"""The live dashboard (``system.serve_dashboard()``, ``dspex-actors dashboard``).

A page on 127.0.0.1 fed by the system's event bus: the supervision tree, LM
endpoints, programs in flight, services, compile jobs and Evaluate runs, and a
filterable stream of recent events. Needs the ``dashboard`` extra
(``pip install 'dspex-actors[dashboard]'``: Starlette and uvicorn). See
``docs/observability.md``.
"""

from dspex_actors.dashboard._server import Dashboard, serve

__all__ = ["Dashboard", "serve"]
