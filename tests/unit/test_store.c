/* Unit tests for the SQLite store and blob files (src/store). */
#include "unit.h"

#include "store/blob.h"
#include "store/store.h"

#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char data_dir[] = "/tmp/hermod-test-store.XXXXXX";

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

static int count_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw);
static int nfiles;
static int count_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	if (type == FTW_F)
		nfiles++;
	return 0;
}

static int count_blob_files(void)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/blobs", data_dir);
	nfiles = 0;
	nftw(path, count_cb, 16, FTW_PHYS);
	return nfiles;
}

static struct store *open_store(void)
{
	struct store_options opts = {.data_dir = data_dir, .fsync = true, .segments_off = true};
	struct store *st = NULL;
	char *error = NULL;

	if (store_open(&opts, &st, &error) != 1) {
		fprintf(stderr, "store_open: %s\n", error ? error : "?");
		free(error);
		exit(1);
	}
	return st;
}

/* ---- callbacks collecting results ---- */

struct names {
	char buf[4096];
	int n;
};

static void name_cb(void *ctx, const char *name)
{
	struct names *ns = ctx;
	size_t len = strlen(ns->buf);
	snprintf(ns->buf + len, sizeof(ns->buf) - len, "%s%s", ns->n++ ? " " : "", name);
}

static void alias_cb(void *ctx, const char *source, const char *target)
{
	struct names *ns = ctx;
	size_t len = strlen(ns->buf);
	snprintf(ns->buf + len, sizeof(ns->buf) - len, "%s%s>%s", ns->n++ ? " " : "", source,
	         target);
}

static void mailbox_cb(void *ctx, const struct store_mailbox_info *mb)
{
	struct names *ns = ctx;
	size_t len = strlen(ns->buf);
	snprintf(ns->buf + len, sizeof(ns->buf) - len, "%s%s:%s:%u:%u:%llu:%u", ns->n++ ? " " : "",
	         mb->name, mb->special_use ? mb->special_use : "-", mb->messages, mb->unseen,
	         (unsigned long long)mb->size, mb->uidnext);
}

struct msgs {
	uint32_t uids[1000];
	char flags[1000][32];
	char blob[BLOB_ID_LEN + 1];
	int n;
};

static void message_cb(void *ctx, const struct store_message_info *m)
{
	struct msgs *ms = ctx;
	if (ms->n < 1000) {
		ms->uids[ms->n] = m->uid;
		snprintf(ms->flags[ms->n], sizeof(ms->flags[0]), "%s", m->flags);
		snprintf(ms->blob, sizeof(ms->blob), "%s", m->blob_id);
	}
	ms->n++;
}

/* resolve to one space-joined string; "" when 0, "ERR" on -1 */
static char resolved[1024];
static const char *resolve(struct store *st, const char *addr)
{
	char **accts = NULL, *error = NULL;
	int rc = store_resolve_recipient(st, addr, &accts, &error);

	resolved[0] = '\0';
	if (rc < 0) {
		snprintf(resolved, sizeof(resolved), "ERR");
		free(error);
		return resolved;
	}
	for (size_t i = 0; rc == 1 && accts[i] != NULL; i++) {
		size_t len = strlen(resolved);
		snprintf(resolved + len, sizeof(resolved) - len, "%s%s", i ? " " : "", accts[i]);
	}
	store_strv_free(&accts);
	CHECK(accts == NULL);
	return resolved;
}

