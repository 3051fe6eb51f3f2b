#include <criterion/criterion.h>
#include <string.h>

#include "config/tree.h"

Test(tree, placeholder)
{
    struct pl_tree *t;
    struct pl_err e = PL_ERR_INIT;
    cr_assert_eq(pl_tree_load_text("a: 1", 4, "x.yaml", &t, &e), 0);
    pl_tree_free(t);
}
