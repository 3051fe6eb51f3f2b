#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Atomic int pl_log_level_now = PL_LOG_INFO;

static const char *const names[] = {"trace", "debug",    "info", "warning",
                                    "error", "critical", "off"};

int pl_log_level_parse(const char *name)
{
    if (!strcmp(name, "warn"))
        return PL_LOG_WARN;
    for (int i = 0; i <= PL_LOG_OFF; i++)
        if (!strcmp(name, names[i]))
            return i;
    return -1;
}

const char *pl_log_level_name(int level)
{
    return level >= 0 && level <= PL_LOG_OFF ? names[level] : "unknown";
}

void pl_log_set_level(int level)
{
    atomic_store(&pl_log_level_now, level);
}

void pl_log_write(int level, const char *comp, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n =
        snprintf(line, sizeof(line), "[%04d-%02d-%02d %02d:%02d:%02d.%03ld][%ld][%s][%s] ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000, (long)syscall(SYS_gettid), pl_log_level_name(level), comp);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    /* one write per line so lines from several threads do not interleave */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
