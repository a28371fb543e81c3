/* Delivery status notifications (dsn.h). */
#include "delivery/dsn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "core/buf.h"
#include "core/str.h"
#include "store/store.h"

/* The original is copied in pieces of this size. */
#define DSN_COPY_STEP (64u << 10)

struct dsn_out {
	dsn_write_fn *write;
	void *ctx;
	struct buf b; /* what is not written yet */
	bool failed;
};

static void out_flush(struct dsn_out *o)
{
	if (o->b.len > 0 && !o->failed && o->write(o->ctx, o->b.data, o->b.len) < 0)
		o->failed = true;
	buf_reset(&o->b);
}

static void out_str(struct dsn_out *o, const char *s)
{
	if (buf_append_str(&o->b, s) < 0)
		o->failed = true;
	if (o->b.len >= DSN_COPY_STEP)
		out_flush(o);
}

static void out_printf(struct dsn_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(struct dsn_out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (buf_vprintf(&o->b, fmt, ap) < 0)
		o->failed = true;
	va_end(ap);
	if (o->b.len >= DSN_COPY_STEP)
		out_flush(o);
}

/* A value for a header field or the text part: controls (CR, LF, TAB...) become
 * spaces, and with ascii_only octets above 127 become '?'. malloc'd. */
static char *dsn_clean(const char *s, bool ascii_only)
{
	char *r = strdup(s != NULL ? s : "");
	if (r == NULL)
		return NULL;
	for (unsigned char *p = (unsigned char *)r; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			*p = ' ';
		else if (*p >= 0x80 && ascii_only)
			*p = '?';
	}
	return r;
}

/* xtext (RFC 3461 4) decoded, then cleaned. malloc'd. */
static char *dsn_xtext_decode(const char *s, bool ascii_only)
{
	size_t n = strlen(s);
	char *r = malloc(n + 1), *w = r;
	if (r == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int hi, lo;
		if (s[i] == '+' && i + 2 < n + 1 && (hi = str_hexval((unsigned char)s[i + 1])) >= 0 &&
		    (lo = str_hexval((unsigned char)s[i + 2])) >= 0) {
			*w++ = (char)(hi * 16 + lo);
			i += 2;
		} else {
			*w++ = s[i];
		}
	}
	*w = '\0';
	char *c = dsn_clean(r, ascii_only);
	free(r);
	return c;
}

static bool dsn_is_ascii(const char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

static void dsn_date(int64_t t, char out[64])
{
	time_t tt = (time_t)t;
	struct tm tm;
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	gmtime_r(&tt, &tm);
	/* RFC 5322 3.3, fixed English names whatever the locale */
	snprintf(out, 64, "%s, %d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
	         months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int dsn_fold_field(struct buf *out, const char *name, const char *value)
{
	size_t col = strlen(name) + 2, vlen = strlen(value);
	if (buf_printf(out, "%s: ", name) < 0)
		return -1;
	size_t i = 0;
	bool first = true;
	while (i < vlen) {
		/* the next word (with the spaces before it) */
		size_t ws = i;
		while (i < vlen && value[i] == ' ')
			i++;
		size_t we = i;
		while (we < vlen && value[we] != ' ')
			we++;
		size_t wlen = we - i;
		if (!first && col + (i - ws) + wlen > 78 && i > ws) {
			/* fold at the space before the word */
			if (buf_append(out, "\r\n", 2) < 0)
				return -1;
			col = 0;
			ws = i - 1; /* keep one space as the folding white space */
		} else if (first) {
			ws = i; /* no leading blanks after "Name: " */
		}
		/* a single word longer than a line: cut hard, continuing on a new
		 * folded line (only in texts we make ourselves: replies are printable
		 * words of bounded length) */
		const char *p = value + ws;
		size_t plen = we - ws;
		while (col + plen > 998 - 2) {
			size_t take = 998 - 2 - col;
			if (buf_append(out, p, take) < 0 || buf_append(out, "\r\n ", 3) < 0)
				return -1;
			p += take;
			plen -= take;
			col = 1;
		}
		if (buf_append(out, p, plen) < 0)
			return -1;
		col += plen;
		i = we;
		first = false;
	}
	return buf_append(out, "\r\n", 2);
}

static void out_field(struct dsn_out *o, const char *name, const char *value)
{
	if (dsn_fold_field(&o->b, name, value) < 0)
		o->failed = true;
	if (o->b.len >= DSN_COPY_STEP)
		out_flush(o);
}

/* The host name of a remote_mta value "name[ip]:port". */
static char *dsn_mta_name(const char *m)
{
	const char *b = strchr(m, '[');
	size_t n = b != NULL && b > m ? (size_t)(b - m) : strlen(m);
	char *r = str_ndup(m, n);
	if (r != NULL && b == m) {
		/* "[ip]:port": the address itself, without the port */
		const char *e = strchr(m, ']');
		free(r);
		r = str_ndup(m + 1, e != NULL ? (size_t)(e - m - 1) : strlen(m + 1));
	}
	return r;
}

/* Copies the original: all of it, or (header_only) its header section up to and
 * including the empty line that ends it (or DSN_HEADER_MAX, cut at a line end).
 * Ends with CRLF. */
static int dsn_copy_original(struct dsn_out *o, const struct dsn_params *p, bool header_only,
                             dsn_read_fn *read, void *rctx, char **error_r)
{
	char *chunk = malloc(DSN_COPY_STEP);
	uint64_t off = 0;
	/* the last 3 octets seen, to find CRLF CRLF (and LF LF) across chunks */
	char tail[4] = {0, 0, 0, 0};
	size_t line_start_out = 0; /* header_only: octets copied up to the last line end */
	bool ended_crlf = false, empty = true;
	int ret = -1;

	if (chunk == NULL)
		return str_error(error_r, "out of memory");
	out_flush(o);
	for (;;) {
		size_t want = DSN_COPY_STEP;
		if (header_only && off + want > DSN_HEADER_MAX)
			want = (size_t)(DSN_HEADER_MAX - off);
		if (want == 0) {
			/* no end of header within the limit: cut at the last line end
			 * (what was written beyond it is not recoverable, so the cut
			 * happens in the chunk below) */
			break;
		}
		long n = read(rctx, chunk, want, off);
		if (n < 0) {
			str_error(error_r, "cannot read the original message");
			goto out;
		}
		if (n == 0)
			break;
		size_t use = (size_t)n;
		bool stop = false;
		if (header_only) {
			for (size_t i = 0; i < (size_t)n; i++) {
				tail[0] = tail[1];
				tail[1] = tail[2];
				tail[2] = tail[3];
				tail[3] = chunk[i];
				if (chunk[i] == '\n')
					line_start_out = (size_t)(off + i + 1);
				if ((tail[2] == '\n' && tail[3] == '\n') ||
				    (tail[0] == '\r' && tail[1] == '\n' && tail[2] == '\r' &&
				     tail[3] == '\n')) {
					use = i + 1;
					stop = true;
					break;
				}
			}
			if (!stop && off + (uint64_t)n >= DSN_HEADER_MAX) {
				/* cut at the last line end inside the limit */
				use = line_start_out > off ? (size_t)(line_start_out - off) : 0;
				stop = true;
			}
		}
		if (use > 0) {
			empty = false;
			ended_crlf = use >= 2 && chunk[use - 2] == '\r' && chunk[use - 1] == '\n';
			if (o->write(o->ctx, chunk, use) < 0) {
				str_error(error_r, "cannot write the DSN");
				goto out;
			}
		}
		off += (uint64_t)n;
		if (stop)
			break;
	}
	if (!empty && !ended_crlf)
		out_str(o, "\r\n");
	ret = 1;
	(void)p;
out:
	free(chunk);
	return ret;
}

static const char *dsn_action_name(enum dsn_action a)
{
	switch (a) {
	case DSN_DELAYED: return "delayed";
	case DSN_DELIVERED: return "delivered";
	case DSN_RELAYED: return "relayed";
	default: return "failed";
	}
}

int dsn_build(const struct dsn_params *p, const struct dsn_rcpt *rcpts, size_t n,
              dsn_read_fn *read, void *rctx, dsn_write_fn *write, void *wctx, char **error_r)
{
	struct dsn_out o = {.write = write, .ctx = wctx};
	unsigned char rnd[12];
	char bnd[64], hex[25], date[64];
	bool any_failed = false, any_delayed = false;
	bool utf8 = p->smtputf8;
	char *v = NULL;

	if (n == 0)
		return str_error(error_r, "dsn_build: no recipients");
	buf_init(&o.b, 0);
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return str_error(error_r, "dsn_build: no random bytes");
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	snprintf(bnd, sizeof(bnd), "=_hermod_dsn_%s", hex);
	for (size_t i = 0; i < n; i++) {
		any_failed |= rcpts[i].action == DSN_FAILED;
		any_delayed |= rcpts[i].action == DSN_DELAYED;
		if (!dsn_is_ascii(rcpts[i].rcpt))
			utf8 = true;
	}
	const char *subject = any_failed    ? "Undelivered Mail Returned to Sender"
	                      : any_delayed ? "Delayed Mail (still being retried)"
	                                    : "Successful Mail Delivery Report";
	/* RFC 6533: message/global-delivery-status and message/global(-headers)
	 * when addresses or the returned header may be UTF-8 */
	const char *status_type = utf8 ? "message/global-delivery-status" : "message/delivery-status";
	bool full = !(p->ret == STORE_RET_HDRS || !any_failed || p->orig_size > p->full_max);
	const char *orig_type = full ? (utf8 ? "message/global" : "message/rfc822")
	                             : (utf8 ? "message/global-headers" : "text/rfc822-headers");

	/* ---- header ---- */
	dsn_date(p->now, date);
	out_printf(&o, "From: Mail Delivery System <%s>\r\n", p->from);
	v = dsn_clean(p->to, !utf8);
	out_printf(&o, "To: <%s>\r\n", v != NULL ? v : "");
	free(v);
	out_printf(&o, "Subject: %s\r\n", subject);
	out_printf(&o, "Date: %s\r\n", date);
	out_printf(&o, "Message-ID: <%s.dsn@%s>\r\n", hex, p->reporting_mta);
	out_str(&o, "MIME-Version: 1.0\r\n");
	/* RFC 3834 5: an automatic response, not to be answered automatically */
	out_str(&o, "Auto-Submitted: auto-replied\r\n");
	out_printf(&o,
	           "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	           "\tboundary=\"%s\"\r\n",
	           bnd);
	out_str(&o, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

	/* ---- 1: for people ---- */
	out_printf(&o, "--%s\r\nContent-Type: text/plain; charset=%s\r\n", bnd,
	           utf8 ? "utf-8" : "us-ascii");
	out_str(&o, "Content-Description: Notification\r\n\r\n");
	out_printf(&o, "This is the mail system at host %s.\r\n\r\n", p->reporting_mta);
	if (any_failed)
		out_str(&o, "I'm sorry to have to inform you that your message could not\r\n"
		            "be delivered to one or more recipients. It's attached below.\r\n\r\n"
		            "The mail system\r\n\r\n");
	else if (any_delayed)
		out_str(&o, "Your message could not be delivered yet to one or more\r\n"
		            "recipients. The mail system keeps trying; you do not need to\r\n"
		            "send it again.\r\n\r\n");
	else
		out_str(&o, "Your message was delivered to the recipients below.\r\n\r\n");
	for (size_t i = 0; i < n; i++) {
		const struct dsn_rcpt *r = &rcpts[i];
		char *addr = dsn_clean(r->rcpt, !utf8);
		char *why = dsn_clean(r->diagnostic != NULL ? r->diagnostic
		                      : r->reason != NULL   ? r->reason
		                                            : dsn_action_name(r->action),
		                      !utf8);
		char *mta = r->remote_mta != NULL && r->diagnostic != NULL ? dsn_mta_name(r->remote_mta)
		                                                           : NULL;
		struct buf line;
		buf_init(&line, 0);
		if (mta != NULL)
			buf_printf(&line, "<%s>: host %s said: %s", addr != NULL ? addr : "", mta,
			           why != NULL ? why : "");
		else
			buf_printf(&line, "<%s>: %s", addr != NULL ? addr : "", why != NULL ? why : "");
		/* wrapped like a header value, without a name: reuse the folding */
		struct buf f;
		buf_init(&f, 0);
		if (line.data != NULL && dsn_fold_field(&f, "X", line.data) > 0 && f.len > 3)
			out_str(&o, f.data + 3); /* without "X: " */
		else
			o.failed = true;
		out_str(&o, "\r\n");
		buf_free(&f);
		buf_free(&line);
		free(addr);
		free(why);
		free(mta);
	}

	/* ---- 2: for programs (RFC 3464 2.2, 2.3) ---- */
	out_printf(&o, "--%s\r\nContent-Type: %s\r\nContent-Description: Delivery report\r\n\r\n",
	           bnd, status_type);
	out_printf(&o, "Reporting-MTA: dns; %s\r\n", p->reporting_mta);
	if (p->envid != NULL) {
		v = dsn_xtext_decode(p->envid, !utf8);
		out_field(&o, "Original-Envelope-Id", v != NULL ? v : "");
		free(v);
	}
	if (p->arrival > 0) {
		dsn_date(p->arrival, date);
		out_field(&o, "Arrival-Date", date);
	}
	for (size_t i = 0; i < n; i++) {
		const struct dsn_rcpt *r = &rcpts[i];
		struct buf val;
		buf_init(&val, 0);
		out_str(&o, "\r\n");
		if (r->orcpt != NULL) {
			/* addr-type ";" xtext, decoded for the report */
			v = dsn_xtext_decode(r->orcpt, !utf8);
			if (v != NULL) {
				char *semi = strchr(v, ';');
				if (semi != NULL) {
					*semi = '\0';
					const char *a = semi + 1;
					while (*a == ' ')
						a++;
					buf_printf(&val, "%s; %s", v, a);
				} else {
					buf_printf(&val, "rfc822; %s", v);
				}
				out_field(&o, "Original-Recipient", val.data != NULL ? val.data : "");
				buf_reset(&val);
			}
			free(v);
		}
		v = dsn_clean(r->rcpt, !utf8);
		/* RFC 6533 3: "utf-8" address type for a non-ASCII address */
		buf_printf(&val, "%s; %s", dsn_is_ascii(r->rcpt) ? "rfc822" : "utf-8",
		           v != NULL ? v : "");
		free(v);
		out_field(&o, "Final-Recipient", val.data != NULL ? val.data : "");
		buf_reset(&val);
		out_field(&o, "Action", dsn_action_name(r->action));
		out_field(&o, "Status", r->status != NULL ? r->status : "5.0.0");
		if (r->remote_mta != NULL && r->diagnostic != NULL) {
			char *mta = dsn_mta_name(r->remote_mta);
			buf_printf(&val, "dns; %s", mta != NULL ? mta : "");
			free(mta);
			out_field(&o, "Remote-MTA", val.data != NULL ? val.data : "");
			buf_reset(&val);
		}
		if (r->diagnostic != NULL) {
			v = dsn_clean(r->diagnostic, true);
			buf_printf(&val, "smtp; %s", v != NULL ? v : "");
			free(v);
			out_field(&o, "Diagnostic-Code", val.data != NULL ? val.data : "");
			buf_reset(&val);
		} else if (r->reason != NULL) {
			/* our own reason: RFC 3464 2.3.6 has no type for it but "X-" ones;
			 * Postfix writes these as "X-Postfix"; ours are "X-hermod" */
			v = dsn_clean(r->reason, true);
			buf_printf(&val, "X-hermod; %s", v != NULL ? v : "");
			free(v);
			out_field(&o, "Diagnostic-Code", val.data != NULL ? val.data : "");
			buf_reset(&val);
		}
		if (r->last_attempt > 0) {
			dsn_date(r->last_attempt, date);
			out_field(&o, "Last-Attempt-Date", date);
		}
		if (r->action == DSN_DELAYED && r->retry_until > 0) {
			dsn_date(r->retry_until, date);
			out_field(&o, "Will-Retry-Until", date);
		}
		buf_free(&val);
	}

	/* ---- 3: the original (RFC 3462 / RFC 3464 2.1, RFC 3461 4.3 RET) ---- */
	out_printf(&o, "\r\n--%s\r\nContent-Type: %s\r\nContent-Description: %s\r\n", bnd,
	           orig_type, full ? "Undelivered Message" : "Undelivered Message Headers");
	/* RFC 2045 6.1 / RFC 6152: an 8-bit original is labelled so (its header can
	 * be 8-bit with SMTPUTF8 too); a BINARYMIME one is binary in full only */
	if (p->body == STORE_BODY_BINARYMIME && full)
		out_str(&o, "Content-Transfer-Encoding: binary\r\n");
	else if (p->body != STORE_BODY_7BIT || p->smtputf8)
		out_str(&o, "Content-Transfer-Encoding: 8bit\r\n");
	out_str(&o, "\r\n");
	if (o.failed) {
		buf_free(&o.b);
		return str_error(error_r, "cannot write the DSN");
	}
	if (dsn_copy_original(&o, p, !full, read, rctx, error_r) < 0) {
		buf_free(&o.b);
		return -1;
	}
	out_printf(&o, "\r\n--%s--\r\n", bnd);
	out_flush(&o);
	buf_free(&o.b);
	if (o.failed)
		return str_error(error_r, "cannot write the DSN");
	return 1;
}
