#include "core/err.h"
#include "core/log.h"

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    pl_log_info("main", "pillion starting");
    return 0;
}
