/* Unit tests for src/mail/address.c: RFC 5321 4.1.2 paths and mailboxes. */
#include <stdlib.h>
#include <string.h>

#include "mail/address.h"
#include "unit.h"

struct path_case {
	const char *in;
	bool allow_null;
	bool allow_utf8;
	int result;
	const char *local;  /* expected unquoted local part (NULL: don't check) */
	const char *domain; /* expected domain */
	const char *addr;   /* expected addr */
	size_t consumed;    /* 0: strlen(in) */
};

static const struct path_case path_cases[] = {
    /* plain */
    {"<user@example.com>", false, false, 1, "user", "example.com", "user@example.com", 0},
    {"<User.Name+tag@Example.COM>", false, false, 1, "User.Name+tag", "example.com",
     "User.Name+tag@example.com", 0},
    {"<a!#$%&'*+-/=?^_`{|}~@x.y>", false, false, 1, "a!#$%&'*+-/=?^_`{|}~", "x.y",
     "a!#$%&'*+-/=?^_`{|}~@x.y", 0},
    {"<u@localhost>", false, false, 1, "u", "localhost", "u@localhost", 0},
    {"<u@a-b.c0>", false, false, 1, "u", "a-b.c0", "u@a-b.c0", 0},
    {"<u@1.2.3.4>", false, false, 1, "u", "1.2.3.4", "u@1.2.3.4", 0},
    /* trailing text after '>' is not consumed */
    {"<u@x.y> SIZE=10", false, false, 1, "u", "x.y", "u@x.y", 7},
    /* null path */
    {"<>", true, false, 1, NULL, NULL, "", 0},
    {"<>", false, false, -1, NULL, NULL, NULL, 0},
    {"<> x", true, false, 1, NULL, NULL, "", 2},
    /* quoted local parts */
    {"<\"john doe\"@x.y>", false, false, 1, "john doe", "x.y", "\"john doe\"@x.y", 0},
    {"<\"a\\\"b\\\\c\"@x.y>", false, false, 1, "a\"b\\c", "x.y", "\"a\\\"b\\\\c\"@x.y", 0},
    {"<\"plain\"@x.y>", false, false, 1, "plain", "x.y", "plain@x.y", 0},
    {"<\"a.b\"@x.y>", false, false, 1, "a.b", "x.y", "a.b@x.y", 0},
    {"<\"a..b\"@x.y>", false, false, 1, "a..b", "x.y", "\"a..b\"@x.y", 0},
    {"<\".a\"@x.y>", false, false, 1, ".a", "x.y", "\".a\"@x.y", 0},
    {"<\"\\q\"@x.y>", false, false, 1, "q", "x.y", "q@x.y", 0},
    {"<\"u@evil.com\"@x.y>", false, false, 1, "u@evil.com", "x.y", "\"u@evil.com\"@x.y", 0},
    {"<\"<>\"@x.y>", false, false, 1, "<>", "x.y", "\"<>\"@x.y", 0},
    {"<\"\"@x.y>", false, false, 1, "", "x.y", "\"\"@x.y", 0},
    {"<\"unterminated@x.y>", false, false, -1, NULL, NULL, NULL, 0},
    {"<\"tab\there\"@x.y>", false, false, -1, NULL, NULL, NULL, 0},
    {"<\"esc\\\x01\"@x.y>", false, false, -1, NULL, NULL, NULL, 0},
    /* source routes: accepted and dropped */
    {"<@a.example,@b.example:user@c.example>", false, false, 1, "user", "c.example",
     "user@c.example", 0},
    {"<@a.example:user@c.example>", false, false, 1, "user", "c.example", "user@c.example", 0},
    {"<@[1.2.3.4]:u@c.example>", false, false, 1, "u", "c.example", "u@c.example", 0},
    {"<@a.example user@c.example>", false, false, -1, NULL, NULL, NULL, 0},
    {"<@a.example,user@c.example>", false, false, -1, NULL, NULL, NULL, 0},
    {"<@:user@c.example>", false, false, -1, NULL, NULL, NULL, 0},
    {"<@-a.example:user@c.example>", false, false, -1, NULL, NULL, NULL, 0},
    /* address literals */
    {"<u@[192.0.2.1]>", false, false, 1, "u", "[192.0.2.1]", "u@[192.0.2.1]", 0},
    {"<u@[001.0.2.255]>", false, false, 1, "u", "[001.0.2.255]", "u@[001.0.2.255]", 0},
    {"<u@[IPv6:2001:db8::1]>", false, false, 1, "u", "[IPv6:2001:db8::1]", "u@[IPv6:2001:db8::1]",
     0},
    {"<u@[ipv6:::1]>", false, false, 1, "u", "[ipv6:::1]", "u@[ipv6:::1]", 0},
    {"<u@[IPv6:::]>", false, false, 1, "u", "[IPv6:::]", NULL, 0},
    {"<u@[IPv6:1:2:3:4:5:6:7:8]>", false, false, 1, "u", NULL, NULL, 0},
    {"<u@[IPv6:1:2:3:4:5:6:1.2.3.4]>", false, false, 1, "u", NULL, NULL, 0},
    {"<u@[IPv6:::ffff:192.0.2.1]>", false, false, 1, "u", NULL, NULL, 0},
    {"<u@[IPv6:1::]>", false, false, 1, "u", NULL, NULL, 0},
    {"<u@[IPv6:1:2:3:4:5:6:7:8:9]>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@[IPv6:1:2:3:4:5:6:7]>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@[IPv6:1::2::3]>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@[IPv6:12345::1]>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@[IPv6:g::1]>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@[IPv6::1]>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@[IPv6:1:]>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@[IPv6:1:2:3:4:5:6:7:1.2.3.4]>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@[IPv6:::1.2.3.256]>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@[IPv6:]>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@[1.2.3]>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@[1.2.3.4.5]>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@[256.1.1.1]>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@[1.2.3.0004]>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@[]>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@[1.2.3.4>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@[x-tag:abc]>", false, false, 1, "u", "[x-tag:abc]", NULL, 0},
    {"<u@[tag:]>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@[tag:a b]>", false, false, -1, NULL, NULL, NULL, 0},
    /* bad domains */
    {"<u@-x.y>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@x-.y>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@x..y>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@.x.y>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@x.y.>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@x_y.z>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u>", false, false, -1, NULL, NULL, NULL, 0},
    {"<postmaster>", false, false, -1, NULL, NULL, NULL, 0},
    {"<@x.y>", false, false, -1, NULL, NULL, NULL, 0},
    /* bad local parts */
    {"<.u@x.y>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u.@x.y>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u..v@x.y>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u v@x.y>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u(c)@x.y>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@x.y@z>", false, false, -1, NULL, NULL, NULL, 0},
    /* framing */
    {"u@x.y", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@x.y", false, false, -1, NULL, NULL, NULL, 0},
    {" <u@x.y>", false, false, -1, NULL, NULL, NULL, 0},
    {"<u@x.y >", false, false, -1, NULL, NULL, NULL, 0},
    {"", false, false, -1, NULL, NULL, NULL, 0},
    {"<", true, false, -1, NULL, NULL, NULL, 0},
    /* UTF-8 (RFC 6531) */
    {"<j\xc3\xb6rg@x.y>", false, false, -1, NULL, NULL, NULL, 0},
    {"<j\xc3\xb6rg@x.y>", false, true, 1, "j\xc3\xb6rg", "x.y", "j\xc3\xb6rg@x.y", 0},
    {"<u@b\xc3\xbc"
     "cher.example>",
     false, false, -1, NULL, NULL, NULL, 0},
    {"<u@B\xc3\xbc"
     "cher.Example>",
     false, true, 1, "u",
     "b\xc3\xbc"
     "cher.example",
     NULL, 0},
    {"<\"\xe2\x82\xac x\"@x.y>", false, true, 1, "\xe2\x82\xac x", "x.y", "\"\xe2\x82\xac x\"@x.y",
     0},
    {"<\xf0\x9f\x98\x80@x.y>", false, true, 1, "\xf0\x9f\x98\x80", NULL, NULL, 0},
    /* invalid UTF-8: stray continuation, overlong, surrogate, C1, truncated, > U+10FFFF */
    {"<\x80@x.y>", false, true, -1, NULL, NULL, NULL, 0},
    {"<\xc0\xaf@x.y>", false, true, -1, NULL, NULL, NULL, 0},
    {"<\xe0\x80\xaf@x.y>", false, true, -1, NULL, NULL, NULL, 0},
    {"<\xed\xa0\x80@x.y>", false, true, -1, NULL, NULL, NULL, 0},
    {"<\xc2\x85@x.y>", false, true, -1, NULL, NULL, NULL, 0},
    {"<\xc3@x.y>", false, true, -1, NULL, NULL, NULL, 0},
    {"<\xf4\x90\x80\x80@x.y>", false, true, -1, NULL, NULL, NULL, 0},
    {"<\xff@x.y>", false, true, -1, NULL, NULL, NULL, 0},
    {"<u@\xc2\x85.y>", false, true, -1, NULL, NULL, NULL, 0},
};

static void test_paths(void)
{
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
		const struct path_case *c = &path_cases[i];
		struct mail_address a;
		size_t consumed = 12345;
		const char *err = NULL;
		int ret = mail_address_parse_path(c->in, strlen(c->in), c->allow_null,
		                                  c->allow_utf8, &a, &consumed, &err);
		if (ret != c->result)
			fprintf(stderr, "case %zu \"%s\": got %d (%s)\n", i, c->in, ret,
			        err ? err : "");
		CHECK(ret == c->result);
		if (ret != 1) {
			CHECK(err != NULL);
			CHECK(a.addr == NULL && a.local == NULL && a.domain == NULL);
			continue;
		}
		CHECK(consumed == (c->consumed ? c->consumed : strlen(c->in)));
		if (c->local)
			CHECK_STR(a.local, c->local);
		if (c->domain)
			CHECK_STR(a.domain, c->domain);
		if (c->addr)
			CHECK_STR(a.addr, c->addr);
		mail_address_free(&a);
		CHECK(a.addr == NULL);
	}
}

