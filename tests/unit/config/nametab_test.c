/* The name -> item hash index (config/nametab.h) and the snapshot's O(1) name lookups. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/nametab.h"
#include "config/snapshot.h"

struct item {
    char name[16];
    int v;
};

static const char *key(const void *p)
{
    return ((const struct item *)p)->name;
}

static int keep_even(void *p, void *arg)
{
    (*(int *)arg)++;
    return ((struct item *)p)->v % 2 == 0;
}

Test(nametab, put_get_replace_delete_filter)
{
    enum { N = 5000 };
    struct item *v = calloc(N, sizeof(*v));
    struct pl_nametab t;
    pl_nametab_init(&t, key);
    cr_assert_null(pl_nametab_get(&t, "x"));
    cr_assert_null(pl_nametab_del(&t, "x"));
    for (int i = 0; i < N; i++) {
        snprintf(v[i].name, sizeof(v[i].name), "c%d", i);
        v[i].v = i;
        cr_assert_null(pl_nametab_put(&t, &v[i]));
    }
    cr_assert_eq(t.n, N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(pl_nametab_get(&t, v[i].name), &v[i]);
    cr_assert_null(pl_nametab_get(&t, "c5000"));
    struct item other = {.name = "c7", .v = 7};
    cr_assert_eq(pl_nametab_put(&t, &other), &v[7]); /* same name: replaced */
    cr_assert_eq(t.n, N);
    cr_assert_eq(pl_nametab_get(&t, "c7"), &other);
    /* deleting every third keeps every other one reachable (backward shift, no tombstones) */
    for (int i = 0; i < N; i += 3)
        cr_assert_not_null(pl_nametab_del(&t, v[i].name));
    for (int i = 0; i < N; i++) {
        struct item *got = pl_nametab_get(&t, v[i].name);
        if (i % 3 == 0)
            cr_assert_null(got, "%d", i);
        else
            cr_assert_eq(got, i == 7 ? &other : &v[i], "%d", i);
    }
    int visited = 0;
    size_t before = t.n;
    pl_nametab_filter(&t, keep_even, &visited);
    cr_assert_eq((size_t)visited, before);
    for (int i = 0; i < N; i++) {
        bool in = i % 3 && i % 2 == 0;
        cr_assert_eq(pl_nametab_get(&t, v[i].name) != NULL, in, "%d", i);
    }
    pl_nametab_clear(&t);
    cr_assert_null(pl_nametab_get(&t, "c2"));
    free(v);
}

Test(snapshot, index_finds_clusters_and_listeners_and_falls_back_when_stale)
{
    struct pl_snapshot *s = pl_snapshot_new();
    s->clusters = calloc(3, sizeof(*s->clusters));
    for (int i = 0; i < 3; i++)
        s->clusters[i] = calloc(1, sizeof(**s->clusters));
    s->n_clusters = 2;
    s->clusters[0]->name = strdup("a");
    s->clusters[1]->name = strdup("b");
    s->listeners = calloc(1, sizeof(*s->listeners));
    s->n_listeners = 1;
    s->listeners[0].name = strdup("l");
    cr_assert_eq(pl_snapshot_cluster(s, "b"), s->clusters[1]); /* no index: a scan */
    pl_snapshot_index_build(s);
    cr_assert_eq(pl_snapshot_cluster(s, "a"), s->clusters[0]);
    cr_assert_eq(pl_snapshot_cluster(s, "b"), s->clusters[1]);
    cr_assert_null(pl_snapshot_cluster(s, "c"));
    cr_assert_eq(pl_snapshot_listener(s, "l"), &s->listeners[0]);
    cr_assert_null(pl_snapshot_listener(s, "a"));
    /* a cluster added after the index was built is still found */
    s->clusters[2]->name = strdup("c");
    s->n_clusters = 3;
    cr_assert_eq(pl_snapshot_cluster(s, "c"), s->clusters[2]);
    pl_snapshot_free(s);
}
