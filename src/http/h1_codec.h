/* HTTP/1.1 codec (src/http/codec.h) over the strict parser in h1_parser.h, server and client mode.
 *
 * Server mode turns requests into streams (one active stream at a time: a pipelined request
 * waits in the input until the current response is complete; call feed() again then) and
 * encodes responses; client mode encodes requests and turns responses into events.
 *
 * Heads: header names are lower-cased and copied with the values into the stream's arena; the
 * request's Host becomes the head's authority (and is not in the header list); an absolute-form
 * target sets scheme, authority and path. Bodies: Content-Length and chunked both ways; a
 * response without Content-Length is sent chunked to HTTP/1.1 clients and until close to
 * HTTP/1.0 clients. Trailers travel with chunked bodies. An Upgrade request answered with 101
 * turns the connection into a tunnel: later bytes are body data both ways.
 *
 * Lifetime: a stream stays valid until both directions have ended (or it is reset) and control
 * has returned to the codec (the next feed(), or destroy()); the codec calls nothing for it after
 * its end.
 *
 * Errors: a malformed request gets a local 400/431/501/505 response with "connection: close" in
 * output() and feed() returns the parser's negative PL_H1_E_* code; the connection layer writes
 * output() and closes.
 */
#ifndef PL_HTTP_H1_CODEC_H
#define PL_HTTP_H1_CODEC_H

#include <stdbool.h>

#include "http/codec.h"
#include "http/h1_parser.h"

struct pl_h1_codec_opts {
    struct pl_h1_config limits; /* header size and count limits (431) */
    const char *server_name;    /* "server" header of local error responses; NULL for none */
};

/* Returns the defaults: Envoy's limits, no server name. */
struct pl_h1_codec_opts pl_h1_codec_opts_default(void);
/* Creates a codec; server: requests in and responses out, else the other way round. opts may be
 * NULL (defaults; the server name string must outlive the codec). Freed by vt->destroy. */
struct pl_codec *pl_h1_codec_new(bool server, const struct pl_h1_codec_opts *opts,
                                 const struct pl_codec_callbacks *cb, void *ctx);
/* True when the connection must close once output() is written: an error, "Connection: close"
 * either way, an HTTP/1.0 peer without keep-alive, a body delimited by close, or a goaway with
 * no stream left. No more streams start then. */
bool pl_h1_codec_closing(const struct pl_codec *c);
/* True when the codec may take a new stream now (client: idle and reusable; server: between
 * requests). */
bool pl_h1_codec_idle(const struct pl_codec *c);
/* Server: the HTTP status of the local error response the last feed() error wrote, else 0. */
int pl_h1_codec_error_status(const struct pl_codec *c);
/* Frees stream s now if it has ended (its head and arena), instead of at the next feed(): for a
 * user that is done with it, so an idle keep-alive connection holds no stream memory. Not from
 * inside feed() (it is then left for the next one). */
void pl_h1_codec_free_stream(struct pl_codec *c, struct pl_codec_stream *s);
/* True if c was made by pl_h1_codec_new. */
bool pl_codec_is_h1(const struct pl_codec *c);

#endif
