/* Unit tests for the asynchronous MTA-STS lookup (src/delivery/mta_sts_fetch.c)
 * against a dnsmasq on a loopback port and a store in a temporary directory:
 * a cached policy with the TXT record's id, a failed fetch falling back to the
 * cache (or to no policy), an expired entry, no TXT record, a DNS timeout with
 * a cached policy; the callback never from inside mta_sts_lookup; cancelling
 * at every step and freeing the context with lookups pending (no callback,
 * store jobs finishing later touch nothing freed: run it under ASan). The
 * HTTPS fetch itself is tested end to end in tests/integration/test_mta_sts.py. */
#include "unit.h"
#include "unit_dnsmasq.h"

#include "core/worker.h"
#include "delivery/mta_sts.h"
#include "dns/dns.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POLICY "version: STSv1\nmode: enforce\nmx: mail.cached.test\nmax_age: 3600\n"

static int dead_port; /* nothing listens there (TCP) */

static const char *const dns_records[] = {"--txt-record=_mta-sts.cached.test,v=STSv1; id=c1",
                                          "--txt-record=_mta-sts.fetch.test,v=STSv1; id=f2",
                                          "--host-record=mta-sts.fetch.test,127.0.0.1",
                                          "--txt-record=_mta-sts.expired.test,v=STSv1; id=e1",
                                          "--host-record=mta-sts.expired.test,127.0.0.1"};

static int start_dnsmasq(int port)
{
	return unit_dnsmasq_start(port, dns_records, sizeof(dns_records) / sizeof(dns_records[0]));
}

/* ---- a loop with everything a lookup needs ---- */

struct env {
	struct event_base *base;
	struct dns_resolver *r;
	struct worker_pool *pool;
	struct worker_inbox *inbox;
	struct store *st;
	struct mta_sts_ctx *sts;
};

static void env_open(struct env *e, const char *resolver, unsigned dns_timeout, struct store *st)
{
	struct dns_options o = {.resolver = resolver, .timeout = dns_timeout};
	char *error = NULL;

	memset(e, 0, sizeof(*e));
	e->base = event_base_new();
	e->pool = worker_pool_create(2, 0);
	e->inbox = worker_inbox_new(e->base);
	e->st = st;
	CHECK(dns_resolver_new(e->base, &o, &e->r, &error) == 1);
	free(error);
	error = NULL;
	e->sts =
	    mta_sts_new(e->base, e->r, e->pool, e->inbox, st, NULL, (unsigned)dead_port, &error);
	CHECK(e->sts != NULL);
	free(error);
}

static void env_close(struct env *e)
{
	mta_sts_free(&e->sts);
	CHECK(e->sts == NULL);
	worker_pool_destroy(&e->pool);
	worker_inbox_free(&e->inbox);
	dns_resolver_free(&e->r);
	event_base_free(e->base);
}

struct result {
	struct env *e;
	int calls;
	bool have_pol;
	struct mta_sts_policy pol;
	char reason[600];
	struct mta_sts_query *q;
};

static bool in_lookup;

static void on_result(void *ctx, const struct mta_sts_policy *pol, const char *reason)
{
	struct result *r = ctx;

	CHECK(!in_lookup);
	r->calls++;
	r->have_pol = pol != NULL;
	if (pol != NULL)
		r->pol = *pol;
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
	r->q = NULL;
	event_base_loopbreak(r->e->base);
}

static void lookup(struct env *e, const char *domain, struct result *r)
{
	char *error = NULL;

	memset(r, 0, sizeof(*r));
	r->e = e;
	in_lookup = true;
	CHECK(mta_sts_lookup(e->sts, domain, on_result, r, &r->q, &error) == 1);
	in_lookup = false;
	free(error);
	CHECK(r->calls == 0);
}

static void wait_for(struct env *e, struct result *r)
{
	time_t t0 = time(NULL);
	while (r->calls == 0 && time(NULL) - t0 < 20)
		event_base_loop(e->base, EVLOOP_ONCE);
	CHECK(r->calls == 1);
}

