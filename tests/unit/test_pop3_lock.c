/* Unit tests for the POP3 maildrop lock and login-time table
 * (src/pop3/pop3_lock.c): lock/unlock, case-insensitive accounts, LOGIN-DELAY
 * times, many accounts, the bound on memory (a full table refuses, never grows),
 * and concurrent use from several threads. */
#include "unit.h"

#include "pop3/pop3_lock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define T0 1700000000000LL
#define SEC 1000LL

static void test_lock_unlock(void)
{
	struct pop3_lock *l = pop3_lock_memory_new(0);
	CHECK(l != NULL);
	CHECK(pop3_lock_acquire(l, "alice@example.org", 0, T0) == POP3_LOCK_OK);
	CHECK(pop3_lock_acquire(l, "alice@example.org", 0, T0) == POP3_LOCK_IN_USE);
	CHECK(pop3_lock_acquire(l, "ALICE@Example.ORG", 0, T0) == POP3_LOCK_IN_USE);
	CHECK(pop3_lock_acquire(l, "bob@example.org", 0, T0) == POP3_LOCK_OK);
	CHECK(pop3_lock_count(l) == 2);
	pop3_lock_release(l, "Alice@example.org", 0, T0);
	CHECK(pop3_lock_acquire(l, "alice@example.org", 0, T0) == POP3_LOCK_OK);
	pop3_lock_release(l, "alice@example.org", 0, T0);
	pop3_lock_release(l, "alice@example.org", 0, T0); /* not held: no-op */
	pop3_lock_release(l, "nobody@example.org", 0, T0);
	pop3_lock_release(l, "bob@example.org", 0, T0);
	/* without a login time that matters nothing is kept */
	CHECK(pop3_lock_count(l) == 0);
	/* a refused acquire leaves nothing behind either */
	CHECK(pop3_lock_acquire(l, "carol@example.org", 0, T0) == POP3_LOCK_OK);
	CHECK(pop3_lock_acquire(l, "carol@example.org", 0, T0) == POP3_LOCK_IN_USE);
	pop3_lock_release(l, "carol@example.org", 0, T0);
	CHECK(pop3_lock_count(l) == 0);
	pop3_lock_free(&l);
	CHECK(l == NULL);
	pop3_lock_free(&l); /* NULL is fine */
}

static void test_login_delay(void)
{
	struct pop3_lock *l = pop3_lock_memory_new(0);
	int64_t ms = 0;
	CHECK(pop3_lock_last_login(l, "a@x", &ms) == 0);
	CHECK(pop3_lock_acquire(l, "a@x", 60, T0) == POP3_LOCK_OK);
	pop3_lock_note_login(l, "a@x", T0 + 5);
	CHECK(pop3_lock_last_login(l, "A@X", &ms) == 1 && ms == T0 + 5);
	/* held: IN_USE comes first, whatever the delay */
	CHECK(pop3_lock_acquire(l, "a@x", 60, T0 + 10) == POP3_LOCK_IN_USE);
	pop3_lock_release(l, "a@x", 60, T0 + 10 * SEC);
	CHECK(pop3_lock_count(l) == 1); /* the login time still matters */
	CHECK(pop3_lock_acquire(l, "a@x", 60, T0 + 10 * SEC) == POP3_LOCK_TOO_SOON);
	CHECK(pop3_lock_acquire(l, "a@x", 60, T0 + 5 + 60 * SEC - 1) == POP3_LOCK_TOO_SOON);
	CHECK(pop3_lock_acquire(l, "a@x", 60, T0 + 5 + 60 * SEC) == POP3_LOCK_OK);
	pop3_lock_release(l, "a@x", 60, T0 + 61 * SEC);
	/* the last login was more than 60 s ago: forgotten at release */
	CHECK(pop3_lock_count(l) == 0);
	/* a delay of 0 never refuses */
	CHECK(pop3_lock_acquire(l, "b@x", 0, T0) == POP3_LOCK_OK);
	pop3_lock_note_login(l, "b@x", T0);
	pop3_lock_release(l, "b@x", 0, T0);
	CHECK(pop3_lock_acquire(l, "b@x", 0, T0) == POP3_LOCK_OK);
	pop3_lock_release(l, "b@x", 0, T0);
	/* note_login without the lock held records nothing */
	pop3_lock_note_login(l, "c@x", T0);
	CHECK(pop3_lock_last_login(l, "c@x", &ms) == 0);
	pop3_lock_free(&l);
}

