/* DSN builder (src/delivery/dsn.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "delivery/dsn.h"
#include "store/store.h"
#include "unit.h"

struct orig {
	const char *data;
	size_t len;
	size_t max_read; /* largest read seen */
	int fail_at;     /* read number that fails, 0 never */
	int reads;
};

static long orig_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct orig *o = ctx;
	o->reads++;
	if (o->fail_at != 0 && o->reads == o->fail_at)
		return -1;
	if (len > o->max_read)
		o->max_read = len;
	if (off >= o->len)
		return 0;
	size_t n = o->len - (size_t)off < len ? o->len - (size_t)off : len;
	memcpy(buf, o->data + off, n);
	return (long)n;
}

static int out_write(void *ctx, const void *p, size_t n)
{
	return buf_append(ctx, p, n);
}

static const struct dsn_params base_params = {
    .reporting_mta = "mx.example.test",
    .from = "MAILER-DAEMON@mx.example.test",
    .to = "alice@example.test",
    .arrival = 1700000000,
    .now = 1700000100,
    .ret = STORE_RET_NONE,
    .orig_size = 0,
    .full_max = 1 << 20,
};

static char *build(const struct dsn_params *p, const struct dsn_rcpt *r, size_t n,
                   struct orig *o)
{
	struct buf out;
	char *err = NULL;
	buf_init(&out, 0);
	if (dsn_build(p, r, n, orig_read, o, out_write, &out, &err) < 0) {
		fprintf(stderr, "dsn_build: %s\n", err);
		free(err);
		buf_free(&out);
		return NULL;
	}
	return buf_steal(&out, NULL);
}

/* every line ends in CRLF and none is longer than 998 octets */
static int lines_ok(const char *s)
{
	size_t col = 0;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '\n') {
			if (p == s || p[-1] != '\r')
				return 0;
			col = 0;
			continue;
		}
		if (*p == '\r' && p[1] != '\n')
			return 0;
		if (++col > 999)
			return 0;
	}
	return col == 0;
}

static void test_failed_full(void)
{
	const char orig_s[] = "From: <alice@example.test>\r\nSubject: hi there\r\n\r\nbody line\r\n";
	struct orig o = {orig_s, sizeof(orig_s) - 1, 0, 0, 0};
	struct dsn_params p = base_params;
	p.orig_size = o.len;
	p.envid = "abc+2Bdef";
	struct dsn_rcpt r[2] = {
	    {.rcpt = "bob@dest.test", .orcpt = "rfc822;bob+40x@dest.test", .action = DSN_FAILED,
	     .status = "5.1.1", .remote_mta = "mx.dest.test[192.0.2.1]:25",
	     .diagnostic = "550 5.1.1 no such user", .last_attempt = 1700000100},
	    {.rcpt = "carl@null.test", .action = DSN_FAILED, .status = "5.1.10",
	     .reason = "the domain null.test accepts no mail (null MX)"},
	};
	char *s = build(&p, r, 2, &o);
	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK(lines_ok(s));
	CHECK(strstr(s, "From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\n") == s);
	CHECK(strstr(s, "\r\nTo: <alice@example.test>\r\n") != NULL);
	CHECK(strstr(s, "\r\nSubject: Undelivered Mail Returned to Sender\r\n") != NULL);
	CHECK(strstr(s, "\r\nDate: Tue, 14 Nov 2023 22:15:00 +0000\r\n") != NULL);
	CHECK(strstr(s, "\r\nAuto-Submitted: auto-replied\r\n") != NULL);
	CHECK(strstr(s, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	                "\tboundary=\"=_hermod_dsn_") != NULL);
	CHECK(strstr(s, "Content-Type: message/delivery-status\r\n") != NULL);
	CHECK(strstr(s, "\r\nReporting-MTA: dns; mx.example.test\r\n"
	                "Original-Envelope-Id: abc+def\r\n"
	                "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
	                "\r\n"
	                "Original-Recipient: rfc822; bob@x@dest.test\r\n"
	                "Final-Recipient: rfc822; bob@dest.test\r\n"
	                "Action: failed\r\n"
	                "Status: 5.1.1\r\n"
	                "Remote-MTA: dns; mx.dest.test\r\n"
	                "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
	                "Last-Attempt-Date: Tue, 14 Nov 2023 22:15:00 +0000\r\n"
	                "\r\n"
	                "Final-Recipient: rfc822; carl@null.test\r\n"
	                "Action: failed\r\n"
	                "Status: 5.1.10\r\n"
	                "Diagnostic-Code: X-hermod; the domain null.test accepts no mail (null MX)\r\n") !=
	      NULL);
	CHECK(strstr(s, "<bob@dest.test>: host mx.dest.test said: 550 5.1.1 no such user\r\n") !=
	      NULL);
	CHECK(strstr(s, "Content-Type: message/rfc822\r\nContent-Description: Undelivered "
	                "Message\r\n\r\n"
	                "From: <alice@example.test>\r\nSubject: hi there\r\n\r\nbody line\r\n"
	                "\r\n--=_hermod_dsn_") != NULL);
	size_t len = strlen(s);
	CHECK(len > 4 && strcmp(s + len - 4, "--\r\n") == 0);
	free(s);
}

