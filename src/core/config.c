/* hermod configuration loader: INI syntax via libinih, validation here.
 *
 * libinih does the splitting into [section] / key = value; everything else (which
 * sections and keys exist, value syntax, ranges, cross-key rules) is checked here,
 * and every error names FILE:LINE.
 *
 * Line numbers: Debian's libinih is built without INI_HANDLER_LINENO, so the handler
 * is not told the line. We feed libinih through our own reader (ini_parse_stream),
 * which hands over exactly one physical line per call and counts them; when the
 * handler runs, the line it is looking at is the last one the reader returned.
 *
 * The reader also normalises each line before libinih sees it, so that libinih's
 * compile-time options cannot surprise us:
 *  - leading blanks are removed, so an indented "key = value" is a key and never a
 *    Python-style continuation of the previous value (INI_ALLOW_MULTILINE);
 *  - a UTF-8 BOM on line 1, and a CR before LF, are dropped;
 *  - NUL bytes, over-long lines, malformed section headers, unknown sections and
 *    lines that are neither comment, section nor key/value are rejected here with a
 *    precise message (libinih would only give us "error on line N" and silently
 *    truncate long lines or ignore empty unknown sections).
 * Once an error is recorded the reader returns EOF, so parsing stops at the first
 * error. */
#include "core/config.h"

/* the names of the SASL mechanisms for [auth] mechanisms (a table, no I/O) */
#include "auth/sasl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* A config file is small; refuse anything absurd before reading it into memory. */
#define CONFIG_MAX_FILE_SIZE (1024 * 1024)
/* Longest value quoted back in an error message. */
#define CONFIG_QUOTE_MAX 80
/* RFC 1035 2.3.4: 255 octets on the wire, 253 as text without the final dot. */
#define CONFIG_HOSTNAME_MAX 253

enum key_type {
	KT_HOSTNAME,  /* char *, DNS name */
	KT_DATA_DIR,  /* char *, required, non-empty, resolved against the file's dir */
	KT_PATH,      /* char *, empty = NULL */
	KT_USER,      /* char *, empty = NULL */
	KT_LOG_LEVEL, /* char *, enum */
	KT_BACKEND,   /* char *, enum */
	KT_LISTEN,    /* char *, host:port, empty = NULL (off) */
	KT_HOSTPORT,  /* char *, host:port, empty = NULL */
	KT_RESOLVER,  /* char *, IP:port or "recursive", empty = NULL */
	KT_RETRY,     /* char *, comma-separated durations */
	KT_IPADDR,    /* char *, an IPv4 or IPv6 literal (no port), empty = NULL */
	KT_SECRET,    /* char *, 16+ printable non-blank ASCII characters, empty = NULL */
	KT_SIZE,      /* uint64_t */
	KT_DURATION,  /* unsigned seconds */
	KT_UINT,      /* unsigned */
	KT_BOOL,      /* bool */
	KT_EXPIRE,    /* unsigned days, or "never" = CONFIG_POP3_EXPIRE_NEVER */
	KT_MECHS,     /* unsigned mask of SASL mechanisms (auth/sasl.h) */
};

struct key_def {
	const char *section;
	const char *name;
	enum key_type type;
	size_t offset;
	/* Numeric range; zero_ok allows 0 even when min > 0 (0 = unlimited). */
	uint64_t min, max;
	bool zero_ok;
};

#define F(field) offsetof(struct config, field)

static const char *const config_sections[] = {
    "server", "listen", "tls", "auth", "submission", "limits", "store", "delivery", "dns", "pop3",
    "imap",
};

