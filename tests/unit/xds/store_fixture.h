/* Shared by the xDS store tests: a client state with only what the store's check and update
 * use (x), from a bootstrap written in YAML, and the check of one encoded resource. */
#ifndef PL_TESTS_XDS_STORE_FIXTURE_H
#define PL_TESTS_XDS_STORE_FIXTURE_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config/pbjson.h"
#include "xds/client_internal.h"

static struct pl_xds x;
static pl_bootstrap_t *boot;

/* A message of type d written in YAML (protobuf_c_message_free_unpacked). */
static inline ProtobufCMessage *fixture_yaml(const ProtobufCMessageDescriptor *d, const char *text)
{
    ProtobufCMessage *m = NULL;
    struct pl_err err = PL_ERR_INIT;
    if (pl_pbjson_load_text(text, strlen(text), "test", d, NULL, &m, NULL, &err) < 0)
        cr_assert_fail("decode: %s", pl_err_join(&err));
    return m;
}

/* x with the bootstrap bootstrap_yaml, no resource accepted, every type subscribed as at start. */
static inline void fixture_setup(const char *bootstrap_yaml)
{
    memset(&x, 0, sizeof(x));
    boot = (pl_bootstrap_t *)fixture_yaml(&envoy__config__bootstrap__v3__bootstrap__descriptor,
                                          bootstrap_yaml);
    x.boot = boot;
    for (int t = 0; t < PL_XDS_NTYPES; t++) {
        pl_xds_sub_init(&x.sub[t], t);
        pl_xds_resmap_init(&x.acc[t]);
    }
}

static inline void fixture_teardown(void)
{
    for (int t = 0; t < PL_XDS_NTYPES; t++)
        pl_xds_sub_free(&x.sub[t]);
    pl_xds_store_free(&x);
    protobuf_c_message_free_unpacked(&boot->base, NULL);
}

/* The store's check of one encoded resource of type t: the joined errors ("" when valid;
 * caller frees). */
static inline char *fixture_check(enum pl_xds_type t, uint8_t *data, size_t len)
{
    Envoy__Service__Discovery__V3__DiscoveryResponse r =
        ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_RESPONSE__INIT;
    Google__Protobuf__Any a = GOOGLE__PROTOBUF__ANY__INIT, *ap = &a;
    r.type_url = (char *)pl_xds_type_url(t);
    r.version_info = "1";
    r.resources = &ap;
    r.n_resources = 1;
    a.type_url = r.type_url;
    a.value.data = data;
    a.value.len = len;
    struct pl_xds_update u;
    struct pl_err err = PL_ERR_INIT;
    pl_xds_store_check(&x, t, &r, &u, NULL, &err);
    char *msg = pl_err_join(&err);
    pl_err_free(&err);
    pl_xds_update_free(&u);
    return msg;
}

/* tmpl with its one "%s" replaced by ins, into out. */
static inline void fixture_subst(char *out, size_t cap, const char *tmpl, const char *ins)
{
    const char *at = strstr(tmpl, "%s");
    cr_assert(at && strlen(tmpl) + strlen(ins) < cap);
    size_t k = (size_t)(at - tmpl);
    memcpy(out, tmpl, k);
    strcpy(out + k, ins);
    strcat(out, at + 2);
}

#endif
