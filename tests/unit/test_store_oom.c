/* Unit tests for the store under out-of-memory: every allocation failure is an
 * error result (-1, *error_r set), never an abort(), a crash or a wrong answer.
 *
 * The test binary replaces malloc/calloc/realloc/free (glibc supports replacing
 * them in the executable; its own __libc_* functions do the work), so that the
 * n-th allocation made by the test's thread after fail_arm(n) fails. A sweep
 * fails the 1st, 2nd, ... allocation of one store call until the call runs
 * without reaching the injected failure. SQLite allocates through the same
 * malloc, so its out-of-memory paths are swept too. Under AddressSanitizer, which
 * replaces malloc itself, the test does nothing. */
#include "unit.h"

#include "store/store.h"
#include "store/store_util.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define OOM_INJECTION 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OOM_INJECTION 0
#endif
#endif
#ifndef OOM_INJECTION
#define OOM_INJECTION 1
#endif

#if OOM_INJECTION
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);

static pthread_t fail_thread;
static atomic_long fail_countdown; /* > 0: allocations of fail_thread left to the failing one */
static atomic_bool fail_fired;

/* true when this allocation is the one to fail */
static bool fail_now(void)
{
	if (atomic_load(&fail_countdown) <= 0 || !pthread_equal(pthread_self(), fail_thread))
		return false;
	if (atomic_fetch_sub(&fail_countdown, 1) != 1)
		return false;
	atomic_store(&fail_fired, true);
	errno = ENOMEM;
	return true;
}

void *malloc(size_t size)
{
	return fail_now() ? NULL : __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
	return fail_now() ? NULL : __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
	return fail_now() ? NULL : __libc_realloc(p, size);
}

void free(void *p)
{
	__libc_free(p);
}
#endif

/* The n-th allocation (n >= 1) of this thread from now fails; 0 disarms. */
static void fail_arm(long n)
{
#if OOM_INJECTION
	fail_thread = pthread_self();
	atomic_store(&fail_fired, false);
	atomic_store(&fail_countdown, n);
#endif
}

/* Disarms; whether the armed failure was reached. */
static bool fail_disarm(void)
{
#if OOM_INJECTION
	atomic_store(&fail_countdown, 0);
	return atomic_load(&fail_fired);
#else
	return false;
#endif
}

static char data_dir[] = "/tmp/hermod-test-store-oom.XXXXXX";

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

/* ---- store_util: the first allocation of each helper fails ---- */