static const struct key_def config_keys[] = {
    {"server", "hostname", KT_HOSTNAME, F(hostname), 0, 0, false},
    {"server", "data_dir", KT_DATA_DIR, F(data_dir), 0, 0, false},
    {"server", "user", KT_USER, F(user), 0, 0, false},
    {"server", "log_level", KT_LOG_LEVEL, F(log_level), 0, 0, false},
    {"server", "threads", KT_UINT, F(threads), 1, 256, true},

    {"listen", "smtp", KT_LISTEN, F(listen_smtp), 0, 0, false},
    {"listen", "submission", KT_LISTEN, F(listen_submission), 0, 0, false},
    {"listen", "submissions", KT_LISTEN, F(listen_submissions), 0, 0, false},
    {"listen", "imap", KT_LISTEN, F(listen_imap), 0, 0, false},
    {"listen", "imaps", KT_LISTEN, F(listen_imaps), 0, 0, false},
    {"listen", "pop3", KT_LISTEN, F(listen_pop3), 0, 0, false},
    {"listen", "pop3s", KT_LISTEN, F(listen_pop3s), 0, 0, false},
    {"listen", "http", KT_LISTEN, F(listen_http), 0, 0, false},

    {"tls", "cert", KT_PATH, F(tls_cert), 0, 0, false},
    {"tls", "key", KT_PATH, F(tls_key), 0, 0, false},
    {"tls", "sni_dir", KT_PATH, F(tls_sni_dir), 0, 0, false},

    {"auth", "allow_plaintext_on_loopback", KT_BOOL, F(auth_allow_plaintext_on_loopback), 0, 0,
     false},
    {"auth", "max_failures", KT_UINT, F(auth_max_failures), 1, 1000000, false},
    {"auth", "account_max_failures", KT_UINT, F(auth_account_max_failures), 1, 1000000, false},
    {"auth", "failure_window", KT_DURATION, F(auth_failure_window), 1, UINT_MAX, false},
    {"auth", "lockout", KT_DURATION, F(auth_lockout), 1, UINT_MAX, false},
    {"auth", "max_delay", KT_DURATION, F(auth_max_delay), 0, 60, false},
    {"auth", "mechanisms", KT_MECHS, F(auth_mechanisms), 0, 0, false},

    {"submission", "require_from_match", KT_BOOL, F(submission_require_from_match), 0, 0, false},
    {"submission", "rate_limit", KT_UINT, F(submission_rate_limit), 0, 100000000, true},

    {"limits", "max_message_size", KT_SIZE, F(max_message_size), 1, UINT64_MAX, false},
    {"limits", "max_recipients", KT_UINT, F(max_recipients), 1, 1000000, false},
    {"limits", "max_connections", KT_UINT, F(max_connections), 1, 1000000, false},
    {"limits", "max_connections_per_ip", KT_UINT, F(max_connections_per_ip), 1, 1000000, false},
    {"limits", "max_connections_smtp", KT_UINT, F(max_connections_smtp), 1, 1000000, false},
    {"limits", "max_connections_submission", KT_UINT, F(max_connections_submission), 1, 1000000,
     false},
    {"limits", "max_connections_submissions", KT_UINT, F(max_connections_submissions), 1,
     1000000, false},
    {"limits", "max_connections_pop3", KT_UINT, F(max_connections_pop3), 1, 1000000, false},
    {"limits", "max_connections_pop3s", KT_UINT, F(max_connections_pop3s), 1, 1000000, false},
    {"limits", "max_connections_imap", KT_UINT, F(max_connections_imap), 1, 1000000, false},
    {"limits", "max_connections_imaps", KT_UINT, F(max_connections_imaps), 1, 1000000, false},
    {"limits", "max_errors", KT_UINT, F(max_errors), 1, 1000000, false},
    /* RFC 5321 4.5.3.1.6: a text line of 1000 octets incl. CRLF must be accepted. */
    {"limits", "max_line_length", KT_UINT, F(max_line_length), 1000, UINT_MAX, true},
    {"limits", "strict_line_length", KT_BOOL, F(strict_line_length), 0, 0, false},
    {"limits", "idle_timeout", KT_DURATION, F(idle_timeout), 1, UINT_MAX, false},
    {"limits", "command_timeout", KT_DURATION, F(command_timeout), 1, UINT_MAX, false},
    {"limits", "data_timeout", KT_DURATION, F(data_timeout), 1, UINT_MAX, false},
    {"limits", "message_timeout", KT_DURATION, F(message_timeout), 1, UINT_MAX, false},
    {"limits", "shutdown_timeout", KT_DURATION, F(shutdown_timeout), 0, UINT_MAX, false},

    {"store", "backend", KT_BACKEND, F(store_backend), 0, 0, false},
    {"store", "fsync", KT_BOOL, F(store_fsync), 0, 0, false},
    {"store", "workers", KT_UINT, F(store_workers), 1, 1024, false},

    {"delivery", "remote_port", KT_UINT, F(remote_port), 1, 65535, false},
    {"delivery", "smarthost", KT_HOSTPORT, F(smarthost), 0, 0, false},
    {"delivery", "retry_schedule", KT_RETRY, F(retry_schedule), 0, 0, false},
    {"delivery", "expiry", KT_DURATION, F(expiry), 1, UINT_MAX, false},
    {"delivery", "delay_warning", KT_DURATION, F(delay_warning), 0, UINT_MAX, false},
    {"delivery", "smarthost_user", KT_USER, F(smarthost_user), 0, 0, false},
    {"delivery", "smarthost_password_file", KT_PATH, F(smarthost_password_file), 0, 0, false},
    {"delivery", "srs_secret", KT_SECRET, F(srs_secret), 0, 0, false},
    {"delivery", "source_address", KT_IPADDR, F(delivery_source_address), 0, 0, false},
    {"delivery", "max_connections", KT_UINT, F(delivery_max_connections), 1, 100000, false},
    {"delivery", "max_connections_per_domain", KT_UINT, F(delivery_max_per_domain), 1, 100000,
     false},
    {"delivery", "connect_timeout", KT_DURATION, F(delivery_connect_timeout), 1, 3600, false},
    {"delivery", "tls_ca_file", KT_PATH, F(delivery_tls_ca_file), 0, 0, false},
    {"delivery", "mta_sts_port", KT_UINT, F(mta_sts_port), 1, 65535, false},
    {"delivery", "tls_reports", KT_BOOL, F(tls_reports), 0, 0, false},

    {"dns", "resolver", KT_RESOLVER, F(resolver), 0, 0, false},
    {"dns", "trust_anchor", KT_PATH, F(dns_trust_anchor), 0, 0, false},

    /* RFC 2449 6.7: EXPIRE 0 would promise deletion right after RETR; not offered. */
    {"pop3", "expire", KT_EXPIRE, F(pop3_expire), 1, 100000, false},
    {"pop3", "login_delay", KT_DURATION, F(pop3_login_delay), 0, UINT_MAX, false},

    /* RFC 9051 5.4: an autologout timer of at least 30 minutes once logged in */
    {"imap", "idle_timeout", KT_DURATION, F(imap_idle_timeout), 1800, UINT_MAX, false},
};

#define CONFIG_NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))

struct config_ctx {
	const char *path;
	struct config *cfg;
	/* reader state */
	const char *p;
	size_t left;
	int lineno;
	/* seen[i]: line where config_keys[i] was set, 0 = not set */
	int seen[CONFIG_NKEYS];
	/* first error, malloc'd "FILE:LINE: message" */
	bool failed;
	char *error;
	int error_line;
};

