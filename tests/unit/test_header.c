#include "mail/header.h"
#include "header_ref.h"
#include "unit.h"

#include <stdint.h>
#include <stdlib.h>

struct collect {
	char out[1024];
	size_t len;
};

static void collect_cb(void *ctx, const char *addr, size_t len)
{
	struct collect *c = ctx;
	if (c->len + len + 2 < sizeof(c->out)) {
		memcpy(c->out + c->len, addr, len);
		c->len += len;
		c->out[c->len++] = '|';
		c->out[c->len] = '\0';
	}
}

static void test_find(void)
{
	const char msg[] = "Received: x\r\nFrom: Alice\r\n <a@b.c>\r\nsubject : hi\r\n\r\nFrom: body@x\r\n";
	const char *v;
	size_t vl;
	CHECK(mail_header_find(msg, sizeof(msg) - 1, "From", &v, &vl) == 1);
	CHECK(vl == strlen(" Alice\r\n <a@b.c>") && memcmp(v, " Alice\r\n <a@b.c>", vl) == 0);
	CHECK(mail_header_find(msg, sizeof(msg) - 1, "Subject", &v, &vl) == 1);
	CHECK(vl == 3 && memcmp(v, " hi", 3) == 0);
	CHECK(mail_header_find(msg, sizeof(msg) - 1, "Date", &v, &vl) == 0);
	/* a field in the body is not a header */
	const char msg2[] = "Subject: x\n\nDate: y\n";
	CHECK(mail_header_find(msg2, sizeof(msg2) - 1, "Date", &v, &vl) == 0);
	CHECK(mail_header_section_len(msg2, sizeof(msg2) - 1) == 12);
	/* no body */
	const char msg3[] = "Subject: x";
	CHECK(mail_header_find(msg3, sizeof(msg3) - 1, "subject", &v, &vl) == 1);
	CHECK(vl == 2);
	/* "Fromage:" is not "From:" */
	const char msg4[] = "Fromage: x\r\n\r\n";
	CHECK(mail_header_find(msg4, sizeof(msg4) - 1, "From", &v, &vl) == 0);
}

static const struct {
	const char *in;
	int count;
	const char *out;
} addr_cases[] = {
    {"a@b.c", 1, "a@b.c|"},
    {" Alice <a@b.c>", 1, "a@b.c|"},
    {"\"Smith, John\" <j@x.y>, b@c.d", 2, "j@x.y|b@c.d|"},
    {"a@b.c (Alice, comment)", 1, "a@b.c|"},
    {"(nested (comment)) a@b.c", 1, "a@b.c|"},
    {"friends: a@b.c, <d@e.f>;", 2, "a@b.c|d@e.f|"},
    {"undisclosed-recipients:;", 0, ""},
    {"\"a b\"@c.d", 1, "\"a b\"@c.d|"},
    {"", 0, ""},
    {"<a@b.c", -1, ""},
    {"\"unterminated <a@b.c>", -1, ""},
    {"(open a@b.c", -1, ""},
    {"a@b.c>", -1, ""},
    {"Name <a@b.c> trailing, x@y.z", 2, "a@b.c|x@y.z|"},
};

static void test_addresses(void)
{
	for (size_t i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
		struct collect c = {.len = 0};
		c.out[0] = '\0';
		int n = mail_header_addresses(addr_cases[i].in, strlen(addr_cases[i].in), collect_cb,
					      &c);
		if (n != addr_cases[i].count)
			fprintf(stderr, "case %zu: got %d\n", i, n);
		CHECK(n == addr_cases[i].count);
		if (n >= 0)
			CHECK_STR(c.out, addr_cases[i].out);
	}
	/* an overlong bare address is reported as "" */
	char big[800];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	struct collect c = {.len = 0};
	CHECK(mail_header_addresses(big, strlen(big), collect_cb, &c) == 1);
	CHECK_STR(c.out, "|");
}

/* The scan of msg with the bound max (at least 3, see header_ref.h), fed in one
 * piece, one octet at a time and in pieces of 2, 3 and 7, must describe what
 * the reference (the read-back the submission checks did before) describes,
 * and, when given, equal expect. */
