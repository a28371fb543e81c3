/* Routing helpers of the queue runner (src/delivery/route.c). */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "delivery/route.h"
#include "unit.h"

struct seq {
	const uint32_t *v;
	size_t n, i;
};

static uint32_t seq_next(void *ctx)
{
	struct seq *s = ctx;
	uint32_t v = s->v[s->i % s->n];
	s->i++;
	return v;
}

static void set_mx(struct dns_mx *mx, uint16_t pref, const char *host)
{
	mx->preference = pref;
	strcpy(mx->host, host);
}

static void test_mx_order(void)
{
	struct dns_mx mx[5];
	uint32_t zeros[] = {0};
	struct seq s = {zeros, 1, 0};

	/* by preference */
	set_mx(&mx[0], 20, "b.test");
	set_mx(&mx[1], 10, "a.test");
	set_mx(&mx[2], 30, "c.test");
	CHECK(route_mx_order(mx, 3, seq_next, &s) == 3);
	CHECK_STR(mx[0].host, "a.test");
	CHECK_STR(mx[1].host, "b.test");
	CHECK_STR(mx[2].host, "c.test");

	/* null MX alone */
	set_mx(&mx[0], 0, ".");
	CHECK(route_mx_order(mx, 1, seq_next, &s) == -1);
	/* "." among real hosts is dropped */
	set_mx(&mx[0], 0, ".");
	set_mx(&mx[1], 10, "a.test");
	CHECK(route_mx_order(mx, 2, seq_next, &s) == 1);
	CHECK_STR(mx[0].host, "a.test");
	/* nothing at all */
	CHECK(route_mx_order(mx, 0, seq_next, &s) == 0);

	/* equal preferences: shuffled by the random source, lower ones first */
	int seen_first[3] = {0};
	for (uint32_t r = 0; r < 6; r++) {
		uint32_t vals[] = {r, r / 2};
		struct seq s2 = {vals, 2, 0};
		set_mx(&mx[0], 10, "x0");
		set_mx(&mx[1], 10, "x1");
		set_mx(&mx[2], 10, "x2");
		set_mx(&mx[3], 5, "first");
		set_mx(&mx[4], 50, "last");
		CHECK(route_mx_order(mx, 5, seq_next, &s2) == 5);
		CHECK_STR(mx[0].host, "first");
		CHECK_STR(mx[4].host, "last");
		/* a permutation of x0..x2 in the middle */
		int mask = 0;
		for (int i = 1; i <= 3; i++)
			mask |= 1 << (mx[i].host[1] - '0');
		CHECK(mask == 7);
		seen_first[mx[1].host[1] - '0']++;
	}
	/* different random values put different hosts first */
	int distinct = 0;
	for (int i = 0; i < 3; i++)
		distinct += seen_first[i] > 0;
	CHECK(distinct >= 2);
}

static void test_domain(void)
{
	CHECK_STR(route_domain("a@b.test"), "b.test");
	CHECK_STR(route_domain("\"a@x\"@b.test"), "b.test");
	CHECK_STR(route_domain("nodomain"), "");

	int fam = 0;
	unsigned char a[16];
	CHECK(route_domain_literal("b.test", &fam, a) == 0);
	CHECK(route_domain_literal("[127.0.0.2]", &fam, a) == 1);
	CHECK(fam == AF_INET);
	CHECK(a[0] == 127 && a[3] == 2);
	CHECK(route_domain_literal("[IPv6:::1]", &fam, a) == 1);
	CHECK(fam == AF_INET6);
	CHECK(a[15] == 1);
	CHECK(route_domain_literal("[ipv6:::1]", &fam, a) == 1);
	CHECK(route_domain_literal("[::1]", &fam, a) == -1);
	CHECK(route_domain_literal("[300.0.0.1]", &fam, a) == -1);
	CHECK(route_domain_literal("[127.0.0.1", &fam, a) == -1);
	CHECK(route_domain_literal("[]", &fam, a) == -1);
}

static void test_retry(void)
{
	unsigned sched[] = {300, 900, 3600};
	CHECK(route_next_attempt(1000, 1, sched, 3) == 1300);
	CHECK(route_next_attempt(1000, 2, sched, 3) == 1900);
	CHECK(route_next_attempt(1000, 3, sched, 3) == 4600);
	CHECK(route_next_attempt(1000, 9, sched, 3) == 4600); /* the last repeats */
	CHECK(route_next_attempt(1000, 0, sched, 3) == 1300);
	CHECK(!route_expired(1000, 500, 600));
	CHECK(route_expired(1100, 500, 600));
	CHECK(route_expired(2000, 500, 600));
}

int main(void)
{
	test_mx_order();
	test_domain();
	test_retry();
	return unit_finish("route");
}
