"""Request bodies: reading one, and closing the connection after answering a body nobody read.

Hypercorn 0.18's trio worker can leave a keep-alive connection hung for good when an answer goes
out before the request's body was taken (a 405, 401, 413 or 415 to a request with a body, or a
GET that came with one): the client's next request on that connection is never answered. So an
answer to a request whose body the handler did not read says ``Connection: close``, and the
client's next request opens a new connection.
"""

from __future__ import annotations

from quart import Response, g, request

__all__ = ["close_if_body_unread", "read_body"]


async def read_body() -> bytes:
    """The request's whole body (not kept by Quart afterwards), noted as read.

    Raises:
        werkzeug.exceptions.RequestEntityTooLarge: the body is over ``MAX_CONTENT_LENGTH``.
    """
    # as_text and parse_form_data as by default: Quart types the answer as bytes only so
    body = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    g.body_read = True
    return body


def close_if_body_unread(response: Response) -> None:
    """Mark ``response`` ``Connection: close`` when the request declared a body that
    :func:`read_body` did not read."""
    if not g.get("body_read") and (
        request.content_length or "Transfer-Encoding" in request.headers
    ):
        response.headers["Connection"] = "close"