static void test_flags(void)
{
	struct mail_address a;
	size_t n;
	const char *err;

	CHECK(mail_address_parse_path("<>", 2, true, false, &a, &n, &err) == 1);
	CHECK(a.null && !a.utf8 && a.local == NULL && a.domain == NULL);
	CHECK_STR(a.addr, "");
	mail_address_free(&a);

	CHECK(mail_address_parse_path("<u@[1.2.3.4]>", 13, false, false, &a, &n, &err) == 1);
	CHECK(a.domain_literal && !a.null && !a.utf8);
	mail_address_free(&a);

	CHECK(mail_address_parse_path("<u@X.Y>", 7, false, false, &a, &n, &err) == 1);
	CHECK(!a.domain_literal && !a.utf8);
	mail_address_free(&a);

	const char *u = "<\xc3\xa9@x.y>";
	CHECK(mail_address_parse_path(u, strlen(u), false, true, &a, &n, &err) == 1);
	CHECK(a.utf8);
	mail_address_free(&a);

	/* address literal kept as given (not lower-cased) */
	const char *l = "<u@[IPv6:2001:DB8::1]>";
	CHECK(mail_address_parse_path(l, strlen(l), false, false, &a, &n, &err) == 1);
	CHECK_STR(a.domain, "[IPv6:2001:DB8::1]");
	mail_address_free(&a);

	/* NUL anywhere is rejected, and len is respected */
	CHECK(mail_address_parse_path("<u\0@x.y>", 8, false, false, &a, &n, &err) == -1);
	CHECK(mail_address_parse_path("<u@x\0y>", 7, false, false, &a, &n, &err) == -1);
	CHECK(mail_address_parse_path("<\"u\0\"@x.y>", 10, false, false, &a, &n, &err) == -1);
	CHECK(mail_address_parse_path("<u@x.y>", 6, false, false, &a, &n, &err) == -1);
	mail_address_free(&a); /* safe after failure */
	mail_address_free(NULL);
}

