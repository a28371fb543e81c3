/* Unit tests for store_message_expunge (used by POP3 QUIT): entries removed in one
 * transaction, blob references dropped and swept, HIGHESTMODSEQ bumped, and the
 * expunge log (schema v3) filled. */
#include "unit.h"

#include "store/store.h"

#include <ftw.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char data_dir[] = "/tmp/hermod-test-pop3-store.XXXXXX";

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

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

struct uids {
	uint32_t uid[64];
	size_t n;
};

static void uid_cb(void *ctx, const struct store_message_info *m)
{
	struct uids *u = ctx;
	if (u->n < 64)
		u->uid[u->n++] = m->uid;
}

struct inbox {
	uint64_t highestmodseq;
	uint32_t messages;
};

static void inbox_cb(void *ctx, const struct store_mailbox_info *mb)
{
	struct inbox *in = ctx;
	if (strcmp(mb->name, "INBOX") == 0) {
		in->highestmodseq = mb->highestmodseq;
		in->messages = mb->messages;
	}
}

static struct inbox inbox_of(struct store *st, const char *account)
{
	struct inbox in = {0};
	CHECK(store_mailbox_list(st, account, inbox_cb, &in, NULL) == 1);
	return in;
}

/* Rows of the expunge log as "uid:modseq uid:modseq ..." (read directly). */
static void expunge_log(char *out, size_t outsz)
{
	char path[512];
	sqlite3 *db;
	sqlite3_stmt *stmt;
	size_t o = 0;
	out[0] = '\0';
	snprintf(path, sizeof(path), "%s/hermod.db", data_dir);
	CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
	CHECK(sqlite3_prepare_v2(db, "SELECT uid, modseq FROM expunged ORDER BY uid", -1, &stmt,
	                         NULL) == SQLITE_OK);
	while (sqlite3_step(stmt) == SQLITE_ROW) {
		int n = snprintf(out + o, outsz - o, "%s%lld:%lld", o ? " " : "",
		                 (long long)sqlite3_column_int64(stmt, 0),
		                 (long long)sqlite3_column_int64(stmt, 1));
		if (n > 0 && (size_t)n < outsz - o)
			o += (size_t)n;
	}
	sqlite3_finalize(stmt);
	sqlite3_close(db);
}

static void test_expunge(void)
{
	struct store_options opts = {.data_dir = data_dir, .fsync = false, .segments_off = true};
	struct store *st = NULL;
	char *error = NULL;
	CHECK(store_open(&opts, &st, &error) == 1);
	if (st == NULL)
		return;
	const char *acct = "pat@pop.test";
	CHECK(store_domain_add(st, "pop.test", NULL) == 1);
	CHECK(store_account_add(st, acct, "$6$x$y", NULL) == 1);

	/* four messages; the first two share a blob (same bytes) */
	static const char *const msgs[] = {"Subject: a\r\n\r\nsame\r\n",
	                                   "Subject: a\r\n\r\nsame\r\n", "Subject: b\r\n\r\nb\r\n",
	                                   "Subject: c\r\n\r\nc\r\n"};
	for (size_t i = 0; i < 4; i++) {
		const char *accts[] = {acct};
		struct store_delivery d = {
		    .accounts = accts, .naccounts = 1, .data = msgs[i], .len = strlen(msgs[i])};
		CHECK(store_deliver(st, &d, NULL, NULL) == 1);
	}
	CHECK(count_blob_files() == 3);
	struct inbox before = inbox_of(st, acct);
	CHECK(before.messages == 4);

	/* nothing to do */
	CHECK(store_message_expunge(st, acct, "INBOX", NULL, 0, NULL) == 0);
	uint32_t none[] = {99};
	CHECK(store_message_expunge(st, acct, "INBOX", none, 1, NULL) == 0);
	CHECK(inbox_of(st, acct).highestmodseq == before.highestmodseq);
	CHECK(store_message_expunge(st, "ghost@pop.test", "INBOX", none, 1, NULL) == 0);

	/* UID 1 (blob still used by UID 2) and UID 3 (its blob goes), plus an absent one */
	uint32_t del[] = {1, 3, 77};
	CHECK(store_message_expunge(st, acct, "inbox", del, 3, &error) == 2);
	struct inbox after = inbox_of(st, acct);
	CHECK(after.messages == 2);
	CHECK(after.highestmodseq == before.highestmodseq + 1);
	CHECK(count_blob_files() == 2);
	struct uids u = {0};
	CHECK(store_message_list(st, acct, "INBOX", uid_cb, &u, NULL) == 1);
	CHECK(u.n == 2 && u.uid[0] == 2 && u.uid[1] == 4);
	char *data = NULL;
	size_t len = 0;
	CHECK(store_message_get(st, acct, "INBOX", 2, &data, &len, NULL) == 1);
	CHECK(len == strlen(msgs[1]) && data != NULL && memcmp(data, msgs[1], len) == 0);
	free(data);
	CHECK(store_message_get(st, acct, "INBOX", 1, &data, &len, NULL) == 0);

	char log[256], want[64];
	expunge_log(log, sizeof(log));
	snprintf(want, sizeof(want), "1:%llu 3:%llu", (unsigned long long)after.highestmodseq,
	         (unsigned long long)after.highestmodseq);
	CHECK_STR(log, want);

	/* the rest; the shared blob goes now too */
	uint32_t rest[] = {2, 4};
	CHECK(store_message_expunge(st, acct, "INBOX", rest, 2, NULL) == 2);
	CHECK(count_blob_files() == 0);
	CHECK(inbox_of(st, acct).highestmodseq == after.highestmodseq + 1);

	/* deleting the account also clears its expunge log */
	CHECK(store_account_del(st, acct, NULL) == 1);
	expunge_log(log, sizeof(log));
	CHECK_STR(log, "");
	store_close(&st);
	free(error);
}

int main(void)
{
	if (mkdtemp(data_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_expunge();
	nftw(data_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return unit_finish("pop3_store");
}
