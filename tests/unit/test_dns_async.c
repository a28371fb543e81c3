/* Unit tests for the asynchronous resolver (src/dns/dns.c) against a dnsmasq
 * started on a loopback port: many lookups at once, each answered once;
 * cancelling; a lookup started from a callback; freeing with lookups pending;
 * the lookup timeout. */
#include "unit.h"
#include "unit_dnsmasq.h"

#include "dns/dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NLOOKUPS 50

/* the records of the test's DNS server (unit_dnsmasq.h) */
static const char *const dns_records[] = {"--host-record=h.example.test,127.0.0.9",
                                          "--mx-host=example.test,h.example.test,5"};

static int start_dnsmasq(int port)
{
	return unit_dnsmasq_start(port, dns_records, sizeof(dns_records) / sizeof(dns_records[0]));
}

struct result {
	int calls;
	enum dns_status status;
	size_t n;
	uint32_t addr;
	char host[DNS_NAME_MAX + 1];
	const char *why;
};

struct ctx {
	struct event_base *base;
	struct dns_resolver *r;
	int pending;
	struct result res[NLOOKUPS + 2];
	struct dns_query *q[NLOOKUPS + 2];
};

struct cbarg {
	struct ctx *c;
	int i;
};

static struct cbarg args[NLOOKUPS + 2];

static void on_answer(void *arg, const struct dns_answer *a)
{
	struct cbarg *ca = arg;
	struct result *res = &ca->c->res[ca->i];
	res->calls++;
	res->status = a->status;
	res->n = a->n;
	res->why = a->why;
	if (a->type == DNS_TYPE_A && a->n > 0)
		res->addr = ntohl(a->a[0].s_addr);
	if (a->type == DNS_TYPE_MX && a->n > 0)
		snprintf(res->host, sizeof(res->host), "%s", a->mx[0].host);
	if (--ca->c->pending == 0)
		event_base_loopbreak(ca->c->base);
}

/* A callback that starts the next lookup (slot NLOOKUPS + 1) from inside. */
static void on_answer_chain(void *arg, const struct dns_answer *a)
{
	struct cbarg *ca = arg;
	char *error = NULL;
	/* counted before this answer is: the loop must wait for the new one */
	args[NLOOKUPS + 1] = (struct cbarg){ca->c, NLOOKUPS + 1};
	ca->c->pending++;
	CHECK(dns_lookup(ca->c->r, "h.example.test", DNS_TYPE_A, on_answer, &args[NLOOKUPS + 1],
	                 &ca->c->q[NLOOKUPS + 1], &error) == 1);
	free(error);
	on_answer(arg, a);
}

static void run(struct ctx *c)
{
	struct timeval tv = {.tv_sec = 30};
	event_base_loopexit(c->base, &tv); /* a hang fails the checks, not the run */
	event_base_dispatch(c->base);
}

