/* Unit tests for the IMAP part of the store (src/store/store.h "IMAP: mailboxes,
 * flags, copies, changes" and the watchers): every documented result. */
#include "unit.h"

#include "store/blob.h"
#include "store/store.h"

#include <ftw.h>
#include <sqlite3.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char data_dir[] = "/tmp/hermod-test-store-imap.XXXXXX";
#define ACCT "ann@example.test"
#define OTHER "bob@example.test"

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

static struct store *open_store(void)
{
	struct store_options opts = {.data_dir = data_dir, .fsync = true};
	struct store *st = NULL;
	char *error = NULL;

	if (store_open(&opts, &st, &error) != 1) {
		fprintf(stderr, "store_open: %s\n", error ? error : "?");
		free(error);
		exit(1);
	}
	return st;
}

/* ---- collecting results ---- */

static struct store_mailbox_info mbi;
static char mbi_name[256], mbi_su[32];
static int mbi_calls;

static void info_cb(void *ctx, const struct store_mailbox_info *mb)
{
	mbi = *mb;
	snprintf(mbi_name, sizeof(mbi_name), "%s", mb->name);
	snprintf(mbi_su, sizeof(mbi_su), "%s", mb->special_use ? mb->special_use : "-");
	mbi.name = mbi_name;
	mbi.special_use = mbi_su;
	mbi_calls++;
}

/* store_mailbox_get into mbi: its result */
static int get(struct store *st, const char *name)
{
	memset(&mbi, 0, sizeof(mbi));
	mbi_calls = 0;
	return store_mailbox_get(st, ACCT, name, info_cb, NULL, NULL);
}

/* a text log of callbacks: "c1:5:\\Seen m4 v3 x7" etc. */
static char logbuf[8192];

static void changed_cb(void *ctx, const struct store_message_info *m)
{
	size_t len = strlen(logbuf);
	snprintf(logbuf + len, sizeof(logbuf) - len, "%sc%u:%llu:%s", len ? " " : "", m->uid,
	         (unsigned long long)m->modseq, m->flags);
}

static void item(char tag, uint32_t uid)
{
	size_t len = strlen(logbuf);
	snprintf(logbuf + len, sizeof(logbuf) - len, "%s%c%u", len ? " " : "", tag, uid);
}

static void modified_cb(void *ctx, uint32_t uid)
{
	item('m', uid);
}

static void vanished_cb(void *ctx, uint32_t first, uint32_t last)
{
	item('v', first);
	if (last != first) {
		size_t len = strlen(logbuf);
		snprintf(logbuf + len, sizeof(logbuf) - len, ":%u", last);
	}
}

static void expunged_cb(void *ctx, uint32_t uid)
{
	item('x', uid);
}

static void message_cb(void *ctx, const struct store_message_info *m)
{
	size_t len = strlen(logbuf);
	snprintf(logbuf + len, sizeof(logbuf) - len, "%s%u:%s", len ? " " : "", m->uid, m->flags);
}

/* flags only, "|"-separated: the same list whatever the UIDs */
static void flags_only_cb(void *ctx, const struct store_message_info *m)
{
	size_t len = strlen(logbuf);
	snprintf(logbuf + len, sizeof(logbuf) - len, "%s|", m->flags);
}

static void name_cb(void *ctx, const char *name)
{
	size_t len = strlen(logbuf);
	snprintf(logbuf + len, sizeof(logbuf) - len, "%s%s", len ? " " : "", name);
}

static void list_cb(void *ctx, const struct store_mailbox_info *mb)
{
	size_t len = strlen(logbuf);
	snprintf(logbuf + len, sizeof(logbuf) - len, "%s%s%s%s%s", len ? " " : "", mb->name,
	         mb->noselect ? ":noselect" : "", mb->children ? ":children" : "",
	         mb->subscribed ? ":sub" : "");
}

static const char *messages(struct store *st, const char *mailbox)
{
	logbuf[0] = '\0';
	if (store_message_list(st, ACCT, mailbox, message_cb, NULL, NULL) != 1)
		return "ERR";
	return logbuf;
}

static uint32_t deliver(struct store *st, const char *mailbox, const char *data, const char *flags)
{
	const char *accts[] = {ACCT};
	struct store_delivery d = {.accounts = accts,
	                           .naccounts = 1,
	                           .mailbox = mailbox,
	                           .data = data,
	                           .len = strlen(data),
	                           .flags = flags,
	                           .internal_date = 1700000000};
	uint32_t uid = 0;
	char *error = NULL;

	if (store_deliver(st, &d, &uid, &error) != 1) {
		fprintf(stderr, "deliver: %s\n", error ? error : "?");
		free(error);
		return 0;
	}
	return uid;
}

static int flags(struct store *st, const char *mailbox, const uint32_t *uids, size_t n,
                 enum store_flags_op op, const char *f, uint64_t unchangedsince)
{
	static const struct store_flags_ops ops = {changed_cb, modified_cb};
	logbuf[0] = '\0';
	return store_message_flags(st, ACCT, mailbox, uids, n, op, f, unchangedsince, &ops, NULL,
	                           NULL);
}

static int changes(struct store *st, const char *mailbox, uint64_t since)
{
	static const struct store_changes_ops ops = {info_cb, message_cb, vanished_cb};
	logbuf[0] = '\0';
	mbi_calls = 0;
	return store_mailbox_changes(st, ACCT, mailbox, since, &ops, NULL, NULL);
}

/* ---- watchers ---- */

struct watch_log {
	pthread_mutex_t mu;
	char buf[1024];
	int calls;
};

static void watch_cb(void *ctx, const char *account, const char *mailbox)
{
	struct watch_log *wl = ctx;
	pthread_mutex_lock(&wl->mu);
	size_t len = strlen(wl->buf);
	snprintf(wl->buf + len, sizeof(wl->buf) - len, "%s%s:%s", len ? " " : "", account,
	         mailbox ? mailbox : "*");
	wl->calls++;
	pthread_mutex_unlock(&wl->mu);
}

static void watch_reset(struct watch_log *wl)
{
	pthread_mutex_lock(&wl->mu);
	wl->buf[0] = '\0';
	wl->calls = 0;
	pthread_mutex_unlock(&wl->mu);
}

/* ---- tests ---- */

static void test_get_and_list(struct store *st)
{
	char *error = NULL;

	CHECK(get(st, "INBOX") == 1);
	CHECK(mbi_calls == 1);
	CHECK_STR(mbi.name, "INBOX");
	CHECK(mbi.messages == 0 && mbi.uidnext == 1 && mbi.uidvalidity > 0);
	CHECK(mbi.subscribed && !mbi.noselect && !mbi.children);
	CHECK(get(st, "inbox") == 1); /* INBOX is case-insensitive */
	CHECK_STR(mbi.name, "INBOX");
	CHECK(get(st, "Junk") == 1);
	CHECK_STR(mbi.special_use, "\\Junk");
	CHECK(get(st, "junk") == 0); /* other names are not */
	CHECK(get(st, "Nope") == 0);
	CHECK(mbi_calls == 0);
	CHECK(get(st, "a//b") == 0);
	CHECK(get(st, "/a") == 0);
	CHECK(get(st, "a/") == 0);
	CHECK(get(st, "a\tb") == 0);
	CHECK(get(st, "\xff") == 0);
	CHECK(store_mailbox_get(st, "nobody@example.test", "INBOX", info_cb, NULL, &error) == -1);
	CHECK(error != NULL);
	free(error);
	error = NULL;

	uint32_t u1 = deliver(st, NULL, "Subject: 1\r\n\r\none\r\n", "\\Seen");
	uint32_t u2 = deliver(st, NULL, "Subject: 2\r\n\r\ntwo\r\n", "\\Deleted");
	uint32_t u3 = deliver(st, NULL, "Subject: 3\r\n\r\nthree\r\n", NULL);
	CHECK(u1 == 1 && u2 == 2 && u3 == 3);
	CHECK(get(st, "INBOX") == 1);
	CHECK(mbi.messages == 3 && mbi.unseen == 2 && mbi.deleted == 1 && mbi.uidnext == 4);
	CHECK(mbi.highestmodseq == 4);
	CHECK(mbi.size == strlen("Subject: 1\r\n\r\none\r\n") +
	                      strlen("Subject: 2\r\n\r\ntwo\r\n") +
	                      strlen("Subject: 3\r\n\r\nthree\r\n"));

	logbuf[0] = '\0';
	CHECK(store_mailbox_list(st, ACCT, list_cb, NULL, NULL) == 1);
	CHECK_STR(logbuf, "INBOX:sub Sent:sub Drafts:sub Trash:sub Junk:sub Archive:sub");
}