static void test_many_and_bounded(void)
{
	enum { MAX = 1000 };
	struct pop3_lock *l = pop3_lock_memory_new(MAX);
	char name[64];
	/* MAX accounts locked: the next one is refused, the table does not grow */
	for (int i = 0; i < MAX; i++) {
		snprintf(name, sizeof(name), "user%d@example.org", i);
		CHECK(pop3_lock_acquire(l, name, 3600, T0) == POP3_LOCK_OK);
	}
	CHECK(pop3_lock_count(l) == MAX);
	CHECK(pop3_lock_acquire(l, "extra@example.org", 3600, T0) == POP3_LOCK_ERROR);
	CHECK(pop3_lock_count(l) == MAX);
	for (int i = 0; i < MAX; i++) {
		snprintf(name, sizeof(name), "user%d@example.org", i);
		CHECK(pop3_lock_acquire(l, name, 3600, T0) == POP3_LOCK_IN_USE);
	}
	/* each logs in and leaves: their login times (3600 s) fill the table */
	for (int i = 0; i < MAX; i++) {
		snprintf(name, sizeof(name), "user%d@example.org", i);
		pop3_lock_note_login(l, name, T0 + i);
		pop3_lock_release(l, name, 3600, T0 + i);
	}
	CHECK(pop3_lock_count(l) == MAX);
	/* still needed: refused */
	CHECK(pop3_lock_acquire(l, "extra@example.org", 3600, T0 + 10 * SEC) == POP3_LOCK_ERROR);
	/* an hour later they no longer matter: new accounts get in, old ones go */
	for (int i = 0; i < 3 * MAX; i++) {
		snprintf(name, sizeof(name), "new%d@example.org", i);
		CHECK(pop3_lock_acquire(l, name, 3600, T0 + 3601 * SEC) == POP3_LOCK_OK);
		pop3_lock_release(l, name, 3600, T0 + 3601 * SEC);
		CHECK(pop3_lock_count(l) <= MAX);
	}
	snprintf(name, sizeof(name), "user%d@example.org", 0);
	CHECK(pop3_lock_acquire(l, name, 3600, T0 + 3601 * SEC) == POP3_LOCK_OK);
	/* an overlong name is refused, not truncated into someone else's */
	size_t biglen = 5000;
	char *big = malloc(biglen + 1);
	memset(big, 'a', biglen);
	big[biglen] = '\0';
	CHECK(pop3_lock_acquire(l, big, 0, T0) == POP3_LOCK_ERROR);
	free(big);
	pop3_lock_free(&l);
}

/* ---- threads: each takes and gives back the same few accounts; the lock is
 * never held twice ---- */

#define THREADS 4
#define ROUNDS 20000

static struct pop3_lock *shared;
static int holders[8];
static pthread_mutex_t holders_mutex = PTHREAD_MUTEX_INITIALIZER;
static int violations;

static void *thread_run(void *arg)
{
	unsigned seed = (unsigned)(size_t)arg;
	char name[32];
	for (int i = 0; i < ROUNDS; i++) {
		int a = (int)(rand_r(&seed) % 8);
		snprintf(name, sizeof(name), "acct%d", a);
		if (pop3_lock_acquire(shared, name, 0, T0) != POP3_LOCK_OK)
			continue;
		pthread_mutex_lock(&holders_mutex);
		if (++holders[a] != 1)
			violations++;
		pthread_mutex_unlock(&holders_mutex);
		pthread_mutex_lock(&holders_mutex);
		holders[a]--;
		pthread_mutex_unlock(&holders_mutex);
		pop3_lock_release(shared, name, 0, T0);
	}
	return NULL;
}

static void test_threads(void)
{
	shared = pop3_lock_memory_new(0);
	pthread_t t[THREADS];
	for (size_t i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, thread_run, (void *)(i + 1));
	for (size_t i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	CHECK(violations == 0);
	CHECK(pop3_lock_count(shared) == 0);
	pop3_lock_free(&shared);
}

static void test_default(void)
{
	struct pop3_lock *l = pop3_lock_default();
	CHECK(l != NULL && pop3_lock_default() == l);
	CHECK(pop3_lock_acquire(l, "d@x", 0, T0) == POP3_LOCK_OK);
	pop3_lock_default_free();
	l = pop3_lock_default(); /* a fresh table */
	CHECK(pop3_lock_acquire(l, "d@x", 0, T0) == POP3_LOCK_OK);
	pop3_lock_default_free();
}

int main(void)
{
	test_lock_unlock();
	test_login_delay();
	test_many_and_bounded();
	test_threads();
	test_default();
	return unit_finish("pop3_lock");
}
