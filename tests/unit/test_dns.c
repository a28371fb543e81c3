/* Unit tests for the DNS record parsing and name helpers (src/dns/dns_rr.c). */
#include "unit.h"

#include "dns/dns.h"

#include <arpa/inet.h>
#include <stdlib.h>

/* Parses one record of rdata given as a C string literal of octets. */
static int parse1(struct dns_answer *a, enum dns_type type, const char *rdata, int len)
{
	char *data[] = {(char *)rdata};
	int lens[] = {len};
	*a = (struct dns_answer){.type = type};
	return dns_answer_parse(a, type, data, lens, 1);
}

static void test_records(void)
{
	struct dns_answer a;

	CHECK(parse1(&a, DNS_TYPE_A, "\x7f\x00\x00\x02", 4) == 1 && a.n == 1);
	CHECK(a.a[0].s_addr == htonl(0x7f000002));
	dns_answer_clear(&a);
	CHECK(parse1(&a, DNS_TYPE_A, "\x7f\x00\x00", 3) == -1 && a.n == 0 && a.a == NULL);

	CHECK(parse1(&a, DNS_TYPE_AAAA, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x02", 16) == 1);
	CHECK(a.aaaa[0].s6_addr[15] == 2);
	dns_answer_clear(&a);
	CHECK(parse1(&a, DNS_TYPE_AAAA, "\0\0\0\0", 4) == -1);

	/* MX: preference, then an uncompressed name */
	CHECK(parse1(&a, DNS_TYPE_MX,
	             "\x00\x0a\x03mx1\x07"
	             "example\x04test\x00",
	             20) == 1);
	CHECK(a.mx[0].preference == 10);
	CHECK_STR(a.mx[0].host, "mx1.example.test");
	dns_answer_clear(&a);
	/* RFC 7505 null MX: preference 0, the root */
	CHECK(parse1(&a, DNS_TYPE_MX, "\x00\x00\x00", 3) == 1);
	CHECK(a.mx[0].preference == 0);
	CHECK_STR(a.mx[0].host, ".");
	dns_answer_clear(&a);
	/* odd octets escaped, a dot inside a label too */
	CHECK(parse1(&a, DNS_TYPE_MX,
	             "\x00\x01\x04"
	             "a.b\x01\x00",
	             8) == 1);
	CHECK_STR(a.mx[0].host, "a\\.b\\001");
	dns_answer_clear(&a);
	/* malformed: label past the end, trailing octets, a compression pointer, no
	 * terminating root label */
	CHECK(parse1(&a, DNS_TYPE_MX, "\x00\x0a\x09mx1\x00", 7) == -1);
	CHECK(parse1(&a, DNS_TYPE_MX, "\x00\x0a\x03mx1\x00\x00", 8) == -1);
	CHECK(parse1(&a, DNS_TYPE_MX, "\x00\x0a\xc0\x0c", 4) == -1);
	CHECK(parse1(&a, DNS_TYPE_MX, "\x00\x0a\x03mx1", 6) == -1);
	CHECK(parse1(&a, DNS_TYPE_MX, "\x00", 1) == -1);

	CHECK(parse1(&a, DNS_TYPE_PTR, "\x04host\x04test\x00", 11) == 1);
	CHECK_STR(a.ptr[0].name, "host.test");
	dns_answer_clear(&a);

	/* TXT: character-strings joined without a separator, NUL kept */
	CHECK(parse1(&a, DNS_TYPE_TXT,
	             "\x07v=spf1 \x04-all\x03"
	             "a\0b",
	             17) == 1);
	CHECK(a.txt[0].len == 14 && memcmp(a.txt[0].data, "v=spf1 -alla\0b", 15) == 0);
	dns_answer_clear(&a);
	CHECK(parse1(&a, DNS_TYPE_TXT, "\x00", 1) == 1 && a.txt[0].len == 0);
	dns_answer_clear(&a);
	CHECK(parse1(&a, DNS_TYPE_TXT,
	             "\x05"
	             "abc",
	             4) == -1);
	CHECK(parse1(&a, DNS_TYPE_TXT, "", 0) == -1);

	CHECK(parse1(&a, DNS_TYPE_TLSA, "\x03\x01\x01\xaa\xbb", 5) == 1);
	CHECK(a.tlsa[0].usage == 3 && a.tlsa[0].selector == 1 && a.tlsa[0].mtype == 1);
	CHECK(a.tlsa[0].len == 2 && a.tlsa[0].data[0] == 0xaa && a.tlsa[0].data[1] == 0xbb);
	dns_answer_clear(&a);
	CHECK(parse1(&a, DNS_TYPE_TLSA, "\x03\x01\x01", 3) == -1);

	/* several records; one malformed spoils the answer */
	char *data[] = {"\x01\x02\x03\x04", "\x05\x06\x07\x08", "\x09"};
	int lens[] = {4, 4, 1};
	a = (struct dns_answer){.type = DNS_TYPE_A};
	CHECK(dns_answer_parse(&a, DNS_TYPE_A, data, lens, 2) == 1 && a.n == 2);
	CHECK(a.a[1].s_addr == htonl(0x05060708));
	dns_answer_clear(&a);
	CHECK(dns_answer_parse(&a, DNS_TYPE_A, data, lens, 3) == -1 && a.n == 0);
	CHECK(dns_answer_parse(&a, DNS_TYPE_A, data, lens, 0) == 1 && a.n == 0);
}

static void test_names(void)
{
	char n64[80], n254[300];

	CHECK(dns_name_check("example.test") == 1);
	CHECK(dns_name_check("example.test.") == 1);
	CHECK(dns_name_check(".") == 1);
	CHECK(dns_name_check("_25._tcp.mx.example.test") == 1);
	CHECK(dns_name_check("") == 0);
	CHECK(dns_name_check("a..b") == 0);
	CHECK(dns_name_check(".a") == 0);
	CHECK(dns_name_check("a b") == 0);
	CHECK(dns_name_check("a\\.b") == 0);
	memset(n64, 'a', 64);
	n64[64] = '\0';
	CHECK(dns_name_check(n64) == 0);
	n64[63] = '\0';
	CHECK(dns_name_check(n64) == 1);
	/* 253 octets of text at most */
	for (int i = 0; i < 254; i++)
		n254[i] = i % 2 ? '.' : 'a';
	n254[253] = '\0';
	CHECK(dns_name_check(n254) == 1);
	n254[253] = 'a';
	n254[254] = '\0';
	CHECK(dns_name_check(n254) == 0);

	char out[80];
	uint8_t v4[4] = {192, 0, 2, 1};
	CHECK(dns_ptr_name(AF_INET, v4, out, sizeof(out)) == 1);
	CHECK_STR(out, "1.2.0.192.in-addr.arpa");
	struct in6_addr v6;
	CHECK(inet_pton(AF_INET6, "2001:db8::567:89ab", &v6) == 1);
	CHECK(dns_ptr_name(AF_INET6, &v6, out, sizeof(out)) == 1);
	/* RFC 3596 2.5's example form */
	CHECK_STR(out, "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	CHECK(dns_ptr_name(AF_INET6, &v6, out, 72) == -1);
	CHECK(dns_ptr_name(AF_INET, v4, out, 10) == -1);

	CHECK(dns_type_from_name("mx") == DNS_TYPE_MX);
	CHECK(dns_type_from_name("TLSA") == DNS_TYPE_TLSA);
	CHECK(dns_type_from_name("SOA") == 0);
	CHECK_STR(dns_type_name(DNS_TYPE_AAAA), "AAAA");
}

int main(void)
{
	test_records();
	test_names();
	return unit_finish("dns");
}