/* ---- small helpers ---- */

static char *config_vasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static char *config_vasprintf(const char *fmt, va_list ap)
{
	char *s;
	if (vasprintf(&s, fmt, ap) < 0)
		return NULL;
	return s;
}

static char *config_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *config_asprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = config_vasprintf(fmt, ap);
	va_end(ap);
	return s;
}

/* Records the first error, at line (0 = not tied to a line); later ones are ignored.
 * ctx->error stays NULL only if even formatting the message ran out of memory. */
static void ctx_error_at(struct config_ctx *ctx, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ctx_error_at(struct config_ctx *ctx, int line, const char *fmt, ...)
{
	if (ctx->failed)
		return;
	ctx->failed = true;
	ctx->error_line = line;
	va_list ap;
	va_start(ap, fmt);
	char *msg = config_vasprintf(fmt, ap);
	va_end(ap);
	if (line > 0)
		ctx->error =
		    config_asprintf("%s:%d: %s", ctx->path, line, msg ? msg : "out of memory");
	else
		ctx->error = config_asprintf("%s: %s", ctx->path, msg ? msg : "out of memory");
	free(msg);
	if (ctx->error == NULL)
		ctx->error = strdup("out of memory");
}

/* Quotes an untrusted value for an error message: control bytes as \xHH, quotes and
 * backslashes escaped, cut at CONFIG_QUOTE_MAX input bytes with "...". out must hold
 * CONFIG_QUOTE_MAX * 4 + 4 bytes. */
#define CONFIG_QUOTE_SIZE (CONFIG_QUOTE_MAX * 4 + 4)
static const char *config_quote(const char *in, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i;
	for (i = 0; in[i] != '\0' && i < CONFIG_QUOTE_MAX; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\') {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	if (in[i] != '\0') {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

static bool config_is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Parses one decimal number at *sp (digits only, at least one), advancing *sp.
 * Returns 1 ok, -1 no digits or overflow of uint64_t. */
static int config_parse_digits(const char **sp, uint64_t *r)
{
	const char *s = *sp;
	uint64_t v = 0;
	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');
		/* overflow check before v*10+d */
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*sp = s;
	*r = v;
	return 1;
}

static int config_parse_uint(const char *s, unsigned *r)
{
	uint64_t v;
	if (config_parse_digits(&s, &v) < 0 || *s != '\0' || v > UINT_MAX)
		return -1;
	*r = (unsigned)v;
	return 1;
}

/* ---- public value parsers ---- */

int config_parse_size(const char *s, uint64_t *r)
{
	uint64_t v, mult = 1;
	if (config_parse_digits(&s, &v) < 0)
		return -1;
	switch (*s) {
	case '\0':
		break;
	case 'K':
	case 'k':
		mult = 1024;
		s++;
		break;
	case 'M':
	case 'm':
		mult = 1024 * 1024;
		s++;
		break;
	case 'G':
	case 'g':
		mult = 1024 * 1024 * 1024;
		s++;
		break;
	default:
		return -1;
	}
	if (*s != '\0')
		return -1;
	if (v > UINT64_MAX / mult)
		return -1;
	*r = v * mult;
	return 1;
}

int config_parse_duration(const char *s, unsigned *r)
{
	uint64_t v, mult = 1;
	if (config_parse_digits(&s, &v) < 0)
		return -1;
	switch (*s) {
	case '\0':
		break;
	case 's':
		s++;
		break;
	case 'm':
		mult = 60;
		s++;
		break;
	case 'h':
		mult = 3600;
		s++;
		break;
	case 'd':
		mult = 86400;
		s++;
		break;
	default:
		return -1;
	}
	if (*s != '\0')
		return -1;
	if (v > UINT_MAX / mult)
		return -1;
	*r = (unsigned)(v * mult);
	return 1;
}

int config_parse_bool(const char *s, bool *r)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*r = true;
			return 1;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*r = false;
			return 1;
		}
	}
	return -1;
}

int config_parse_retry_schedule(const char *s, unsigned *out, size_t max, size_t *n_r)
{
	size_t n = 0;
	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		const char *start = s;
		while (*s != '\0' && *s != ',' && *s != ' ' && *s != '\t')
			s++;
		size_t len = (size_t)(s - start);
		char item[32];
		unsigned v;
		if (len == 0 || len >= sizeof(item) || n >= max)
			return -1;
		memcpy(item, start, len);
		item[len] = '\0';
		if (config_parse_duration(item, &v) < 0 || v == 0)
			return -1;
		out[n++] = v;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0')
			break;
		if (*s != ',')
			return -1;
		s++;
	}
	*n_r = n;
	return 1;
}

/* A DNS name or IPv4 literal: labels of letters, digits, '-' and '_' (1-63 each)
 * separated by single dots, at most 253 characters; one trailing dot is allowed. */