static void test_admin(struct store *st)
{
	struct names ns = {0};
	char *error = NULL, *hash = NULL;

	CHECK(store_domain_add(st, "Example.TEST", NULL) == 1);
	CHECK(store_domain_add(st, "example.test", &error) == -1);
	CHECK_STR(error, "domain example.test already exists");
	free(error);
	error = NULL;
	CHECK(store_domain_add(st, "second.test", NULL) == 1);
	CHECK(store_domain_add(st, "bad domain", NULL) == -1);
	CHECK(store_domain_exists(st, "EXAMPLE.test", NULL) == 1);
	CHECK(store_domain_exists(st, "other.test", NULL) == 0);
	CHECK(store_domain_list(st, name_cb, &ns, NULL) == 1);
	CHECK_STR(ns.buf, "example.test second.test");

	CHECK(store_account_add(st, "Alice@EXAMPLE.test", "$y$hash-a", NULL) == 1);
	CHECK(store_account_add(st, "bob@example.test", "$y$hash-b", NULL) == 1);
	CHECK(store_account_add(st, "carol@second.test", "$y$hash-c", NULL) == 1);
	CHECK(store_account_add(st, "alice@example.test", "x", &error) == -1);
	CHECK_STR(error, "account alice@example.test already exists");
	free(error);
	error = NULL;
	CHECK(store_account_add(st, "dave@nowhere.test", "x", &error) == -1);
	CHECK_STR(error, "domain nowhere.test does not exist");
	free(error);
	error = NULL;
	CHECK(store_account_add(st, "noatsign", "x", NULL) == -1);
	memset(&ns, 0, sizeof(ns));
	CHECK(store_account_list(st, name_cb, &ns, NULL) == 1);
	CHECK_STR(ns.buf, "Alice@example.test bob@example.test carol@second.test");

	CHECK(store_account_get_password(st, "ALICE@example.test", &hash, NULL) == 1);
	CHECK_STR(hash, "$y$hash-a");
	free(hash);
	CHECK(store_account_set_password(st, "alice@example.test", "$y$new", NULL) == 1);
	CHECK(store_account_set_password(st, "zed@example.test", "$y$new", NULL) == 0);
	hash = NULL;
	CHECK(store_account_get_password(st, "alice@example.test", &hash, NULL) == 1);
	CHECK_STR(hash, "$y$new");
	free(hash);
	CHECK(store_account_get_password(st, "zed@example.test", &hash, NULL) == 0);

	CHECK(store_alias_add(st, "info@example.test", "alice@example.test", NULL) == 1);
	CHECK(store_alias_add(st, "Team@example.test", "info@example.test", NULL) == 1);
	CHECK(store_alias_add(st, "team@example.test", "bob@example.test", NULL) == 1);
	CHECK(store_alias_add(st, "team@example.test", "BOB@example.test", NULL) == -1);
	CHECK(store_alias_add(st, "ext@example.test", "someone@remote.test", NULL) == 1);
	CHECK(store_alias_add(st, "@example.test", "bob@example.test", NULL) == 1);
	CHECK(store_alias_add(st, "loop1@example.test", "loop2@example.test", NULL) == 1);
	CHECK(store_alias_add(st, "loop2@example.test", "loop1@example.test", NULL) == 1);
	CHECK(store_alias_add(st, "x@nowhere.test", "bob@example.test", &error) == -1);
	CHECK_STR(error, "domain nowhere.test does not exist");
	free(error);
	error = NULL;
	CHECK(store_alias_add(st, "tmp@second.test", "carol@second.test", NULL) == 1);
	CHECK(store_alias_del(st, "tmp@second.test", NULL, NULL) == 1);
	CHECK(store_alias_del(st, "tmp@second.test", NULL, NULL) == 0);
	CHECK(store_alias_del(st, "team@example.test", "nobody@example.test", NULL) == 0);
	memset(&ns, 0, sizeof(ns));
	CHECK(store_alias_list(st, alias_cb, &ns, NULL) == 1);
	CHECK_STR(ns.buf, "@example.test>bob@example.test ext@example.test>someone@remote.test "
	                  "info@example.test>alice@example.test "
	                  "loop1@example.test>loop2@example.test "
	                  "loop2@example.test>loop1@example.test "
	                  "team@example.test>bob@example.test Team@example.test>info@example.test");

	/* a domain with accounts cannot be deleted; an empty one can */
	CHECK(store_domain_del(st, "second.test", &error) == -1);
	CHECK(error != NULL);
	free(error);
	CHECK(store_domain_add(st, "empty.test", NULL) == 1);
	CHECK(store_domain_del(st, "EMPTY.test", NULL) == 1);
	CHECK(store_domain_del(st, "empty.test", NULL) == 0);
}

static void test_resolve(struct store *st)
{
	CHECK_STR(resolve(st, "alice@example.test"), "Alice@example.test");
	CHECK_STR(resolve(st, "ALICE@Example.Test"), "Alice@example.test");
	CHECK_STR(resolve(st, "info@example.test"), "Alice@example.test");
	CHECK_STR(resolve(st, "team@example.test"), "bob@example.test Alice@example.test");
	CHECK_STR(resolve(st, "alice+news@example.test"), "Alice@example.test");
	CHECK_STR(resolve(st, "info+x@example.test"), "Alice@example.test");
	CHECK_STR(resolve(st, "carol+a+b@second.test"), "carol@second.test");
	/* catch-all */
	CHECK_STR(resolve(st, "whoever@example.test"), "bob@example.test");
	/* alias to a non-local target: nothing local */
	CHECK_STR(resolve(st, "ext@example.test"), "");
	/* alias loop ends at the depth bound */
	CHECK_STR(resolve(st, "loop1@example.test"), "");
	/* unknown user in a domain without catch-all, unknown domain */
	CHECK_STR(resolve(st, "nobody@second.test"), "");
	CHECK_STR(resolve(st, "+x@second.test"), "");
	CHECK_STR(resolve(st, "alice@other.test"), "");
	CHECK_STR(resolve(st, "not-an-address"), "ERR");
}

