/* Access logs in Envoy's format: command-operator format strings (text and JSON), compiled at
 * config time, and the file / stdout sinks (envoy.access_loggers.file, .stdout).
 *
 * Threads: compile and free on the main thread; pl_access_log_emit from any thread (workers)
 * without a lock: each thread appends whole lines to its own buffer per file, and one flusher
 * thread per file writes them out (every second, or sooner once 64 KiB are pending). Lines are
 * never split or interleaved. Files are shared by path across loggers and config snapshots
 * (one fd, one flusher), as Envoy's AccessLogManager does. */
#ifndef PL_HTTP_ACCESS_LOG_H
#define PL_HTTP_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "http/stream_info.h"
#include "pl_proto_all.h"

/* Envoy's default access log format. */
#define PL_ACCESS_LOG_DEFAULT_FORMAT                                                               \
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" "             \
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "                   \
    "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" "      \
    "\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n"

/* A growable byte buffer the formatter appends to. */
struct pl_al_buf {
    char *p;
    size_t len, cap;
};

/* Frees the buffer's memory; it is empty and reusable afterwards. */
void pl_al_buf_free(struct pl_al_buf *b);

/* A compiled format (text or JSON). Immutable: usable from any thread at once. */
struct pl_al_format;

/* Compiles a text format string (Envoy's command operators). path names the field in errors.
 * *out is owned by the caller (pl_al_format_free). */
int pl_al_format_compile_text(const char *text, size_t len, bool omit_empty_values,
                              const char *path, struct pl_al_format **out, struct pl_err *err);
/* Compiles a SubstitutionFormatString (text_format, text_format_source or json_format); NULL
 * means Envoy's default text format. *out is owned by the caller. */
int pl_al_format_compile(const Envoy__Config__Core__V3__SubstitutionFormatString *sfs,
                         const char *path, struct pl_al_format **out, struct pl_err *err);
/* Appends the formatted line for si to out (the format supplies any trailing newline; JSON
 * lines end with "\n"). */
void pl_al_format(const struct pl_al_format *f, const struct pl_stream_info *si,
                  struct pl_al_buf *out);
/* Frees a compiled format; NULL is allowed. */
void pl_al_format_free(struct pl_al_format *f);

/* A list of compiled access logs (an HCM's or tcp_proxy's access_log field). */
struct pl_access_logs;

/* Compiles AccessLog entries (file and stdout sinks; filter is rejected). path is the field
 * path of the list ("...typed_config.access_log") for errors. Opens the files (shared by path).
 * On success *out is owned by the caller (pl_access_logs_free); with n == 0 *out is NULL. */
int pl_access_log_compile(const Envoy__Config__Accesslog__V3__AccessLog *const *logs, size_t n,
                          const char *path, struct pl_access_logs **out, struct pl_err *err);
/* Checks AccessLog entries as pl_access_log_compile does, without opening any file
 * (--mode validate, xDS NACK decisions). */
int pl_access_log_check(const Envoy__Config__Accesslog__V3__AccessLog *const *logs, size_t n,
                        const char *path, struct pl_err *err);
/* Formats si with every log of the list and queues the lines; any thread, no lock, never
 * blocks. logs may be NULL (nothing to do). */
void pl_access_log_emit(const struct pl_access_logs *logs, const struct pl_stream_info *si);
/* Frees the list; a file whose last user goes is flushed and closed (its flusher joined). No
 * thread may be emitting to this list any more (free it after the RCU grace period). */
void pl_access_logs_free(struct pl_access_logs *logs);
/* Number of logs in the list (0 for NULL). */
size_t pl_access_logs_count(const struct pl_access_logs *logs);

/* Asks every open access log file to be reopened by path (log rotation: SIGUSR1). Main thread. */
void pl_access_log_reopen_all(void);
/* Writes out every line queued so far by any thread and waits until it is written. */
void pl_access_log_flush_all(void);
/* Lines dropped because a file's backlog was over its limit (the flusher could not keep up). */
uint64_t pl_access_log_dropped(void);

#endif