static void test_util(void)
{
	char *r = NULL, *error = NULL;
	size_t at = 0;

	fail_arm(1);
	CHECK(store_domain_normalize("Example.ORG", &r, &error) == -1);
	CHECK(fail_disarm());
	CHECK(r == NULL);
	CHECK_STR(error, "out of memory");
	free(error);
	error = NULL;
	CHECK(store_domain_normalize("Example.ORG", &r, &error) == 1);
	CHECK_STR(r, "example.org");
	free(r);
	r = NULL;

	fail_arm(1);
	CHECK(store_addr_normalize_ex("\"A b\"@Example.ORG", false, true, &r, &at, &error) == -1);
	CHECK(fail_disarm());
	CHECK(r == NULL);
	CHECK_STR(error, "out of memory");
	free(error);
	error = NULL;
	CHECK(store_addr_normalize_ex("\"A b\"@Example.ORG", false, true, &r, &at, &error) == 1);
	CHECK_STR(r, "\"A b\"@example.org");
	CHECK(at == 5);
	free(r);
	r = NULL;

	/* an invalid address allocates only its error text: when that fails, the
	 * result is still -1, with no text (str_error's contract) */
	fail_arm(1);
	CHECK(store_addr_normalize("no-at-sign", false, &r, NULL, &error) == -1);
	CHECK(fail_disarm());
	CHECK(r == NULL && error == NULL);

	fail_arm(1);
	CHECK(store_flags_normalize("\\Seen  \\Flagged ", &r, &error) == -1);
	CHECK(fail_disarm());
	CHECK(r == NULL);
	CHECK_STR(error, "out of memory");
	free(error);
	error = NULL;
	CHECK(store_flags_normalize("\\Seen  \\Flagged ", &r, &error) == 1);
	CHECK_STR(r, "\\Seen \\Flagged");
	free(r);
	r = NULL;

	/* store_addr_valid is the check store_addr_normalize_ex makes */
	static const struct {
		const char *a;
		bool empty_local, space, valid;
	} cases[] = {
	    {"a@b", false, false, true},     {"@b", false, false, false},
	    {"@b", true, false, true},       {"a b@c", false, false, false},
	    {"a b@c", false, true, true},    {"a@", false, false, false},
	    {"ab", false, false, false},     {"a\x01@b", false, true, false},
	    {"a@b\x7f", false, true, false}, {NULL, true, true, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool v = store_addr_valid(cases[i].a, cases[i].empty_local, cases[i].space);
		CHECK(v == cases[i].valid);
		r = NULL;
		CHECK((store_addr_normalize_ex(cases[i].a, cases[i].empty_local, cases[i].space, &r,
		                               NULL, NULL) == 1) == v);
		free(r);
	}
}

/* Adding to a store_strv: the failed add leaves the vector as it was (terminated,
 * freeable); the ones after it work. Allocations: the array at the 1st and 3rd
 * add (capacity 4, then 8), the copy at each. */
static void test_strv(void)
{
	static const char *words[] = {"one", "two", "three", "four", "five", "ONE"};
	const size_t nwords = sizeof(words) / sizeof(words[0]);

	for (long k = 1; k <= 8; k++) {
		struct store_strv sv = {0};
		char *error = NULL;
		size_t failed = nwords;

		for (size_t i = 0; i < nwords; i++) {
			if (i == 0)
				fail_arm(k);
			if (store_strv_add_unique(&sv, words[i], &error) < 0) {
				CHECK(failed == nwords); /* only one failure injected */
				failed = i;
			}
		}
		bool fired = fail_disarm();
		CHECK(fired == (k <= 7)); /* 5 copies + 2 arrays */
		CHECK(fired == (failed < nwords));
		if (fired)
			CHECK_STR(error, "out of memory");
		else
			CHECK(error == NULL);
		free(error);
		/* every word but the failed one, in order; "ONE" is a duplicate of "one"
		 * unless "one" is the one that failed */
		size_t n = 0;
		for (size_t i = 0; i < nwords; i++) {
			if (i == failed || (i == 5 && failed != 0))
				continue;
			CHECK(n < sv.n && strcmp(sv.v[n], words[i]) == 0);
			n++;
		}
		CHECK(sv.n == n);
		CHECK(sv.v != NULL && sv.v[sv.n] == NULL);
		store_strv_free(&sv.v);
	}
}

/* ---- sweeps over store calls ---- */

struct sweep_result {
	int rc;
	char *error;
	char got[512];
};

typedef void sweep_fn(struct store *st, struct sweep_result *res);

/* Fails the 1st, 2nd, ... allocation of fn until fn runs without reaching the
 * injected failure; then the result must be want. A run that reached it either
 * fails (-1 with an error text) or, where the failure was one SQLite recovers
 * from, gives exactly want. Returns the number of runs that failed. */
static long fail_k; /* the allocation the current run fails */

static int sweep(struct store *st, const char *name, sweep_fn *fn, const char *want)
{
	int nfail = 0;
	long k;

	for (k = 1; k < 20000; k++) {
		struct sweep_result res = {.rc = 0};

		fail_k = k;
		fail_arm(k);
		fn(st, &res);
		bool fired = fail_disarm();
		if (!fired || res.rc != -1) {
			CHECK(res.rc == 1);
			CHECK_STR(res.got, want);
			CHECK(res.error == NULL);
			if (res.rc != 1 || strcmp(res.got, want) != 0)
				fprintf(stderr, "%s: allocation %ld: rc %d got \"%s\" error %s\n",
				        name, k, res.rc, res.got, res.error ? res.error : "(null)");
		} else {
			CHECK(res.error != NULL && res.error[0] != '\0');
			nfail++;
		}
		free(res.error);
		if (!fired)
			break;
	}
	CHECK(k < 20000);
	printf("  %s: %ld allocations swept, %d runs failed cleanly\n", name, k - 1, nfail);
	return nfail;
}

static void strv_join(char **v, char *out, size_t size)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		o += (size_t)snprintf(out + o, o < size ? size - o : 0, "%s%s", i > 0 ? " " : "",
		                      v[i]);
}

