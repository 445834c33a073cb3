"""``revivatech-actors bench``: a load generator that drives a running server.

``--mode single`` and ``--mode batch`` post events over keep-alive HTTP/1.1 connections and
report throughput and latency (``_load``); ``--mode ws`` measures how long events take to reach
WebSocket dashboards under ingest load (``_ws``). The modules:

* ``_payloads``: request bodies (synthetic events); ``_http``: the HTTP/1.1 client;
* ``_load``: the HTTP modes; ``_ws``: the WebSocket mode;
* ``_report``: latency summaries, figures and their printing; ``_errors``: ``BenchError``;
* ``_run``: the command (options, client processes, exit status).

Only the ``bench`` command loads this package, never ``serve``: it is a client of a running
server. Its dependencies are runtime dependencies, so a plain install runs every mode.
"""

from ._errors import BenchError
from ._http import Client, ProtocolError, Response, encode_request, read_response
from ._load import BenchConfig, run_load
from ._payloads import PAYLOADS, batch_body, event_json, single_body, tracker_event_json
from ._report import Figures, latency_summary, percentile
from ._run import add_arguments, main, run
from ._ws import WsBenchConfig, run_ws_bench

__all__ = [
    "PAYLOADS",
    "BenchConfig",
    "BenchError",
    "Client",
    "Figures",
    "ProtocolError",
    "Response",
    "WsBenchConfig",
    "add_arguments",
    "batch_body",
    "encode_request",
    "event_json",
    "latency_summary",
    "main",
    "percentile",
    "read_response",
    "run",
    "run_load",
    "run_ws_bench",
    "single_body",
    "tracker_event_json",
]
