/* Unit tests for segment files (src/store/blob_seg.c) and the store's use of them:
 * where small and large blobs go, reading them back (whole and by range), one
 * active segment per writer, roll-over, crash leftovers, the sweep of dead
 * segments and the compaction of mostly dead ones. */
#include "unit.h"

#include "store/blob.h"
#include "store/blob_seg.h"
#include "store/store.h"

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char data_dir[] = "/tmp/hermod-test-seg.XXXXXX";

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

/* Files under data_dir/blobs/<sub> */
static int count_files(const char *sub)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/blobs/%s", data_dir, sub);
	nfiles = 0;
	nftw(path, count_cb, 16, FTW_PHYS);
	return nfiles;
}

/* Files of their own (blobs/ab/<id>), not segments */
static int count_blob_files(void)
{
	return count_files("") - count_files("seg");
}

static struct store *open_seg_store(uint64_t segment_size, bool segments_off)
{
	struct store_options opts = {.data_dir = data_dir,
	                             .fsync = true,
	                             .segment_size = segment_size,
	                             .segments_off = segments_off};
	struct store *st = NULL;
	char *error = NULL;

	if (store_open(&opts, &st, &error) != 1) {
		fprintf(stderr, "store_open: %s\n", error ? error : "?");
		free(error);
		exit(1);
	}
	return st;
}

/* One integer out of the database (a separate connection, as another process). */
static int64_t db_int(const char *sql)
{
	char path[512];
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;
	int64_t v = -1;

	snprintf(path, sizeof(path), "%s/hermod.db", data_dir);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK &&
	    sqlite3_step(stmt) == SQLITE_ROW)
		v = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return v;
}

static uint32_t deliver(struct store *st, const char *acct, const char *data, size_t len)
{
	const char *accts[] = {acct};
	uint32_t uid = 0;
	char *error = NULL;
	struct store_delivery d = {.accounts = accts, .naccounts = 1, .data = data, .len = len};

	if (store_deliver(st, &d, &uid, &error) != 1) {
		fprintf(stderr, "deliver: %s\n", error ? error : "?");
		CHECK(0);
	}
	free(error);
	return uid;
}

/* Message i's bytes (distinct per i and tag) into buf; returns the length. */
static size_t make_msg(char *buf, size_t size, const char *tag, int i)
{
	int n = snprintf(buf, size, "Subject: %s %d\r\n\r\n", tag, i);
	for (int k = 0; n < (int)size - 40 && k < 20 + i % 7; k++)
		n += snprintf(buf + n, size - (size_t)n, "line %d of message %s/%d\r\n", k, tag, i);
	return (size_t)n;
}

static bool message_is(struct store *st, const char *acct, uint32_t uid, const char *want,
                       size_t wlen)
{
	char *data = NULL;
	size_t len = 0;
	bool ok = store_message_get(st, acct, "INBOX", uid, &data, &len, NULL) == 1 &&
	          len == wlen && memcmp(data, want, len) == 0;
	free(data);
	return ok;
}

/* Segment file mtimes pushed age seconds into the past. */
static void age_segments(int age)
{
	char path[600];
	struct timespec ts[2];

	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= age;
	ts[1] = ts[0];
	for (uint32_t no = 1; no < 64; no++) {
		if (blob_seg_path(data_dir, no, path, sizeof(path)) > 0 && access(path, F_OK) == 0)
			CHECK(utimensat(AT_FDCWD, path, ts, 0) == 0);
	}
}

struct msgs {
	uint32_t uids[256];
	char blob[BLOB_ID_LEN + 1];
	int n;
};

static void message_cb(void *ctx, const struct store_message_info *m)
{
	struct msgs *ms = ctx;
	if (ms->n < 256)
		ms->uids[ms->n] = m->uid;
	snprintf(ms->blob, sizeof(ms->blob), "%s", m->blob_id);
	ms->n++;
}