static void fn_resolve_alias(struct store *st, struct sweep_result *res)
{
	char **v = NULL;

	res->rc = store_resolve_recipient(st, "List@Example.TEST", &v, &res->error);
	strv_join(v, res->got, sizeof(res->got));
	store_strv_free(&v);
}

static void fn_resolve_plus(struct store *st, struct sweep_result *res)
{
	char **v = NULL;

	res->rc = store_resolve_recipient(st, "alice+tag@EXAMPLE.test", &v, &res->error);
	strv_join(v, res->got, sizeof(res->got));
	store_strv_free(&v);
}

static void fn_resolve_postmaster(struct store *st, struct sweep_result *res)
{
	char **v = NULL;

	res->rc = store_resolve_recipient(st, "postmaster", &v, &res->error);
	strv_join(v, res->got, sizeof(res->got));
	store_strv_free(&v);
}

static void fn_resolve_many(struct store *st, struct sweep_result *res)
{
	const char *addrs[] = {"bob@example.test", "nobody@example.test", "bad",
	                       "list@example.test"};
	char **results[4];
	int rcs[4];
	size_t o = 0;

	res->rc = store_resolve_recipients(st, addrs, 4, results, rcs, &res->error);
	for (size_t i = 0; res->rc == 1 && i < 4; i++) {
		char one[256];
		strv_join(results[i], one, sizeof(one));
		o += (size_t)snprintf(res->got + o, sizeof(res->got) - o, "%s%d:%s",
		                      i > 0 ? " | " : "", rcs[i], one);
		store_strv_free(&results[i]);
	}
}

static void fn_credentials(struct store *st, struct sweep_result *res)
{
	char *account = NULL, *pwhash = NULL, *scram = NULL;

	res->rc = store_account_get_credentials(st, "ALICE@example.test", &account, &pwhash, &scram,
	                                        &res->error);
	snprintf(res->got, sizeof(res->got), "%s %s %s", account ? account : "(null)",
	         pwhash ? pwhash : "(null)", scram ? scram : "(null)");
	free(account);
	free(pwhash);
	free(scram);
}

static void fn_owns(struct store *st, struct sweep_result *res)
{
	res->rc =
	    store_account_owns_address(st, "bob@example.test", "list@example.test", &res->error);
	snprintf(res->got, sizeof(res->got), "owned");
}

static void queue_cb(void *ctx, const struct store_queue_info *q)
{
	char *got = ctx;
	size_t o = strlen(got);

	o += (size_t)snprintf(got + o, 512 - o, "[%s %s %s", q->sender, q->account, q->rcpts);
	for (size_t i = 0; i < q->nrcpt_info; i++)
		o += (size_t)snprintf(got + o, 512 - o, " %s/%s/%s", q->rcpt_info[i].rcpt,
		                      q->rcpt_info[i].state,
		                      q->rcpt_info[i].orcpt ? q->rcpt_info[i].orcpt : "-");
	snprintf(got + o, 512 - o, "]");
}

static void fn_queue_list(struct store *st, struct sweep_result *res)
{
	res->rc = store_queue_list(st, queue_cb, res->got, &res->error);
}

static int64_t queue_id;

static void fn_queue_show(struct store *st, struct sweep_result *res)
{
	res->rc = store_queue_show(st, queue_id, queue_cb, res->got, &res->error);
}

/* every run a little later, so that the last run's lease has run out */
static int64_t lease_now = 4000000000;

