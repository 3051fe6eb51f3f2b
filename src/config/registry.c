/* Message descriptors by full name and type URL, for google.protobuf.Any. */
#include "config/registry.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "pl_proto_all.h"

struct slot {
    const char *name;
    const ProtobufCMessageDescriptor *desc;
};

static struct {
    struct slot *v;
    size_t n, cap; /* cap is a power of two */
} tab;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void put(const ProtobufCMessageDescriptor *d);

static void grow(void)
{
    struct slot *old = tab.v;
    size_t oldcap = tab.cap;
    tab.cap = tab.cap ? tab.cap * 2 : 256;
    tab.v = pl_calloc(tab.cap, sizeof(*tab.v));
    tab.n = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].name)
            put(old[i].desc);
    free(old);
}

static void put(const ProtobufCMessageDescriptor *d)
{
    if ((tab.n + 1) * 2 > tab.cap)
        grow();
    for (size_t i = hash(d->name) & (tab.cap - 1);; i = (i + 1) & (tab.cap - 1)) {
        if (!tab.v[i].name) {
            tab.v[i].name = d->name;
            tab.v[i].desc = d;
            tab.n++;
            return;
        }
        if (!strcmp(tab.v[i].name, d->name)) {
            tab.v[i].desc = d;
            return;
        }
    }
}

/* Enum descriptors: the generated list, plus every enum a registered message field uses. */
static struct {
    const ProtobufCEnumDescriptor **v;
    size_t n, cap;
} enums;

static void add_enum(const ProtobufCEnumDescriptor *e)
{
    for (size_t i = 0; i < enums.n; i++)
        if (enums.v[i] == e)
            return;
    if (enums.n == enums.cap) {
        enums.cap = enums.cap ? enums.cap * 2 : 64;
        enums.v = pl_realloc(enums.v, enums.cap * sizeof(*enums.v));
    }
    enums.v[enums.n++] = e;
}

static void add_field_enums(const ProtobufCMessageDescriptor *d)
{
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].type == PROTOBUF_C_TYPE_ENUM)
            add_enum(d->fields[i].descriptor);
}

static void init(void)
{
    for (size_t i = 0; i < pl_proto_registry_len; i++) {
        put(pl_proto_registry[i]);
        add_field_enums(pl_proto_registry[i]);
    }
    for (size_t i = 0; pl_proto_enum_registry[i]; i++)
        add_enum(pl_proto_enum_registry[i]);
}

const ProtobufCMessageDescriptor *pl_registry_find_name(const char *name)
{
    pthread_once(&once, init);
    if (name[0] == '.')
        name++;
    const ProtobufCMessageDescriptor *d = NULL;
    pthread_rwlock_rdlock(&lock);
    for (size_t i = hash(name) & (tab.cap - 1); tab.v[i].name; i = (i + 1) & (tab.cap - 1)) {
        if (!strcmp(tab.v[i].name, name)) {
            d = tab.v[i].desc;
            break;
        }
    }
    pthread_rwlock_unlock(&lock);
    return d;
}

const ProtobufCMessageDescriptor *pl_registry_find_type_url(const char *url)
{
    const char *slash = strrchr(url, '/');
    if (!slash || !slash[1])
        return NULL;
    return pl_registry_find_name(slash + 1);
}

void pl_registry_add(const ProtobufCMessageDescriptor *desc)
{
    pthread_once(&once, init);
    pthread_rwlock_wrlock(&lock);
    put(desc);
    add_field_enums(desc);
    pthread_rwlock_unlock(&lock);
}

void pl_registry_add_all(const ProtobufCMessageDescriptor *const *descs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pl_registry_add(descs[i]);
}

const ProtobufCEnumDescriptor *pl_registry_find_enum(const char *name)
{
    pthread_once(&once, init);
    if (name[0] == '.')
        name++;
    const ProtobufCEnumDescriptor *e = NULL;
    pthread_rwlock_rdlock(&lock);
    for (size_t i = 0; i < enums.n && !e; i++)
        if (!strcmp(enums.v[i]->name, name))
            e = enums.v[i];
    pthread_rwlock_unlock(&lock);
    return e;
}