static const char msg1[] = "From: x@remote.test\r\nSubject: hello\r\n\r\nbody\r\n";

static void test_deliver(struct store *st)
{
	const char *accts[] = {"Alice@example.test", "bob@example.test"};
	struct store_delivery d = {
	    .accounts = accts, .naccounts = 2, .data = msg1, .len = sizeof(msg1) - 1};
	struct msgs ms = {0};
	struct names ns = {0};
	uint32_t uids[2] = {0, 0};
	char *data = NULL, *error = NULL;
	size_t len = 0;

	CHECK(store_deliver(st, &d, uids, NULL) == 1);
	CHECK(uids[0] == 1 && uids[1] == 1);
	CHECK(count_blob_files() == 1);

	CHECK(store_message_list(st, "alice@example.test", NULL, message_cb, &ms, NULL) == 1);
	CHECK(ms.n == 1 && ms.uids[0] == 1);
	CHECK_STR(ms.flags[0], "");
	memset(&ms, 0, sizeof(ms));
	CHECK(store_message_list(st, "bob@example.test", "inbox", message_cb, &ms, NULL) == 1);
	CHECK(ms.n == 1 && ms.uids[0] == 1);
	CHECK(store_message_list(st, "bob@example.test", "NoSuch", message_cb, &ms, NULL) == 0);
	CHECK(store_message_list(st, "zed@example.test", "INBOX", message_cb, &ms, NULL) == 0);

	CHECK(store_message_get(st, "bob@example.test", "INBOX", 1, &data, &len, NULL) == 1);
	CHECK(len == sizeof(msg1) - 1 && data != NULL && memcmp(data, msg1, len) == 0);
	free(data);
	CHECK(store_message_get(st, "bob@example.test", "INBOX", 2, &data, &len, NULL) == 0);

	/* same content again, into Archive with flags: still one blob file */
	d.mailbox = "Archive";
	d.flags = "  \\Seen   $Label1 ";
	d.naccounts = 1;
	CHECK(store_deliver(st, &d, uids, NULL) == 1);
	CHECK(uids[0] == 1);
	CHECK(count_blob_files() == 1);
	memset(&ms, 0, sizeof(ms));
	CHECK(store_message_list(st, "alice@example.test", "Archive", message_cb, &ms, NULL) == 1);
	CHECK(ms.n == 1);
	CHECK_STR(ms.flags[0], "\\Seen $Label1");

	/* nothing half-delivered: one bad account fails the whole delivery */
	const char *bad[] = {"carol@second.test", "ghost@second.test"};
	struct store_delivery d2 = {.accounts = bad, .naccounts = 2, .data = "x\r\n", .len = 3};
	CHECK(store_deliver(st, &d2, uids, &error) == -1);
	CHECK_STR(error, "mailbox INBOX of account ghost@second.test does not exist");
	free(error);
	memset(&ms, 0, sizeof(ms));
	CHECK(store_message_list(st, "carol@second.test", NULL, message_cb, &ms, NULL) == 1);
	CHECK(ms.n == 0);

	CHECK(store_mailbox_list(st, "alice@example.test", mailbox_cb, &ns, NULL) == 1);
	CHECK_STR(ns.buf, "INBOX:-:1:1:45:2 Sent:\\Sent:0:0:0:1 Drafts:\\Drafts:0:0:0:1 "
	                  "Trash:\\Trash:0:0:0:1 Junk:\\Junk:0:0:0:1 Archive:\\Archive:1:0:45:2");
	CHECK(store_mailbox_list(st, "zed@example.test", mailbox_cb, &ns, NULL) == 0);
}

#define NTHREADS 8
#define PER_THREAD 50

struct worker {
	struct store *st;
	int id;
	int failures;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	const char *accts[] = {"carol@second.test"};

	for (int i = 0; i < PER_THREAD; i++) {
		char msg[128];
		int n = snprintf(msg, sizeof(msg), "Subject: t%d m%d\r\n\r\nbody %d/%d\r\n", w->id,
		                 i, w->id, i);
		struct store_delivery d = {
		    .accounts = accts, .naccounts = 1, .data = msg, .len = (size_t)n};
		uint32_t uid = 0;
		char *error = NULL;
		if (store_deliver(w->st, &d, &uid, &error) != 1 || uid == 0) {
			fprintf(stderr, "deliver: %s\n", error ? error : "?");
			w->failures++;
		}
		free(error);
	}
	return NULL;
}