static void fn_queue_lease(struct store *st, struct sweep_result *res)
{
	lease_now += 1000;
	res->rc = store_queue_lease(st, lease_now, "oom", 1, 10, queue_cb, res->got, &res->error);
}

static void fn_queue_record(struct store *st, struct sweep_result *res)
{
	const struct store_queue_result r[] = {
	    {"y@remote.test", STORE_RCPT_DEFERRED, "451 4.3.0 later\r\nplease"},
	    {"nobody@remote.test", STORE_RCPT_DELIVERED, NULL},
	};
	bool removed = true;
	res->rc = store_queue_record(st, queue_id, r, 2, 0, &removed, &res->error);
	snprintf(res->got, sizeof(res->got), "%s", removed ? "removed" : "kept");
}

static void fn_queue_admin(struct store *st, struct sweep_result *res)
{
	int64_t when = -1;

	res->rc = store_queue_hold(st, queue_id, true, &res->error);
	if (res->rc == 1)
		res->rc = store_queue_hold(st, queue_id, false, &res->error);
	if (res->rc == 1)
		res->rc = store_queue_flush(st, 0, &res->error);
	if (res->rc == 1)
		res->rc = store_queue_next_due(st, &when, &res->error);
	if (res->rc == 1)
		res->rc = store_queue_release_leases(st, &res->error);
	snprintf(res->got, sizeof(res->got), "due %lld", (long long)when);
}

static const char qmsg[] = "Subject: q\r\n\r\nqueued\r\n";

static int ndelivered;

/* store_deliver with a queue envelope: a delivery that fails leaves no entry */
static void fn_deliver(struct store *st, struct sweep_result *res)
{
	const char *rcpts[] = {"Zed@Remote.TEST", "y@remote.test"};
	const char *orcpts[] = {"rfc822;zed@remote.test", NULL};
	struct store_delivery d = {.queue_sender = "alice@Example.TEST",
	                           .queue_rcpts = rcpts,
	                           .queue_orcpt = orcpts,
	                           .nqueue_rcpts = 2,
	                           .queue_account = "alice@example.test",
	                           .data = qmsg,
	                           .len = sizeof(qmsg) - 1};

	res->rc = store_deliver(st, &d, NULL, &res->error);
	if (res->rc == 1) {
		ndelivered++;
		snprintf(res->got, sizeof(res->got), "queued");
	}
}

static void queue_count_cb(void *ctx, const struct store_queue_info *q)
{
	(*(int *)ctx)++;
}

static void queue_first_cb(void *ctx, const struct store_queue_info *q)
{
	*(int64_t *)ctx = q->id;
}

/* ---- the IMAP part: every run that fails leaves nothing half done ---- */

#define IMAP_ACCT "alice@example.test"

static void info_cb(void *ctx, const struct store_mailbox_info *mb)
{
	struct sweep_result *res = ctx;
	snprintf(res->got, sizeof(res->got), "%s %u %u %u %s%s", mb->name, mb->messages, mb->unseen,
	         mb->uidnext, mb->subscribed ? "sub" : "-", mb->children ? " children" : "");
}

static void fn_mailbox_get(struct store *st, struct sweep_result *res)
{
	res->rc = store_mailbox_get(st, IMAP_ACCT, "inbox", info_cb, res, &res->error);
}

static void changes_msg_cb(void *ctx, const struct store_message_info *m)
{
	struct sweep_result *res = ctx;
	size_t len = strlen(res->got);
	snprintf(res->got + len, sizeof(res->got) - len, " %u:%s", m->uid, m->flags);
}

static void changes_vanished_cb(void *ctx, uint32_t first, uint32_t last)
{
	struct sweep_result *res = ctx;
	size_t len = strlen(res->got);
	snprintf(res->got + len, sizeof(res->got) - len, " v%u:%u", first, last);
}

static void fn_changes(struct store *st, struct sweep_result *res)
{
	static const struct store_changes_ops ops = {info_cb, changes_msg_cb, changes_vanished_cb};
	res->rc = store_mailbox_changes(st, IMAP_ACCT, "INBOX", 1, &ops, res, &res->error);
}