static void test_flags(struct store *st)
{
	uint32_t all[] = {1, 2, 3, 99};

	CHECK(get(st, "INBOX") == 1);
	uint64_t m0 = mbi.highestmodseq;
	/* ADD: only entries that change are reported, with one new MODSEQ */
	CHECK(flags(st, "INBOX", all, 4, STORE_FLAGS_ADD, "\\seen", 0) == 1);
	char want[256];
	snprintf(want, sizeof(want), "c2:%llu:\\Deleted \\Seen c3:%llu:\\Seen",
	         (unsigned long long)m0 + 1, (unsigned long long)m0 + 1);
	CHECK_STR(logbuf, want);
	CHECK(get(st, "INBOX") == 1);
	CHECK(mbi.highestmodseq == m0 + 1 && mbi.unseen == 0);
	/* nothing changes: nothing reported, HIGHESTMODSEQ stays */
	CHECK(flags(st, "INBOX", all, 4, STORE_FLAGS_ADD, "\\Seen", 0) == 1);
	CHECK_STR(logbuf, "");
	CHECK(get(st, "INBOX") == 1);
	CHECK(mbi.highestmodseq == m0 + 1);
	/* SET replaces; the same set in another order is no change; \Recent dropped */
	CHECK(flags(st, "INBOX", all, 1, STORE_FLAGS_SET, "$Label1 \\Flagged \\Recent", 0) == 1);
	snprintf(want, sizeof(want), "c1:%llu:$Label1 \\Flagged", (unsigned long long)m0 + 2);
	CHECK_STR(logbuf, want);
	CHECK(flags(st, "INBOX", all, 1, STORE_FLAGS_SET, "\\flagged $label1", 0) == 1);
	CHECK_STR(logbuf, "");
	/* REMOVE */
	CHECK(flags(st, "INBOX", all, 1, STORE_FLAGS_REMOVE, "$LABEL1 \\Answered", 0) == 1);
	snprintf(want, sizeof(want), "c1:%llu:\\Flagged", (unsigned long long)m0 + 3);
	CHECK_STR(logbuf, want);
	/* UNCHANGEDSINCE: entries changed after it are MODIFIED, not changed, even
	 * when the operation would not change them */
	uint32_t two[] = {1, 3};
	CHECK(flags(st, "INBOX", two, 2, STORE_FLAGS_ADD, "\\Answered", m0 + 1) == 1);
	snprintf(want, sizeof(want), "c3:%llu:\\Seen \\Answered m1", (unsigned long long)m0 + 4);
	CHECK_STR(logbuf, want);
	CHECK(flags(st, "INBOX", two, 1, STORE_FLAGS_ADD, "\\Flagged", m0 + 1) == 1);
	CHECK_STR(logbuf, "m1");
	CHECK(get(st, "INBOX") == 1);
	CHECK(mbi.highestmodseq == m0 + 4);
	/* results beside 1 */
	CHECK(flags(st, "Nope", all, 1, STORE_FLAGS_ADD, "\\Seen", 0) == 0);
	CHECK(flags(st, "a//b", all, 1, STORE_FLAGS_ADD, "\\Seen", 0) == 0);
	CHECK(flags(st, "INBOX", all, 1, STORE_FLAGS_ADD, "bad(flag", 0) == -1);
	CHECK(store_message_flags(st, "nobody@example.test", "INBOX", all, 1, STORE_FLAGS_ADD,
	                          "\\Seen", 0, NULL, NULL, NULL) == -1);
	CHECK_STR(messages(st, "INBOX"), "1:\\Flagged 2:\\Deleted \\Seen 3:\\Seen \\Answered");
}

static void test_changes_expunge(struct store *st)
{
	char want[256];
	uint32_t one[] = {3};

	CHECK(get(st, "INBOX") == 1);
	uint64_t m0 = mbi.highestmodseq;
	/* since 0: every entry, no vanished */
	CHECK(changes(st, "INBOX", 0) == 1);
	CHECK(mbi_calls == 1 && mbi.messages == 3);
	CHECK_STR(logbuf, "1:\\Flagged 2:\\Deleted \\Seen 3:\\Seen \\Answered");
	CHECK(changes(st, "INBOX", m0) == 1);
	CHECK_STR(logbuf, "");
	CHECK(changes(st, "Nope", 0) == 0);
	CHECK(mbi_calls == 0);

	/* EXPUNGE: only the \Deleted ones (only: among those given) */
	logbuf[0] = '\0';
	CHECK(store_mailbox_expunge_deleted(st, ACCT, "INBOX", one, 1, expunged_cb, NULL, NULL) ==
	      0);
	CHECK_STR(logbuf, "");
	uint32_t u4 = deliver(st, "INBOX", "Subject: 4\r\n\r\nfour\r\n", "\\Deleted");
	uint32_t u5 = deliver(st, "INBOX", "Subject: 5\r\n\r\nfive\r\n", "\\Deleted");
	CHECK(u4 == 4 && u5 == 5);
	uint32_t sel[] = {5, 3, 2};
	logbuf[0] = '\0';
	CHECK(store_mailbox_expunge_deleted(st, ACCT, "INBOX", sel, 3, expunged_cb, NULL, NULL) ==
	      2);
	CHECK_STR(logbuf, "x2 x5");
	/* new (4), changed (3) and vanished (2, 5) since m0 */
	CHECK(flags(st, "INBOX", one, 1, STORE_FLAGS_ADD, "$Done", 0) == 1);
	CHECK(changes(st, "INBOX", m0) == 1);
	CHECK_STR(logbuf, "3:\\Seen \\Answered $Done 4:\\Deleted v2 v5");
	CHECK(mbi.messages == 3 && mbi.uidnext == 6);
	logbuf[0] = '\0';
	CHECK(store_mailbox_expunge_deleted(st, ACCT, "INBOX", NULL, 0, expunged_cb, NULL, NULL) ==
	      1);
	CHECK_STR(logbuf, "x4");
	CHECK(store_mailbox_expunge_deleted(st, ACCT, "INBOX", NULL, 0, NULL, NULL, NULL) == 0);
	CHECK(store_mailbox_expunge_deleted(st, ACCT, "Nope", NULL, 0, NULL, NULL, NULL) == 0);
	CHECK(store_mailbox_expunge_deleted(st, "nobody@example.test", "INBOX", NULL, 0, NULL, NULL,
	                                    NULL) == -1);
	CHECK(get(st, "INBOX") == 1);
	uint64_t m1 = mbi.highestmodseq;
	/* store_message_expunge goes to the same log */
	uint32_t three[] = {3};
	CHECK(store_message_expunge(st, ACCT, "INBOX", three, 1, NULL) == 1);
	CHECK(changes(st, "INBOX", m1) == 1);
	snprintf(want, sizeof(want), "v3");
	CHECK_STR(logbuf, want);
	CHECK(mbi.highestmodseq == m1 + 1);
	/* UIDs are not reused */
	CHECK(deliver(st, NULL, "x\r\n", NULL) == 6);
}

/* store_message_ranges: "uid:size:flags" per entry, blob ids checked */
static int blob_ok;

static void range_cb(void *ctx, const struct store_message_info *m)
{
	size_t len = strlen(logbuf);
	snprintf(logbuf + len, sizeof(logbuf) - len, "%s%u:%llu:%s", len ? " " : "", m->uid,
	         (unsigned long long)m->size, m->flags);
	if (m->blob_id == NULL || strlen(m->blob_id) != BLOB_ID_LEN || m->modseq == 0 ||
	    m->internal_date != 1700000000)
		blob_ok = 0;
}

static int ranges(struct store *st, const char *mailbox, uint32_t uidvalidity,
                  const struct store_uid_range *r, size_t n)
{
	logbuf[0] = '\0';
	blob_ok = 1;
	return store_message_ranges(st, ACCT, mailbox, uidvalidity, r, n, range_cb, NULL, NULL);
}