static void test_limits(void)
{
	char buf[600];
	struct mail_address a;
	size_t n;
	const char *err;

	/* local part: 64 ok, 65 not */
	memset(buf, 0, sizeof(buf));
	buf[0] = '<';
	memset(buf + 1, 'a', 64);
	strcpy(buf + 65, "@x.y>");
	CHECK(mail_address_parse_path(buf, strlen(buf), false, false, &a, &n, &err) == 1);
	mail_address_free(&a);
	buf[0] = '<';
	memset(buf + 1, 'a', 65);
	strcpy(buf + 66, "@x.y>");
	CHECK(mail_address_parse_path(buf, strlen(buf), false, false, &a, &n, &err) == -1);
	CHECK_STR(err, "local part too long");

	/* quoted local part counted as transmitted */
	buf[0] = '<';
	buf[1] = '"';
	memset(buf + 2, 'a', 62);
	strcpy(buf + 64, "\"@x.y>");
	CHECK(mail_address_parse_path(buf, strlen(buf), false, false, &a, &n, &err) == 1);
	mail_address_free(&a);
	buf[1] = '"';
	memset(buf + 2, 'a', 63);
	strcpy(buf + 65, "\"@x.y>");
	CHECK(mail_address_parse_path(buf, strlen(buf), false, false, &a, &n, &err) == -1);

	/* label: 63 ok, 64 not */
	strcpy(buf, "<u@");
	memset(buf + 3, 'b', 63);
	strcpy(buf + 66, ".y>");
	CHECK(mail_address_parse_path(buf, strlen(buf), false, false, &a, &n, &err) == 1);
	mail_address_free(&a);
	memset(buf + 3, 'b', 64);
	strcpy(buf + 67, ".y>");
	CHECK(mail_address_parse_path(buf, strlen(buf), false, false, &a, &n, &err) == -1);

	/* domain: 4 labels of 63 + 3 dots = 255 ok, 256 not. A path cannot carry
	 * that much ("<u@" + 255 + ">" > 256), so check the domain validator. */
	size_t o = 0;
	for (int l = 0; l < 4; l++) {
		if (l)
			buf[o++] = '.';
		memset(buf + o, 'c', 63);
		o += 63;
	}
	CHECK(o == 255);
	CHECK(mail_domain_valid(buf, o, false) == 1);
	buf[o++] = 'c';
	CHECK(mail_domain_valid(buf, o, false) == -1);
}

