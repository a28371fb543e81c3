/* libFuzzer target: bounce reports (src/delivery/dsn.c) built from what peers
 * control: the remote reply (Diagnostic-Code), the recipient, and the original
 * message whose header (or all of it) comes back. The builder must never read
 * or write out of bounds, and every line of the report it writes itself (up to
 * the returned original) must end in CRLF and stay within 998 octets. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "delivery/dsn.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct orig {
	const uint8_t *p;
	size_t n;
};

static long orig_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	const struct orig *o = ctx;
	if (off >= o->n)
		return 0;
	if (len > o->n - off)
		len = o->n - off;
	/* short reads, as a file may give */
	if (len > 7 && (off & 1))
		len = 7;
	memcpy(buf, o->p + off, len);
	return (long)len;
}

static int out_write(void *ctx, const void *p, size_t n)
{
	return buf_append(ctx, p, n) < 0 ? -1 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* [flags][reply NUL][rcpt NUL][original...] */
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	const char *rest = (const char *)data + 1;
	size_t left = size - 1;
	const char *nul = memchr(rest, '\0', left);
	if (nul == NULL)
		return 0;
	char *reply = strndup(rest, (size_t)(nul - rest));
	left -= (size_t)(nul - rest) + 1;
	rest = nul + 1;
	nul = memchr(rest, '\0', left);
	if (nul == NULL) {
		free(reply);
		return 0;
	}
	char *rcpt = strndup(rest, (size_t)(nul - rest));
	left -= (size_t)(nul - rest) + 1;
	rest = nul + 1;
	struct orig o = {(const uint8_t *)rest, left};

	struct dsn_rcpt r = {
	    .rcpt = rcpt,
	    .orcpt = (flags & 1) ? "rfc822;orig@example.test" : NULL,
	    .action = (flags & 2) ? DSN_DELAYED : DSN_FAILED,
	    .status = (flags & 2) ? "4.4.1" : "5.1.1",
	    .remote_mta = (flags & 4) ? "mx.example.net[192.0.2.1]:25" : NULL,
	    .diagnostic = (flags & 8) ? reply : NULL,
	    .reason = (flags & 8) ? NULL : reply,
	    .last_attempt = 1700000000,
	    .retry_until = (flags & 2) ? 1700400000 : 0,
	};
	struct dsn_params p = {
	    .reporting_mta = "mx.example.test",
	    .from = "MAILER-DAEMON@mx.example.test",
	    .to = "sender@example.test",
	    .envid = (flags & 16) ? "QQ314159" : NULL,
	    .arrival = 1699990000,
	    .now = 1700000000,
	    .ret = (flags & 32) ? STORE_RET_HDRS : STORE_RET_FULL,
	    .smtputf8 = (flags & 64) != 0,
	    .body = (flags & 128) ? STORE_BODY_8BITMIME : STORE_BODY_7BIT,
	    .orig_size = left,
	    .full_max = 4096,
	};
	struct buf out;
	buf_init(&out, 16u << 20);
	char *err = NULL;
	if (dsn_build(&p, &r, 1, orig_read, &o, out_write, &out, &err) > 0) {
		/* our own lines: up to the part that returns the original */
		const char *end = out.data;
		static const char *const parts[] = {
		    "Content-Type: message/rfc822", "Content-Type: text/rfc822-headers",
		    "Content-Type: message/global", "Content-Type: message/global-headers"};
		const char *stop = out.data + out.len;
		for (size_t k = 0; k < sizeof(parts) / sizeof(parts[0]); k++) {
			const char *at = strstr(out.data, parts[k]);
			if (at != NULL && at < stop)
				stop = at;
		}
		for (const char *l = out.data; l < stop; l = end + 1) {
			end = memchr(l, '\n', (size_t)(stop - l));
			if (end == NULL)
				break;
			if (end == l || end[-1] != '\r' || end - l > 999)
				abort();
			if (memchr(l, '\r', (size_t)(end - 1 - l)) != NULL)
				abort();
		}
	}
	free(err);
	buf_free(&out);
	free(reply);
	free(rcpt);
	return 0;
}