static void test_message_ranges(struct store *st)
{
	CHECK(store_mailbox_create(st, ACCT, "Ranges", NULL, NULL) == 1);
	for (int i = 1; i <= 6; i++) {
		char msg[64];
		snprintf(msg, sizeof(msg), "Subject: %d\r\n\r\nbody %d\r\n", i, i);
		CHECK(deliver(st, "Ranges", msg, i % 2 ? "\\Seen" : NULL) == (uint32_t)i);
	}
	uint32_t gone[] = {3, 5};
	CHECK(store_message_expunge(st, ACCT, "Ranges", gone, 2, NULL) == 2);
	CHECK(get(st, "Ranges") == 1);
	uint32_t uv = mbi.uidvalidity;
	/* expunged UIDs and UIDs never given are skipped, ascending */
	struct store_uid_range r1[] = {{1, 3}, {5, 9}};
	CHECK(ranges(st, "Ranges", uv, r1, 2) == 1);
	CHECK_STR(logbuf, "1:22:\\Seen 2:22: 6:22:");
	CHECK(blob_ok);
	CHECK(ranges(st, "Ranges", 0, r1, 2) == 1); /* 0: no UIDVALIDITY check */
	CHECK_STR(logbuf, "1:22:\\Seen 2:22: 6:22:");
	struct store_uid_range r2[] = {{4, 4}};
	CHECK(ranges(st, "Ranges", uv, r2, 1) == 1);
	CHECK_STR(logbuf, "4:22:");
	struct store_uid_range r3[] = {{3, 3}, {7, 100}};
	CHECK(ranges(st, "Ranges", uv, r3, 2) == 1);
	CHECK_STR(logbuf, "");
	CHECK(ranges(st, "Ranges", uv, NULL, 0) == 1);
	CHECK_STR(logbuf, "");
	/* flags changed since are read as they are now */
	uint32_t two[] = {2};
	CHECK(flags(st, "Ranges", two, 1, STORE_FLAGS_ADD, "$X", 0) == 1);
	struct store_uid_range r4[] = {{2, 2}};
	CHECK(ranges(st, "Ranges", uv, r4, 1) == 1);
	CHECK_STR(logbuf, "2:22:$X");
	/* ranges not ascending, overlapping or inverted: -1 */
	struct store_uid_range bad1[] = {{4, 6}, {1, 2}};
	struct store_uid_range bad2[] = {{1, 4}, {4, 6}};
	struct store_uid_range bad3[] = {{5, 4}};
	CHECK(ranges(st, "Ranges", uv, bad1, 2) == -1);
	CHECK(ranges(st, "Ranges", uv, bad2, 2) == -1);
	CHECK(ranges(st, "Ranges", uv, bad3, 1) == -1);
	CHECK_STR(logbuf, "");
	/* another UIDVALIDITY, no such mailbox, no such account */
	CHECK(ranges(st, "Ranges", uv + 1, r1, 2) == 0);
	CHECK_STR(logbuf, "");
	CHECK(ranges(st, "Nope", 0, r1, 2) == 0);
	CHECK(store_message_ranges(st, "nobody@example.test", "Ranges", 0, r1, 2, range_cb, NULL,
	                           NULL) == -1);
	/* deleted and re-created: the old UIDVALIDITY names nothing, UIDs start again */
	CHECK(store_mailbox_delete(st, ACCT, "Ranges", NULL) == 1);
	CHECK(store_mailbox_create(st, ACCT, "Ranges", NULL, NULL) == 1);
	CHECK(deliver(st, "Ranges", "Subject: new\r\n\r\nx\r\n", NULL) == 1);
	CHECK(ranges(st, "Ranges", uv, r1, 2) == 0);
	CHECK_STR(logbuf, "");
	CHECK(ranges(st, "Ranges", 0, r1, 2) == 1);
	CHECK_STR(logbuf, "1:19:");
	/* a \Noselect name has no entries */
	CHECK(store_mailbox_create(st, ACCT, "Ranges/sub", NULL, NULL) == 1);
	CHECK(store_mailbox_delete(st, ACCT, "Ranges", NULL) == 1);
	CHECK(ranges(st, "Ranges", 0, r1, 2) == 0);
	CHECK(store_mailbox_delete(st, ACCT, "Ranges/sub", NULL) == 1);
	CHECK(store_mailbox_delete(st, ACCT, "Ranges", NULL) == 1);
}

/* Sets the time of every expunge log entry of mailbox name (in the store under
 * dir) to when. */
static void log_age(const char *dir, const char *name, int64_t when)
{
	char path[512], sql[512];
	sqlite3 *db = NULL;

	snprintf(path, sizeof(path), "%s/hermod.db", dir);
	snprintf(sql, sizeof(sql),
	         "UPDATE expunged SET time = %lld WHERE mailbox ="
	         " (SELECT m.id FROM mailboxes m JOIN accounts a ON a.id = m.account"
	         "  WHERE a.address = '%s' AND m.name = '%s')",
	         (long long)when, ACCT, name);
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
	CHECK(sqlite3_changes(db) > 0);
	sqlite3_close(db);
}

static uint64_t prune(struct store *st, uint64_t max_age, uint64_t max_rows)
{
	uint64_t removed = 99;
	CHECK(store_expunge_log_prune(st, max_age, max_rows, &removed, NULL) == 1);
	return removed;
}

/* In a store of its own: the prune is over every mailbox. */
static void test_expunge_log_prune(void)
{
	static char dir[] = "/tmp/hermod-test-store-prune.XXXXXX";
	uint32_t u1[] = {1}, u23[] = {2, 3}, u56[] = {5, 6}, u4[] = {4};

	CHECK(mkdtemp(dir) != NULL);
	struct store_options opts = {.data_dir = dir, .fsync = false};
	struct store *st = NULL;
	CHECK(store_open(&opts, &st, NULL) == 1);
	CHECK(store_domain_add(st, "example.test", NULL) == 1);
	CHECK(store_account_add(st, ACCT, "x", NULL) == 1);
	CHECK(store_mailbox_create(st, ACCT, "Prune", NULL, NULL) == 1);
	for (int i = 1; i <= 7; i++)
		CHECK(deliver(st, "Prune", "Subject: p\r\n\r\np\r\n", NULL) == (uint32_t)i);
	CHECK(store_message_expunge(st, ACCT, "Prune", u1, 1, NULL) == 1);
	CHECK(get(st, "Prune") == 1 && mbi.expunge_floor == 0);
	uint64_t m1 = mbi.highestmodseq;
	CHECK(store_message_expunge(st, ACCT, "Prune", u23, 2, NULL) == 2);
	uint64_t ma = m1 + 1;
	CHECK(store_message_expunge(st, ACCT, "Prune", u56, 2, NULL) == 2);
	uint64_t mb = ma + 1;
	CHECK(changes(st, "Prune", m1) == 1);
	CHECK_STR(logbuf, "v2:3 v5:6");
	CHECK(changes(st, "Prune", m1 - 1) == 1);
	CHECK_STR(logbuf, "v1:3 v5:6");

	/* nothing old, and fewer rows than allowed: nothing goes */
	CHECK(prune(st, 3600, 10) == 0);
	CHECK(get(st, "Prune") == 1 && mbi.expunge_floor == 0);
	/* at most 3 rows: 1 and 2, 3 (one MODSEQ: they go together) */
	CHECK(prune(st, 3600, 3) == 3);
	CHECK(get(st, "Prune") == 1 && mbi.expunge_floor == ma);
	/* since == the floor: the log is still complete */
	CHECK(changes(st, "Prune", ma) == 1);
	CHECK_STR(logbuf, "v5:6");
	CHECK(mbi.expunge_floor == ma);
	/* older: every UID below uidnext without an entry, here 1:3 5:6 */
	CHECK(changes(st, "Prune", m1) == 1);
	CHECK_STR(logbuf, "v1:3 v5:6");
	CHECK(changes(st, "Prune", 1) == 1);
	CHECK_STR(logbuf, "4: 7: v1:3 v5:6");
	CHECK(changes(st, "Prune", mb) == 1);
	CHECK_STR(logbuf, "");
	/* since 0: entries only, as before */
	CHECK(changes(st, "Prune", 0) == 1);
	CHECK_STR(logbuf, "4: 7:");

	/* age: entries older than max_age go, whatever their number */
	CHECK(store_message_expunge(st, ACCT, "Prune", u4, 1, NULL) == 1);
	uint64_t mc = mb + 1;
	CHECK(prune(st, 3600, 10) == 0);
	log_age(dir, "Prune", (int64_t)time(NULL) - 7200);
	CHECK(prune(st, 3600, 10) == 3);
	CHECK(get(st, "Prune") == 1 && mbi.expunge_floor == mc);
	CHECK(mbi.messages == 1 && mbi.uidnext == 8);
	/* the last UID gone too: the run reaches uidnext - 1 */
	uint32_t u7[] = {7};
	CHECK(store_message_expunge(st, ACCT, "Prune", u7, 1, NULL) == 1);
	CHECK(changes(st, "Prune", mc) == 1);
	CHECK_STR(logbuf, "v7");
	CHECK(changes(st, "Prune", ma) == 1);
	CHECK_STR(logbuf, "v1:7");
	/* the floor never goes down; max_rows 0 empties the log */
	CHECK(prune(st, 3600, 0) == 1);
	CHECK(get(st, "Prune") == 1 && mbi.expunge_floor == mc + 1);
	CHECK(prune(st, 3600, 0) == 0);
	CHECK(get(st, "Prune") == 1 && mbi.expunge_floor == mc + 1);
	/* a mailbox whose log was never pruned keeps floor 0 */
	uint32_t i1[] = {1};
	CHECK(deliver(st, "INBOX", "x\r\n", NULL) == 1);
	CHECK(store_message_expunge(st, ACCT, "INBOX", i1, 1, NULL) == 1);
	CHECK(prune(st, 3600, 10) == 0);
	CHECK(get(st, "INBOX") == 1 && mbi.expunge_floor == 0);
	/* a \Noselect name made selectable again starts a new log */
	CHECK(store_mailbox_create(st, ACCT, "Prune/sub", NULL, NULL) == 1);
	CHECK(store_mailbox_delete(st, ACCT, "Prune", NULL) == 1);
	CHECK(store_mailbox_create(st, ACCT, "Prune", NULL, NULL) == 1);
	CHECK(get(st, "Prune") == 1 && mbi.expunge_floor == 0);
	store_close(&st);
	/* store_open prunes with the defaults: an entry older than
	 * STORE_EXPUNGE_LOG_AGE goes */
	log_age(dir, "INBOX", (int64_t)time(NULL) - STORE_EXPUNGE_LOG_AGE - 60);
	CHECK(store_open(&opts, &st, NULL) == 1);
	CHECK(get(st, "INBOX") == 1 && mbi.expunge_floor == mbi.highestmodseq);
	store_close(&st);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

struct async_done {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int result;
	bool done;
	char watch_seen[1024]; /* what the watcher had seen when the completion ran */
};

static struct watch_log wl = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void async_cb(void *ctx, int result, char *error)
{
	struct async_done *a = ctx;
	pthread_mutex_lock(&wl.mu);
	snprintf(a->watch_seen, sizeof(a->watch_seen), "%s", wl.buf);
	pthread_mutex_unlock(&wl.mu);
	pthread_mutex_lock(&a->mu);
	a->result = result;
	a->done = true;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->mu);
	free(error);
}