static void test_placement(void)
{
	struct store *st = open_seg_store(0, false);
	char small[4096], *big;
	size_t slen = make_msg(small, sizeof(small), "small", 1);
	size_t blen = STORE_SEGMENT_BLOB_MAX + 1;

	CHECK(store_domain_add(st, "a.test", NULL) == 1);
	CHECK(store_account_add(st, "alice@a.test", "h", NULL) == 1);
	CHECK(store_account_add(st, "bob@a.test", "h", NULL) == 1);
	int files_before = count_blob_files();

	/* small: into a segment, no file of its own */
	uint32_t u1 = deliver(st, "alice@a.test", small, slen);
	CHECK(u1 == 1);
	CHECK(count_blob_files() == files_before);
	CHECK(count_files("seg") == 1);
	CHECK(db_int("SELECT count(*) FROM blobs WHERE seg = 1 AND off = 0") == 1);
	CHECK(message_is(st, "alice@a.test", u1, small, slen));

	/* the second lands after the first, in the same segment */
	char small2[4096];
	size_t slen2 = make_msg(small2, sizeof(small2), "small", 2);
	uint32_t u2 = deliver(st, "alice@a.test", small2, slen2);
	CHECK(db_int("SELECT max(off) FROM blobs WHERE seg = 1") == (int64_t)slen);
	CHECK(message_is(st, "alice@a.test", u2, small2, slen2));

	/* read by range: the fd is the segment, off/len the blob's place in it */
	struct msgs ms = {0};
	CHECK(store_message_list(st, "alice@a.test", "INBOX", message_cb, &ms, NULL) == 1);
	CHECK(ms.n == 2);
	struct store_blob_range r;
	CHECK(store_blob_open(st, ms.blob, &r, NULL) == 1);
	CHECK(r.fd >= 0 && r.off == slen && r.len == slen2);
	char buf[4096];
	CHECK(pread(r.fd, buf, r.len, (off_t)r.off) == (ssize_t)slen2 &&
	      memcmp(buf, small2, slen2) == 0);
	store_blob_range_close(&r);
	char *data = NULL;
	size_t len = 0;
	CHECK(store_blob_get(st, ms.blob, &data, &len, NULL) == 1 && len == slen2 &&
	      memcmp(data, small2, len) == 0);
	free(data);

	/* large: a file of its own */
	big = malloc(blen);
	CHECK(big != NULL);
	if (big == NULL)
		return;
	memset(big, 'x', blen);
	memcpy(big, "Subject: big\r\n\r\n", 16);
	uint32_t u3 = deliver(st, "alice@a.test", big, blen);
	CHECK(count_blob_files() == files_before + 1);
	CHECK(db_int("SELECT count(*) FROM blobs WHERE seg IS NULL") == 1);
	CHECK(message_is(st, "alice@a.test", u3, big, blen));
	free(big);

	/* the same small content again: one row, two references, first place kept */
	uint32_t u4 = deliver(st, "bob@a.test", small, slen);
	CHECK(db_int("SELECT count(*) FROM blobs") == 3);
	CHECK(db_int("SELECT refcount FROM blobs WHERE seg = 1 AND off = 0") == 2);
	CHECK(message_is(st, "bob@a.test", u4, small, slen));
	store_close(&st);

	/* reopened: appends go on in the same (not full) segment */
	st = open_seg_store(0, false);
	char small3[4096];
	size_t slen3 = make_msg(small3, sizeof(small3), "small", 3);
	uint32_t u5 = deliver(st, "bob@a.test", small3, slen3);
	CHECK(count_files("seg") == 1);
	CHECK(db_int("SELECT count(*) FROM blobs WHERE seg = 1") == 3);
	CHECK(message_is(st, "bob@a.test", u5, small3, slen3));
	CHECK(message_is(st, "alice@a.test", u1, small, slen));
	store_close(&st);
}

/* Two writers on one data_dir (the server and the CLI) never share a segment. */
static void test_two_writers(void)
{
	struct store *a = open_seg_store(0, false), *b = open_seg_store(0, false);
	char m[4096];
	size_t len;

	len = make_msg(m, sizeof(m), "writer-a", 1);
	uint32_t ua = deliver(a, "alice@a.test", m, len);
	CHECK(message_is(b, "alice@a.test", ua, m, len));
	len = make_msg(m, sizeof(m), "writer-b", 1);
	uint32_t ub = deliver(b, "alice@a.test", m, len);
	CHECK(message_is(a, "alice@a.test", ub, m, len));
	/* a holds segment 1 (reopened from the test before), b had to start segment 2 */
	CHECK(db_int("SELECT count(DISTINCT seg) FROM blobs WHERE seg IS NOT NULL") == 2);
	CHECK(count_files("seg") == 2);
	store_close(&a);
	store_close(&b);
}

struct writer {
	struct store *st;
	int id, failures;
};

