/* Logging in Envoy's levels and line format: [time][thread][level][component] message. */
#ifndef PL_CORE_LOG_H
#define PL_CORE_LOG_H

#include <stdatomic.h>

enum pl_log_level {
    PL_LOG_TRACE,
    PL_LOG_DEBUG,
    PL_LOG_INFO,
    PL_LOG_WARN,
    PL_LOG_ERROR,
    PL_LOG_CRITICAL,
    PL_LOG_OFF,
};

extern _Atomic int pl_log_level_now;

/* Parses an Envoy level name (trace, debug, info, warning/warn, error, critical, off); -1 if none.
 */
int pl_log_level_parse(const char *name);
/* Returns the Envoy name of a level. */
const char *pl_log_level_name(int level);
/* Sets the process-wide level. */
void pl_log_set_level(int level);
/* Writes one log line if level is enabled; comp is the component ("main", "config", ...). */
void pl_log_write(int level, const char *comp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define pl_log(level, comp, ...)                                                                   \
    do {                                                                                           \
        if ((level) >= atomic_load_explicit(&pl_log_level_now, memory_order_relaxed))              \
            pl_log_write((level), (comp), __VA_ARGS__);                                            \
    } while (0)
#define pl_log_trace(comp, ...) pl_log(PL_LOG_TRACE, comp, __VA_ARGS__)
#define pl_log_debug(comp, ...) pl_log(PL_LOG_DEBUG, comp, __VA_ARGS__)
#define pl_log_info(comp, ...)  pl_log(PL_LOG_INFO, comp, __VA_ARGS__)
#define pl_log_warn(comp, ...)  pl_log(PL_LOG_WARN, comp, __VA_ARGS__)
#define pl_log_error(comp, ...) pl_log(PL_LOG_ERROR, comp, __VA_ARGS__)

#endif
