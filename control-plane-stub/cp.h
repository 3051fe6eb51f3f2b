/* pillion-cp: the reference xDS control plane. Shared declarations of its parts: the resource
 * set loaded from files (resources.c), a small string map (map.c), the ADS gRPC server
 * (ads.c, xds.c), the status document (status.c) and the file watcher (watch.c). */
#ifndef PL_CP_H
#define PL_CP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/tree.h"
#include "core/err.h"
#include "pl_proto_all.h"

typedef Envoy__Config__Core__V3__Node pl_cp_node_t;

/* Resource types in the order a push sends them: secrets and clusters before what uses them. */
enum pl_cp_type {
    PL_CP_SDS,
    PL_CP_CDS,
    PL_CP_EDS,
    PL_CP_LDS,
    PL_CP_RDS,
    PL_CP_NTYPES,
};

/* Envoy's type URL of t ("type.googleapis.com/envoy.config.cluster.v3.Cluster"). */
const char *pl_cp_type_url(int t);
/* Short lower-case name of t ("cds"), as used by the status endpoint. */
const char *pl_cp_type_name(int t);
/* The type for a type URL, or -1 when it is not one pillion-cp serves. */
int pl_cp_type_from_url(const char *url);

/* Current time in seconds since the epoch. */
double pl_cp_now(void);

/* FNV-1a 64 of len bytes, continuing from h (start with PL_CP_HASH_INIT). */
#define PL_CP_HASH_INIT 0xcbf29ce484222325ull
uint64_t pl_cp_hash(uint64_t h, const void *p, size_t len);

/* ---- string map (map.c): keys and values are copied; values may be NULL ---- */

struct pl_cp_map_ent {
    char *key;
    char *val;
    struct pl_cp_map_ent *next;
};

struct pl_cp_map {
    struct pl_cp_map_ent **b;
    size_t nb, n;
};

/* The entry for key, or NULL. */
struct pl_cp_map_ent *pl_cp_map_get(const struct pl_cp_map *m, const char *key);
/* Sets key to a copy of val (NULL allowed); returns the entry (owned by the map). */
struct pl_cp_map_ent *pl_cp_map_put(struct pl_cp_map *m, const char *key, const char *val);
/* Removes key; returns whether it was there. */
bool pl_cp_map_del(struct pl_cp_map *m, const char *key);
/* Frees every entry; the map is empty and reusable. */
void pl_cp_map_clear(struct pl_cp_map *m);
/* Calls fn for every entry; fn may delete its own entry, nothing else may change. */
void pl_cp_map_each(const struct pl_cp_map *m, void (*fn)(struct pl_cp_map_ent *e, void *ud),
                    void *ud);

/* ---- resource sets (resources.c) ---- */

/* Which nodes a file's resources are for: every given part must match. */
struct pl_cp_selector {
    char *id;      /* NULL: any */
    char *cluster; /* NULL: any */
    char **md_key; /* node.metadata[md_key[i]] must be the string (or bool/number) md_val[i] */
    char **md_val;
    size_t n_md;
    char *key; /* canonical text, to compare selectors */
};

/* One decoded resource: its name and its protobuf encoding as sent in a google.protobuf.Any.
 * Immutable once made; shared (reference counted) by every set that holds it unchanged, so a
 * reload keeps the bytes and the version of what did not change. */
struct pl_cp_item {
    unsigned long refs; /* atomic */
    int type;
    char *name;
    uint8_t *bytes;
    size_t len;
    char version[17];   /* hex of the hash of bytes: the Delta xDS resource version */
    uint64_t text_hash; /* of the source text it was decoded from (pl_cp_node_hash) */
};

/* One resource of a set. name, bytes, len and version are the item's. */
struct pl_cp_res {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    const char *version;
    struct pl_cp_item *item;
    const struct pl_cp_selector *sel; /* NULL: every node; owned by the set */
    const char *file;                 /* owned by the set */
    int line;
    unsigned order; /* position in load order, for override precedence */
};

/* A file as the load that made the set read it: lets the next load skip it when unchanged. */
struct pl_cp_file {
    char *path;
    uint64_t dev, ino, size;
    int64_t mtime_ns, ctime_ns;
    uint64_t hash;              /* of its bytes */
    struct pl_cp_selector *sel; /* NULL: every node */
    struct pl_cp_item **items;  /* its resources in file order (references held) */
    int *lines;
    size_t n;
};

/* What a load did, for logs and tests. */
struct pl_cp_load_stats {
    size_t files_read;   /* opened and hashed */
    size_t files_parsed; /* their text changed: parsed */
    size_t decoded;      /* resources decoded from text */
    size_t reused;       /* resources whose text was unchanged: encoding kept */
    bool full;           /* a check needed every resource decoded again */
};

/* An immutable set of resources from one load, with versions per type. */
struct pl_cp_set {
    struct pl_cp_res *res[PL_CP_NTYPES]; /* by name; per name scoped first, in load order */
    size_t n[PL_CP_NTYPES];
    uint64_t type_hash[PL_CP_NTYPES];
    unsigned long vnum[PL_CP_NTYPES];
    char version[PL_CP_NTYPES][24];
    unsigned long serial;     /* unique per set (process-wide), never 0 */
    struct pl_cp_file *files; /* in load (name) order */
    size_t n_files;
    struct pl_cp_load_stats stats;
};