static bool config_valid_hostname(const char *s, size_t len)
{
	if (len > 1 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > CONFIG_HOSTNAME_MAX)
		return false;
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

int config_parse_hostport(const char *s, char **host_r, unsigned *port_r)
{
	const char *host, *colon;
	size_t hlen;

	if (host_r != NULL)
		*host_r = NULL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		char v6[INET6_ADDRSTRLEN + 1];
		struct in6_addr a6;
		if (close == NULL || close[1] != ':')
			return -1;
		host = s + 1;
		hlen = (size_t)(close - host);
		if (hlen == 0 || hlen >= sizeof(v6))
			return -1;
		memcpy(v6, host, hlen);
		v6[hlen] = '\0';
		if (inet_pton(AF_INET6, v6, &a6) != 1)
			return -1;
		colon = close + 1;
	} else {
		colon = strchr(s, ':');
		if (colon == NULL)
			return -1;
		host = s;
		hlen = (size_t)(colon - s);
		/* an IPv6 literal needs brackets; anything else is not a valid name */
		if (!config_valid_hostname(host, hlen))
			return -1;
	}
	const char *p = colon + 1;
	uint64_t port;
	if (config_parse_digits(&p, &port) < 0 || *p != '\0' || port < 1 || port > 65535)
		return -1;
	if (host_r != NULL) {
		*host_r = strndup(host, hlen);
		if (*host_r == NULL)
			return -1;
	}
	if (port_r != NULL)
		*port_r = (unsigned)port;
	return 1;
}

const char *config_default_path(const char *explicit_path)
{
	if (explicit_path != NULL)
		return explicit_path;
	const char *env = getenv("HERMOD_CONFIG");
	if (env != NULL && env[0] != '\0')
		return env;
	return CONFIG_DEFAULT_PATH;
}

/* ---- the reader: one physical line per call, see the top of the file ---- */

static bool config_section_known(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(config_sections) / sizeof(config_sections[0]); i++) {
		if (strlen(config_sections[i]) == len && memcmp(config_sections[i], name, len) == 0)
			return true;
	}
	return false;
}

/* Checks a line (leading blanks and line end already removed, len bytes, no NUL) that
 * is not blank and not a comment. Returns 1 ok, -1 with an error recorded. */
static int config_check_line(struct config_ctx *ctx, const char *line, size_t len)
{
	char q[CONFIG_QUOTE_SIZE];
	if (line[0] == '[') {
		const char *close = memchr(line, ']', len);
		if (close == NULL) {
			ctx_error_at(ctx, ctx->lineno, "missing ']' in section header");
			return -1;
		}
		size_t nlen = (size_t)(close - line - 1);
		if (!config_section_known(line + 1, nlen)) {
			char name[CONFIG_QUOTE_MAX + 1];
			size_t n = nlen < CONFIG_QUOTE_MAX ? nlen : CONFIG_QUOTE_MAX;
			memcpy(name, line + 1, n);
			name[n] = '\0';
			ctx_error_at(ctx, ctx->lineno, "unknown section [%s]",
			             config_quote(name, q));
			return -1;
		}
		const char *rest = close + 1, *end = line + len;
		while (rest < end && config_is_blank(*rest))
			rest++;
		if (rest < end && *rest != ';' && *rest != '#') {
			ctx_error_at(ctx, ctx->lineno, "unexpected text after section header");
			return -1;
		}
		return 1;
	}
	if (memchr(line, '=', len) == NULL && memchr(line, ':', len) == NULL) {
		ctx_error_at(ctx, ctx->lineno, "expected 'key = value', a [section] or a comment");
		return -1;
	}
	return 1;
}

static char *config_reader(char *str, int num, void *stream)
{
	struct config_ctx *ctx = stream;
	if (ctx->failed || ctx->left == 0 || num < 3)
		return NULL;

	const char *nl = memchr(ctx->p, '\n', ctx->left);
	size_t raw = nl != NULL ? (size_t)(nl - ctx->p) + 1 : ctx->left;
	const char *line = ctx->p;
	size_t len = nl != NULL ? raw - 1 : raw;
	ctx->p += raw;
	ctx->left -= raw;
	ctx->lineno++;

	if (ctx->lineno == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
		line += 3;
		len -= 3;
	}
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (memchr(line, '\0', len) != NULL) {
		ctx_error_at(ctx, ctx->lineno, "NUL byte in line");
		return NULL;
	}
	while (len > 0 && config_is_blank(*line)) {
		line++;
		len--;
	}
	/* room for "\n" and the NUL */
	if (len > (size_t)num - 2) {
		ctx_error_at(ctx, ctx->lineno, "line too long (more than %d characters)", num - 2);
		return NULL;
	}
	if (len > 0 && line[0] != ';' && line[0] != '#' && config_check_line(ctx, line, len) < 0)
		return NULL;
	memcpy(str, line, len);
	str[len] = '\n';
	str[len + 1] = '\0';
	return str;
}

/* ---- the handler: one key = value ---- */

static int config_set_string(struct config_ctx *ctx, char **field, const char *value)
{
	char *copy = NULL;
	if (value != NULL) {
		copy = strdup(value);
		if (copy == NULL) {
			ctx_error_at(ctx, ctx->lineno, "out of memory");
			return -1;
		}
	}
	free(*field);
	*field = copy;
	return 1;
}

