/* SMTP TLS Reporting (RFC 8460): see tlsrpt.h. */
#include "delivery/tlsrpt.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* --- the reporting policy (RFC 8460 3) --- */

static const char tlsrpt_version[] = "v=TLSRPTv1";
#define TLSRPT_VERSION_LEN (sizeof(tlsrpt_version) - 1)
/* tlsrpt-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
#define TLSRPT_EXT_NAME_MAX 32

static bool tlsrpt_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool tlsrpt_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool tlsrpt_hex(unsigned char c)
{
	return tlsrpt_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int tlsrpt_hex_value(unsigned char c)
{
	if (tlsrpt_digit(c))
		return c - '0';
	return (c | 0x20) - 'a' + 10;
}

/* WSP = SP / HTAB (RFC 5234) */
static size_t tlsrpt_skip_wsp(const char *s, size_t len, size_t p)
{
	while (p < len && (s[p] == ' ' || s[p] == '\t'))
		p++;
	return p;
}

/* The characters of an RFC 3986 URI (unreserved, pct-encoded's '%',
 * sub-delims, gen-delims) less ',', '!' and ';', which RFC 8460 3 says MUST be
 * percent-encoded in a tlsrpt-uri. */
static bool tlsrpt_uri_char(unsigned char c)
{
	if (tlsrpt_alpha(c) || tlsrpt_digit(c))
		return true;
	return c != '\0' && strchr("-._~%$&'()*+=:@/?#[]", c) != NULL;
}

/* tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E) */
static bool tlsrpt_ext_value_char(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != ';' && c != '=';
}

/* Whether txt begins with the version and a field delimiter (RFC 8460 3.1:
 * "records that do not begin with "v=TLSRPTv1;" are discarded", the ";"
 * read as the ABNF's field-delim, *WSP ";" *WSP); the offset after the ';'
 * in *p_r. */
static bool tlsrpt_begins(const char *txt, size_t len, size_t *p_r)
{
	size_t p;

	if (len < TLSRPT_VERSION_LEN || memcmp(txt, tlsrpt_version, TLSRPT_VERSION_LEN) != 0)
		return false;
	p = tlsrpt_skip_wsp(txt, len, TLSRPT_VERSION_LEN);
	if (p == len || txt[p] != ';')
		return false;
	*p_r = p + 1;
	return true;
}

/* mailto: RFC 6068 "mailto:" [to] ["?" hfields]; the to part percent-decoded
 * into addr, which must be one address local@domain of printable ASCII (a
 * list would need ',', which may not appear). false: not usable. */
static bool tlsrpt_mailto(const char *uri, size_t len, char *addr)
{
	size_t n = 0, at = 0;
	bool have_at = false;

	for (size_t i = sizeof("mailto:") - 1; i < len && uri[i] != '?' && uri[i] != '#'; i++) {
		unsigned char c = (unsigned char)uri[i];
		if (c == '%') {
			/* checked by the caller: two hex digits follow */
			c = (unsigned char)(tlsrpt_hex_value((unsigned char)uri[i + 1]) * 16 +
			                    tlsrpt_hex_value((unsigned char)uri[i + 2]));
			i += 2;
		}
		if (c <= 0x20 || c >= 0x7f || c == ',' || c == '<' || c == '>')
			return false;
		if (c == '@') {
			at = n;
			have_at = true;
		}
		addr[n++] = (char)c; /* n < len <= TLSRPT_URI_MAX */
	}
	addr[n] = '\0';
	/* the last '@' splits; both sides non-empty */
	return have_at && at > 0 && at + 1 < n;
}

/* https: "https://" and a non-empty authority */
static bool tlsrpt_https(const char *uri, size_t len)
{
	size_t p = sizeof("https:") - 1;

	if (len < p + 3 || uri[p] != '/' || uri[p + 1] != '/')
		return false;
	p += 2;
	return uri[p] != '/' && uri[p] != '?' && uri[p] != '#';
}

