/* Strict, zero-copy, incremental HTTP/1.1 parser (RFC 9110/9112) for requests and responses.
 *
 * No I/O and no allocation. The parser has two phases per message:
 *
 * 1. Head (start line + header fields), picohttpparser style: the caller passes a buffer that
 *    starts at the first byte of the message. pl_h1_parse_head() returns PL_EAGAIN while the head
 *    is incomplete; the caller keeps those bytes (the prefix must not change), appends more and
 *    calls again with the buffer still starting at the head. Bytes already scanned are not
 *    rescanned, so feeding one byte at a time stays linear. On success it returns the head length
 *    and fills a struct pl_h1_msg whose slices point into the caller's buffer (valid while the
 *    caller keeps the buffer).
 * 2. Body: pl_h1_parse_body() decodes framing (Content-Length, chunked with extensions and
 *    trailers, until-close) and returns how many bytes it consumed, plus at most one payload slice
 *    per call; the caller drops consumed bytes, keeps the rest and calls again. A trailer section
 *    is handled like a head: the parser consumes nothing (returns 0) until the whole section is
 *    in the buffer. When out->done is set the parser is ready for the next (pipelined) message,
 *    which starts right after the consumed bytes.
 *
 * Errors are negative PL_H1_E_* codes (distinct per reason); pl_h1_error_status() maps each to the
 * HTTP status to answer with (400, 431, 501, 505). After an error the parser must be reset.
 *
 * Choices: identical duplicate Content-Length values (separate fields or a "5, 5" list) are merged;
 * differing ones are rejected as Envoy does. Leading empty lines before a request line are skipped
 * (RFC 9112 2.2). A request with any transfer-coding other than a single final "chunked" gets 501
 * (Envoy only supports chunked); a response whose final coding is not chunked is read until close.
 * Content-Length together with Transfer-Encoding is rejected in requests and responses.
 * Header bytes counted against max_header_bytes include the start line.
 */
#ifndef PL_HTTP_H1_PARSER_H
#define PL_HTTP_H1_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

enum {
    PL_H1_E_BARE_LF = -100,        /* LF not preceded by CR */
    PL_H1_E_BARE_CR = -101,        /* CR not followed by LF */
    PL_H1_E_OBS_FOLD = -102,       /* header line starting with SP/HTAB */
    PL_H1_E_HEADER_NAME = -103,    /* empty name or invalid token char in a field name */
    PL_H1_E_HEADER_NAME_WS = -104, /* whitespace between field name and colon */
    PL_H1_E_HEADER_NO_COLON = -105,
    PL_H1_E_HEADER_VALUE = -106,        /* control char (other than HTAB) in a field value */
    PL_H1_E_METHOD = -107,              /* empty method or invalid token char */
    PL_H1_E_TARGET = -108,              /* empty request-target or SP/CTL in it */
    PL_H1_E_REQUEST_LINE = -109,        /* structure of the request line */
    PL_H1_E_VERSION = -110,             /* malformed HTTP-version */
    PL_H1_E_VERSION_UNSUPPORTED = -111, /* well-formed but not HTTP/1.x (505) */
    PL_H1_E_STATUS_LINE = -112,
    PL_H1_E_HEADERS_TOO_LARGE = -113, /* 431 */
    PL_H1_E_TOO_MANY_HEADERS = -114,  /* 431 */
    PL_H1_E_CL_AND_TE = -115,         /* both Content-Length and Transfer-Encoding */
    PL_H1_E_CL_INVALID = -116,        /* non-digit or overflowing Content-Length */
    PL_H1_E_CL_CONFLICT = -117,       /* differing Content-Length values */
    PL_H1_E_TE_CHUNKED_NOT_LAST = -118,
    PL_H1_E_TE_CHUNKED_TWICE = -119,
    PL_H1_E_TE_UNSUPPORTED = -120, /* unknown transfer-coding in a request (501) */
    PL_H1_E_TE_INVALID = -121,     /* empty or malformed transfer-coding list */
    PL_H1_E_TE_HTTP10 = -122,      /* Transfer-Encoding in an HTTP/1.0 message */
    PL_H1_E_CHUNK_SIZE = -123,     /* missing or non-hex chunk size */
    PL_H1_E_CHUNK_SIZE_OVERFLOW = -124,
    PL_H1_E_CHUNK_EXT = -125,  /* malformed or too long chunk extension */
    PL_H1_E_CHUNK_DATA = -126, /* chunk data not followed by CRLF */
    PL_H1_E_TRUNCATED = -127,  /* connection closed in the middle of a message */
    PL_H1_E_STATE = -128,      /* API misuse: call not valid in the parser's state */
};

/* Limits; pl_h1_config_default() gives Envoy's defaults. */
struct pl_h1_config {
    size_t max_header_bytes; /* head (and trailer section) size limit -> 431; default 60 KiB */
    size_t max_headers;      /* header (and trailer) field count limit -> 431; default 100 */
};

