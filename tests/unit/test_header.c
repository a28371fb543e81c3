#include "mail/header.h"
#include "unit.h"

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

int main(void)
{
	test_find();
	test_addresses();
	return unit_finish("header");
}
