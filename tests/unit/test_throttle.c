/* Unit tests for authentication throttling (src/auth/throttle.c). */
#include "unit.h"

#include "auth/throttle.h"

#include <stdio.h>

static const struct throttle_limits limits = {
    .max_failures = 5,
    .account_max_failures = 8,
    .window = 600,
    .lockout = 300,
    .max_delay_ms = 5000,
};

#define T0 1700000000000LL
#define SEC 1000LL

static void test_delays(void)
{
	struct throttle *t = throttle_new(&limits);
	unsigned want[] = {500, 1000, 2000, 4000, 5000, 5000, 5000};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		CHECK(throttle_failure(t, "192.0.2.1", NULL, T0 + (int64_t)i) == want[i]);
	/* a huge count still caps (no shift overflow) */
	for (int i = 0; i < 100; i++)
		CHECK(throttle_failure(t, "192.0.2.1", NULL, T0 + 100) == 5000);
	/* the delay follows the worse of IP and account */
	CHECK(throttle_failure(t, "192.0.2.2", "victim@example.org", T0) == 500);
	CHECK(throttle_failure(t, "192.0.2.3", "victim@example.org", T0) == 1000);
	CHECK(throttle_failure(t, "192.0.2.4", "VICTIM@example.org", T0) == 2000);
	throttle_free(&t);
	CHECK(t == NULL);
	throttle_free(&t);
}

static void test_ip_lockout(void)
{
	struct throttle *t = throttle_new(&limits);
	const char *ip = "2001:db8::1";

	for (int i = 0; i < 4; i++) {
		CHECK(!throttle_refused(t, ip, NULL, T0 + i * SEC));
		throttle_failure(t, ip, NULL, T0 + i * SEC);
	}
	CHECK(!throttle_refused(t, ip, NULL, T0 + 4 * SEC));
	throttle_failure(t, ip, NULL, T0 + 4 * SEC); /* 5th: locked until T0+304s */
	CHECK(throttle_refused(t, ip, NULL, T0 + 5 * SEC));
	CHECK(throttle_refused(t, ip, "anyone@example.org", T0 + 100 * SEC));
	CHECK(throttle_refused(t, ip, NULL, T0 + 303 * SEC));
	/* another IP is unaffected */
	CHECK(!throttle_refused(t, "2001:db8::2", NULL, T0 + 5 * SEC));
	CHECK(!throttle_refused(t, "192.0.2.1", "anyone@example.org", T0 + 5 * SEC));
	/* lockout over */
	CHECK(!throttle_refused(t, ip, NULL, T0 + 305 * SEC));
	throttle_free(&t);
}

static void test_account_lockout(void)
{
	struct throttle *t = throttle_new(&limits);
	const char *acct = "user@example.org";
	char ip[32];

	/* 7 failures from 7 IPs: none of them locked, the account not yet */
	for (int i = 0; i < 7; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", i);
		throttle_failure(t, ip, acct, T0 + i);
		CHECK(!throttle_refused(t, ip, acct, T0 + 10));
	}
	snprintf(ip, sizeof(ip), "198.51.100.%d", 7);
	throttle_failure(t, ip, acct, T0 + 7);
	CHECK(throttle_refused(t, "203.0.113.9", acct, T0 + 10));
	CHECK(throttle_refused(t, "203.0.113.9", "User@Example.org", T0 + 10));
	/* same IP, other account: fine; no account known yet: fine */
	CHECK(!throttle_refused(t, "203.0.113.9", "other@example.org", T0 + 10));
	CHECK(!throttle_refused(t, "203.0.113.9", NULL, T0 + 10));
	CHECK(!throttle_refused(t, "203.0.113.9", acct, T0 + 7 + 300 * SEC));
	throttle_free(&t);
}