static void test_headers_only(void)
{
	const char orig_s[] = "Subject: x\r\nX-A: 1\r\n\r\nsecret body\r\n";
	struct orig o = {orig_s, sizeof(orig_s) - 1, 0, 0, 0};
	struct dsn_params p = base_params;
	p.orig_size = o.len;
	p.ret = STORE_RET_HDRS;
	struct dsn_rcpt r = {.rcpt = "bob@dest.test", .action = DSN_FAILED, .status = "5.0.0",
	                     .reason = "x"};
	char *s = build(&p, &r, 1, &o);
	CHECK(s != NULL && lines_ok(s));
	CHECK(s != NULL && strstr(s, "Content-Type: text/rfc822-headers\r\n") != NULL);
	CHECK(s != NULL && strstr(s, "Subject: x\r\nX-A: 1\r\n\r\n\r\n--=_hermod") != NULL);
	CHECK(s != NULL && strstr(s, "secret body") == NULL);
	free(s);

	/* larger than full_max: the header only too, read in bounded pieces */
	size_t big = 300000;
	char *b = malloc(big + 1);
	memcpy(b, "Subject: big\r\n\r\n", 16);
	memset(b + 16, 'x', big - 16);
	for (size_t i = 100; i < big; i += 100) {
		b[i - 2] = '\r';
		b[i - 1] = '\n';
	}
	b[big] = '\0';
	struct orig ob = {b, big, 0, 0, 0};
	p = base_params;
	p.orig_size = big;
	p.full_max = 1000;
	s = build(&p, &r, 1, &ob);
	CHECK(s != NULL && strstr(s, "Content-Type: text/rfc822-headers\r\n") != NULL);
	CHECK(s != NULL && strstr(s, "xxxxx") == NULL);
	free(s);
	/* and in full when allowed, in pieces of at most 64 KiB */
	p.full_max = 1 << 20;
	ob.max_read = 0;
	s = build(&p, &r, 1, &ob);
	CHECK(s != NULL && strstr(s, "Content-Type: message/rfc822\r\n") != NULL);
	CHECK(ob.max_read <= 65536);
	CHECK(s != NULL && strlen(s) > big);
	free(s);

	/* a header without an end: cut at a line end within DSN_HEADER_MAX */
	memset(b, 'h', big);
	for (size_t i = 50; i < big; i += 50) {
		b[i - 2] = '\r';
		b[i - 1] = '\n';
	}
	p.ret = STORE_RET_HDRS;
	s = build(&p, &r, 1, &ob);
	CHECK(s != NULL && lines_ok(s));
	if (s != NULL) {
		const char *h = strstr(s, "Undelivered Message Headers\r\n\r\n");
		const char *e = h != NULL ? strstr(h, "\r\n--=_hermod") : NULL;
		CHECK(h != NULL && e != NULL);
		if (h != NULL && e != NULL)
			CHECK((size_t)(e - h) <= DSN_HEADER_MAX + 64 && (size_t)(e - h) > 200000);
	}
	free(s);
	free(b);

	/* a read error is an error */
	struct orig of = {orig_s, sizeof(orig_s) - 1, 0, 1, 0};
	struct buf out;
	char *err = NULL;
	buf_init(&out, 0);
	p = base_params;
	CHECK(dsn_build(&p, &r, 1, orig_read, &of, out_write, &out, &err) < 0);
	CHECK(err != NULL);
	free(err);
	buf_free(&out);
}

