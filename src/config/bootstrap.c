#include "config/bootstrap.h"

#include <stdlib.h>
#include <string.h>

#include "config/pbjson.h"
#include "config/validate.h"
#include "core/log.h"

#define BOOT_DESC (&envoy__config__bootstrap__v3__bootstrap__descriptor)

/* Envoy's MergeFrom of two messages of one type: protobuf's wire format merges when two
 * encodings are concatenated (scalars: last wins; messages: merged; repeated: appended). */
static ProtobufCMessage *merge(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    size_t na = protobuf_c_message_get_packed_size(a);
    size_t nb = protobuf_c_message_get_packed_size(b);
    uint8_t *buf = pl_malloc(na + nb);
    protobuf_c_message_pack(a, buf);
    protobuf_c_message_pack(b, buf + na);
    ProtobufCMessage *m = protobuf_c_message_unpack(a->descriptor, NULL, na + nb, buf);
    free(buf);
    if (!m)
        pl_die("re-decoding a merged bootstrap failed");
    return m;
}

static void set_string(char **field, const char *v)
{
    if (*field && *field != protobuf_c_empty_string)
        free(*field);
    *field = pl_strdup(v);
}

/* --service-cluster and --service-node override the bootstrap's node, as in Envoy. */
static void apply_overrides(const struct pl_bootstrap_opts *o, pl_bootstrap_t *b)
{
    if (!o->service_cluster && !o->service_node)
        return;
    if (!b->node) {
        b->node = pl_malloc(sizeof(*b->node));
        envoy__config__core__v3__node__init(b->node);
    }
    if (o->service_cluster)
        set_string(&b->node->cluster, o->service_cluster);
    if (o->service_node)
        set_string(&b->node->id, o->service_node);
}

int pl_bootstrap_load(const struct pl_bootstrap_opts *o, pl_bootstrap_t **out, struct pl_err *err)
{
    struct pl_pbjson_opts popts = {.field_hook = pl_validate_field_hook};
    ProtobufCMessage *file_msg = NULL, *yaml_msg = NULL;
    struct pl_srcmap *file_map = NULL, *yaml_map = NULL;
    int rc = 0;
    *out = NULL;
    if (o->config_path &&
        pl_pbjson_load_file(o->config_path, BOOT_DESC, &popts, &file_msg, &file_map, err) < 0)
        rc = PL_EINVAL;
    if (o->config_yaml &&
        pl_pbjson_load_text(o->config_yaml, strlen(o->config_yaml), "--config-yaml", BOOT_DESC,
                            &popts, &yaml_msg, &yaml_map, err) < 0)
        rc = PL_EINVAL;
    ProtobufCMessage *m = NULL;
    const struct pl_srcmap *map = NULL;
    if (rc == 0) {
        if (file_msg && yaml_msg) {
            /* positions do not survive the merge: errors then carry field paths only */
            m = merge(file_msg, yaml_msg);
        } else if (file_msg) {
            m = file_msg;
            file_msg = NULL;
            map = file_map;
        } else {
            m = yaml_msg;
            yaml_msg = NULL;
            map = yaml_map;
        }
        struct pl_vctx vc = {.err = err, .map = map, .admin_allow_remote = o->admin_allow_remote};
        rc = pl_validate_bootstrap(&vc, (const pl_bootstrap_t *)m);
    }
    if (file_msg)
        protobuf_c_message_free_unpacked(file_msg, NULL);
    if (yaml_msg)
        protobuf_c_message_free_unpacked(yaml_msg, NULL);
    pl_srcmap_free(file_map);
    pl_srcmap_free(yaml_map);
    if (rc < 0) {
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        return PL_EINVAL;
    }
    apply_overrides(o, (pl_bootstrap_t *)m);
    *out = (pl_bootstrap_t *)m;
    return 0;
}