static void test_watch(struct store *st)
{
	struct store_watch *w = NULL, *wo = NULL;
	static struct watch_log wlo = {.mu = PTHREAD_MUTEX_INITIALIZER};
	uint32_t uid;

	CHECK(store_watch_add(st, ACCT, watch_cb, &wl, &w, NULL) == 1 && w != NULL);
	CHECK(store_watch_add(st, OTHER, watch_cb, &wlo, &wo, NULL) == 1);

	/* a delivery, to every account it reached */
	uid = deliver(st, NULL, "w\r\n", NULL);
	CHECK(uid > 0);
	CHECK_STR(wl.buf, ACCT ":INBOX");
	const char *both[] = {OTHER, ACCT};
	struct store_delivery d = {.accounts = both, .naccounts = 2, .data = "b\r\n", .len = 3};
	uint32_t uids[2];
	watch_reset(&wl);
	CHECK(store_deliver(st, &d, uids, NULL) == 1);
	CHECK_STR(wl.buf, ACCT ":INBOX");
	CHECK_STR(wlo.buf, OTHER ":INBOX");
	/* store_deliver_async: told before the completion runs */
	struct async_done a = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	const char *mine[] = {ACCT};
	struct store_delivery da = {
	    .accounts = mine, .naccounts = 1, .mailbox = "Archive", .data = "c\r\n", .len = 3};
	uint32_t auid = 0;
	watch_reset(&wl);
	CHECK(store_deliver_async(st, &da, &auid, async_cb, &a, NULL) == 1);
	pthread_mutex_lock(&a.mu);
	while (!a.done)
		pthread_cond_wait(&a.cond, &a.mu);
	pthread_mutex_unlock(&a.mu);
	CHECK(a.result == 1);
	CHECK_STR(a.watch_seen, ACCT ":Archive");
	/* a failed delivery tells nobody */
	da.mailbox = "Nope";
	a.done = false;
	watch_reset(&wl);
	CHECK(store_deliver_async(st, &da, &auid, async_cb, &a, NULL) == 1);
	pthread_mutex_lock(&a.mu);
	while (!a.done)
		pthread_cond_wait(&a.cond, &a.mu);
	pthread_mutex_unlock(&a.mu);
	CHECK(a.result == -1);
	CHECK(wl.calls == 0);

	/* flags: only when something changed */
	watch_reset(&wl);
	CHECK(flags(st, "INBOX", &uid, 1, STORE_FLAGS_ADD, "\\Deleted", 0) == 1);
	CHECK_STR(wl.buf, ACCT ":INBOX");
	watch_reset(&wl);
	CHECK(flags(st, "INBOX", &uid, 1, STORE_FLAGS_ADD, "\\Deleted", 0) == 1);
	CHECK(wl.calls == 0);
	/* expunges */
	CHECK(store_mailbox_expunge_deleted(st, ACCT, "INBOX", NULL, 0, NULL, NULL, NULL) == 1);
	CHECK_STR(wl.buf, ACCT ":INBOX");
	watch_reset(&wl);
	CHECK(store_message_expunge(st, ACCT, "INBOX", &uids[1], 1, NULL) == 1);
	CHECK_STR(wl.buf, ACCT ":INBOX");
	watch_reset(&wl);
	CHECK(store_message_expunge(st, ACCT, "INBOX", &uids[1], 1, NULL) == 0);
	CHECK(wl.calls == 0);
	CHECK(wlo.calls == 1); /* bob only had the one delivery */

	/* after removal: never again */
	store_watch_remove(st, &w);
	CHECK(w == NULL);
	store_watch_remove(st, &w); /* NULL ok */
	CHECK(deliver(st, NULL, "w2\r\n", NULL) > 0);
	CHECK(wl.calls == 0);
	store_watch_remove(st, &wo);
	CHECK(store_watch_add(st, NULL, watch_cb, &wl, &w, NULL) == -1 && w == NULL);
}