static void check_scan(const char *msg, size_t len, size_t max, const char *expect)
{
	static const size_t one[] = {1}, mixed[] = {2, 3, 7};
	struct buf ref, got;
	buf_init(&ref, 0);
	buf_init(&got, 0);
	header_ref_describe(msg, len, max, &ref);
	if (expect != NULL) {
		CHECK_STR(ref.data, expect);
	}
	const size_t *splits[] = {NULL, one, mixed};
	const size_t nsplits[] = {0, 1, 3};
	for (size_t i = 0; i < 3; i++) {
		buf_reset(&got);
		header_ref_scan(msg, len, max, splits[i], nsplits[i], &got);
		bool same = got.len == ref.len && memcmp(got.data, ref.data, ref.len) == 0;
		if (!same)
			fprintf(stderr, "split %zu max %zu: scan \"%s\" != reference \"%s\"\n", i,
				max, got.data, ref.data);
		CHECK(same);
	}
	buf_free(&ref);
	buf_free(&got);
}

#define SCAN(msg, max, expect) check_scan(msg, sizeof(msg) - 1, max, expect)

static void test_scan_cases(void)
{
	const size_t big = 256 * 1024;
	/* folded From:, Date:, a Message-ID: in the body does not count */
	SCAN("Received: x\r\nFrom: Alice\r\n <a@b.c>\r\nDate: d\r\n\r\nMessage-ID: <b>\r\n", big,
	     "ok len=47 date=1 id=0 from=16: Alice\r\n <a@b.c>");
	/* bare LF, case, blanks before the colon, two From: fields */
	SCAN("from : a@b\nMESSAGE-id:<x>\nFROM:c@d\n\nbody\n", big,
	     "ok len=36 date=0 id=1 from=4: a@b from=3:c@d");
	/* "Fromage:" and "Dated:" are other fields; a continuation line is no field */
	SCAN("Fromage: x\r\nDated: y\r\nSubject: s\r\n From: z\r\n\r\n", big,
	     "ok len=46 date=0 id=0");
	/* no empty line: the whole message is the header section */
	SCAN("From: a@b.c", big, "ok len=11 date=0 id=0 from=6: a@b.c");
	SCAN("From: a@b.c\r", big, "ok len=12 date=0 id=0 from=6: a@b.c");
	SCAN("From:\r\n a@b.c\r\n", big, "ok len=15 date=0 id=0 from=8:\r\n a@b.c");
	/* CR alone starts no empty line; CR CR LF keeps one CR in the value */
	SCAN("Date: x\r\n\rFrom: a\r\n\r\n", big, "ok len=21 date=1 id=0");
	SCAN("From: a\r\r\n\r\n", big, "ok len=12 date=0 id=0 from=3: a\r");
	/* an empty value, a blank-only continuation line */
	SCAN("From:\n \nDate:\n\n", big, "ok len=15 date=1 id=0 from=2:\n ");
	/* the message starts with the empty line */
	SCAN("\r\nFrom: a\r\n", big, "ok len=2 date=0 id=0");
	SCAN("", big, "ok len=0 date=0 id=0");
	/* the bound: a section of exactly max octets passes, one more does not,
	 * and the message going on past max without an empty line is too large */
	SCAN("From: a\r\n\r\nbody", 11, "ok len=11 date=0 id=0 from=2: a");
	SCAN("From: a\r\n\r\nbody", 10, "too-large");
	SCAN("From: a\n\nbody", 9, "ok len=9 date=0 id=0 from=2: a");
	SCAN("From: a\n\nbody", 8, "too-large");
	SCAN("From: a\r\n", 9, "ok len=9 date=0 id=0 from=2: a");
	SCAN("From: a\r\n", 8, "too-large");
	SCAN("From: a\r\nX", 9, "too-large");
	/* CR as the last octet within max, its LF past it */
	SCAN("From: a\r\n\r\n", 10, "too-large");
	for (size_t max = 3; max < 20; max++)
		SCAN("From: a\r\nDate: b\r\n\r\nbody\r\n", max, NULL);
}

/* Random header-like messages from tokens that matter to the scanner, under
 * small and large bounds, compared with the reference. */
static void test_scan_random(void)
{
	static const char *const tok[] = {
	    "From", "from", "FROM", "Date", "date", "Message-ID", "message-id", "Fromage", "Dat",
	    ":", " ", "\t", "\r\n", "\n", "\r", "a@b.c", "<x@y.z>", "\"q\"", "(c)", ",", ";",
	    "Subject", "x", "\0", "\r\n\r\n", "\n\n"};
	const size_t ntok = sizeof(tok) / sizeof(tok[0]);
	uint64_t rng = 0x9e3779b97f4a7c15u;
	char msg[512];
	for (int iter = 0; iter < 4000; iter++) {
		size_t len = 0;
		size_t ntoks = (size_t)(rng % 40);
		for (size_t t = 0; t < ntoks; t++) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			const char *w = tok[rng % ntok];
			size_t wl = w[0] == '\0' ? 1 : strlen(w);
			if (len + wl > sizeof(msg))
				break;
			memcpy(msg + len, w, wl);
			len += wl;
		}
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		size_t max = iter % 2 == 0 ? 256 * 1024 : (size_t)(rng % (len + 3)) + 3;
		check_scan(msg, len, max, NULL);
	}
}