static void put(struct store *st, const char *domain, const char *id, int64_t expires)
{
	struct store_mta_sts p = {.domain = (char *)domain,
	                          .id = (char *)id,
	                          .policy = POLICY,
	                          .fetched = expires - 3600,
	                          .expires = expires};
	CHECK(store_mta_sts_put(st, &p, NULL) == 1);
}

static void test_results(const char *resolver, struct store *st)
{
	struct env e;
	struct result r;
	char want[300];
	int64_t now = time(NULL);

	env_open(&e, resolver, 0, st);
	put(st, "cached.test", "c1", now + 3600);
	put(st, "fetch.test", "f1", now + 3600);
	put(st, "expired.test", "e1", now - 1);

	/* the TXT record's id is the cached one: no fetch */
	lookup(&e, "Cached.Test.", &r);
	wait_for(&e, &r);
	CHECK(r.have_pol);
	CHECK_STR(r.reason, "cached");
	CHECK_STR(r.pol.id, "c1");
	CHECK(r.pol.mode == MTA_STS_MODE_ENFORCE && r.pol.max_age == 3600 && r.pol.nmx == 1);
	CHECK(r.pol.expires == now + 3600);
	CHECK(mta_sts_mx_match(&r.pol, "MAIL.cached.test."));

	/* another id: fetched, which fails (nothing listens): the cached one */
	lookup(&e, "fetch.test", &r);
	wait_for(&e, &r);
	CHECK(r.have_pol);
	snprintf(want, sizeof(want), "cached (fetch failed: 127.0.0.1:%d: cannot connect)",
	         dead_port);
	CHECK_STR(r.reason, want);
	CHECK_STR(r.pol.id, "f1");

	/* expired: not used, even with the same id */
	lookup(&e, "expired.test", &r);
	wait_for(&e, &r);
	CHECK(!r.have_pol);
	snprintf(want, sizeof(want), "fetch failed: 127.0.0.1:%d: cannot connect", dead_port);
	CHECK_STR(r.reason, want);

	/* no TXT record, nothing cached */
	lookup(&e, "none.test", &r);
	wait_for(&e, &r);
	CHECK(!r.have_pol);
	CHECK_STR(r.reason, "no TXT record");

	/* invalid names are refused at once */
	char *error = NULL;
	struct mta_sts_query *q = (struct mta_sts_query *)&r;
	CHECK(mta_sts_lookup(e.sts, "a..test", on_result, &r, &q, &error) == -1);
	CHECK(q == NULL);
	CHECK_STR(error, "invalid domain name for MTA-STS");
	free(error);
	env_close(&e);
}

/* A lookup started from another's callback works. */
static struct result chained;
static void on_result_chain(void *ctx, const struct mta_sts_policy *pol, const char *reason)
{
	struct result *r = ctx;
	r->calls++;
	CHECK(mta_sts_lookup(r->e->sts, "cached.test", on_result, &chained, &chained.q, NULL) == 1);
}

static void test_chain(const char *resolver, struct store *st)
{
	struct env e;
	struct result first = {0};

	env_open(&e, resolver, 0, st);
	first.e = &e;
	memset(&chained, 0, sizeof(chained));
	chained.e = &e;
	CHECK(mta_sts_lookup(e.sts, "none.test", on_result_chain, &first, NULL, NULL) == 1);
	wait_for(&e, &chained);
	CHECK(first.calls == 1);
	CHECK_STR(chained.reason, "cached");
	env_close(&e);
}

/* Cancelled after k turns of the loop, for every k until all have finished:
 * a cancelled lookup never calls back. */
