/* Unit tests for authentication throttling (src/auth/throttle.c). */
#include "unit.h"

#include "auth/throttle.h"

#include <pthread.h>
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
	/* below account_max_failures the account adds nothing: each IP's first */
	CHECK(throttle_failure(t, "192.0.2.2", "victim@example.org", T0) == 500);
	CHECK(throttle_failure(t, "192.0.2.3", "victim@example.org", T0) == 500);
	CHECK(throttle_failure(t, "192.0.2.4", "VICTIM@example.org", T0) == 500);
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

/* F4: failures spread over many IPs never lock the account; once it has
 * account_max_failures, failures from IPs that have not logged in to it wait
 * max_delay, while the IPs that have are exempt. */
static void test_account_penalty(void)
{
	struct throttle *t = throttle_new(&limits);
	const char *acct = "user@example.org";
	char ip[32];

	/* the owner logged in from 203.0.113.1 before the attack */
	throttle_success(t, "203.0.113.1", "User@Example.org", T0);
	/* 6 IPs x 4 failures (each IP stays under its own max_failures of 5) */
	for (int i = 0; i < 6; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", i);
		for (int j = 0; j < 4; j++) {
			unsigned d = throttle_failure(t, ip, acct, T0 + 10 + i * 4 + j);
			/* the account's 8th failure (IP 1, its 4th) and later: max_delay */
			if (i * 4 + j + 1 >= 8)
				CHECK(d == 5000);
			else
				CHECK(d == (500u << j));
		}
		CHECK(!throttle_refused(t, ip, acct, T0 + 100));
	}
	/* never refused, from any IP, with or without the account known */
	CHECK(!throttle_refused(t, "203.0.113.1", acct, T0 + 100));
	CHECK(!throttle_refused(t, "203.0.113.9", acct, T0 + 100));
	CHECK(!throttle_refused(t, "203.0.113.9", NULL, T0 + 100));
	/* a fresh IP's first failure on the account under attack waits max_delay */
	CHECK(throttle_failure(t, "203.0.113.9", acct, T0 + 101) == 5000);
	/* the owner's IP is exempt from the account's penalty (case-insensitive) */
	CHECK(throttle_failure(t, "203.0.113.1", "USER@example.org", T0 + 102) == 500);
	/* another account from an attacking IP: only that IP's own count */
	CHECK(throttle_failure(t, "198.51.100.0", "other@example.org", T0 + 103) == 5000);
	CHECK(throttle_refused(t, "198.51.100.0", NULL, T0 + 104)); /* its 5th: locked */
	/* the window passes: the account is no longer under attack */
	CHECK(throttle_failure(t, "203.0.113.9", acct, T0 + 700 * SEC) == 500);

	/* only the last THROTTLE_KNOWN_IPS successful IPs are remembered */
	for (int i = 0; i < THROTTLE_KNOWN_IPS; i++) {
		snprintf(ip, sizeof(ip), "192.0.2.%d", 100 + i);
		throttle_success(t, ip, acct, T0 + 701 * SEC + i);
	}
	for (int i = 0; i < 8; i++)
		throttle_failure(t, "198.51.100.50", acct, T0 + 702 * SEC);      /* under attack */
	CHECK(throttle_failure(t, "203.0.113.1", acct, T0 + 703 * SEC) == 5000); /* forgotten */
	for (int i = 0; i < THROTTLE_KNOWN_IPS; i++) {
		snprintf(ip, sizeof(ip), "192.0.2.%d", 100 + i);
		CHECK(throttle_failure(t, ip, acct, T0 + 703 * SEC) == 500);
	}

	/* account_max_failures 0: no account penalty */
	struct throttle_limits l2 = limits;
	l2.account_max_failures = 0;
	throttle_set_limits(t, &l2);
	CHECK(throttle_failure(t, "203.0.113.77", acct, T0 + 704 * SEC) == 500);
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

	/* a first attempt from a clean IP is answered at once */
	CHECK(throttle_success(t, "192.0.2.1", "b@example.org", T0) == 0);
	for (int i = 0; i < 4; i++)
		throttle_failure(t, ip, "a@example.org", T0 + i);
	/* after 4 failures a success waits as long as a 5th failure would */
	CHECK(throttle_success(t, ip, "a@example.org", T0 + 10) == 5000);
	/* the IP starts over; the account keeps its 4 */
	CHECK(throttle_failure(t, ip, NULL, T0 + 20) == 500);
	CHECK(throttle_failure(t, ip, "a@example.org", T0 + 30) == 1000);
	for (int i = 0; i < 3; i++)
		throttle_failure(t, ip, NULL, T0 + 40 + i);
	CHECK(throttle_refused(t, ip, NULL, T0 + 50));
	throttle_free(&t);
}