/* A (name, value) slice pair pointing into the caller's buffer; value is trimmed of OWS. */
struct pl_h1_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

enum pl_h1_kind {
    PL_H1_REQUEST,
    PL_H1_RESPONSE,
};

enum pl_h1_body_kind {
    PL_H1_BODY_NONE,        /* no body follows the head */
    PL_H1_BODY_LENGTH,      /* content_length bytes follow */
    PL_H1_BODY_CHUNKED,     /* chunked transfer coding */
    PL_H1_BODY_UNTIL_CLOSE, /* response body ends when the connection closes */
};

/* One parsed head. The caller sets headers/headers_cap; everything else is output. */
struct pl_h1_msg {
    struct pl_h1_header *headers; /* in: array for the fields */
    size_t headers_cap;           /* in: its capacity (more fields than this -> 431) */
    size_t num_headers;

    const char *method; /* requests */
    size_t method_len;
    const char *target;
    size_t target_len;
    int status; /* responses */
    const char *reason;
    size_t reason_len;
    int version_minor; /* 0 or 1 */

    enum pl_h1_body_kind body;
    uint64_t content_length; /* when body == PL_H1_BODY_LENGTH */
    bool keep_alive;         /* connection persists after this message (version + Connection) */
    bool expect_continue;    /* request with Expect: 100-continue */
    bool upgrade;            /* Upgrade requested (Connection: upgrade) or 101 response */
    bool connect;            /* CONNECT request, or 2xx response to CONNECT: bytes are a tunnel */
};

/* Decoder output of pl_h1_parse_body. The caller sets trailers/trailers_cap (may be NULL/0:
 * trailers are then validated and dropped); the rest is output. */
struct pl_h1_body {
    struct pl_h1_header *trailers;
    size_t trailers_cap;
    size_t num_trailers;
    const char *data; /* payload slice inside the input buffer; may be empty */
    size_t len;
    bool done; /* the message is complete; the parser now expects the next head */
};

struct pl_h1_parser {
    struct pl_h1_config cfg;
    enum pl_h1_kind kind;
    int state;                  /* private */
    size_t scanned;             /* private: bytes of the current head/trailers already scanned */
    size_t line_start;          /* private: offset of the line being scanned */
    size_t skip;                /* private: leading empty lines skipped before a request line */
    uint64_t remaining;         /* private: bytes left in body or current chunk */
    size_t ext_len;             /* private: chunk-line length, bounded */
    int body_kind;              /* private */
    bool req_head, req_connect; /* set by pl_h1_parser_set_request for the next response */
};

/* Returns Envoy's defaults: 60 KiB of headers, 100 fields. */
struct pl_h1_config pl_h1_config_default(void);
/* Prepares a parser for a stream of requests or of responses; cfg NULL means defaults. */
void pl_h1_parser_init(struct pl_h1_parser *p, enum pl_h1_kind kind,
                       const struct pl_h1_config *cfg);
/* Response parsers: records the method of the request the next response answers (HEAD and
 * CONNECT change response framing). Call before parsing each response head. */
void pl_h1_parser_set_request(struct pl_h1_parser *p, const char *method, size_t len);
/* Parses a head from buf (which starts at the message): returns the head length (> 0) and fills
 * msg, PL_EAGAIN if more bytes are needed (keep buf's prefix, append, call again), or a negative
 * PL_H1_E_* code. Slices in msg point into buf. */
int pl_h1_parse_head(struct pl_h1_parser *p, const char *buf, size_t len, struct pl_h1_msg *msg);
/* Decodes body bytes: returns bytes consumed (>= 0) and one payload slice in out, or a negative
 * PL_H1_E_* code. Call again with the unconsumed rest (plus new bytes) until out->done. */
int pl_h1_parse_body(struct pl_h1_parser *p, const char *buf, size_t len, struct pl_h1_body *out);
/* Tells the parser the peer closed: returns 0 if that ends the message cleanly (until-close body,
 * or between messages with no partial head; buffered says how many unconsumed bytes remain),
 * else PL_H1_E_TRUNCATED. */
int pl_h1_parse_eof(struct pl_h1_parser *p, size_t buffered);
/* True when the parser is between messages (expects a head). */
bool pl_h1_parser_at_head(const struct pl_h1_parser *p);
/* Returns the HTTP status to answer a PL_H1_E_* error with (400, 431, 501 or 505). */
int pl_h1_error_status(int err);
/* Returns a static description of a PL_H1_E_* code (or of a PL_E* code). */
const char *pl_h1_strerror(int err);

/* Returns the index of the first header at or after start whose name equals name
 * (case-insensitive), or -1. */
int pl_h1_header_find(const struct pl_h1_header *h, size_t n, size_t start, const char *name);
/* True if the comma-separated list value contains token (case-insensitive, OWS trimmed). */
bool pl_h1_list_has_token(const char *value, size_t len, const char *token);

#endif