static void test_cancel(const char *resolver, struct store *st)
{
	static const char *const domains[] = {"cached.test", "fetch.test", "none.test",
	                                      "expired.test"};
	enum { N = sizeof(domains) / sizeof(domains[0]) };

	for (int k = 0; k < 40; k++) {
		struct env e;
		struct result r[N];
		bool cancelled[N] = {false};
		int done = 0;

		env_open(&e, resolver, 0, st);
		for (int i = 0; i < N; i++)
			lookup(&e, domains[i], &r[i]);
		for (int t = 0; t < k; t++)
			event_base_loop(e.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		for (int i = 0; i < N; i++) {
			if (r[i].calls == 0) {
				mta_sts_cancel(&r[i].q);
				CHECK(r[i].q == NULL);
				cancelled[i] = true;
			} else {
				done++;
			}
		}
		mta_sts_cancel(&r[0].q); /* NULL: harmless */
		/* what was in flight finishes and finds nobody */
		struct timeval tv = {0, 100000};
		event_base_loopexit(e.base, &tv);
		event_base_dispatch(e.base);
		for (int i = 0; i < N; i++)
			CHECK(r[i].calls == (cancelled[i] ? 0 : 1));
		env_close(&e);
		if (done == N)
			break;
	}
}

/* Freed with lookups pending in every step: no callback. */
static void test_free_pending(const char *resolver, struct store *st)
{
	for (int k = 0; k < 20; k++) {
		struct env e;
		struct result r[3];

		env_open(&e, resolver, 0, st);
		lookup(&e, "cached.test", &r[0]);
		lookup(&e, "fetch.test", &r[1]);
		lookup(&e, "none.test", &r[2]);
		for (int t = 0; t < k; t++)
			event_base_loop(e.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		int before = r[0].calls + r[1].calls + r[2].calls;
		mta_sts_free(&e.sts);
		struct timeval tv = {0, 100000};
		event_base_loopexit(e.base, &tv);
		event_base_dispatch(e.base);
		CHECK(r[0].calls + r[1].calls + r[2].calls == before);
		env_close(&e);
	}
}

/* A policy host that takes the connection and never answers the TLS
 * handshake: the fetch times out, the connection is dropped mid-handshake. */
static void test_fetch_timeout(const char *resolver, struct store *st)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct env e;
	struct result r;

	CHECK(l >= 0 && bind(l, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(l, 8) == 0 &&
	      getsockname(l, (struct sockaddr *)&sa, &sl) == 0);
	env_open(&e, resolver, 0, st);
	mta_sts_free(&e.sts);
	e.sts = mta_sts_new(e.base, e.r, e.pool, e.inbox, st, NULL, ntohs(sa.sin_port), NULL);
	CHECK(e.sts != NULL);
	mta_sts_set_fetch_timeout(e.sts, 1);
	time_t t0 = time(NULL);
	lookup(&e, "fetch.test", &r); /* cached with another id */
	wait_for(&e, &r);
	CHECK(r.have_pol);
	CHECK_STR(r.reason, "cached (fetch failed: timed out after 1 s)");
	CHECK(time(NULL) - t0 <= 4);
	lookup(&e, "expired.test", &r);
	wait_for(&e, &r);
	CHECK(!r.have_pol);
	CHECK_STR(r.reason, "fetch failed: timed out after 1 s");
	env_close(&e);
	close(l);
}

/* The TXT lookup times out: the cached policy is used. */
static void test_dns_down(struct store *st)
{
	struct env e;
	struct result r;
	char addr[32];

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", unit_free_port());
	env_open(&e, addr, 1, st);
	lookup(&e, "cached.test", &r);
	wait_for(&e, &r);
	CHECK(r.have_pol);
	CHECK_STR(r.reason, "cached (DNS: timed out)");
	lookup(&e, "none.test", &r);
	wait_for(&e, &r);
	CHECK(!r.have_pol);
	CHECK_STR(r.reason, "DNS: timed out");
	env_close(&e);
}

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	char dir[] = "/tmp/hermod-test-mta-sts-async.XXXXXX";
	struct store_options opts = {.data_dir = dir, .fsync = false};
	struct store *st = NULL;
	char addr[32];
	int port = unit_free_port();

	signal(SIGPIPE, SIG_IGN);
	dead_port = unit_free_port();
	if (mkdtemp(dir) == NULL || store_open(&opts, &st, NULL) != 1) {
		fprintf(stderr, "cannot open a store in %s\n", dir);
		return 1;
	}
	CHECK(port > 0 && start_dnsmasq(port) == 1);
	if (unit_dnsmasq_pid > 0) {
		snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
		test_results(addr, st);
		test_chain(addr, st);
		test_cancel(addr, st);
		test_free_pending(addr, st);
		test_fetch_timeout(addr, st);
	}
	unit_dnsmasq_stop();
	test_dns_down(st);
	store_close(&st);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return unit_finish("mta_sts_async");
}