static int config_set(struct config_ctx *ctx, const struct key_def *k, const char *value)
{
	char *base = (char *)ctx->cfg + k->offset;
	char **str_field = (char **)(void *)base;
	char q[CONFIG_QUOTE_SIZE];
	uint64_t num = 0;
	unsigned u;
	bool b;

	switch (k->type) {
	case KT_HOSTNAME:
		if (value[0] == '\0')
			return config_set_string(ctx, str_field, NULL);
		if (!config_valid_hostname(value, strlen(value))) {
			ctx_error_at(ctx, ctx->lineno, "bad hostname '%s' for %s",
			             config_quote(value, q), k->name);
			return -1;
		}
		return config_set_string(ctx, str_field, value);
	case KT_DATA_DIR:
		if (value[0] == '\0') {
			ctx_error_at(ctx, ctx->lineno, "%s must not be empty", k->name);
			return -1;
		}
		return config_set_string(ctx, str_field, value);
	case KT_PATH:
		return config_set_string(ctx, str_field, value[0] ? value : NULL);
	case KT_USER:
		for (const char *c = value; *c; c++) {
			if ((unsigned char)*c <= ' ' || *c == 0x7f || *c == ':') {
				ctx_error_at(ctx, ctx->lineno, "bad user name '%s' for %s",
				             config_quote(value, q), k->name);
				return -1;
			}
		}
		return config_set_string(ctx, str_field, value[0] ? value : NULL);
	case KT_LOG_LEVEL:
		if (strcmp(value, "debug") != 0 && strcmp(value, "info") != 0 &&
		    strcmp(value, "warn") != 0 && strcmp(value, "error") != 0) {
			ctx_error_at(ctx, ctx->lineno,
			             "bad log_level '%s' (expected debug, info, warn or error)",
			             config_quote(value, q));
			return -1;
		}
		return config_set_string(ctx, str_field, value);
	case KT_BACKEND:
		if (strcmp(value, "sqlite") != 0) {
			ctx_error_at(ctx, ctx->lineno, "bad %s '%s' (expected sqlite)", k->name,
			             config_quote(value, q));
			return -1;
		}
		return config_set_string(ctx, str_field, value);
	case KT_LISTEN:
	case KT_HOSTPORT:
	case KT_RESOLVER:
		if (value[0] == '\0')
			return config_set_string(ctx, str_field, NULL);
		if (k->type == KT_RESOLVER && strcmp(value, "recursive") == 0)
			return config_set_string(ctx, str_field, value);
		{
			char *host = NULL;
			struct in6_addr a;
			bool ok = config_parse_hostport(value, &host, NULL) > 0;
			if (ok && k->type == KT_RESOLVER)
				ok = inet_pton(AF_INET, host, &a) == 1 ||
				     inet_pton(AF_INET6, host, &a) == 1;
			free(host);
			if (!ok) {
				ctx_error_at(ctx, ctx->lineno,
				             "bad address '%s' for %s (expected %s:port or "
				             "[IPv6]:port, port 1-65535%s)",
				             config_quote(value, q), k->name,
				             k->type == KT_RESOLVER ? "IPv4" : "host",
				             k->type == KT_RESOLVER ? ", or recursive" : "");
				return -1;
			}
		}
		return config_set_string(ctx, str_field, value);
	case KT_SECRET: {
		size_t n = strlen(value);
		bool ok = n == 0 || (n >= 16 && n <= 255);
		for (const char *c = value; ok && *c; c++)
			ok = (unsigned char)*c > ' ' && (unsigned char)*c < 0x7f;
		if (!ok) {
			/* the value itself is not quoted back: it is a secret */
			ctx_error_at(ctx, ctx->lineno,
			             "bad %s (expected 16 to 255 printable characters, no blanks)",
			             k->name);
			return -1;
		}
		return config_set_string(ctx, str_field, n > 0 ? value : NULL);
	}
	case KT_IPADDR: {
		struct in6_addr a;
		if (value[0] == '\0')
			return config_set_string(ctx, str_field, NULL);
		if (inet_pton(AF_INET, value, &a) != 1 && inet_pton(AF_INET6, value, &a) != 1) {
			ctx_error_at(ctx, ctx->lineno,
			             "bad address '%s' for %s (expected an IPv4 or IPv6 address)",
			             config_quote(value, q), k->name);
			return -1;
		}
		return config_set_string(ctx, str_field, value);
	}
	case KT_RETRY: {
		unsigned sched[CONFIG_RETRY_MAX];
		size_t n;
		if (config_parse_retry_schedule(value, sched, CONFIG_RETRY_MAX, &n) < 0) {
			ctx_error_at(ctx, ctx->lineno,
			             "bad %s '%s' (expected 1 to %d comma-separated durations, "
			             "each above 0)",
			             k->name, config_quote(value, q), CONFIG_RETRY_MAX);
			return -1;
		}
		return config_set_string(ctx, str_field, value);
	}
	case KT_MECHS: {
		char why[160];
		if (sasl_mechs_parse(value, &u, why, sizeof(why)) < 0) {
			ctx_error_at(ctx, ctx->lineno, "bad %s: %s", k->name, why);
			return -1;
		}
		*(unsigned *)(void *)base = u;
		return 1;
	}
	case KT_BOOL:
		if (config_parse_bool(value, &b) < 0) {
			ctx_error_at(ctx, ctx->lineno,
			             "bad boolean '%s' for %s (expected yes or no)",
			             config_quote(value, q), k->name);
			return -1;
		}
		*(bool *)(void *)base = b;
		return 1;
	case KT_SIZE:
		if (config_parse_size(value, &num) < 0) {
			ctx_error_at(ctx, ctx->lineno, "bad size '%s' for %s",
			             config_quote(value, q), k->name);
			return -1;
		}
		break;
	case KT_DURATION:
		if (config_parse_duration(value, &u) < 0) {
			ctx_error_at(ctx, ctx->lineno, "bad duration '%s' for %s",
			             config_quote(value, q), k->name);
			return -1;
		}
		num = u;
		break;
	case KT_EXPIRE:
		if (strcasecmp(value, "never") == 0) {
			*(unsigned *)(void *)base = CONFIG_POP3_EXPIRE_NEVER;
			return 1;
		}
		if (config_parse_uint(value, &u) < 0) {
			ctx_error_at(ctx, ctx->lineno, "bad %s '%s' (expected never or a number of days)",
			             k->name, config_quote(value, q));
			return -1;
		}
		num = u;
		break;
	case KT_UINT:
		if (config_parse_uint(value, &u) < 0) {
			ctx_error_at(ctx, ctx->lineno, "bad number '%s' for %s",
			             config_quote(value, q), k->name);
			return -1;
		}
		num = u;
		break;
	}

	/* numeric range */
	if (num < k->min && !(k->zero_ok && num == 0)) {
		if (k->zero_ok)
			ctx_error_at(ctx, ctx->lineno, "%s must be 0 or at least %llu", k->name,
			             (unsigned long long)k->min);
		else if (k->min == 1)
			ctx_error_at(ctx, ctx->lineno, "%s must not be 0", k->name);
		else
			ctx_error_at(ctx, ctx->lineno, "%s must be at least %llu", k->name,
			             (unsigned long long)k->min);
		return -1;
	}
	if (num > k->max) {
		ctx_error_at(ctx, ctx->lineno, "%s must be at most %llu", k->name,
		             (unsigned long long)k->max);
		return -1;
	}
	if (k->type == KT_SIZE)
		*(uint64_t *)(void *)base = num;
	else
		*(unsigned *)(void *)base = (unsigned)num;
	return 1;
}

