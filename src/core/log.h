/* One-line key=value logs on stderr. Every line: ts=... level=... [sid=...] then fields. */
#ifndef HERMOD_CORE_LOG_H
#define HERMOD_CORE_LOG_H

#include <stddef.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

void log_set_level(enum log_level level);
/* sid may be NULL (no sid= field). fmt produces the rest: "event=accept ip=1.2.3.4". */
void log_msg(enum log_level level, const char *sid, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(sid, ...) log_msg(LOG_LEVEL_DEBUG, sid, __VA_ARGS__)
#define log_info(sid, ...) log_msg(LOG_LEVEL_INFO, sid, __VA_ARGS__)
#define log_warn(sid, ...) log_msg(LOG_LEVEL_WARN, sid, __VA_ARGS__)
#define log_error(sid, ...) log_msg(LOG_LEVEL_ERROR, sid, __VA_ARGS__)

/* Escapes untrusted bytes for a log value: printable ASCII except '"' and '\\' kept,
 * others as \xHH; truncated to at most max input bytes ("..." appended).
 * Writes a NUL-terminated string into out (size outsz) and returns out. */
const char *log_escape(const char *in, size_t len, size_t max, char *out, size_t outsz);

/* log_escape for a NUL-terminated string; NULL gives "?". */
const char *log_escape_str(const char *in, char *out, size_t outsz);

#endif