static bool tlsrpt_scheme_is(const char *uri, size_t len, const char *scheme)
{
	size_t n = strlen(scheme);

	return len > n && strncasecmp(uri, scheme, n) == 0 && uri[n] == ':';
}

/* One URI (uri[0..len), len > 0): checked; kept in rec when usable and
 * there is room. 1 ok (kept or skipped), -1 on a syntax error. */
static int tlsrpt_uri(const char *uri, size_t len, struct tlsrpt_policy_record *rec,
                      const char **error_r)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (uri[i] == '%' && (i + 2 >= len || !tlsrpt_hex((unsigned char)uri[i + 1]) ||
		                      !tlsrpt_hex((unsigned char)uri[i + 2]))) {
			*error_r = "bad percent-encoding in a rua URI";
			return -1;
		}
	/* RFC 3986 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
	if (!tlsrpt_alpha((unsigned char)uri[0])) {
		*error_r = "rua URI without a scheme";
		return -1;
	}
	for (i = 1; i < len && uri[i] != ':'; i++)
		if (!tlsrpt_alpha((unsigned char)uri[i]) && !tlsrpt_digit((unsigned char)uri[i]) &&
		    uri[i] != '+' && uri[i] != '-' && uri[i] != '.')
			break;
	if (i == len || uri[i] != ':') {
		*error_r = "rua URI without a scheme";
		return -1;
	}
	if (rec->n == TLSRPT_RUA_MAX || len > TLSRPT_URI_MAX)
		return 1;
	struct tlsrpt_rua *r = &rec->rua[rec->n];
	if (tlsrpt_scheme_is(uri, len, "mailto")) {
		if (!tlsrpt_mailto(uri, len, r->addr))
			return 1;
		r->scheme = TLSRPT_MAILTO;
	} else if (tlsrpt_scheme_is(uri, len, "https")) {
		if (!tlsrpt_https(uri, len))
			return 1;
		r->scheme = TLSRPT_HTTPS;
		r->addr[0] = '\0';
	} else {
		return 1; /* another scheme: nothing we can send to */
	}
	memcpy(r->uri, uri, len);
	r->uri[len] = '\0';
	rec->n++;
	return 1;
}

/* tlsrpt-rua's value: tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri), from *p_r;
 * *p_r ends after the last URI. */
static int tlsrpt_rua(const char *txt, size_t len, size_t *p_r, struct tlsrpt_policy_record *rec,
                      const char **error_r)
{
	size_t p = *p_r;

	for (;;) {
		size_t start = p;
		while (p < len && tlsrpt_uri_char((unsigned char)txt[p]))
			p++;
		if (p < len && txt[p] != ' ' && txt[p] != '\t' && txt[p] != ',' && txt[p] != ';') {
			*error_r = "invalid character in a rua URI";
			return -1;
		}
		if (p == start) {
			*error_r = "empty rua URI";
			return -1;
		}
		if (tlsrpt_uri(txt + start, p - start, rec, error_r) < 0)
			return -1;
		size_t q = tlsrpt_skip_wsp(txt, len, p);
		if (q == len || txt[q] != ',')
			break;
		p = tlsrpt_skip_wsp(txt, len, q + 1);
	}
	*p_r = p;
	return 1;
}