static void test_delayed_and_utf8(void)
{
	const char orig_s[] = "Subject: x\r\n\r\nb\r\n";
	struct orig o = {orig_s, sizeof(orig_s) - 1, 0, 0, 0};
	struct dsn_params p = base_params;
	p.orig_size = o.len;
	struct dsn_rcpt r = {.rcpt = "bob@dest.test", .action = DSN_DELAYED, .status = "4.4.1",
	                     .reason = "connection refused", .retry_until = 1700432000};
	char *s = build(&p, &r, 1, &o);
	CHECK(s != NULL && strstr(s, "Subject: Delayed Mail (still being retried)\r\n") != NULL);
	CHECK(s != NULL && strstr(s, "Action: delayed\r\nStatus: 4.4.1\r\n") != NULL);
	CHECK(s != NULL && strstr(s, "Will-Retry-Until: Sun, 19 Nov 2023 22:13:20 +0000\r\n") !=
	      NULL);
	/* a delay report returns the header only */
	CHECK(s != NULL && strstr(s, "text/rfc822-headers") != NULL);
	free(s);

	p.smtputf8 = true;
	struct dsn_rcpt u = {.rcpt = "r\xc3\xa9ne@dest.test", .action = DSN_FAILED,
	                     .status = "5.6.7", .reason = "needs SMTPUTF8"};
	s = build(&p, &u, 1, &o);
	CHECK(s != NULL && strstr(s, "Content-Type: message/global-delivery-status\r\n") != NULL);
	CHECK(s != NULL && strstr(s, "Final-Recipient: utf-8; r\xc3\xa9ne@dest.test\r\n") != NULL);
	CHECK(s != NULL && strstr(s, "Content-Type: message/global\r\nContent-Description: "
	                             "Undelivered Message\r\nContent-Transfer-Encoding: 8bit\r\n\r\n") != NULL);
	CHECK(s != NULL && strstr(s, "charset=utf-8") != NULL);
	free(s);
}

/* the returned part's Content-Transfer-Encoding follows the original's BODY */
static void test_cte(void)
{
	const char orig_s[] = "Subject: \xc3\xa9\r\n\r\nb\xc3\xa9\r\n";
	struct orig o = {orig_s, sizeof(orig_s) - 1, 0, 0, 0};
	struct dsn_params p = base_params;
	p.orig_size = o.len;
	p.body = STORE_BODY_8BITMIME;
	struct dsn_rcpt r = {.rcpt = "bob@dest.test", .action = DSN_FAILED, .status = "5.0.0",
	                     .reason = "x"};
	char *s = build(&p, &r, 1, &o);
	CHECK(s != NULL && strstr(s, "Message\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
	                             "Subject: \xc3\xa9") != NULL);
	free(s);
	p.body = STORE_BODY_BINARYMIME;
	s = build(&p, &r, 1, &o);
	CHECK(s != NULL && strstr(s, "Content-Transfer-Encoding: binary\r\n") != NULL);
	free(s);
	p.ret = STORE_RET_HDRS; /* headers only: 8bit at most */
	s = build(&p, &r, 1, &o);
	CHECK(s != NULL && strstr(s, "Content-Transfer-Encoding: 8bit\r\n") != NULL);
	free(s);
	p.body = STORE_BODY_7BIT;
	p.ret = STORE_RET_NONE;
	s = build(&p, &r, 1, &o);
	CHECK(s != NULL && strstr(s, "Content-Transfer-Encoding") == NULL);
	free(s);
}

static void test_fold(void)
{
	struct buf b;
	buf_init(&b, 0);
	char v[3000];
	size_t k = 0;
	for (int i = 0; i < 200; i++)
		k += (size_t)snprintf(v + k, sizeof(v) - k, "word%d ", i);
	v[k - 1] = '\0';
	CHECK(dsn_fold_field(&b, "Diagnostic-Code", v) == 1);
	CHECK(lines_ok(b.data));
	/* every line but the first starts with the folding space, none over 78 */
	size_t col = 0, maxcol = 0;
	for (size_t i = 0; i < b.len; i++) {
		if (b.data[i] == '\r')
			continue;
		if (b.data[i] == '\n') {
			if (i + 1 < b.len)
				CHECK(b.data[i + 1] == ' ');
			col = 0;
			continue;
		}
		if (++col > maxcol)
			maxcol = col;
	}
	CHECK(maxcol <= 78);
	/* unfolded, the value is the same */
	struct buf u;
	buf_init(&u, 0);
	for (size_t i = 0; i < b.len; i++)
		if (b.data[i] != '\r' && b.data[i] != '\n')
			buf_append(&u, b.data + i, 1);
	CHECK(strncmp(u.data, "Diagnostic-Code: ", 17) == 0);
	CHECK(u.data != NULL && strcmp(u.data + 17, v) == 0);
	buf_free(&u);
	buf_reset(&b);

	/* one word longer than a line is cut under 998 */
	char longw[2500];
	memset(longw, 'a', sizeof(longw) - 1);
	longw[sizeof(longw) - 1] = '\0';
	CHECK(dsn_fold_field(&b, "X", longw) == 1);
	CHECK(lines_ok(b.data));
	buf_free(&b);
}

int main(void)
{
	test_failed_full();
	test_headers_only();
	test_delayed_and_utf8();
	test_fold();
	test_cte();
	return unit_finish("dsn");
}
