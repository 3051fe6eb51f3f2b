/* What Pillion implements of Envoy's API: every field set in a config is checked against this. */
#ifndef PL_CONFIG_SUPPORT_H
#define PL_CONFIG_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>

/* How a field set in a resource is treated. */
enum pl_support {
    PL_SUPPORT_YES,   /* implemented */
    PL_SUPPORT_INERT, /* changes no behaviour (metadata, descriptions): accepted, counted */
    PL_SUPPORT_NO,    /* asks for behaviour Pillion does not implement: rejected by name */
};

/* Returns how field `field` (proto name) of message `message` (full name) is treated. */
enum pl_support pl_support_field(const char *message, const char *field);

/* A field by message (full name) and field (proto name). */
struct pl_support_ref {
    const char *msg, *field;
};
/* Sets usable[i] for each of the n fields: whether it is implemented (PL_SUPPORT_YES). */
void pl_support_usable(const struct pl_support_ref *fields, size_t n, bool *usable);

/* Extension points where an Any names an implementation (Envoy's typed_config). */
enum pl_ext_point {
    PL_EXT_NETWORK_FILTER,   /* Listener.filter_chains[].filters[] */
    PL_EXT_HTTP_FILTER,      /* HttpConnectionManager.http_filters[] */
    PL_EXT_TRANSPORT_SOCKET, /* FilterChain / Cluster transport_socket */
    PL_EXT_ACCESS_LOG,       /* access_log[] */
    PL_EXT_PROTOCOL_OPTIONS, /* Cluster.typed_extension_protocol_options values */
    PL_EXT_LISTENER_FILTER,  /* Listener.listener_filters[] */
};

/* Returns true if type_url names an extension Pillion implements at point p. */
bool pl_support_extension(enum pl_ext_point p, const char *type_url);
/* Returns the comma-separated list of implemented type names at point p (for error messages). */
const char *pl_support_extension_list(enum pl_ext_point p);

#endif