int tlsrpt_record_parse(const char *txt, size_t len, struct tlsrpt_policy_record *rec_r,
                        const char **error_r)
{
	size_t p, fields = 0, ruas = 0;

	memset(rec_r, 0, sizeof(*rec_r));
	*error_r = NULL;
	if (!tlsrpt_begins(txt, len, &p))
		return 0;
	p = tlsrpt_skip_wsp(txt, len, p);
	/* tlsrpt-record = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim] */
	while (p < len) {
		size_t name = p;
		while (p < len && p - name <= TLSRPT_EXT_NAME_MAX &&
		       (tlsrpt_alpha((unsigned char)txt[p]) ||
		        tlsrpt_digit((unsigned char)txt[p]) ||
		        (p > name && (txt[p] == '_' || txt[p] == '-' || txt[p] == '.'))))
			p++;
		if (p == name || p - name > TLSRPT_EXT_NAME_MAX || p == len || txt[p] != '=') {
			*error_r = "bad field name";
			return -1;
		}
		size_t name_len = p - name;
		p++;
		/* %s"rua=": case-sensitive (RFC 7405) */
		if (name_len == 3 && memcmp(txt + name, "rua", 3) == 0) {
			if (tlsrpt_rua(txt, len, &p, rec_r, error_r) < 0)
				return -1;
			ruas++;
		} else {
			size_t value = p;
			while (p < len && tlsrpt_ext_value_char((unsigned char)txt[p]))
				p++;
			if (p == value) {
				*error_r = "empty extension value";
				return -1;
			}
		}
		fields++;
		size_t q = tlsrpt_skip_wsp(txt, len, p);
		if (q == len) {
			if (q != p) {
				*error_r = "whitespace at the end"; /* only after a ';' */
				return -1;
			}
			break;
		}
		if (txt[q] != ';') {
			*error_r = "bad character after a field";
			return -1;
		}
		p = tlsrpt_skip_wsp(txt, len, q + 1);
	}
	if (fields == 0) {
		*error_r = "no fields";
		return -1;
	}
	/* "rua" is the one required field (RFC 8460 3); two would leave
	 * unclear where to report */
	if (ruas != 1) {
		*error_r = ruas == 0 ? "no rua field" : "more than one rua field";
		return -1;
	}
	if (rec_r->n == 0) {
		*error_r = "no usable rua URI (mailto or https)";
		return -1;
	}
	return 1;
}

int tlsrpt_policy_select(const struct dns_txt *txt, size_t n, struct tlsrpt_policy_record *rec_r,
                         const char **error_r)
{
	size_t found = 0, which = 0, p;

	memset(rec_r, 0, sizeof(*rec_r));
	for (size_t i = 0; i < n; i++)
		if (tlsrpt_begins(txt[i].data, txt[i].len, &p)) {
			found++;
			which = i;
		}
	/* RFC 8460 3.1: "If the number of resulting records is not one, or if
	 * the resulting record is syntactically invalid, senders MUST assume
	 * the recipient domain does not implement TLSRPT." */
	if (found != 1) {
		*error_r = found == 0 ? "no TLSRPT record" : "more than one TLSRPT record";
		return 0;
	}
	if (tlsrpt_record_parse(txt[which].data, txt[which].len, rec_r, error_r) != 1) {
		memset(rec_r, 0, sizeof(*rec_r));
		return 0;
	}
	return 1;
}

/* --- the report (RFC 8460 4) --- */

static const char *const tlsrpt_result_names[] = {
    [TLSRPT_STARTTLS_NOT_SUPPORTED] = "starttls-not-supported",
    [TLSRPT_CERTIFICATE_HOST_MISMATCH] = "certificate-host-mismatch",
    [TLSRPT_CERTIFICATE_EXPIRED] = "certificate-expired",
    [TLSRPT_CERTIFICATE_NOT_TRUSTED] = "certificate-not-trusted",
    [TLSRPT_VALIDATION_FAILURE] = "validation-failure",
    [TLSRPT_TLSA_INVALID] = "tlsa-invalid",
    [TLSRPT_DNSSEC_INVALID] = "dnssec-invalid",
    [TLSRPT_DANE_REQUIRED] = "dane-required",
    [TLSRPT_STS_POLICY_FETCH_ERROR] = "sts-policy-fetch-error",
    [TLSRPT_STS_POLICY_INVALID] = "sts-policy-invalid",
    [TLSRPT_STS_WEBPKI_INVALID] = "sts-webpki-invalid",
};

static const char *const tlsrpt_policy_type_names[] = {
    [TLSRPT_POLICY_TLSA] = "tlsa",
    [TLSRPT_POLICY_STS] = "sts",
    [TLSRPT_POLICY_NONE] = "no-policy-found",
};

const char *tlsrpt_result_name(enum tlsrpt_result r)
{
	size_t n = sizeof(tlsrpt_result_names) / sizeof(tlsrpt_result_names[0]);

	return (size_t)r < n ? tlsrpt_result_names[r] : NULL;
}

