/* The HTTP connection manager's HTTP/2 side. */
#include "http/conn_manager_internal.h"

struct pl_codec *hcm_h2_codec_new(struct hcm_conn *hc)
{
    (void)hc;
    return NULL; /* until the HTTP/2 codec is in, every connection speaks HTTP/1.1 */
}

bool hcm_h2_done(const struct pl_codec *c)
{
    (void)c;
    return false;
}