static void test_path_limit(void)
{
	char buf[600];
	struct mail_address a;
	size_t n;
	const char *err;

	/* A path of exactly 256 octets is ok, 257 is not (RFC 5321 4.5.3.1.3). Build
	 * "<" + 60 'a' + "@" + domain + ">" with the domain sized to fit. */
	for (size_t total = 255; total <= 258; total++) {
		size_t o = 0;
		buf[o++] = '<';
		memset(buf + o, 'a', 60);
		o += 60;
		buf[o++] = '@';
		size_t dlen = total - o - 1;
		/* labels of up to 60 chars */
		size_t left = dlen;
		while (left > 0) {
			size_t l = left > 60 ? 60 : left;
			if (left - l == 1)
				l--; /* avoid leaving a lone trailing dot */
			memset(buf + o, 'd', l);
			o += l;
			left -= l;
			if (left > 0) {
				buf[o++] = '.';
				left--;
			}
		}
		buf[o++] = '>';
		CHECK(o == total);
		int ret = mail_address_parse_path(buf, o, false, false, &a, &n, &err);
		CHECK(ret == (total <= 256 ? 1 : -1));
		if (ret == 1) {
			CHECK(n == total);
			mail_address_free(&a);
		} else {
			CHECK_STR(err, "path too long");
		}
	}
}

static void test_bare(void)
{
	struct mail_address a;
	const char *err;

	CHECK(mail_address_parse("demo@Example.TEST", 17, false, &a, &err) == 1);
	CHECK_STR(a.addr, "demo@example.test");
	CHECK_STR(a.local, "demo");
	mail_address_free(&a);
	CHECK(mail_address_parse("\"a b\"@x.y", 9, false, &a, &err) == 1);
	CHECK_STR(a.addr, "\"a b\"@x.y");
	mail_address_free(&a);
	CHECK(mail_address_parse("<demo@x.y>", 10, false, &a, &err) == -1);
	CHECK(mail_address_parse("demo@x.y ", 9, false, &a, &err) == -1);
	CHECK(mail_address_parse("demo", 4, false, &a, &err) == -1);
	CHECK(mail_address_parse("", 0, false, &a, &err) == -1);
	CHECK(mail_address_parse("\xc3\xa9@x.y", 6, false, &a, &err) == -1);
	CHECK(mail_address_parse("\xc3\xa9@x.y", 6, true, &a, &err) == 1);
	CHECK(a.utf8);
	mail_address_free(&a);
}

static void test_domain_valid(void)
{
	CHECK(mail_domain_valid("example.com", 11, false) == 1);
	CHECK(mail_domain_valid("a", 1, false) == 1);
	CHECK(mail_domain_valid("1a", 2, false) == 1);
	CHECK(mail_domain_valid("", 0, false) == -1);
	CHECK(mail_domain_valid("a.", 2, false) == -1);
	CHECK(mail_domain_valid("a b", 3, false) == -1);
	CHECK(mail_domain_valid("[1.2.3.4]", 9, false) == -1);
	CHECK(mail_domain_valid("b\xc3\xbc.de", 6, false) == -1);
	CHECK(mail_domain_valid("b\xc3\xbc.de", 6, true) == 1);
	CHECK(mail_domain_valid("b\xc3.de", 5, true) == -1);
}

int main(void)
{
	test_paths();
	test_flags();
	test_limits();
	test_path_limit();
	test_bare();
	test_domain_valid();
	return unit_finish("address");
}