#define NTHREADS 8
#define PER_THREAD 50

static void *writer_run(void *arg)
{
	struct writer *w = arg;
	char m[4096];

	for (int i = 0; i < PER_THREAD; i++) {
		size_t len = make_msg(m, sizeof(m), "thread", w->id * 1000 + i);
		const char *accts[] = {"carol@a.test"};
		struct store_delivery d = {
		    .accounts = accts, .naccounts = 1, .data = m, .len = len};
		if (store_deliver(w->st, &d, NULL, NULL) != 1)
			w->failures++;
	}
	return NULL;
}

/* Concurrent deliveries into small segments (rolled over every ~8 KiB): every
 * message intact, segments never overfull by more than one blob. */
static void test_concurrent_rollover(void)
{
	struct store *st = open_seg_store(8192, false);
	pthread_t th[NTHREADS];
	struct writer w[NTHREADS];
	int failures = 0;

	CHECK(store_account_add(st, "carol@a.test", "h", NULL) == 1);
	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct writer){.st = st, .id = i};
		pthread_create(&th[i], NULL, writer_run, &w[i]);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		failures += w[i].failures;
	}
	CHECK(failures == 0);
	CHECK(db_int("SELECT count(*) FROM messages m JOIN mailboxes x ON x.id = m.mailbox"
	             " JOIN accounts a ON a.id = x.account WHERE a.address = 'carol@a.test'") ==
	      NTHREADS * PER_THREAD);
	CHECK(count_files("seg") > 10);
	/* no two blobs overlap, and none starts past the roll-over size */
	CHECK(db_int("SELECT count(*) FROM blobs a JOIN blobs b ON a.seg = b.seg AND a.id < b.id"
	             " WHERE a.off < b.off + b.size AND b.off < a.off + a.size") == 0);
	CHECK(db_int("SELECT count(*) FROM blobs WHERE seg IS NOT NULL AND off >= 8192") == 0);

	int bad = 0;
	char m[4096];
	for (uint32_t uid = 1; uid <= NTHREADS * PER_THREAD; uid++) {
		char *data = NULL;
		size_t len = 0;
		if (store_message_get(st, "carol@a.test", "INBOX", uid, &data, &len, NULL) != 1) {
			bad++;
			continue;
		}
		/* the Subject names the message: rebuild it and compare */
		int id = -1;
		if (sscanf(data, "Subject: thread %d", &id) != 1)
			bad++;
		else {
			size_t want = make_msg(m, sizeof(m), "thread", id);
			bad += want != len || memcmp(m, data, len) != 0;
		}
		free(data);
	}
	CHECK(bad == 0);
	store_close(&st);
}

/* Bytes a crash left after the last committed blob are never read, and the
 * writer appends after them. */
static void test_crash_leftover(void)
{
	struct store *st = open_seg_store(0, false);
	char m[4096], path[600];
	size_t len = make_msg(m, sizeof(m), "before-crash", 1);
	uint32_t u1 = deliver(st, "alice@a.test", m, len);
	int64_t seg = db_int("SELECT max(seg) FROM blobs");
	store_close(&st);

	/* a torn append: garbage at the end of the segment, no row for it */
	CHECK(blob_seg_path(data_dir, (uint32_t)seg, path, sizeof(path)) == 1);
	int fd = open(path, O_WRONLY | O_APPEND);
	CHECK(fd >= 0);
	CHECK(write(fd, "GARBAGE", 7) == 7);
	struct stat sb;
	CHECK(fstat(fd, &sb) == 0);
	close(fd);

	st = open_seg_store(0, false);
	CHECK(message_is(st, "alice@a.test", u1, m, len));
	char m2[4096];
	size_t len2 = make_msg(m2, sizeof(m2), "after-crash", 1);
	uint32_t u2 = deliver(st, "alice@a.test", m2, len2);
	CHECK(message_is(st, "alice@a.test", u2, m2, len2));
	char sql[200];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM blobs WHERE seg = %lld AND off = %lld",
	         (long long)seg, (long long)sb.st_size);
	CHECK(db_int(sql) == 1); /* after the garbage, not over it */
	store_close(&st);
}

static int64_t uid_list(struct store *st, const char *acct, uint32_t *uids, int max)
{
	struct msgs ms = {0};
	CHECK(store_message_list(st, acct, "INBOX", message_cb, &ms, NULL) == 1);
	for (int i = 0; i < ms.n && i < max; i++)
		uids[i] = ms.uids[i];
	return ms.n;
}

