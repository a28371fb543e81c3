#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Set on reload (main thread), read by every loop and worker. Lines are
 * written with one write(2) each, without stdio (whose stream lock the loops
 * and workers would contend on): a line is at most 2 KiB, under PIPE_BUF, so
 * lines from several threads never interleave on a pipe or an O_APPEND file. */
static _Atomic int log_min_level = LOG_LEVEL_INFO;

static const char *const log_level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&log_min_level, (int)level, memory_order_relaxed);
}

void log_msg(enum log_level level, const char *sid, const char *fmt, ...)
{
	if ((int)level < atomic_load_explicit(&log_min_level, memory_order_relaxed))
		return;
	char line[2048];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, (int)(tv.tv_usec / 1000), log_level_names[level]);
	if (n < 0)
		return;
	size_t off = (size_t)n;
	if (sid != NULL) {
		n = snprintf(line + off, sizeof(line) - off, " sid=%s", sid);
		if (n > 0)
			off += (size_t)n < sizeof(line) - off ? (size_t)n : sizeof(line) - off - 1;
	}
	if (off < sizeof(line) - 2) {
		line[off++] = ' ';
		va_list ap;
		va_start(ap, fmt);
		n = vsnprintf(line + off, sizeof(line) - off - 1, fmt, ap);
		va_end(ap);
		if (n > 0)
			off += (size_t)n < sizeof(line) - off - 1 ? (size_t)n : sizeof(line) - off - 2;
	}
	line[off++] = '\n';
	for (size_t done = 0; done < off;) {
		ssize_t w = write(STDERR_FILENO, line + done, off - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* nowhere to report it */
		done += (size_t)w;
	}
}

const char *log_escape(const char *in, size_t len, size_t max, char *out, size_t outsz)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	size_t i;
	if (outsz == 0)
		return out;
	for (i = 0; i < len && i < max; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			if (o + 1 >= outsz)
				break;
			out[o++] = (char)c;
		} else {
			if (o + 4 >= outsz)
				break;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (i < len && o + 3 < outsz) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

const char *log_escape_str(const char *in, char *out, size_t outsz)
{
	if (in == NULL)
		in = "?";
	return log_escape(in, strlen(in), 512, out, outsz);
}