/* The scanner keeps From: values, not the section: a long header without a
 * From: field allocates nothing, and octets after the empty line are ignored. */
static void test_scan_memory(void)
{
	struct mail_header_scan scan;
	mail_header_scan_init(&scan, 256 * 1024);
	const char line[] = "Subject: a long header line without any address in it\r\n";
	int r = 0;
	for (int i = 0; i < 3000 && r == 0; i++)
		r = mail_header_scan_feed(&scan, line, sizeof(line) - 1);
	CHECK(r == 0);
	CHECK(scan.from.data == NULL);
	CHECK(mail_header_scan_feed(&scan, "From: a@b.c\r\n\r\nFrom: x@y.z\r\n", 29) == 1);
	CHECK(mail_header_scan_feed(&scan, "Date: x\r\n", 9) == 1);
	CHECK(mail_header_scan_end(&scan) == 1);
	CHECK(scan.ended && scan.nfrom == 1 && !scan.have_date);
	CHECK(scan.from.len == 4 + 6);
	mail_header_scan_free(&scan);

	/* past the bound: -1 from feed, 0 from end, the values released */
	mail_header_scan_init(&scan, 64);
	r = 0;
	for (int i = 0; i < 10 && r == 0; i++)
		r = mail_header_scan_feed(&scan, "From: a@b.c\r\n", 13);
	CHECK(r == -1);
	CHECK(mail_header_scan_end(&scan) == 0);
	CHECK(scan.too_large && scan.from.data == NULL);
	mail_header_scan_free(&scan);
}

/* Received: fields are counted (loop detection), in any split and case; a
 * folded one counts once; none after the header. */
static void test_scan_received(void)
{
	const char msg[] = "Received: from a by b; x\r\n"
	                   "RECEIVED : from c\r\n by d; y\r\n"
	                   "X-Received: no\r\n"
	                   "Receivedx: no\r\n"
	                   "received:z\r\n"
	                   "\r\n"
	                   "Received: in the body\r\n";
	for (size_t split = 1; split < sizeof(msg); split++) {
		struct mail_header_scan scan;
		mail_header_scan_init(&scan, 256 * 1024);
		for (size_t i = 0; i < sizeof(msg) - 1; i += split) {
			size_t n = sizeof(msg) - 1 - i < split ? sizeof(msg) - 1 - i : split;
			(void)mail_header_scan_feed(&scan, msg + i, n);
		}
		CHECK(mail_header_scan_end(&scan) == 1);
		CHECK(scan.nreceived == 3);
		mail_header_scan_free(&scan);
	}
}

/* TLS-Required: No (RFC 8689 5) in any case and split, blanks around the
 * value; anything else is not it. */
static void test_scan_tls_required(void)
{
	static const struct {
		const char *msg;
		bool no;
	} cases[] = {
	    {"TLS-Required: No\r\n\r\nbody", true},
	    {"Subject: x\r\ntls-required:no\n\n", true},
	    {"TLS-REQUIRED :  nO \t\r\n\r\n", true},
	    {"TLS-Required: No thanks\r\n\r\n", false},
	    {"TLS-Required: Nooooooooooooo\r\n\r\n", false},
	    {"TLS-Required: No              x\r\n\r\n", false},
	    {"TLS-Required: Yes\r\n\r\n", false},
	    {"X-TLS-Required: No\r\n\r\n", false},
	    {"TLS-Requiredx: No\r\n\r\n", false},
	    {"Subject: x\r\n\r\nTLS-Required: No\r\n", false},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const char *msg = cases[c].msg;
		size_t len = strlen(msg);
		for (size_t split = 1; split <= len; split++) {
			struct mail_header_scan scan;
			mail_header_scan_init(&scan, 256 * 1024);
			for (size_t i = 0; i < len; i += split)
				(void)mail_header_scan_feed(&scan, msg + i,
				                            len - i < split ? len - i : split);
			(void)mail_header_scan_end(&scan);
			CHECK(scan.tls_required_no == cases[c].no);
			mail_header_scan_free(&scan);
		}
	}
}

int main(void)
{
	test_scan_tls_required();
	test_scan_received();
	test_find();
	test_addresses();
	test_scan_cases();
	test_scan_random();
	test_scan_memory();
	return unit_finish("header");
}
