/* imap_uidmap: sequence numbers to UIDs as runs, checked against a plain array
 * through appends and removals at every position (first, last, inside a run,
 * a run of one), and by a long random sequence. */
#include <stdlib.h>

#include "imap/imap_uidmap.h"
#include "unit.h"

/* The map against the model model[0..n): every seq, every UID from 0 to max+2. */
static int same(const struct imap_uidmap *m, const uint32_t *model, uint32_t n)
{
	if (m->n != n)
		return 0;
	if (imap_uidmap_max(m) != (n > 0 ? model[n - 1] : 0))
		return 0;
	if (imap_uidmap_uid(m, 0) != 0 || imap_uidmap_uid(m, n + 1) != 0)
		return 0;
	uint32_t k = 0, top = n > 0 ? model[n - 1] + 2 : 2;
	for (uint32_t seq = 1; seq <= n; seq++)
		if (imap_uidmap_uid(m, seq) != model[seq - 1])
			return 0;
	for (uint32_t uid = 0; uid <= top; uid++) {
		while (k < n && model[k] < uid)
			k++;
		uint32_t want = k < n && model[k] == uid ? k + 1 : 0;
		if (imap_uidmap_seq(m, uid) != want)
			return 0;
	}
	/* the runs are maximal: no two of them adjacent in UID space */
	for (uint32_t i = 0; i + 1 < m->nruns; i++) {
		uint32_t u, len, u2, len2;
		imap_uidmap_run(m, i, &u, &len);
		imap_uidmap_run(m, i + 1, &u2, &len2);
		if (len == 0 || u + len >= u2)
			return 0;
	}
	return 1;
}

static void test_basic(void)
{
	struct imap_uidmap m = {0};
	uint32_t model[16] = {0};
	uint32_t n = 0;
	CHECK(same(&m, model, 0));
	CHECK(imap_uidmap_append(&m, 0) < 0);
	/* 1..5, 8, 9, 20 */
	static const uint32_t add[] = {1, 2, 3, 4, 5, 8, 9, 20};
	for (size_t i = 0; i < sizeof(add) / sizeof(add[0]); i++) {
		CHECK(imap_uidmap_append(&m, add[i]) == 1);
		model[n++] = add[i];
	}
	CHECK(m.nruns == 3);
	CHECK(same(&m, model, n));
	CHECK(imap_uidmap_append(&m, 20) < 0); /* not above the last */
	CHECK(imap_uidmap_append(&m, 7) < 0);
	CHECK(imap_uidmap_seq(&m, 8) == 6);
	/* lower: 1..5 | 8 9 | 20 */
	CHECK(imap_uidmap_lower(&m, 0) == 1 && imap_uidmap_lower(&m, 3) == 3);
	CHECK(imap_uidmap_lower(&m, 6) == 6 && imap_uidmap_lower(&m, 9) == 7);
	CHECK(imap_uidmap_lower(&m, 10) == 8 && imap_uidmap_lower(&m, 21) == 9);
	CHECK(imap_uidmap_uid(&m, 8) == 20);
	/* inside a run: 1 2 | 4 5 */
	CHECK(imap_uidmap_remove(&m, 3) == 1);
	memmove(&model[2], &model[3], (n - 3) * sizeof(model[0]));
	n--;
	CHECK(m.nruns == 4);
	CHECK(same(&m, model, n));
	/* first of a run (4), last of a run (9), a run of one (20) */
	static const uint32_t seqs[] = {3, 5, 5};
	for (size_t i = 0; i < 3; i++) {
		CHECK(imap_uidmap_remove(&m, seqs[i]) == 1);
		memmove(&model[seqs[i] - 1], &model[seqs[i]], (n - seqs[i]) * sizeof(model[0]));
		n--;
		CHECK(same(&m, model, n));
	}
	CHECK(n == 4 && model[3] == 8);
	/* out of range: nothing */
	CHECK(imap_uidmap_remove(&m, 0) == 1 && imap_uidmap_remove(&m, 9) == 1);
	CHECK(same(&m, model, n));
	struct imap_uidmap c;
	CHECK(imap_uidmap_copy(&c, &m) == 1);
	CHECK(same(&c, model, n));
	imap_uidmap_free(&c);
	while (n > 0) {
		CHECK(imap_uidmap_remove(&m, 1) == 1);
		memmove(&model[0], &model[1], (n - 1) * sizeof(model[0]));
		n--;
		CHECK(same(&m, model, n));
	}
	CHECK(m.nruns == 0);
	/* empty again: any UID may start it */
	CHECK(imap_uidmap_append(&m, 3) == 1);
	model[n++] = 3;
	CHECK(same(&m, model, n));
	imap_uidmap_trim(&m);
	CHECK(imap_uidmap_bytes(&m) == sizeof(struct imap_uidrun));
	imap_uidmap_free(&m);
	CHECK(m.runs == NULL && m.n == 0);
}

/* A 1,000-message mailbox appended to in order is one run of 8 octets. */
static void test_compact(void)
{
	struct imap_uidmap m = {0};
	for (uint32_t u = 1; u <= 1000; u++)
		CHECK(imap_uidmap_append(&m, u) == 1);
	imap_uidmap_trim(&m);
	CHECK(m.nruns == 1);
	CHECK(imap_uidmap_bytes(&m) == 8);
	CHECK(imap_uidmap_uid(&m, 1000) == 1000 && imap_uidmap_seq(&m, 1000) == 1000);
	imap_uidmap_free(&m);
}

static void test_random(void)
{
	enum { MAX = 600 };
	static uint32_t model[MAX];
	uint32_t n = 0, next = 1;
	struct imap_uidmap m = {0};
	srand(8);
	int ok = 1;
	for (int step = 0; step < 4000 && ok; step++) {
		int r = rand() % 10;
		if (n < MAX && (r < 6 || n == 0)) {
			next += (uint32_t)(rand() % 3 == 0 ? 1 + rand() % 4 : 0);
			if (imap_uidmap_append(&m, next) != 1)
				ok = 0;
			model[n++] = next++;
		} else {
			uint32_t seq = 1 + (uint32_t)rand() % n;
			if (imap_uidmap_remove(&m, seq) != 1)
				ok = 0;
			memmove(&model[seq - 1], &model[seq], (n - seq) * sizeof(model[0]));
			n--;
		}
		if (step % 7 == 0 && !same(&m, model, n))
			ok = 0;
		/* lower: the first message with a UID >= u, against the model */
		uint32_t u = 1 + (uint32_t)rand() % (next + 2), want = 1;
		while (want <= n && model[want - 1] < u)
			want++;
		if (imap_uidmap_lower(&m, u) != want)
			ok = 0;
	}
	CHECK(ok);
	CHECK(same(&m, model, n));
	imap_uidmap_free(&m);
}

int main(void)
{
	test_basic();
	test_compact();
	test_random();
	return unit_finish("imap_uidmap");
}