static void test_many(const char *addr)
{
	struct ctx c = {.base = event_base_new()};
	struct dns_options o = {.resolver = addr};
	char *error = NULL;

	CHECK(dns_resolver_new(c.base, &o, &c.r, &error) == 1);
	free(error);
	if (c.r == NULL)
		return;
	CHECK(!dns_resolver_validating(c.r));
	for (int i = 0; i < NLOOKUPS; i++) {
		args[i] = (struct cbarg){&c, i};
		const char *name = i % 3 == 0   ? "h.example.test"
		                   : i % 3 == 1 ? "example.test"
		                                : "none.example.test";
		enum dns_type t = i % 3 == 1 ? DNS_TYPE_MX : DNS_TYPE_A;
		CHECK(dns_lookup(c.r, name, t, on_answer, &args[i], &c.q[i], &error) == 1);
		free(error);
		c.pending++;
	}
	/* cancel one: its callback never runs, its handle is cleared */
	dns_cancel(&c.q[7]);
	CHECK(c.q[7] == NULL);
	c.pending--;
	/* one whose callback starts another */
	args[NLOOKUPS] = (struct cbarg){&c, NLOOKUPS};
	CHECK(dns_lookup(c.r, "h.example.test", DNS_TYPE_A, on_answer_chain, &args[NLOOKUPS],
	                 &c.q[NLOOKUPS], &error) == 1);
	c.pending++;
	/* an invalid name fails at once, with no callback */
	CHECK(dns_lookup(c.r, "a..b", DNS_TYPE_A, on_answer, &args[0], NULL, &error) == -1);
	CHECK_STR(error, "not a valid domain name");
	free(error);
	run(&c);
	CHECK(c.pending == 0);
	for (int i = 0; i < NLOOKUPS; i++) {
		if (i == 7) {
			CHECK(c.res[i].calls == 0);
			continue;
		}
		CHECK(c.res[i].calls == 1);
		CHECK(c.q[i] == NULL); /* cleared before the callback */
		if (i % 3 == 0)
			CHECK(c.res[i].status == DNS_OK && c.res[i].addr == 0x7f000009);
		else if (i % 3 == 1)
			CHECK(c.res[i].status == DNS_OK &&
			      strcmp(c.res[i].host, "h.example.test") == 0);
		else
			CHECK(c.res[i].status == DNS_NXDOMAIN && c.res[i].n == 0);
	}
	CHECK(c.res[NLOOKUPS].calls == 1 && c.res[NLOOKUPS + 1].calls == 1);
	CHECK(c.res[NLOOKUPS + 1].status == DNS_OK);
	/* freed with lookups pending: no callback, nothing leaked (ASan) */
	for (int i = 0; i < 5; i++) {
		c.res[i].calls = 0;
		CHECK(dns_lookup(c.r, "example.test", DNS_TYPE_MX, on_answer, &args[i], NULL,
		                 &error) == 1);
	}
	dns_resolver_free(&c.r);
	CHECK(c.r == NULL);
	event_base_loop(c.base, EVLOOP_NONBLOCK);
	for (int i = 0; i < 5; i++)
		CHECK(c.res[i].calls == 0);
	event_base_free(c.base);
}

static void test_timeout(void)
{
	struct ctx c = {.base = event_base_new()};
	char addr[32];
	int port = unit_free_port();
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	struct dns_options o = {.resolver = addr, .timeout = 1};
	char *error = NULL;

	CHECK(dns_resolver_new(c.base, &o, &c.r, &error) == 1);
	free(error);
	if (c.r == NULL)
		return;
	args[0] = (struct cbarg){&c, 0};
	c.pending = 1;
	time_t t0 = time(NULL);
	CHECK(dns_lookup(c.r, "h.example.test", DNS_TYPE_A, on_answer, &args[0], NULL, &error) ==
	      1);
	run(&c);
	CHECK(c.res[0].calls == 1 && c.res[0].status == DNS_TEMPFAIL);
	CHECK_STR(c.res[0].why, "timed out");
	CHECK(time(NULL) - t0 <= 5);
	dns_resolver_free(&c.r);
	event_base_free(c.base);
}

static void test_options(void)
{
	struct event_base *base = event_base_new();
	struct dns_resolver *r = NULL;
	char *error = NULL;
	struct dns_options bad = {.resolver = "nonsense"};

	CHECK(dns_resolver_new(base, &bad, &r, &error) == -1 && r == NULL);
	CHECK_STR(error, "bad resolver address 'nonsense'");
	free(error);
	/* resolv.conf without nameservers: recursive, validating from the root key */
	char path[] = "/tmp/hermod-resolv-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0 && write(fd, "search example.test\n", 20) == 20);
	close(fd);
	struct dns_options none = {.resolv_conf = path};
	CHECK(dns_resolver_new(base, &none, &r, &error) == 1);
	CHECK(r != NULL && dns_resolver_validating(r));
	dns_resolver_free(&r);
	free(error);
	/* one with a nameserver: forwarding, no validation without trust_anchor */
	fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(fd >= 0 && write(fd, "nameserver 127.0.0.1\n", 21) == 21);
	close(fd);
	CHECK(dns_resolver_new(base, &none, &r, &error) == 1);
	CHECK(r != NULL && !dns_resolver_validating(r));
	dns_resolver_free(&r);
	free(error);
	unlink(path);
	event_base_free(base);
}

int main(void)
{
	char addr[32];
	int port = unit_free_port();

	test_options();
	CHECK(port > 0 && start_dnsmasq(port) == 1);
	if (unit_dnsmasq_pid > 0) {
		snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
		test_many(addr);
	}
	unit_dnsmasq_stop();
	test_timeout();
	return unit_finish("dns_async");
}