static int config_handler(void *user, const char *section, const char *name, const char *value)
{
	struct config_ctx *ctx = user;
	char q[CONFIG_QUOTE_SIZE], q2[CONFIG_QUOTE_SIZE];

	if (ctx->failed)
		return 0;
	if (section[0] == '\0') {
		ctx_error_at(ctx, ctx->lineno, "key '%s' outside any section",
		             config_quote(name, q));
		return 0;
	}
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		const struct key_def *k = &config_keys[i];
		if (strcmp(k->section, section) != 0 || strcmp(k->name, name) != 0)
			continue;
		if (ctx->seen[i] != 0) {
			ctx_error_at(ctx, ctx->lineno,
			             "duplicate key '%s' in section [%s] (first set on line %d)",
			             k->name, k->section, ctx->seen[i]);
			return 0;
		}
		ctx->seen[i] = ctx->lineno;
		return config_set(ctx, k, value) > 0;
	}
	ctx_error_at(ctx, ctx->lineno, "unknown key '%s' in section [%s]", config_quote(name, q),
	             config_quote(section, q2));
	return 0;
}

/* ---- defaults and post-parse checks ---- */

static int config_set_defaults(struct config *cfg)
{
	cfg->log_level = strdup("info");
	cfg->store_backend = strdup("sqlite");
	cfg->retry_schedule = strdup("5m,15m,30m,1h,2h,4h");
	cfg->max_message_size = 50ULL * 1024 * 1024;
	cfg->max_recipients = 100;
	cfg->max_connections = 1000;
	cfg->max_connections_per_ip = 20;
	cfg->max_errors = 10;
	cfg->max_line_length = 1000;
	cfg->idle_timeout = 300;
	cfg->command_timeout = 60;
	cfg->data_timeout = 600;
	cfg->message_timeout = 1800;
	cfg->shutdown_timeout = 30;
	cfg->store_fsync = true;
	cfg->store_workers = 16;
	cfg->remote_port = 25;
	cfg->expiry = 5 * 86400;
	cfg->delay_warning = 4 * 3600;
	cfg->delivery_max_connections = 100;
	cfg->delivery_max_per_domain = 10;
	cfg->delivery_connect_timeout = 30;
	cfg->mta_sts_port = 443;
	cfg->tls_reports = true;
	cfg->auth_allow_plaintext_on_loopback = false;
	cfg->auth_max_failures = 10;
	cfg->auth_account_max_failures = 50;
	cfg->auth_failure_window = 15 * 60;
	cfg->auth_lockout = 15 * 60;
	cfg->auth_max_delay = 5;
	cfg->auth_mechanisms = SASL_MECHS_DEFAULT;
	cfg->submission_require_from_match = true;
	cfg->submission_rate_limit = 500;
	cfg->pop3_expire = CONFIG_POP3_EXPIRE_NEVER;
	cfg->pop3_login_delay = 0;
	cfg->imap_idle_timeout = 30 * 60;
	if (cfg->log_level == NULL || cfg->store_backend == NULL || cfg->retry_schedule == NULL)
		return -1;
	return 1;
}

static int config_key_index(const char *section, const char *name)
{
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		if (strcmp(config_keys[i].section, section) == 0 &&
		    strcmp(config_keys[i].name, name) == 0)
			return (int)i;
	}
	return -1; /* not reached for the names used below */
}

static char *const *config_field(struct config *cfg, int idx)
{
	return (char *const *)(void *)((char *)cfg + config_keys[idx].offset);
}

/* Listeners that need a certificate: implicit TLS, and submission (RFC 8314:
 * AUTH only after STARTTLS). */
static const char *const config_tls_listeners[] = {"submission", "submissions", "imaps", "pop3s"};