static void test_copy(struct store *st)
{
	struct store_copy_result r;
	struct watch_log cwl = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct store_watch *w = NULL;
	char *error = NULL;

	/* a fresh mailbox to copy from */
	CHECK(store_mailbox_create(st, ACCT, "Src", NULL, NULL) == 1);
	uint32_t a = deliver(st, "Src", "Subject: a\r\n\r\na\r\n", "\\Seen $NotJunk");
	uint32_t b = deliver(st, "Src", "Subject: b\r\n\r\nb\r\n", "\\Flagged");
	uint32_t c = deliver(st, "Src", "Subject: c\r\n\r\nc\r\n", NULL);
	CHECK(a == 1 && b == 2 && c == 3);
	CHECK(get(st, "Archive") == 1);
	uint32_t arch_next = mbi.uidnext, arch_uv = mbi.uidvalidity;
	uint64_t arch_ms = mbi.highestmodseq;

	CHECK(store_watch_add(st, ACCT, watch_cb, &cwl, &w, NULL) == 1);
	uint32_t ab[] = {1, 2, 77};
	CHECK(store_message_copy(st, ACCT, "Src", "Archive", ab, 3, false, &r, NULL) == 1);
	CHECK(r.uidvalidity == arch_uv && r.n == 2);
	CHECK(r.src_uids[0] == 1 && r.src_uids[1] == 2);
	CHECK(r.dst_uids[0] == arch_next && r.dst_uids[1] == arch_next + 1);
	store_copy_result_free(&r);
	CHECK(r.src_uids == NULL && r.n == 0);
	CHECK_STR(cwl.buf, ACCT ":Archive");
	CHECK(get(st, "Archive") == 1);
	CHECK(mbi.uidnext == arch_next + 2 && mbi.highestmodseq == arch_ms + 1);
	CHECK(get(st, "Src") == 1);
	CHECK(mbi.messages == 3); /* a copy leaves the source */
	logbuf[0] = '\0';
	CHECK(changes(st, "Archive", arch_ms) == 1);
	char want[256];
	snprintf(want, sizeof(want), "%u:\\Seen $NotJunk %u:\\Flagged", arch_next, arch_next + 1);
	CHECK_STR(logbuf, want);

	/* MOVE into Junk: $Junk added, $NotJunk removed, removed from Src (logged) */
	CHECK(get(st, "Src") == 1);
	uint64_t src_ms = mbi.highestmodseq;
	watch_reset(&cwl);
	uint32_t one[] = {1};
	CHECK(store_message_copy(st, ACCT, "Src", "Junk", one, 1, true, &r, NULL) == 1);
	CHECK(r.n == 1 && r.src_uids[0] == 1 && r.dst_uids[0] == 1);
	store_copy_result_free(&r);
	CHECK_STR(cwl.buf, ACCT ":Junk " ACCT ":Src");
	CHECK_STR(messages(st, "Junk"), "1:\\Seen $Junk");
	CHECK(changes(st, "Src", src_ms) == 1);
	CHECK_STR(logbuf, "v1");
	/* MOVE out of Junk (not to Trash): $NotJunk added, $Junk removed */
	CHECK(store_message_copy(st, ACCT, "Junk", "INBOX", one, 1, true, &r, NULL) == 1);
	CHECK(r.n == 1);
	uint32_t back = r.dst_uids[0];
	store_copy_result_free(&r);
	CHECK(get(st, "INBOX") == 1);
	snprintf(want, sizeof(want), "%u:\\Seen $NotJunk", back);
	CHECK(strstr(messages(st, "INBOX"), want) != NULL);
	/* into Trash from Junk: flags kept */
	uint32_t two[] = {2};
	CHECK(store_message_copy(st, ACCT, "Src", "Junk", two, 1, false, &r, NULL) == 1);
	uint32_t junk2 = r.dst_uids[0];
	store_copy_result_free(&r);
	CHECK(store_message_copy(st, ACCT, "Junk", "Trash", &junk2, 1, true, &r, NULL) == 1);
	store_copy_result_free(&r);
	CHECK_STR(messages(st, "Trash"), "1:\\Flagged $Junk");
	CHECK_STR(messages(st, "Junk"), "");

	/* nothing left to copy: 1 with no pairs, nobody told */
	watch_reset(&cwl);
	CHECK(store_message_copy(st, ACCT, "Src", "Archive", one, 1, true, &r, NULL) == 1);
	CHECK(r.n == 0 && r.uidvalidity == arch_uv);
	store_copy_result_free(&r);
	CHECK(cwl.calls == 0);
	/* results beside 1 */
	CHECK(store_message_copy(st, ACCT, "Nope", "Archive", two, 1, false, &r, NULL) == 0);
	CHECK(store_message_copy(st, ACCT, "Src", "Nope", two, 1, false, &r, &error) ==
	      STORE_NOMAILBOX);
	free(error);
	error = NULL;
	CHECK(store_message_copy(st, ACCT, "Src", "a//b", two, 1, false, &r, NULL) ==
	      STORE_NOMAILBOX);
	CHECK(store_message_copy(st, ACCT, "Src", "Src", two, 1, true, &r, &error) == STORE_CANNOT);
	free(error);
	error = NULL;
	/* COPY into the same mailbox is fine */
	CHECK(store_message_copy(st, ACCT, "Src", "Src", two, 1, false, &r, NULL) == 1);
	CHECK(r.n == 1 && r.dst_uids[0] == 4);
	store_copy_result_free(&r);
	CHECK(store_message_copy(st, "nobody@example.test", "Src", "INBOX", two, 1, false, &r,
	                         NULL) == -1);
	CHECK(r.n == 0 && r.src_uids == NULL);
	store_watch_remove(st, &w);
}

static int msg_make(struct store *st, struct store_msg **m, const char *text)
{
	if (store_msg_begin(st, m, NULL) != 1)
		return -1;
	return store_msg_write(*m, text, strlen(text), NULL);
}

static void test_append(struct store *st)
{
	struct store_msg *m1 = NULL, *m2 = NULL, *m3 = NULL;
	uint32_t uv = 0, uids[3] = {0};
	char *error = NULL;

	CHECK(msg_make(st, &m1, "Subject: ap1\r\n\r\nbody 1\r\n") == 1);
	CHECK(msg_make(st, &m2, "Subject: ap2\r\n\r\nbody 2\r\n") == 1);
	CHECK(msg_make(st, &m3, "Subject: ap3\r\n\r\nbody 3\r\n") == 1);
	CHECK(get(st, "Drafts") == 1);
	uint32_t next = mbi.uidnext, drafts_uv = mbi.uidvalidity;

	/* MULTIAPPEND: one bad message fails all of them, nothing is added */
	struct store_append_msg bad[] = {{m1, "\\Draft", 0}, {m2, "bad(flag", 0}};
	CHECK(store_append(st, ACCT, "Drafts", bad, 2, &uv, uids, &error) == -1);
	CHECK(error != NULL);
	free(error);
	error = NULL;
	CHECK(get(st, "Drafts") == 1);
	CHECK(mbi.messages == 0 && mbi.uidnext == next);

	struct watch_log awl = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct store_watch *w = NULL;
	CHECK(store_watch_add(st, ACCT, watch_cb, &awl, &w, NULL) == 1);
	struct store_append_msg good[] = {{m1, "\\Draft \\seen", 1600000000}, {m2, NULL, 0}};
	CHECK(store_append(st, ACCT, "Drafts", good, 2, &uv, uids, NULL) == 1);
	CHECK(uv == drafts_uv && uids[0] == next && uids[1] == next + 1);
	CHECK_STR(awl.buf, ACCT ":Drafts");
	store_watch_remove(st, &w);
	char want[128];
	snprintf(want, sizeof(want), "%u:\\Draft \\seen %u:", next, next + 1);
	CHECK_STR(messages(st, "Drafts"), want);
	char *data = NULL;
	size_t len = 0;
	CHECK(store_message_get(st, ACCT, "Drafts", next, &data, &len, NULL) == 1);
	CHECK(len == strlen("Subject: ap1\r\n\r\nbody 1\r\n") &&
	      memcmp(data, "Subject: ap1", 12) == 0);
	free(data);
	CHECK(get(st, "Drafts") == 1);
	CHECK(mbi.messages == 2 && mbi.unseen == 1);

	/* results beside 1 */
	struct store_append_msg one[] = {{m3, NULL, 0}};
	CHECK(store_append(st, ACCT, "Nope", one, 1, &uv, uids, &error) == STORE_NOMAILBOX);
	free(error);
	error = NULL;
	CHECK(store_append(st, ACCT, "a//b", one, 1, &uv, uids, NULL) == STORE_NOMAILBOX);
	CHECK(store_append(st, "nobody@example.test", "INBOX", one, 1, &uv, uids, &error) == -1);
	free(error);
	error = NULL;
	CHECK(store_append(st, ACCT, "INBOX", one, 0, &uv, uids, NULL) == -1);
	/* a message already appended cannot be appended again */
	CHECK(store_append(st, ACCT, "INBOX", good, 1, &uv, uids, NULL) == -1);
	store_msg_free(&m1);
	store_msg_free(&m2);
	store_msg_free(&m3);
	/* a large one (spilled to a file) */
	struct store_msg *big = NULL;
	CHECK(store_msg_begin(st, &big, NULL) == 1);
	static char chunk[64 * 1024];
	memset(chunk, 'a', sizeof(chunk));
	for (int i = 0; i < 4; i++)
		CHECK(store_msg_write(big, chunk, sizeof(chunk), NULL) == 1);
	struct store_append_msg bigm[] = {{big, NULL, 0}};
	CHECK(store_append(st, ACCT, "Drafts", bigm, 1, &uv, uids, NULL) == 1);
	CHECK(uids[0] == next + 2);
	store_msg_free(&big);
	CHECK(get(st, "Drafts") == 1);
	CHECK(mbi.messages == 3);
}

