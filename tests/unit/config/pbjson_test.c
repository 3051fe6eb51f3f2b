#include <criterion/criterion.h>
#include <string.h>

#include "config/pbjson.h"
#include "pbjson_test.pb-c.h"

Test(pbjson, placeholder)
{
}