static void fn_flags(struct store *st, struct sweep_result *res)
{
	uint32_t uids[] = {1, 2};
	res->rc = store_message_flags(st, IMAP_ACCT, "INBOX", uids, 2, STORE_FLAGS_SET,
	                              "\\Seen $Label", 0, NULL, NULL, &res->error);
	if (res->rc == 1)
		snprintf(res->got, sizeof(res->got), "ok");
}

static int ncopied;

static void fn_copy(struct store *st, struct sweep_result *res)
{
	uint32_t uids[] = {1, 2};
	struct store_copy_result r;
	res->rc =
	    store_message_copy(st, IMAP_ACCT, "INBOX", "Archive", uids, 2, false, &r, &res->error);
	if (res->rc == 1) {
		ncopied += (int)r.n;
		snprintf(res->got, sizeof(res->got), "%zu", r.n);
	}
	store_copy_result_free(&r);
}

static int ncreated;

static void fn_create(struct store *st, struct sweep_result *res)
{
	char name[64];
	snprintf(name, sizeof(name), "Made%d/Sub", ncreated);
	res->rc = store_mailbox_create(st, IMAP_ACCT, name, NULL, &res->error);
	if (res->rc == 1) {
		ncreated++;
		snprintf(res->got, sizeof(res->got), "ok");
	}
}

static int nappended;

static void fn_append(struct store *st, struct sweep_result *res)
{
	struct store_msg *m[2] = {NULL, NULL};
	uint32_t uv, uids[2];

	fail_disarm(); /* the messages themselves are written without failures */
	for (int i = 0; i < 2; i++) {
		if (store_msg_begin(st, &m[i], NULL) != 1 ||
		    store_msg_write(m[i], qmsg, sizeof(qmsg) - 1, NULL) != 1) {
			res->rc = 0;
			goto out;
		}
	}
	fail_arm(fail_k);
	struct store_append_msg am[] = {{m[0], "\\Draft", 0}, {m[1], NULL, 0}};
	res->rc = store_append(st, IMAP_ACCT, "Drafts", am, 2, &uv, uids, &res->error);
	if (res->rc == 1) {
		nappended += 2;
		snprintf(res->got, sizeof(res->got), "ok");
	}
out:
	store_msg_free(&m[0]);
	store_msg_free(&m[1]);
}

static void count_cb(void *ctx, const struct store_mailbox_info *mb)
{
	*(uint32_t *)ctx = mb->messages;
}

static uint32_t count_messages(struct store *st, const char *mailbox)
{
	uint32_t n = 0;
	CHECK(store_mailbox_get(st, IMAP_ACCT, mailbox, count_cb, &n, NULL) == 1);
	return n;
}

static void test_imap_sweeps(struct store *st)
{
	const char *accts[] = {IMAP_ACCT};
	struct store_delivery d = {
	    .accounts = accts, .naccounts = 1, .data = qmsg, .len = sizeof(qmsg) - 1};
	uint32_t uid;
	int nfail = 0;

	CHECK(store_deliver(st, &d, &uid, NULL) == 1);
	CHECK(store_deliver(st, &d, &uid, NULL) == 1);
	nfail += sweep(st, "imap mailbox get", fn_mailbox_get, "INBOX 2 2 3 sub");
	nfail += sweep(st, "imap flags", fn_flags, "ok");
	nfail += sweep(st, "imap changes", fn_changes,
	               "INBOX 2 0 3 sub 1:\\Seen $Label 2:\\Seen $Label");
	nfail += sweep(st, "imap copy", fn_copy, "2");
	CHECK(count_messages(st, "Archive") == (uint32_t)ncopied);
	nfail += sweep(st, "imap create", fn_create, "ok");
	CHECK(ncreated >= 1);
	nfail += sweep(st, "imap append", fn_append, "ok");
	CHECK(count_messages(st, "Drafts") == (uint32_t)nappended);
#if OOM_INJECTION
	CHECK(nfail > 0);
#endif
}