static void test_blob_cache(struct store *st)
{
	char *data = NULL, *error = NULL;
	size_t len = 1;
	static struct {
		char id[BLOB_ID_LEN + 1];
		uint32_t uid;
	} one;

	CHECK(store_mailbox_create(st, ACCT, "Cache", NULL, NULL) == 1);
	one.uid = deliver(st, "Cache", "Subject: cache me\r\n\r\nx\r\n", NULL);
	CHECK(one.uid == 1);
	CHECK(blob_hash("Subject: cache me\r\n\r\nx\r\n", strlen("Subject: cache me\r\n\r\nx\r\n"),
	                one.id) == 1);
	CHECK(store_blob_cache_get(st, one.id, &data, &len, NULL) == 0);
	CHECK(data == NULL && len == 0);
	CHECK(store_blob_cache_put(st, one.id, "tree\0bytes", 10, NULL) == 1);
	CHECK(store_blob_cache_get(st, one.id, &data, &len, NULL) == 1);
	CHECK(len == 10 && memcmp(data, "tree\0bytes", 10) == 0);
	free(data);
	data = NULL;
	CHECK(store_blob_cache_put(st, one.id, "v2", 2, NULL) == 1); /* replaced */
	CHECK(store_blob_cache_get(st, one.id, &data, &len, NULL) == 1);
	CHECK(len == 2 && memcmp(data, "v2", 2) == 0);
	free(data);
	data = NULL;
	static char big[STORE_BLOB_CACHE_MAX + 1];
	CHECK(store_blob_cache_put(st, one.id, big, sizeof(big), &error) == -1);
	free(error);
	error = NULL;
	CHECK(store_blob_cache_put(st, one.id, big, STORE_BLOB_CACHE_MAX, NULL) == 1);
	CHECK(store_blob_cache_get(st, "../x", &data, &len, &error) == -1);
	free(error);
	error = NULL;
	CHECK(store_blob_cache_put(st, NULL, "x", 1, NULL) == -1);
	/* a blob that is gone: nothing cached, put stores nothing */
	CHECK(store_message_expunge(st, ACCT, "Cache", &one.uid, 1, NULL) == 1);
	CHECK(store_blob_cache_get(st, one.id, &data, &len, NULL) == 0);
	CHECK(store_blob_cache_put(st, one.id, "late", 4, NULL) == 1);
	CHECK(store_blob_cache_get(st, one.id, &data, &len, NULL) == 0);
	/* the same content delivered again starts with nothing cached */
	CHECK(deliver(st, "Cache", "Subject: cache me\r\n\r\nx\r\n", NULL) == 2);
	CHECK(store_blob_cache_get(st, one.id, &data, &len, NULL) == 0);
}