static void config_check_tls(struct config_ctx *ctx)
{
	int cert = config_key_index("tls", "cert"), key = config_key_index("tls", "key");
	bool have_cert = ctx->cfg->tls_cert != NULL, have_key = ctx->cfg->tls_key != NULL;

	if (have_cert && !have_key) {
		ctx_error_at(ctx, ctx->seen[cert], "[tls] cert is set but key is not");
		return;
	}
	if (have_key && !have_cert) {
		ctx_error_at(ctx, ctx->seen[key], "[tls] key is set but cert is not");
		return;
	}
	if (have_cert)
		return;
	for (size_t i = 0; i < sizeof(config_tls_listeners) / sizeof(config_tls_listeners[0]);
	     i++) {
		int idx = config_key_index("listen", config_tls_listeners[i]);
		if (*config_field(ctx->cfg, idx) != NULL) {
			ctx_error_at(ctx, ctx->seen[idx], "%s requires [tls] cert and key",
			             config_tls_listeners[i]);
			return;
		}
	}
}

/* AUTH to a smarthost needs the smarthost and a password. */
static void config_check_smarthost(struct config_ctx *ctx)
{
	int user = config_key_index("delivery", "smarthost_user");
	int pw = config_key_index("delivery", "smarthost_password_file");
	const struct config *c = ctx->cfg;

	if (c->smarthost_user != NULL && c->smarthost_password_file == NULL)
		ctx_error_at(ctx, ctx->seen[user],
		             "[delivery] smarthost_user is set but smarthost_password_file is not");
	else if (c->smarthost_password_file != NULL && c->smarthost_user == NULL)
		ctx_error_at(ctx, ctx->seen[pw],
		             "[delivery] smarthost_password_file is set but smarthost_user is not");
	else if (c->smarthost_user != NULL && c->smarthost == NULL)
		ctx_error_at(ctx, ctx->seen[user],
		             "[delivery] smarthost_user is set but smarthost is not");
}

/* Two listeners on the same host:port can never both bind; say so now. */
static void config_check_listen_clash(struct config_ctx *ctx)
{
	for (size_t i = 0; i < CONFIG_NKEYS && !ctx->failed; i++) {
		if (config_keys[i].type != KT_LISTEN || *config_field(ctx->cfg, (int)i) == NULL)
			continue;
		for (size_t j = i + 1; j < CONFIG_NKEYS; j++) {
			if (config_keys[j].type != KT_LISTEN ||
			    *config_field(ctx->cfg, (int)j) == NULL)
				continue;
			char *h1 = NULL, *h2 = NULL;
			unsigned p1 = 0, p2 = 0;
			int r1 = config_parse_hostport(*config_field(ctx->cfg, (int)i), &h1, &p1);
			int r2 = config_parse_hostport(*config_field(ctx->cfg, (int)j), &h2, &p2);
			bool clash = r1 > 0 && r2 > 0 && p1 == p2 && strcasecmp(h1, h2) == 0;
			free(h1);
			free(h2);
			if (r1 < 0 || r2 < 0) {
				ctx_error_at(ctx, 0, "out of memory");
				return;
			}
			if (!clash)
				continue;
			/* report at the later line */
			size_t first = ctx->seen[i] < ctx->seen[j] ? i : j;
			size_t second = first == i ? j : i;
			ctx_error_at(ctx, ctx->seen[second],
			             "%s uses %s, already used by %s (line %d)",
			             config_keys[second].name, *config_field(ctx->cfg, (int)second),
			             config_keys[first].name, ctx->seen[first]);
			return;
		}
	}
}

/* The value of a [limits] max_connections_<key>, 0 when not set (or no such key). */
static unsigned config_listener_limit(struct config_ctx *ctx, const char *key, int *line_r)
{
	char name[64];
	snprintf(name, sizeof(name), "max_connections_%s", key);
	int idx = config_key_index("limits", name);
	*line_r = idx >= 0 ? ctx->seen[idx] : 0;
	if (idx < 0 || ctx->seen[idx] == 0)
		return 0;
	return *(const unsigned *)(const void *)((const char *)ctx->cfg + config_keys[idx].offset);
}

/* cfg->listen[]: every [listen] key that is set, with its line and connection
 * limit. A per-listener limit above the global one could never be reached, so it
 * is an error whether or not that listener is on. */
static void config_collect_listeners(struct config_ctx *ctx)
{
	struct config *cfg = ctx->cfg;
	cfg->nlisten = 0;
	for (size_t i = 0; i < CONFIG_NKEYS && !ctx->failed; i++) {
		if (config_keys[i].type != KT_LISTEN)
			continue;
		int line;
		unsigned v = config_listener_limit(ctx, config_keys[i].name, &line);
		if (v > cfg->max_connections) {
			ctx_error_at(ctx, line, "max_connections_%s (%u) is larger than "
			             "max_connections (%u)", config_keys[i].name, v,
			             cfg->max_connections);
			return;
		}
		if (*config_field(cfg, (int)i) == NULL || cfg->nlisten >= CONFIG_LISTEN_MAX)
			continue; /* off (the bound is never hit: one slot per KT_LISTEN key) */
		struct config_listen *l = &cfg->listen[cfg->nlisten++];
		l->key = config_keys[i].name;
		l->addr = *config_field(cfg, (int)i);
		l->line = ctx->seen[i];
		if (v != 0)
			l->max_connections = v;
		else if (strcmp(l->key, "smtp") == 0) /* room kept for the other services */
			l->max_connections = cfg->max_connections - cfg->max_connections / 4;
		else
			l->max_connections = cfg->max_connections;
	}
}

/* Directory part of path, made absolute when it exists: "run/h.conf" -> "/cwd/run". */
static char *config_base_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	if (slash == NULL)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (dir == NULL)
		return NULL;
	char *abs = realpath(dir, NULL);
	if (abs != NULL) {
		free(dir);
		return abs;
	}
	return dir;
}