static void test_concurrent(struct store *st)
{
	pthread_t th[NTHREADS];
	struct worker w[NTHREADS];
	static struct msgs ms;
	static char seen[NTHREADS * PER_THREAD + 1];
	int failures = 0, dup = 0;

	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){.st = st, .id = i};
		pthread_create(&th[i], NULL, worker_run, &w[i]);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		failures += w[i].failures;
	}
	CHECK(failures == 0);
	memset(&ms, 0, sizeof(ms));
	CHECK(store_message_list(st, "carol@second.test", "INBOX", message_cb, &ms, NULL) == 1);
	CHECK(ms.n == NTHREADS * PER_THREAD);
	for (int i = 0; i < ms.n && i < 1000; i++) {
		if (ms.uids[i] < 1 || ms.uids[i] > NTHREADS * PER_THREAD || seen[ms.uids[i]])
			dup++;
		else
			seen[ms.uids[i]] = 1;
	}
	CHECK(dup == 0);
	/* + the blob of the failed delivery in test_deliver, swept later */
	CHECK(count_blob_files() == 2 + NTHREADS * PER_THREAD);

	/* every message readable and intact */
	int bad = 0;
	for (uint32_t uid = 1; uid <= NTHREADS * PER_THREAD; uid++) {
		char *data = NULL;
		size_t len = 0;
		if (store_message_get(st, "carol@second.test", "INBOX", uid, &data, &len, NULL) !=
		        1 ||
		    len < 10 || memcmp(data, "Subject: t", 10) != 0)
			bad++;
		free(data);
	}
	CHECK(bad == 0);
}

static void test_account_del(struct store *st)
{
	struct names ns = {0};

	CHECK(store_account_del(st, "ALICE@example.test", NULL) == 1);
	CHECK(store_account_del(st, "alice@example.test", NULL) == 0);
	CHECK(store_mailbox_list(st, "alice@example.test", mailbox_cb, &ns, NULL) == 0);
	CHECK_STR(resolve(st, "alice@example.test"), "bob@example.test"); /* catch-all now */
	/* an alias to a gone account goes on to the catch-all, as any target does */
	CHECK_STR(resolve(st, "info@example.test"), "bob@example.test");
	/* bob still references the shared blob; the orphan is gone */
	CHECK(count_blob_files() == 1 + NTHREADS * PER_THREAD);
	char *data = NULL;
	size_t len = 0;
	CHECK(store_message_get(st, "bob@example.test", "INBOX", 1, &data, &len, NULL) == 1);
	free(data);
	/* last reference gone: the blob file is swept */
	CHECK(store_account_del(st, "bob@example.test", NULL) == 1);
	CHECK(count_blob_files() == NTHREADS * PER_THREAD);

	/* a re-created account gets a fresh UIDVALIDITY and empty mailboxes */
	CHECK(store_account_add(st, "alice@example.test", "h", NULL) == 1);
	memset(&ns, 0, sizeof(ns));
	CHECK(store_mailbox_list(st, "alice@example.test", mailbox_cb, &ns, NULL) == 1);
	CHECK(ns.n == 6);
	CHECK(strncmp(ns.buf, "INBOX:-:0:0:0:1 ", 16) == 0);
}

static void test_reopen(void)
{
	struct store *st = open_store();
	struct names ns = {0};
	static struct msgs ms;

	CHECK(store_domain_list(st, name_cb, &ns, NULL) == 1);
	CHECK_STR(ns.buf, "example.test second.test");
	memset(&ms, 0, sizeof(ms));
	CHECK(store_message_list(st, "carol@second.test", "INBOX", message_cb, &ms, NULL) == 1);
	CHECK(ms.n == NTHREADS * PER_THREAD);
	/* UIDs continue after reopen */
	const char *accts[] = {"carol@second.test"};
	struct store_delivery d = {.accounts = accts, .naccounts = 1, .data = "a\r\n", .len = 3};
	uint32_t uid = 0;
	CHECK(store_deliver(st, &d, &uid, NULL) == 1);
	CHECK(uid == NTHREADS * PER_THREAD + 1);
	store_close(&st);
	CHECK(st == NULL);
	store_close(&st);
}

static void test_blob(void)
{
	char id[BLOB_ID_LEN + 1];

	CHECK(blob_hash("abc", 3, id) == 1);
	CHECK_STR(id, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	CHECK(blob_id_valid(id) == 1);
	CHECK(blob_id_valid("../etc/passwd") == 0);
	CHECK(blob_id_valid("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD") ==
	      0);
}

int main(void)
{
	struct store *st;

	if (mkdtemp(data_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_blob();
	st = open_store();
	test_admin(st);
	test_resolve(st);
	test_deliver(st);
	test_concurrent(st);
	test_account_del(st);
	store_close(&st);
	test_reopen();

	nftw(data_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return unit_finish("store");
}