const char *tlsrpt_policy_type_name(enum tlsrpt_policy_type t)
{
	size_t n = sizeof(tlsrpt_policy_type_names) / sizeof(tlsrpt_policy_type_names[0]);

	return (size_t)t < n ? tlsrpt_policy_type_names[t] : NULL;
}

/* A JSON writer with a sticky error: each call does nothing once one failed. */
struct tlsrpt_json {
	struct buf *b;
	bool failed;
	bool first; /* no member or element yet in the current object/array */
};

static void tlsrpt_json_raw(struct tlsrpt_json *w, const char *s, size_t len)
{
	if (!w->failed && buf_append(w->b, s, len) < 0)
		w->failed = true;
}

static void tlsrpt_json_lit(struct tlsrpt_json *w, const char *s)
{
	tlsrpt_json_raw(w, s, strlen(s));
}

/* The length of the valid UTF-8 sequence at s (RFC 3629 4), 0 if invalid. */
static size_t tlsrpt_utf8_len(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	/* no overlong forms, no surrogates, nothing past U+10FFFF */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* RFC 8259 7: the two-character escapes of control characters */
static const char *const tlsrpt_json_ctl[0x20] = {
    ['\b'] = "\\b", ['\f'] = "\\f", ['\n'] = "\\n", ['\r'] = "\\r", ['\t'] = "\\t",
};

/* A JSON string (RFC 8259 7): '"', '\' and controls escaped, valid UTF-8 as
 * is, each octet of an invalid sequence as U+FFFD. */
static void tlsrpt_json_str(struct tlsrpt_json *w, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t len = strlen(str), i = 0, run = 0;
	char esc[8];

	tlsrpt_json_raw(w, "\"", 1);
	while (i < len) {
		size_t n = tlsrpt_utf8_len(s + i, len - i);
		const char *rep = NULL;
		if (n == 0) {
			rep = "\\ufffd";
			n = 1;
		} else if (s[i] == '"') {
			rep = "\\\"";
		} else if (s[i] == '\\') {
			rep = "\\\\";
		} else if (s[i] < 0x20) {
			rep = tlsrpt_json_ctl[s[i]];
			if (rep == NULL) {
				snprintf(esc, sizeof(esc), "\\u%04x", s[i]);
				rep = esc;
			}
		}
		if (rep == NULL) {
			i += n;
			run += n;
			continue;
		}
		tlsrpt_json_raw(w, str + i - run, run);
		run = 0;
		tlsrpt_json_lit(w, rep);
		i += n;
	}
	tlsrpt_json_raw(w, str + i - run, run);
	tlsrpt_json_raw(w, "\"", 1);
}

static void tlsrpt_json_open(struct tlsrpt_json *w, const char *bracket)
{
	tlsrpt_json_lit(w, bracket);
	w->first = true;
}

static void tlsrpt_json_close(struct tlsrpt_json *w, const char *bracket)
{
	tlsrpt_json_lit(w, bracket);
	w->first = false;
}

/* Before an array element or an object member: the comma. */
static void tlsrpt_json_next(struct tlsrpt_json *w)
{
	if (!w->first)
		tlsrpt_json_raw(w, ",", 1);
	w->first = false;
}

/* "key": (keys are ours: plain ASCII) */
static void tlsrpt_json_key(struct tlsrpt_json *w, const char *key)
{
	tlsrpt_json_next(w);
	tlsrpt_json_raw(w, "\"", 1);
	tlsrpt_json_lit(w, key);
	tlsrpt_json_raw(w, "\":", 2);
}

static void tlsrpt_json_key_str(struct tlsrpt_json *w, const char *key, const char *val)
{
	if (val == NULL) {
		w->failed = true;
		return;
	}
	tlsrpt_json_key(w, key);
	tlsrpt_json_str(w, val);
}

static void tlsrpt_json_key_opt(struct tlsrpt_json *w, const char *key, const char *val)
{
	if (val != NULL)
		tlsrpt_json_key_str(w, key, val);
}

static void tlsrpt_json_key_u64(struct tlsrpt_json *w, const char *key, uint64_t v)
{
	char num[24];

	tlsrpt_json_key(w, key);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	tlsrpt_json_lit(w, num);
}

static void tlsrpt_json_key_strings(struct tlsrpt_json *w, const char *key, const char *const *v,
                                    size_t n)
{
	if (n == 0)
		return;
	tlsrpt_json_key(w, key);
	tlsrpt_json_open(w, "[");
	for (size_t i = 0; i < n; i++) {
		tlsrpt_json_next(w);
		if (v[i] == NULL)
			w->failed = true;
		else
			tlsrpt_json_str(w, v[i]);
	}
	tlsrpt_json_close(w, "]");
}

/* RFC 3339 date-time in UTC, as RFC 8460 4.4 asks: 2016-04-01T00:00:00Z */
static void tlsrpt_json_key_time(struct tlsrpt_json *w, const char *key, time_t t)
{
	struct tm tm;
	char s[32];

	if (gmtime_r(&t, &tm) == NULL || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900 ||
	    strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		w->failed = true;
		return;
	}
	tlsrpt_json_key_str(w, key, s);
}

static void tlsrpt_json_failure(struct tlsrpt_json *w, const struct tlsrpt_failure *f)
{
	const char *result = tlsrpt_result_name(f->result);

	tlsrpt_json_next(w);
	tlsrpt_json_open(w, "{");
	tlsrpt_json_key_str(w, "result-type", result);
	tlsrpt_json_key_str(w, "sending-mta-ip", f->sending_mta_ip);
	tlsrpt_json_key_opt(w, "receiving-mx-hostname", f->receiving_mx_hostname);
	tlsrpt_json_key_opt(w, "receiving-mx-helo", f->receiving_mx_helo);
	tlsrpt_json_key_opt(w, "receiving-ip", f->receiving_ip);
	tlsrpt_json_key_u64(w, "failed-session-count", f->failed_session_count);
	tlsrpt_json_key_opt(w, "additional-information", f->additional_information);
	tlsrpt_json_key_opt(w, "failure-reason-code", f->failure_reason_code);
	tlsrpt_json_close(w, "}");
}

static void tlsrpt_json_policy(struct tlsrpt_json *w, const struct tlsrpt_policy *p)
{
	tlsrpt_json_next(w);
	tlsrpt_json_open(w, "{");
	tlsrpt_json_key(w, "policy");
	tlsrpt_json_open(w, "{");
	tlsrpt_json_key_str(w, "policy-type", tlsrpt_policy_type_name(p->type));
	tlsrpt_json_key_strings(w, "policy-string", p->strings, p->n_strings);
	tlsrpt_json_key_str(w, "policy-domain", p->domain);
	tlsrpt_json_key_strings(w, "mx-host", p->mx_hosts, p->n_mx_hosts);
	tlsrpt_json_close(w, "}");
	tlsrpt_json_key(w, "summary");
	tlsrpt_json_open(w, "{");
	tlsrpt_json_key_u64(w, "total-successful-session-count", p->successful);
	tlsrpt_json_key_u64(w, "total-failure-session-count", p->failed);
	tlsrpt_json_close(w, "}");
	if (p->n_failures > 0) {
		tlsrpt_json_key(w, "failure-details");
		tlsrpt_json_open(w, "[");
		for (size_t i = 0; i < p->n_failures; i++)
			tlsrpt_json_failure(w, &p->failures[i]);
		tlsrpt_json_close(w, "]");
	}
	tlsrpt_json_close(w, "}");
}

int tlsrpt_report_json(const struct tlsrpt_report *r, struct buf *out)
{
	struct tlsrpt_json w = {.b = out};

	tlsrpt_json_open(&w, "{");
	tlsrpt_json_key_str(&w, "organization-name", r->organization_name);
	tlsrpt_json_key(&w, "date-range");
	tlsrpt_json_open(&w, "{");
	tlsrpt_json_key_time(&w, "start-datetime", r->start);
	tlsrpt_json_key_time(&w, "end-datetime", r->end);
	tlsrpt_json_close(&w, "}");
	tlsrpt_json_key_str(&w, "contact-info", r->contact_info);
	tlsrpt_json_key_str(&w, "report-id", r->report_id);
	tlsrpt_json_key(&w, "policies");
	tlsrpt_json_open(&w, "[");
	for (size_t i = 0; i < r->n_policies; i++)
		tlsrpt_json_policy(&w, &r->policies[i]);
	tlsrpt_json_close(&w, "]");
	tlsrpt_json_close(&w, "}");
	return w.failed ? -1 : 1;
}

/* --- gzip (RFC 8460 5.3: application/tlsrpt+gzip) --- */

int tlsrpt_gzip(const void *data, size_t len, struct buf *out)
{
	/* input handed to zlib in pieces that fit its uInt counters */
	enum { IN_CHUNK = 1 << 20, OUT_CHUNK = 16384 };
	unsigned char chunk[OUT_CHUNK];
	const unsigned char *in = data;
	size_t start = out->len, left = len;
	z_stream z;
	int rc = Z_OK, flush;

	memset(&z, 0, sizeof(z));
	/* windowBits 15 + 16: a gzip wrapper with a default header (mtime 0) */
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		return -1;
	do {
		size_t take = left < IN_CHUNK ? left : IN_CHUNK;
		z.next_in = (unsigned char *)in;
		z.avail_in = (uInt)take;
		in += take;
		left -= take;
		flush = left == 0 ? Z_FINISH : Z_NO_FLUSH;
		do {
			z.next_out = chunk;
			z.avail_out = sizeof(chunk);
			rc = deflate(&z, flush);
			if (rc == Z_STREAM_ERROR ||
			    buf_append(out, chunk, sizeof(chunk) - z.avail_out) < 0)
				goto fail;
		} while (z.avail_out == 0);
	} while (flush != Z_FINISH);
	if (rc != Z_STREAM_END)
		goto fail;
	deflateEnd(&z);
	return 1;
fail:
	deflateEnd(&z);
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	return -1;
}

/* --- the file name (RFC 8460 5.3) --- */

static bool tlsrpt_domain_ok(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!tlsrpt_alpha((unsigned char)*s) && !tlsrpt_digit((unsigned char)*s) &&
		    *s != '-' && *s != '.')
			return false;
	return true;
}