static void config_resolve_data_dir(struct config_ctx *ctx)
{
	struct config *cfg = ctx->cfg;
	if (cfg->data_dir[0] == '/')
		return;
	char *base = config_base_dir(ctx->path);
	if (base == NULL) {
		ctx_error_at(ctx, 0, "out of memory");
		return;
	}
	bool root = strcmp(base, "/") == 0;
	char *joined = config_asprintf("%s%s%s", base, root ? "" : "/", cfg->data_dir);
	free(base);
	if (joined == NULL) {
		ctx_error_at(ctx, 0, "out of memory");
		return;
	}
	free(cfg->data_dir);
	cfg->data_dir = joined;
}

static void config_default_hostname(struct config_ctx *ctx)
{
	char name[HOST_NAME_MAX + 1];
	if (ctx->cfg->hostname != NULL)
		return;
	/* gethostname() need not NUL-terminate a truncated name */
	if (gethostname(name, sizeof(name) - 1) < 0)
		name[0] = '\0';
	name[sizeof(name) - 1] = '\0';
	const char *use = config_valid_hostname(name, strlen(name)) ? name : "localhost";
	ctx->cfg->hostname = strdup(use);
	if (ctx->cfg->hostname == NULL)
		ctx_error_at(ctx, 0, "out of memory");
}

/* ---- load ---- */

int config_load_string(const char *name, const char *text, size_t len, struct config **cfg_r,
                       char **error_r)
{
	struct config_ctx ctx;
	memset(&ctx, 0, sizeof(ctx));
	ctx.path = name;
	ctx.p = text;
	ctx.left = len;
	*cfg_r = NULL;
	*error_r = NULL;

	ctx.cfg = calloc(1, sizeof(*ctx.cfg));
	if (ctx.cfg == NULL || (ctx.cfg->path = strdup(name)) == NULL ||
	    config_set_defaults(ctx.cfg) < 0) {
		config_free(&ctx.cfg);
		*error_r = config_asprintf("%s: out of memory", name);
		return -1;
	}

	int ret = ini_parse_stream(config_reader, &ctx, config_handler, &ctx);
	/* libinih found a syntax error our reader let through, before any error of ours */
	if (ret > 0 && (!ctx.failed || ret < ctx.error_line)) {
		free(ctx.error);
		ctx.error = NULL;
		ctx.failed = false;
		ctx_error_at(&ctx, ret, "syntax error");
	} else if (ret < 0) {
		ctx_error_at(&ctx, 0, "out of memory");
	}

	if (!ctx.failed && ctx.cfg->data_dir == NULL)
		ctx_error_at(&ctx, 0, "missing required key data_dir in [server]");
	if (!ctx.failed)
		config_check_tls(&ctx);
	if (!ctx.failed)
		config_check_listen_clash(&ctx);
	if (!ctx.failed)
		config_check_smarthost(&ctx);
	if (!ctx.failed)
		config_collect_listeners(&ctx);
	if (!ctx.failed)
		config_resolve_data_dir(&ctx);
	if (!ctx.failed)
		config_default_hostname(&ctx);

	if (ctx.failed) {
		config_free(&ctx.cfg);
		*error_r = ctx.error;
		return -1;
	}
	*cfg_r = ctx.cfg;
	return 1;
}

int config_load(const char *path, struct config **cfg_r, char **error_r)
{
	*cfg_r = NULL;
	*error_r = NULL;

	FILE *f = fopen(path, "r");
	if (f == NULL) {
		*error_r = config_asprintf("%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	char *text = malloc(CONFIG_MAX_FILE_SIZE + 1);
	if (text == NULL) {
		fclose(f);
		*error_r = config_asprintf("%s: out of memory", path);
		return -1;
	}
	size_t len = fread(text, 1, CONFIG_MAX_FILE_SIZE + 1, f);
	int read_errno = ferror(f) ? errno : 0;
	fclose(f);
	if (read_errno != 0) {
		free(text);
		*error_r = config_asprintf("%s: cannot read: %s", path, strerror(read_errno));
		return -1;
	}
	if (len > CONFIG_MAX_FILE_SIZE) {
		free(text);
		*error_r = config_asprintf("%s: file too large (more than %d bytes)", path,
		                           CONFIG_MAX_FILE_SIZE);
		return -1;
	}
	int ret = config_load_string(path, text, len, cfg_r, error_r);
	free(text);
	return ret;
}

void config_free(struct config **cfgp)
{
	struct config *cfg = *cfgp;
	if (cfg == NULL)
		return;
	free(cfg->path);
	free(cfg->hostname);
	free(cfg->data_dir);
	free(cfg->user);
	free(cfg->log_level);
	free(cfg->listen_smtp);
	free(cfg->listen_submission);
	free(cfg->listen_submissions);
	free(cfg->listen_imap);
	free(cfg->listen_imaps);
	free(cfg->listen_pop3);
	free(cfg->listen_pop3s);
	free(cfg->listen_http);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->tls_sni_dir);
	free(cfg->store_backend);
	free(cfg->smarthost);
	free(cfg->retry_schedule);
	free(cfg->delivery_source_address);
	free(cfg->delivery_tls_ca_file);
	free(cfg->smarthost_user);
	free(cfg->srs_secret);
	free(cfg->smarthost_password_file);
	free(cfg->resolver);
	free(cfg->dns_trust_anchor);
	free(cfg);
	*cfgp = NULL;
}