/* Loads path (a YAML/JSON file, or a directory of *.yaml, *.yml and *.json) into a new set
 * owned by the caller (pl_cp_set_free). Every error found goes to err (file:line:col, path);
 * then nothing is returned. Versions are numbered from prev (NULL for the first load): a
 * type's version goes up by one when its resources differ from prev's. prev (the last good
 * set) is also a cache: a file whose bytes are prev's is not parsed again, a resource whose
 * text is unchanged keeps its encoding and is not checked again unless a name it may refer to
 * is gone. Every file is read (see pl_cp_set_reload to skip unchanged ones). */
int pl_cp_set_load(const char *path, const struct pl_cp_set *prev, struct pl_cp_set **out,
                   struct pl_err *err);
/* As pl_cp_set_load, but a file that is not in changed (names relative to path's directory, or
 * the file's base name) and whose stat (device, inode, size, mtime, ctime) is prev's is taken
 * over from prev without being read. changed NULL: every file is read. */
int pl_cp_set_reload(const char *path, const struct pl_cp_set *prev,
                     const struct pl_cp_map *changed, struct pl_cp_set **out, struct pl_err *err);
/* Frees a set; NULL is allowed. */
void pl_cp_set_free(struct pl_cp_set *s);
/* Drops a reference to an item (freed with the last). */
void pl_cp_item_unref(struct pl_cp_item *it);
/* Hash of a tree node's content (kinds, text, quoting, keys, order): equal hashes mean the
 * same decoded message. */
uint64_t pl_cp_node_hash(uint64_t h, const struct pl_node *n);

/* Parses a file's `node_selector:` (n may be NULL: *out NULL, every node); errors go to err. */
int pl_cp_selector_parse(const char *file, const struct pl_node *n, struct pl_cp_selector **out,
                         struct pl_err *err);
/* A deep copy of s (NULL for NULL). */
struct pl_cp_selector *pl_cp_selector_copy(const struct pl_cp_selector *s);
/* Frees s; NULL is allowed. */
void pl_cp_selector_free(struct pl_cp_selector *s);
/* Whether sel (NULL: every node) matches node (NULL: a node without identity). */
bool pl_cp_selector_match(const struct pl_cp_selector *sel, const pl_cp_node_t *node);
/* The resources of type t that node sees, at most one per name, in name order; fills out
 * (room for s->n[t] entries) and returns how many. */
size_t pl_cp_set_view(const struct pl_cp_set *s, int t, const pl_cp_node_t *node,
                      const struct pl_cp_res **out);
/* The resource of type t called name that node sees, or NULL. */
const struct pl_cp_res *pl_cp_set_find(const struct pl_cp_set *s, int t, const char *name,
                                       const pl_cp_node_t *node);

/* ---- the ADS server (ads.c) ---- */

struct pl_cp_server;

/* Where the ADS server listens: plaintext on addr (Istio's 15010) and, when tls_addr is set,
 * TLS on tls_addr (Istio's 15012) with the server certificate and key (PEM files), requiring
 * and verifying client certificates against client_ca when it is set (mTLS). */
struct pl_cp_listen {
    const char *addr;
    const char *tls_addr;
    const char *tls_cert, *tls_key, *tls_client_ca;
};

/* Starts the gRPC server on l's addresses with its completion-queue thread; set (may be NULL)
 * becomes owned by the server. *port (and *tls_port) get the bound ports. Free with
 * pl_cp_server_free. */
int pl_cp_server_new(const struct pl_cp_listen *l, struct pl_cp_set *set, struct pl_cp_server **out,
                     int *port, int *tls_port, struct pl_err *err);
/* Replaces the served set (the server takes ownership) and pushes changes to every stream. */
void pl_cp_server_set_resources(struct pl_cp_server *srv, struct pl_cp_set *set);
/* Writes the status document's "resources", "streams_total" and "nodes" members (JSON object
 * members, no braces) to f, under the server's lock. */
void pl_cp_server_status(struct pl_cp_server *srv, FILE *f);
/* Stops accepting, cancels every stream, drains the queue, joins the thread, frees. */
void pl_cp_server_free(struct pl_cp_server *srv);

/* ---- the status document (status.c) ---- */

/* What the main thread knows about loading the resource files. */
struct pl_cp_loadstate {
    const char *path;
    const char *xds_address;
    double started, loaded; /* seconds since the epoch; loaded: last accepted load */
    unsigned long loads_ok, loads_rejected;
    double error_time;            /* of the last rejected load, 0 when none */
    struct pl_cp_load_stats last; /* what the last accepted load did */
    double last_ms;               /* and how long it took */
    struct pl_err error;          /* its errors; cleared by the next accepted load */
};

/* Returns the status JSON document (malloc'd, caller frees): the load state, the served
 * versions and every connected node with its per-type sent/ACKed/NACKed versions. */
char *pl_cp_status_json(struct pl_cp_server *srv, const struct pl_cp_loadstate *ls);

/* ---- JSON output helpers (status.c) ---- */

/* Writes s as a JSON string (with quotes); NULL writes null. */
void pl_cp_json_str(FILE *f, const char *s);
/* Writes t (seconds since the epoch) as an RFC 3339 UTC JSON string. */
void pl_cp_json_time(FILE *f, double t);

#endif