static void test_create_delete(struct store *st)
{
	char *error = NULL;

	CHECK(store_mailbox_create(st, ACCT, "Work/Projects/2026", NULL, NULL) == 1);
	CHECK(get(st, "Work") == 1 && mbi.children && !mbi.noselect && !mbi.subscribed);
	CHECK(get(st, "Work/Projects") == 1 && mbi.children);
	CHECK(get(st, "Work/Projects/2026") == 1 && !mbi.children);
	CHECK(store_mailbox_create(st, ACCT, "Work", NULL, &error) == STORE_EXISTS);
	free(error);
	error = NULL;
	CHECK(store_mailbox_create(st, ACCT, "inbox", NULL, NULL) == STORE_EXISTS);
	CHECK(store_mailbox_create(st, ACCT, "Lists", "\\Bogus", &error) == STORE_CANNOT);
	free(error);
	error = NULL;
	CHECK(get(st, "Lists") == 0);
	CHECK(store_mailbox_create(st, ACCT, "Lists", "\\Archive", NULL) == 1);
	CHECK(get(st, "Lists") == 1);
	CHECK_STR(mbi.special_use, "\\Archive");
	static const char *const bad[] = {"",     "/x",       "x/",           "a//b",
	                                  "a\rb", "\xc3\x28", "\xed\xa0\x80", "\xc2\x85"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(store_mailbox_create(st, ACCT, bad[i], NULL, NULL) == STORE_CANNOT);
	char deep[200] = "d";
	for (int i = 1; i < STORE_MAILBOX_DEPTH_MAX; i++)
		strcat(deep, "/d");
	CHECK(store_mailbox_create(st, ACCT, deep, NULL, NULL) == 1);
	strcat(deep, "/d");
	CHECK(store_mailbox_create(st, ACCT, deep, NULL, NULL) == STORE_CANNOT);
	static char longname[STORE_MAILBOX_NAME_MAX + 2];
	memset(longname, 'n', STORE_MAILBOX_NAME_MAX);
	CHECK(store_mailbox_create(st, ACCT, longname, NULL, NULL) == 1);
	longname[STORE_MAILBOX_NAME_MAX] = 'n';
	CHECK(store_mailbox_create(st, ACCT, longname, NULL, NULL) == STORE_CANNOT);
	CHECK(store_mailbox_create(st, ACCT, "Caf\xc3\xa9", NULL, NULL) == 1); /* UTF-8 */
	/* INBOX's inferiors are INBOX's whatever the case of its name */
	CHECK(store_mailbox_create(st, ACCT, "inbox/Lower", NULL, NULL) == 1);
	CHECK(get(st, "INBOX/Lower") == 1);
	CHECK_STR(mbi.name, "INBOX/Lower");
	CHECK(get(st, "Inbox/Lower") == 1);
	CHECK(get(st, "INBOX") == 1 && mbi.children);
	CHECK(store_mailbox_create(st, ACCT, "INBOX/lower", NULL, NULL) == 1); /* the rest is not */
	CHECK(store_mailbox_delete(st, ACCT, "INBOX/lower", NULL) == 1);
	CHECK(store_mailbox_delete(st, ACCT, "iNbOx/Lower", NULL) == 1);
	CHECK(get(st, "INBOX") == 1 && !mbi.children);
	CHECK(store_mailbox_create(st, "nobody@example.test", "X", NULL, &error) == -1);
	free(error);
	error = NULL;

	/* a re-created name gets a new UIDVALIDITY */
	CHECK(store_mailbox_create(st, ACCT, "Again", NULL, NULL) == 1);
	CHECK(get(st, "Again") == 1);
	uint32_t uv1 = mbi.uidvalidity;
	CHECK(deliver(st, "Again", "again\r\n", NULL) == 1);
	CHECK(store_mailbox_delete(st, ACCT, "Again", NULL) == 1);
	CHECK(get(st, "Again") == 0);
	CHECK(store_mailbox_create(st, ACCT, "Again", NULL, NULL) == 1);
	CHECK(get(st, "Again") == 1);
	CHECK(mbi.uidvalidity != uv1 && mbi.uidvalidity > uv1);
	CHECK(mbi.messages == 0 && mbi.uidnext == 1);

	/* delete with inferiors: \Noselect, messages gone (logged) */
	CHECK(deliver(st, "Work", "w1\r\n", NULL) == 1);
	CHECK(get(st, "Work") == 1);
	uint32_t work_uv = mbi.uidvalidity;
	uint64_t work_ms = mbi.highestmodseq;
	CHECK(store_mailbox_delete(st, ACCT, "Work", NULL) == 1);
	CHECK(get(st, "Work") == 1);
	CHECK(mbi.noselect && mbi.children && mbi.messages == 0);
	CHECK(changes(st, "Work", work_ms) == 1);
	CHECK_STR(logbuf, "v1");
	CHECK(store_mailbox_delete(st, ACCT, "Work", &error) == STORE_CANNOT);
	free(error);
	error = NULL;
	/* \Noselect: not a destination, not a source */
	struct store_msg *m = NULL;
	CHECK(msg_make(st, &m, "x\r\n") == 1);
	struct store_append_msg am[] = {{m, NULL, 0}};
	uint32_t uv, uid;
	CHECK(store_append(st, ACCT, "Work", am, 1, &uv, &uid, NULL) == STORE_NOMAILBOX);
	store_msg_free(&m);
	const char *accts[] = {ACCT};
	struct store_delivery d = {
	    .accounts = accts, .naccounts = 1, .mailbox = "Work", .data = "x\r\n", .len = 3};
	CHECK(store_deliver(st, &d, &uid, NULL) == -1);
	struct store_copy_result r;
	uint32_t one = 1;
	CHECK(store_message_copy(st, ACCT, "INBOX", "Work", &one, 1, false, &r, NULL) ==
	      STORE_NOMAILBOX);
	CHECK(store_message_copy(st, ACCT, "Work", "INBOX", &one, 1, false, &r, NULL) == 0);
	CHECK(flags(st, "Work", &one, 1, STORE_FLAGS_ADD, "\\Seen", 0) == 0);
	/* created again: selectable, with a new UIDVALIDITY */
	CHECK(store_mailbox_create(st, ACCT, "Work", NULL, NULL) == 1);
	CHECK(get(st, "Work") == 1);
	CHECK(!mbi.noselect && mbi.uidvalidity != work_uv && mbi.uidnext == 1);
	CHECK(changes(st, "Work", 1) == 1);
	CHECK_STR(logbuf, "");

	/* a leaf \Noselect name (its inferiors deleted since) can be deleted */
	CHECK(store_mailbox_create(st, ACCT, "P/Q", NULL, NULL) == 1);
	CHECK(store_mailbox_delete(st, ACCT, "P", NULL) == 1);
	CHECK(store_mailbox_delete(st, ACCT, "P/Q", NULL) == 1);
	CHECK(get(st, "P") == 1 && mbi.noselect && !mbi.children);
	CHECK(store_mailbox_delete(st, ACCT, "P", NULL) == 1);
	CHECK(get(st, "P") == 0);

	CHECK(store_mailbox_delete(st, ACCT, "inbox", &error) == STORE_CANNOT);
	free(error);
	error = NULL;
	CHECK(store_mailbox_delete(st, ACCT, "Nope", NULL) == 0);
	CHECK(store_mailbox_delete(st, ACCT, "a//b", NULL) == 0);
	CHECK(store_mailbox_delete(st, "nobody@example.test", "Work", &error) == -1);
	free(error);
}

static void test_rename(struct store *st)
{
	char *error = NULL;

	/* with inferiors: UIDVALIDITY, UIDs and subscriptions kept */
	CHECK(store_mailbox_create(st, ACCT, "Old/Sub/Deep", NULL, NULL) == 1);
	CHECK(deliver(st, "Old/Sub", "in sub\r\n", "\\Seen") == 1);
	CHECK(store_mailbox_subscribe(st, ACCT, "Old/Sub", true, NULL) == 1);
	CHECK(get(st, "Old/Sub") == 1);
	uint32_t sub_uv = mbi.uidvalidity;
	CHECK(store_mailbox_rename(st, ACCT, "Old", "New/Place", NULL) == 1);
	CHECK(get(st, "Old") == 0 && get(st, "Old/Sub") == 0 && get(st, "Old/Sub/Deep") == 0);
	CHECK(get(st, "New") == 1 && mbi.children);
	CHECK(get(st, "New/Place/Sub/Deep") == 1);
	CHECK(get(st, "New/Place/Sub") == 1);
	CHECK(mbi.uidvalidity == sub_uv && mbi.messages == 1 && mbi.subscribed);
	CHECK_STR(messages(st, "New/Place/Sub"), "1:\\Seen");
	/* "Oldest" is not an inferior of "Old" */
	CHECK(store_mailbox_create(st, ACCT, "Ab", NULL, NULL) == 1);
	CHECK(store_mailbox_create(st, ACCT, "Abc", NULL, NULL) == 1);
	CHECK(store_mailbox_rename(st, ACCT, "Ab", "Xy", NULL) == 1);
	CHECK(get(st, "Abc") == 1 && get(st, "Xyc") == 0);

	CHECK(store_mailbox_rename(st, ACCT, "Xy", "Abc", &error) == STORE_EXISTS);
	free(error);
	error = NULL;
	CHECK(store_mailbox_rename(st, ACCT, "Xy", "Xy", &error) == STORE_CANNOT);
	free(error);
	error = NULL;
	CHECK(store_mailbox_rename(st, ACCT, "New", "New/Place/In", NULL) == STORE_CANNOT);
	CHECK(store_mailbox_rename(st, ACCT, "Xy", "a//b", NULL) == STORE_CANNOT);
	CHECK(store_mailbox_rename(st, ACCT, "Nope", "Other", NULL) == 0);
	CHECK(store_mailbox_rename(st, ACCT, "a//b", "Other", NULL) == 0);
	CHECK(store_mailbox_rename(st, "nobody@example.test", "Xy", "Other", NULL) == -1);
	/* the new names of inferiors must be valid too */
	char deep[200] = "e";
	for (int i = 1; i < STORE_MAILBOX_DEPTH_MAX; i++)
		strcat(deep, "/e");
	CHECK(store_mailbox_create(st, ACCT, deep, NULL, NULL) == 1);
	CHECK(store_mailbox_rename(st, ACCT, "e", "f/g", NULL) == STORE_CANNOT);
	CHECK(get(st, "e") == 1);

	/* INBOX: its messages move to the new mailbox, INBOX stays, empty */
	CHECK(store_mailbox_create(st, ACCT, "INBOX/Child", NULL, NULL) == 1);
	CHECK(get(st, "INBOX") == 1);
	uint32_t inbox_uv = mbi.uidvalidity, inbox_next = mbi.uidnext, inbox_n = mbi.messages;
	uint64_t inbox_ms = mbi.highestmodseq;
	CHECK(inbox_n > 0);
	logbuf[0] = '\0';
	CHECK(store_message_list(st, ACCT, "INBOX", flags_only_cb, NULL, NULL) == 1);
	static char inbox_before[sizeof(logbuf)];
	snprintf(inbox_before, sizeof(inbox_before), "%s", logbuf);
	CHECK(store_mailbox_rename(st, ACCT, "inbox", "Saved/Inbox", NULL) == 1);
	CHECK(get(st, "INBOX") == 1);
	CHECK(mbi.messages == 0 && mbi.uidvalidity == inbox_uv && mbi.uidnext == inbox_next);
	CHECK(get(st, "INBOX/Child") == 1); /* inferiors are not renamed */
	CHECK(get(st, "Saved") == 1);
	CHECK(get(st, "Saved/Inbox") == 1);
	CHECK(mbi.messages == inbox_n && mbi.uidnext == inbox_n + 1 && mbi.uidvalidity != inbox_uv);
	CHECK(changes(st, "INBOX", inbox_ms) == 1);
	CHECK(logbuf[0] == 'v');
	/* new UIDs 1..n, flags kept */
	CHECK(strncmp(messages(st, "Saved/Inbox"), "1:", 2) == 0);
	logbuf[0] = '\0';
	CHECK(store_message_list(st, ACCT, "Saved/Inbox", flags_only_cb, NULL, NULL) == 1);
	CHECK_STR(logbuf, inbox_before);
	CHECK(store_mailbox_rename(st, ACCT, "INBOX", "Saved/Inbox", NULL) == STORE_EXISTS);
	CHECK(store_mailbox_rename(st, ACCT, "Xy", "INBOX", NULL) == STORE_EXISTS);
	/* mail goes on arriving in INBOX, with UIDs after the old ones */
	CHECK(deliver(st, NULL, "after\r\n", NULL) == inbox_next);
}

static void test_subscriptions(struct store *st)
{
	char *error = NULL;

	CHECK(store_mailbox_subscribe(st, ACCT, "Ghost/Town", true, NULL) ==
	      1); /* need not exist */
	CHECK(store_mailbox_subscribe(st, ACCT, "Ghost/Town", true, NULL) == 1); /* no change */
	CHECK(store_mailbox_subscribe(st, ACCT, "Trash", false, NULL) == 1);
	CHECK(store_mailbox_subscribe(st, ACCT, "Trash", false, NULL) == 1);
	CHECK(store_mailbox_subscribe(st, ACCT, "inbox", true, NULL) == 1);
	CHECK(store_mailbox_subscribe(st, ACCT, "a//b", true, NULL) == STORE_CANNOT);
	CHECK(store_mailbox_subscribe(st, "nobody@example.test", "X", true, &error) == -1);
	free(error);
	error = NULL;
	logbuf[0] = '\0';
	CHECK(store_subscription_list(st, ACCT, name_cb, NULL, NULL) == 1);
	CHECK_STR(logbuf, "INBOX Archive Drafts Ghost/Town Junk New/Place/Sub Sent");
	CHECK(get(st, "Trash") == 1 && !mbi.subscribed);
	/* a deleted mailbox keeps its subscription; a rename carries it along */
	CHECK(store_mailbox_create(st, ACCT, "Tmp", NULL, NULL) == 1);
	CHECK(store_mailbox_subscribe(st, ACCT, "Tmp", true, NULL) == 1);
	CHECK(store_mailbox_rename(st, ACCT, "Tmp", "Tmp2", NULL) == 1);
	CHECK(get(st, "Tmp2") == 1 && mbi.subscribed);
	CHECK(store_mailbox_delete(st, ACCT, "Tmp2", NULL) == 1);
	logbuf[0] = '\0';
	CHECK(store_subscription_list(st, ACCT, name_cb, NULL, NULL) == 1);
	CHECK(strstr(logbuf, "Tmp2") != NULL && strstr(logbuf, "Tmp ") == NULL);
	CHECK(store_subscription_list(st, "nobody@example.test", name_cb, NULL, &error) == -1);
	free(error);
	/* the list shows the new fields */
	logbuf[0] = '\0';
	CHECK(store_mailbox_list(st, ACCT, list_cb, NULL, NULL) == 1);
	CHECK(strncmp(logbuf, "INBOX:children:sub Sent:sub", 27) == 0);
	CHECK(strstr(logbuf, " Trash ") != NULL);
}

/* ---- concurrency: watchers removed while deliveries run; APPENDs in the
 * committer's batches beside deliveries ---- */

struct racer {
	struct store *st;
	int n;
	int failures;
};

static void *deliver_loop(void *arg)
{
	struct racer *r = arg;
	char msg[64];

	for (int i = 0; i < r->n; i++) {
		snprintf(msg, sizeof(msg), "Subject: race %d\r\n\r\nx\r\n", i);
		if (deliver(r->st, NULL, msg, NULL) == 0)
			r->failures++;
	}
	return NULL;
}

struct guarded {
	pthread_mutex_t mu;
	bool removed;
	int late; /* calls after store_watch_remove returned */
	int calls;
};

static void guarded_cb(void *ctx, const char *account, const char *mailbox)
{
	struct guarded *g = ctx;
	pthread_mutex_lock(&g->mu);
	if (g->removed)
		g->late++;
	g->calls++;
	pthread_mutex_unlock(&g->mu);
}

static void *append_loop(void *arg)
{
	struct racer *r = arg;

	for (int i = 0; i < r->n; i++) {
		struct store_msg *m[3] = {NULL, NULL, NULL};
		struct store_append_msg am[3];
		uint32_t uids[3] = {0}, uv = 0;
		for (int k = 0; k < 3; k++) {
			char text[64];
			snprintf(text, sizeof(text), "Subject: multi %d.%d\r\n\r\ny\r\n", i, k);
			if (msg_make(r->st, &m[k], text) != 1)
				r->failures++;
			am[k] = (struct store_append_msg){m[k], NULL, 0};
		}
		if (store_append(r->st, ACCT, "Multi", am, 3, &uv, uids, NULL) != 1 ||
		    uids[1] != uids[0] + 1 || uids[2] != uids[1] + 1)
			r->failures++;
		for (int k = 0; k < 3; k++)
			store_msg_free(&m[k]);
	}
	return NULL;
}

static void test_concurrent(struct store *st)
{
	struct racer d = {.st = st, .n = 150}, a = {.st = st, .n = 40};
	pthread_t td, ta;

	CHECK(store_mailbox_create(st, ACCT, "Multi", NULL, NULL) == 1);
	CHECK(pthread_create(&td, NULL, deliver_loop, &d) == 0);
	CHECK(pthread_create(&ta, NULL, append_loop, &a) == 0);
	int late = 0;
	for (int i = 0; i < 200; i++) {
		struct guarded g = {.mu = PTHREAD_MUTEX_INITIALIZER};
		struct store_watch *w = NULL;
		CHECK(store_watch_add(st, ACCT, guarded_cb, &g, &w, NULL) == 1);
		for (volatile int spin = 0; spin < 20000; spin++)
			;
		store_watch_remove(st, &w);
		pthread_mutex_lock(&g.mu);
		g.removed = true;
		pthread_mutex_unlock(&g.mu);
		/* any call still to come would find removed set */
		for (volatile int spin = 0; spin < 2000; spin++)
			;
		pthread_mutex_lock(&g.mu);
		late += g.late;
		pthread_mutex_unlock(&g.mu);
		pthread_mutex_destroy(&g.mu);
	}
	pthread_join(td, NULL);
	pthread_join(ta, NULL);
	CHECK(late == 0);
	CHECK(d.failures == 0 && a.failures == 0);
	CHECK(get(st, "Multi") == 1);
	CHECK(mbi.messages == 120 && mbi.uidnext == 121);
}

/* The store reopened: everything above survives, UIDVALIDITY stays unique. */
static void test_reopen(void)
{
	struct store *st = open_store();

	CHECK(get(st, "Work") == 1 && !mbi.noselect);
	uint32_t uv = mbi.uidvalidity;
	CHECK(store_mailbox_delete(st, ACCT, "Work", NULL) == 1);
	CHECK(store_mailbox_create(st, ACCT, "Work", NULL, NULL) == 1);
	CHECK(get(st, "Work") == 1 && mbi.uidvalidity > uv);
	CHECK(get(st, "Saved/Inbox") == 1 && mbi.messages > 0);
	/* an account deleted and added again: fresh UIDVALIDITYs too */
	CHECK(get(st, "INBOX") == 1);
	uv = mbi.uidvalidity;
	CHECK(store_account_del(st, ACCT, NULL) == 1);
	CHECK(store_account_add(st, ACCT, "x", NULL) == 1);
	CHECK(get(st, "INBOX") == 1 && mbi.uidvalidity > uv && mbi.subscribed);
	store_close(&st);
}

/* A store written before schema v6 (made by taking v6 and v7 out of one again):
 * the migrations count the existing entries and keep the subscriptions. */
static void test_migrate_v5(void)
{
	static char dir[] = "/tmp/hermod-test-store-v5.XXXXXX";
	char path[512];
	sqlite3 *db = NULL;

	CHECK(mkdtemp(dir) != NULL);
	struct store_options opts = {.data_dir = dir, .fsync = false};
	struct store *st = NULL;
	CHECK(store_open(&opts, &st, NULL) == 1);
	CHECK(store_domain_add(st, "example.test", NULL) == 1);
	CHECK(store_account_add(st, ACCT, "x", NULL) == 1);
	CHECK(deliver(st, NULL, "m1\r\n", "\\Seen") == 1);
	CHECK(deliver(st, NULL, "m22\r\n", "\\Deleted") == 2);
	CHECK(deliver(st, NULL, "m333\r\n", NULL) == 3);
	store_close(&st);

	snprintf(path, sizeof(path), "%s/hermod.db", dir);
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	static const char *const undo =
	    "DROP TRIGGER messages_count_insert; DROP TRIGGER messages_count_delete;"
	    "DROP TRIGGER messages_count_flags;"
	    "ALTER TABLE mailboxes DROP COLUMN n_messages;"
	    "ALTER TABLE mailboxes DROP COLUMN n_unseen;"
	    "ALTER TABLE mailboxes DROP COLUMN n_deleted;"
	    "ALTER TABLE mailboxes DROP COLUMN n_size;"
	    "ALTER TABLE mailboxes DROP COLUMN noselect;"
	    "UPDATE mailboxes SET subscribed = (name <> 'Trash');"
	    "DROP TABLE subscriptions; DROP TABLE uidvalidity_counter; DROP TABLE blob_cache;"
	    "ALTER TABLE expunged DROP COLUMN time;"
	    "ALTER TABLE mailboxes DROP COLUMN expunge_floor;"
	    "ALTER TABLE queue DROP COLUMN held;"
	    "ALTER TABLE queue DROP COLUMN warned;"
	    "ALTER TABLE queue DROP COLUMN tls;"
	    "DROP TABLE tlsrpt;"
	    "DROP TABLE mta_sts;"
	    "DELETE FROM schema_version WHERE version >= 6;";
	char *err = NULL;
	CHECK(sqlite3_exec(db, undo, NULL, NULL, &err) == SQLITE_OK);
	if (err != NULL)
		fprintf(stderr, "undo v6: %s\n", err);
	sqlite3_free(err);
	sqlite3_close(db);

	CHECK(store_open(&opts, &st, NULL) == 1);
	memset(&mbi, 0, sizeof(mbi));
	CHECK(store_mailbox_get(st, ACCT, "INBOX", info_cb, NULL, NULL) == 1);
	CHECK(mbi.messages == 3 && mbi.unseen == 2 && mbi.deleted == 1 && mbi.size == 4 + 5 + 6);
	CHECK(mbi.subscribed);
	CHECK(store_mailbox_get(st, ACCT, "Trash", info_cb, NULL, NULL) == 1);
	CHECK(!mbi.subscribed && !mbi.noselect);
	/* and the counts follow changes from then on */
	uint32_t two = 2;
	CHECK(store_message_flags(st, ACCT, "INBOX", &two, 1, STORE_FLAGS_SET, "\\Seen", 0, NULL,
	                          NULL, NULL) == 1);
	CHECK(store_mailbox_get(st, ACCT, "INBOX", info_cb, NULL, NULL) == 1);
	CHECK(mbi.messages == 3 && mbi.unseen == 1 && mbi.deleted == 0);
	store_close(&st);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	struct store *st;

	if (mkdtemp(data_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	st = open_store();
	CHECK(store_domain_add(st, "example.test", NULL) == 1);
	CHECK(store_account_add(st, ACCT, "x", NULL) == 1);
	CHECK(store_account_add(st, OTHER, "x", NULL) == 1);
	test_get_and_list(st);
	test_flags(st);
	test_changes_expunge(st);
	test_message_ranges(st);
	test_watch(st);
	test_copy(st);
	test_append(st);
	test_blob_cache(st);
	test_create_delete(st);
	test_rename(st);
	test_subscriptions(st);
	test_concurrent(st);
	store_close(&st);
	test_reopen();
	test_migrate_v5();
	test_expunge_log_prune();

	nftw(data_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return unit_finish("store_imap");
}