/* A segment nobody names any more is removed by the sweep once it is old enough
 * and nobody writes to it; a mostly dead one has its live blobs moved out. */
static void test_sweep_and_compaction(void)
{
	/* start from an empty store */
	nftw(data_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	CHECK(mkdir(data_dir, 0700) == 0);
	struct store *st = open_seg_store(0, false);
	char m[10][4096];
	size_t len[10];
	uint32_t uids[10];

	CHECK(store_domain_add(st, "a.test", NULL) == 1);
	CHECK(store_account_add(st, "dave@a.test", "h", NULL) == 1);
	CHECK(store_account_add(st, "erin@a.test", "h", NULL) == 1);
	for (int i = 0; i < 10; i++) {
		len[i] = make_msg(m[i], sizeof(m[i]), "sweep", i);
		uids[i] = deliver(st, i < 8 ? "dave@a.test" : "erin@a.test", m[i], len[i]);
	}
	CHECK(count_files("seg") == 1);

	/* the active segment is never swept, however old and dead */
	uint32_t dave[8];
	CHECK(uid_list(st, "dave@a.test", dave, 8) == 8);
	CHECK(store_message_expunge(st, "dave@a.test", "INBOX", dave, 8, NULL) == 8);
	age_segments(2 * STORE_BLOB_SWEEP_AGE);
	uint64_t removed = 99;
	CHECK(store_blob_sweep(st, 0, &removed, NULL) == 1);
	CHECK(removed == 0);
	CHECK(count_files("seg") == 1);
	CHECK(db_int("SELECT count(*) FROM blobs WHERE seg = 1") == 2);
	store_close(&st);

	/* reopened (the lock is free now): 2 of 10 blobs live, so they move to a new
	 * segment and the old one goes */
	age_segments(2 * STORE_BLOB_SWEEP_AGE);
	st = open_seg_store(0, false);
	CHECK(db_int("SELECT count(*) FROM blobs WHERE seg = 1") == 0);
	CHECK(db_int("SELECT count(*) FROM blobs WHERE seg = 2") == 2);
	char path[600];
	CHECK(blob_seg_path(data_dir, 1, path, sizeof(path)) == 1 && access(path, F_OK) != 0);
	CHECK(count_files("seg") == 1);
	CHECK(message_is(st, "erin@a.test", uids[8], m[8], len[8]));
	CHECK(message_is(st, "erin@a.test", uids[9], m[9], len[9]));
	/* a fresh dead segment stays until it is old (a delivery may be in flight) */
	store_close(&st);
	st = open_seg_store(0, false);
	uint32_t erin[2];
	CHECK(uid_list(st, "erin@a.test", erin, 2) == 2);
	CHECK(store_message_expunge(st, "erin@a.test", "INBOX", erin, 2, NULL) == 2);
	store_close(&st);
	st = open_seg_store(0, false); /* sweeps at open, age 1 hour: too young */
	CHECK(count_files("seg") == 1);
	store_close(&st);
	age_segments(2 * STORE_BLOB_SWEEP_AGE);
	st = open_seg_store(0, false);
	CHECK(count_files("seg") == 0);
	CHECK(db_int("SELECT count(*) FROM blobs") == 0);

	/* and the store goes on: a new segment */
	char m2[4096];
	size_t len2 = make_msg(m2, sizeof(m2), "after-sweep", 1);
	uint32_t u = deliver(st, "dave@a.test", m2, len2);
	CHECK(message_is(st, "dave@a.test", u, m2, len2));
	CHECK(count_files("seg") == 1);
	store_close(&st);
}

/* A segment of more blobs than one compaction transaction moves (256): every
 * live one moves, in offset order batches, and the old segment goes. */
static void test_compaction_in_batches(void)
{
	nftw(data_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	CHECK(mkdir(data_dir, 0700) == 0);
	struct store *st = open_seg_store(0, false);
	enum { N = 1200 };
	static uint32_t uids[N], gone[N];
	size_t ngone = 0;
	char m[4096];

	CHECK(store_domain_add(st, "a.test", NULL) == 1);
	CHECK(store_account_add(st, "gina@a.test", "h", NULL) == 1);
	for (int i = 0; i < N; i++) {
		size_t len = make_msg(m, sizeof(m), "batch", i);
		uids[i] = deliver(st, "gina@a.test", m, len);
		if (i % 3 != 0)
			gone[ngone++] = uids[i];
	}
	CHECK(store_message_expunge(st, "gina@a.test", "INBOX", gone, ngone, NULL) ==
	      (int)ngone);
	store_close(&st);
	age_segments(2 * STORE_BLOB_SWEEP_AGE);
	st = open_seg_store(0, false); /* sweeps: about a third live, so it compacts */
	CHECK(db_int("SELECT count(*) FROM blobs WHERE seg = 1") == 0);
	CHECK(db_int("SELECT count(*) FROM blobs WHERE seg = 2") == (N + 2) / 3);
	CHECK(count_files("seg") == 1);
	int bad = 0;
	for (int i = 0; i < N; i += 3) {
		size_t len = make_msg(m, sizeof(m), "batch", i);
		bad += !message_is(st, "gina@a.test", uids[i], m, len);
	}
	CHECK(bad == 0);
	store_close(&st);
}

/* Blobs stored as files before segments (or with segments off) keep working, and
 * the same content delivered later keeps its file. */
static void test_mixed_layouts(void)
{
	nftw(data_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	CHECK(mkdir(data_dir, 0700) == 0);
	struct store *st = open_seg_store(0, true);
	char m[4096];
	size_t len = make_msg(m, sizeof(m), "file-era", 1);

	CHECK(store_domain_add(st, "a.test", NULL) == 1);
	CHECK(store_account_add(st, "alice@a.test", "h", NULL) == 1);
	uint32_t u1 = deliver(st, "alice@a.test", m, len);
	CHECK(count_blob_files() == 1 && count_files("seg") == 0);
	store_close(&st);

	st = open_seg_store(0, false);
	CHECK(message_is(st, "alice@a.test", u1, m, len));
	uint32_t u2 = deliver(st, "alice@a.test", m, len); /* same bytes */
	CHECK(db_int("SELECT count(*) FROM blobs") == 1);
	CHECK(db_int("SELECT refcount FROM blobs WHERE seg IS NULL") == 2);
	CHECK(message_is(st, "alice@a.test", u2, m, len));
	char m2[4096];
	size_t len2 = make_msg(m2, sizeof(m2), "segment-era", 1);
	uint32_t u3 = deliver(st, "alice@a.test", m2, len2);
	CHECK(db_int("SELECT count(*) FROM blobs WHERE seg IS NOT NULL") == 1);
	CHECK(message_is(st, "alice@a.test", u3, m2, len2));
	store_close(&st);
}

/* With sweep_interval, a thread of the store sweeps on its own: a segment another
 * writer left dead goes without any call. */
static void test_periodic_sweep(void)
{
	struct store_options opts = {
	    .data_dir = data_dir, .fsync = false, .blob_sweep_age = 1, .sweep_interval = 1};
	struct store *sweeper = NULL, *w = open_seg_store(0, false);
	char m[4096], path[600];
	size_t len = make_msg(m, sizeof(m), "periodic", 1);

	CHECK(store_open(&opts, &sweeper, NULL) == 1);
	CHECK(store_account_add(w, "frank@a.test", "h", NULL) == 1);
	CHECK(deliver(w, "frank@a.test", m, len) > 0);
	uint32_t no = (uint32_t)db_int("SELECT max(seg) FROM blobs");
	uint32_t frank[4];
	int64_t n = uid_list(w, "frank@a.test", frank, 4);
	CHECK(n == 1);
	CHECK(store_message_expunge(w, "frank@a.test", "INBOX", frank, (size_t)n, NULL) == 1);
	store_close(&w); /* its lock goes: the segment is dead and free */
	age_segments(10);
	CHECK(blob_seg_path(data_dir, no, path, sizeof(path)) == 1);
	int waited = 0;
	while (access(path, F_OK) == 0 && waited < 100) {
		usleep(100 * 1000);
		waited++;
	}
	CHECK(access(path, F_OK) != 0);
	store_close(&sweeper); /* stops the thread */
}

int main(void)
{
	if (mkdtemp(data_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_placement();
	test_two_writers();
	test_concurrent_rollover();
	test_crash_leftover();
	test_sweep_and_compaction();
	test_compaction_in_batches();
	test_mixed_layouts();
	test_periodic_sweep();
	nftw(data_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return unit_finish("store_seg");
}