int tlsrpt_report_filename(const char *sender, const char *policy_domain, time_t begin, time_t end,
                           const char *unique_id, char *out, size_t outlen)
{
	int n;

	if (!tlsrpt_domain_ok(sender) || !tlsrpt_domain_ok(policy_domain) || begin < 0 || end < 0)
		return -1;
	/* unique-id = 1*(ALPHA / DIGIT) */
	if (unique_id != NULL) {
		if (*unique_id == '\0')
			return -1;
		for (const char *s = unique_id; *s != '\0'; s++)
			if (!tlsrpt_alpha((unsigned char)*s) && !tlsrpt_digit((unsigned char)*s))
				return -1;
	}
	n = snprintf(out, outlen, "%s!%s!%lld!%lld%s%s.json.gz", sender, policy_domain,
	             (long long)begin, (long long)end, unique_id != NULL ? "!" : "",
	             unique_id != NULL ? unique_id : "");
	if (n < 0 || (size_t)n >= outlen)
		return -1;
	return 1;
}

int tlsrpt_day(time_t t, char *out)
{
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, TLSRPT_DAY_LEN + 1, "%Y-%m-%d", &tm) != TLSRPT_DAY_LEN)
		return -1;
	return 1;
}

time_t tlsrpt_day_start(const char *day)
{
	struct tm tm = {0};
	for (int i = 0; i < TLSRPT_DAY_LEN; i++)
		if (i == 4 || i == 7 ? day[i] != '-' : day[i] < '0' || day[i] > '9')
			return -1;
	if (day[TLSRPT_DAY_LEN] != '\0' ||
	    sscanf(day, "%4d-%2d-%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday) != 3 ||
	    tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return timegm(&tm);
}
