/* Helpers shared by the router unit tests: compile a YAML RouteConfiguration, build requests. */
#ifndef PL_TEST_RT_UTIL_H
#define PL_TEST_RT_UTIL_H

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config/pbjson.h"
#include "router/router.h"

#define RC_DESC (&envoy__config__route__v3__route_configuration__descriptor)

/* Compiles yaml; returns the code and (when rc != 0) the joined errors in *msgs. */
static inline int rt_try(const char *yaml, struct pl_route_table **t, char **msgs)
{
    struct pl_err e = PL_ERR_INIT;
    ProtobufCMessage *m = NULL;
    int rc = pl_pbjson_load_text(yaml, strlen(yaml), "t.yaml", RC_DESC, NULL, &m, NULL, &e);
    if (rc == 0) {
        rc = pl_router_compile((const Envoy__Config__Route__V3__RouteConfiguration *)m,
                               "route_config", t, &e);
        protobuf_c_message_free_unpacked(m, NULL);
    } else {
        *t = NULL;
    }
    *msgs = pl_err_join(&e);
    pl_err_free(&e);
    return rc;
}

static inline struct pl_route_table *rt_compile(const char *yaml)
{
    struct pl_route_table *t;
    char *msgs;
    int rc = rt_try(yaml, &t, &msgs);
    cr_assert_eq(rc, 0, "compile failed (%d): %s", rc, msgs);
    free(msgs);
    return t;
}

/* Expects compilation to fail with code and an error containing every needle (NULL-ended). */
static inline void rt_expect_err(const char *yaml, int code, ...)
{
    struct pl_route_table *t;
    char *msgs;
    int rc = rt_try(yaml, &t, &msgs);
    cr_assert_eq(rc, code, "expected %d, got %d: %s", code, rc, msgs);
    cr_assert_null(t);
    va_list ap;
    va_start(ap, code);
    for (const char *n; (n = va_arg(ap, const char *));)
        cr_assert(strstr(msgs, n), "'%s' not in: %s", n, msgs);
    va_end(ap);
    free(msgs);
}

struct rt_req {
    struct pl_http_head h;
    struct pl_arena a;
};

/* Builds a request; the variadic part is name, value pairs ending with NULL. */
static inline void rt_req_init(struct rt_req *r, const char *method, const char *authority,
                               const char *path, ...)
{
    memset(r, 0, sizeof(*r));
    r->h.method = method, r->h.method_len = method ? (uint32_t)strlen(method) : 0;
    r->h.authority = authority, r->h.authority_len = authority ? (uint32_t)strlen(authority) : 0;
    r->h.path = path, r->h.path_len = path ? (uint32_t)strlen(path) : 0;
    r->h.version = 11;
    r->h.content_length = -1;
    va_list ap;
    va_start(ap, path);
    for (const char *n; (n = va_arg(ap, const char *));) {
        const char *v = va_arg(ap, const char *);
        pl_headers_add_copy(&r->h.headers, &r->a, n, strlen(n), v, strlen(v));
    }
    va_end(ap);
}

static inline void rt_req_free(struct rt_req *r)
{
    pl_arena_free(&r->a);
}

/* Returns the value of the first header named name in h as a NUL-terminated arena copy. */
static inline const char *rt_hdr(struct rt_req *r, const struct pl_headers *h, const char *name)
{
    const struct pl_header *f = pl_headers_get(h, name, strlen(name));
    return f ? pl_arena_strndup(&r->a, f->value, f->value_len) : NULL;
}

static inline size_t rt_count(const struct pl_headers *h, const char *name)
{
    size_t n = 0;
    for (uint32_t i = 0; i < h->n; i++)
        if (h->v[i].name_len == strlen(name) && !memcmp(h->v[i].name, name, h->v[i].name_len))
            n++;
    return n;
}

/* Matches and returns the matched route's name ("" unnamed), or NULL when nothing matched. */
static inline const char *rt_route(const struct pl_route_table *t, struct rt_req *r)
{
    struct pl_route_ctx ctx = {.request = &r->h};
    struct pl_route_match m;
    if (pl_router_match(t, &r->h, &ctx, 0, &m) != 0)
        return NULL;
    return m.info->name;
}

/* One-shot: does a request (method GET) for authority+path reach the route named want? */
#define RT_EXPECT(t, authority, path, want, ...)                                                   \
    do {                                                                                           \
        struct rt_req r_;                                                                          \
        rt_req_init(&r_, "GET", authority, path, ##__VA_ARGS__, NULL);                             \
        const char *got_ = rt_route(t, &r_);                                                       \
        if ((want) == NULL)                                                                        \
            cr_assert_null(got_, "%s %s: expected no match, got '%s'", authority, path, got_);     \
        else                                                                                       \
            cr_assert(got_ && !strcmp(got_, (want) ? (want) : ""),                                 \
                      "%s %s: expected '%s', got '%s'", authority, path, (want),                   \
                      got_ ? got_ : "(none)");                                                     \
        rt_req_free(&r_);                                                                          \
    } while (0)

#endif