static void test_sweeps(void)
{
	struct store_options opts = {
	    .data_dir = data_dir, .fsync = false, .hostname = "mx.example.test"};
	struct store *st = NULL;
	char *error = NULL;

	if (store_open(&opts, &st, &error) != 1) {
		fprintf(stderr, "store_open: %s\n", error ? error : "?");
		exit(1);
	}
	CHECK(store_domain_add(st, "example.test", NULL) == 1);
	CHECK(store_account_add(st, "alice@example.test", "h1", NULL) == 1);
	CHECK(store_account_add(st, "bob@example.test", "h2", NULL) == 1);
	CHECK(store_alias_add(st, "list@example.test", "bob@example.test", NULL) == 1);
	CHECK(store_alias_add(st, "list@example.test", "alice@example.test", NULL) == 1);

	int nfail = 0;
	nfail +=
	    sweep(st, "resolve alias", fn_resolve_alias, "alice@example.test bob@example.test");
	nfail += sweep(st, "resolve plus", fn_resolve_plus, "alice@example.test");
	nfail += sweep(st, "resolve postmaster", fn_resolve_postmaster, "alice@example.test");
	nfail += sweep(st, "resolve several", fn_resolve_many,
	               "1:bob@example.test | 0: | -1: | 1:alice@example.test bob@example.test");
	nfail += sweep(st, "credentials", fn_credentials, "alice@example.test h1 (null)");
	nfail += sweep(st, "owns address", fn_owns, "owned");

	const char *rcpts[] = {"Zed@Remote.TEST", "y@remote.test"};
	const char *orcpts[] = {"rfc822;zed@remote.test", NULL};
	struct store_delivery d = {.queue_sender = "alice@Example.TEST",
	                           .queue_rcpts = rcpts,
	                           .queue_orcpt = orcpts,
	                           .nqueue_rcpts = 2,
	                           .queue_account = "alice@example.test",
	                           .data = qmsg,
	                           .len = sizeof(qmsg) - 1};
	CHECK(store_deliver(st, &d, NULL, NULL) == 1);
	CHECK(store_queue_list(st, queue_first_cb, &queue_id, NULL) == 1);
	CHECK(queue_id == d.queue_id);
	const char *want =
	    "[alice@example.test alice@example.test Zed@remote.test y@remote.test"
	    " Zed@remote.test/pending/rfc822;zed@remote.test y@remote.test/pending/-]";
	nfail += sweep(st, "queue show", fn_queue_show, want);
	/* queue_list fills the recipients too */
	nfail += sweep(st, "queue list", fn_queue_list, want);
	nfail += sweep(st, "queue lease", fn_queue_lease, want);
	nfail += sweep(st, "queue record", fn_queue_record, "kept");
	nfail += sweep(st, "queue hold/flush/next_due", fn_queue_admin, "due 0");
	nfail += sweep(st, "queue lease after a deferral", fn_queue_lease,
	               "[alice@example.test alice@example.test Zed@remote.test y@remote.test"
	               " Zed@remote.test/pending/rfc822;zed@remote.test y@remote.test/deferred/-]");
	nfail += sweep(st, "deliver to the queue", fn_deliver, "queued");
	int nq = 0;
	CHECK(store_queue_list(st, queue_count_cb, &nq, NULL) == 1);
	/* the one delivered above and one per successful run: a failed one left none */
	CHECK(nq == 1 + ndelivered);
	if (nq != 1 + ndelivered)
		fprintf(stderr, "queue entries: %d, deliveries %d\n", nq, ndelivered);
	test_imap_sweeps(st);
#if OOM_INJECTION
	CHECK(nfail > 0);
#endif
	store_close(&st);
}

int main(void)
{
#if !OOM_INJECTION
	printf("unit store_oom: skipped (malloc is the sanitizer's)\n");
	return 0;
#endif
	if (mkdtemp(data_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_util();
	test_strv();
	test_sweeps();
	nftw(data_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return unit_finish("store_oom");
}