/* A right guess is not told apart by a prompt answer: on an account under
 * attack, a success from an unknown IP waits max_delay as a failure would; its
 * owner's known IP is answered at once; an IP whose failures have left the
 * window is clean again. */
static void test_success_penalty(void)
{
	struct throttle *t = throttle_new(&limits);
	const char *acct = "victim@example.org";
	char ip[32];

	CHECK(throttle_success(t, "203.0.113.1", acct, T0) == 0); /* the owner, before */
	for (int i = 0; i < 8; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", i);
		throttle_failure(t, ip, acct, T0 + 10 + i);
	}
	/* an attacker's IP with one failure of its own, and a fresh one */
	CHECK(throttle_failure(t, "198.51.100.0", acct, T0 + 20) == 5000);
	CHECK(throttle_success(t, "198.51.100.0", acct, T0 + 21) == 5000);
	CHECK(throttle_success(t, "203.0.113.50", acct, T0 + 22) == 5000);
	/* ... which is known now: its next login is prompt */
	CHECK(throttle_success(t, "203.0.113.50", acct, T0 + 23) == 0);
	/* the owner's IP: exempt from the account's penalty */
	CHECK(throttle_success(t, "203.0.113.1", "VICTIM@example.org", T0 + 24) == 0);
	/* another account from a clean IP: prompt */
	CHECK(throttle_success(t, "203.0.113.60", "other@example.org", T0 + 25) == 0);
	/* the per-IP part: 2 failures (1 s after the 2nd), then a success waits 2 s */
	throttle_failure(t, "192.0.2.9", "x@example.org", T0 + 30);
	throttle_failure(t, "192.0.2.9", "x@example.org", T0 + 31);
	CHECK(throttle_success(t, "192.0.2.9", "x@example.org", T0 + 32) == 2000);
	/* after the window the account is no longer under attack */
	CHECK(throttle_success(t, "203.0.113.70", acct, T0 + 700 * SEC) == 0);
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

/* Several loops share one throttle: counts from concurrent threads add up. */
struct thread_arg {
	struct throttle *t;
	int id;
};

static void *thread_run(void *p)
{
	struct thread_arg *a = p;
	char ip[32];
	for (int i = 0; i < 2000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", a->id, i / 256, i % 256);
		throttle_failure(a->t, ip, "shared@example.org", T0 + i);
		throttle_refused(a->t, ip, "shared@example.org", T0 + i);
		if (i % 10 == 0)
			throttle_success(a->t, ip, "shared@example.org", T0 + i);
	}
	return NULL;
}

static void test_threads(void)
{
	struct throttle *t = throttle_new(&limits);
	pthread_t th[4];
	struct thread_arg args[4];
	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){t, i};
		CHECK(pthread_create(&th[i], NULL, thread_run, &args[i]) == 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	/* 8000 IPs, 800 of them reset by a success, plus the account */
	CHECK(throttle_count(t) == 8000 - 800 + 1);
	throttle_free(&t);
}

int main(void)
{
	test_delays();
	test_ip_lockout();
	test_account_penalty();
	test_threads();
	test_window();
	test_success();
	test_success_penalty();
	test_expire_and_cap();
	test_disabled_limits();
	return unit_finish("throttle");
}
