"""The HTTP and WebSocket layer: Quart-Trio routes served by Hypercorn's trio worker.

Where things live:

* ``app.py`` builds the app from :class:`AppParts` (what the service gives the routes) and
  holds the hooks every request passes through;
* one module per group of routes: ``health.py`` (health, readiness, the actor tree),
  ``ingest.py`` (events, batches, journey steps), ``insights.py`` (a visitor's insights and
  journey), ``realtime.py``, ``funnel.py``, ``reports.py`` (dashboard, revenue, performance,
  customers, the visitor list), ``lifecycle.py`` (erasure, dead letters), ``live.py`` (the
  WebSocket), ``openapi.py`` (``/openapi.json``), ``observe.py`` (request ids, access log,
  ``/metrics``);
* what they share: ``auth.py``, ``limits.py`` (rate limits), ``cors.py``, ``bodies.py``,
  ``responses.py``;
* ``server.py`` is the web actor (Hypercorn in the supervision tree); ``connection_limits.py``
  the limits on client connections; ``_hypercorn_fixes.py`` everything that reaches into
  Hypercorn's internals.
"""

from .app import AppParts, create_app, create_metrics_app
from .connection_limits import ConnectionLimits
from .server import WebServer

__all__ = ["AppParts", "ConnectionLimits", "WebServer", "create_app", "create_metrics_app"]