static void test_window(void)
{
	struct throttle *t = throttle_new(&limits);
	const char *ip = "192.0.2.50";

	for (int i = 0; i < 4; i++)
		throttle_failure(t, ip, NULL, T0 + i * SEC);
	/* window (600 s from the first failure) passes: counting restarts */
	CHECK(throttle_failure(t, ip, NULL, T0 + 601 * SEC) == 500);
	CHECK(!throttle_refused(t, ip, NULL, T0 + 602 * SEC));
	for (int i = 0; i < 3; i++)
		throttle_failure(t, ip, NULL, T0 + 602 * SEC + i);
	CHECK(!throttle_refused(t, ip, NULL, T0 + 603 * SEC));
	throttle_failure(t, ip, NULL, T0 + 603 * SEC);
	CHECK(throttle_refused(t, ip, NULL, T0 + 604 * SEC));
	throttle_free(&t);
}

static void test_success(void)
{
	struct throttle *t = throttle_new(&limits);
	const char *ip = "192.0.2.77";

	for (int i = 0; i < 4; i++)
		throttle_failure(t, ip, "a@example.org", T0 + i);
	throttle_success(t, ip, "a@example.org", T0 + 10);
	/* the IP starts over; the account keeps its 4 (the next one is its 5th) */
	CHECK(throttle_failure(t, ip, NULL, T0 + 20) == 500);
	CHECK(throttle_failure(t, ip, "a@example.org", T0 + 30) == 5000); /* 500 << 4, capped */
	for (int i = 0; i < 3; i++)
		throttle_failure(t, ip, NULL, T0 + 40 + i);
	CHECK(throttle_refused(t, ip, NULL, T0 + 50));
	throttle_free(&t);
}

static void test_expire_and_cap(void)
{
	struct throttle *t = throttle_new(&limits);
	char ip[32];

	throttle_failure(t, "192.0.2.1", "x@example.org", T0);
	throttle_failure(t, "192.0.2.2", NULL, T0 + 100 * SEC);
	CHECK(throttle_count(t) == 3);
	throttle_expire(t, T0 + 900 * SEC); /* window + lockout = 900 s: not yet */
	CHECK(throttle_count(t) == 3);
	throttle_expire(t, T0 + 901 * SEC);
	CHECK(throttle_count(t) == 1);
	throttle_expire(t, T0 + 1001 * SEC);
	CHECK(throttle_count(t) == 0);

	/* a locked entry stays while locked even if the lockout outlasts the window */
	struct throttle_limits l2 = limits;
	l2.window = 10;
	l2.lockout = 1000;
	throttle_set_limits(t, &l2);
	for (int i = 0; i < 5; i++)
		throttle_failure(t, "192.0.2.9", NULL, T0);
	throttle_expire(t, T0 + 500 * SEC);
	CHECK(throttle_refused(t, "192.0.2.9", NULL, T0 + 500 * SEC));
	throttle_expire(t, T0 + 1011 * SEC);
	CHECK(throttle_count(t) == 0);
	throttle_set_limits(t, &limits);

	/* bounded: the least recently failed key is dropped */
	throttle_set_max_entries(t, 100);
	for (int i = 0; i < 1000; i++) {
		snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 256, i % 256);
		throttle_failure(t, ip, NULL, T0 + i);
	}
	CHECK(throttle_count(t) == 100);
	CHECK(throttle_failure(t, "10.0.3.231", NULL, T0 + 2000) == 1000); /* i = 999 */
	CHECK(throttle_failure(t, "10.0.0.0", NULL, T0 + 2000) == 500);    /* forgotten */
	CHECK(throttle_count(t) == 100);
	throttle_free(&t);
}

static void test_disabled_limits(void)
{
	struct throttle_limits l = {.max_failures = 0,
	                            .account_max_failures = 0,
	                            .window = 60,
	                            .lockout = 60,
	                            .max_delay_ms = 0};
	struct throttle *t = throttle_new(&l);
	for (int i = 0; i < 50; i++)
		CHECK(throttle_failure(t, "192.0.2.1", "u@example.org", T0 + i) == 0);
	CHECK(!throttle_refused(t, "192.0.2.1", "u@example.org", T0 + 100));
	throttle_free(&t);
}

int main(void)
{
	test_delays();
	test_ip_lockout();
	test_account_lockout();
	test_window();
	test_success();
	test_expire_and_cap();
	test_disabled_limits();
	return unit_finish("throttle");
}
