/* Authentication throttling: one hash table of IP and account keys (prefixed "i:"
 * and "a:"), each with a failure count, the start of its counting window and a
 * lockout deadline, chained in least-recently-failed order for eviction and
 * expiry. See throttle.h for the policy. */
#include "auth/throttle.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define THROTTLE_BASE_DELAY_MS 500u
#define THROTTLE_MIN_BUCKETS 64

struct throttle_entry {
	struct throttle_entry *hnext;               /* hash chain */
	struct throttle_entry *lru_prev, *lru_next; /* head = least recently failed */
	uint64_t hash;
	int64_t window_start_ms;
	int64_t last_ms;
	int64_t locked_until_ms;
	uint32_t failures;
	uint16_t keylen;
	char key[];
};

struct throttle {
	pthread_mutex_t lock; /* every public function holds it: several loops share one table */
	struct throttle_limits limits;
	struct throttle_entry **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
	size_t max_entries;
	struct throttle_entry *lru_head, *lru_tail;
	uint64_t seed;
};

/* Keys come from clients (account names) or from address space a client may own
 * (IPv6): the hash is seeded per process so chains cannot be aimed at. FNV-1a with
 * a seeded basis and a final mix; not a MAC, but the table is never shown. */
static uint64_t throttle_hash(const struct throttle *t, const char *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ t->seed;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

/* "i:<ip>" or "a:<account, ASCII lower-cased>", truncated to THROTTLE_KEY_MAX. */
static size_t throttle_key(char *buf, char kind, const char *name)
{
	size_t n = 0;
	buf[n++] = kind;
	buf[n++] = ':';
	for (; *name != '\0' && n < THROTTLE_KEY_MAX; name++) {
		char c = *name;
		if (kind == 'a' && c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		buf[n++] = c;
	}
	return n;
}

struct throttle *throttle_new(const struct throttle_limits *limits)
{
	struct throttle *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->nbuckets = THROTTLE_MIN_BUCKETS;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (t->buckets == NULL) {
		free(t);
		return NULL;
	}
	t->max_entries = THROTTLE_MAX_ENTRIES;
	pthread_mutex_init(&t->lock, NULL);
	if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != (ssize_t)sizeof(t->seed))
		t->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)t;
	throttle_set_limits(t, limits);
	return t;
}

void throttle_free(struct throttle **tp)
{
	struct throttle *t = *tp;
	if (t == NULL)
		return;
	struct throttle_entry *e = t->lru_head;
	while (e != NULL) {
		struct throttle_entry *next = e->lru_next;
		free(e);
		e = next;
	}
	free(t->buckets);
	pthread_mutex_destroy(&t->lock);
	free(t);
	*tp = NULL;
}

void throttle_set_limits(struct throttle *t, const struct throttle_limits *limits)
{
	pthread_mutex_lock(&t->lock);
	t->limits = *limits;
	pthread_mutex_unlock(&t->lock);
}

void throttle_set_max_entries(struct throttle *t, unsigned max_entries)
{
	pthread_mutex_lock(&t->lock);
	t->max_entries = max_entries == 0 ? THROTTLE_MAX_ENTRIES : max_entries;
	pthread_mutex_unlock(&t->lock);
}

unsigned throttle_count(const struct throttle *t)
{
	pthread_mutex_lock((pthread_mutex_t *)&t->lock);
	unsigned n = (unsigned)t->count;
	pthread_mutex_unlock((pthread_mutex_t *)&t->lock);
	return n;
}

static struct throttle_entry *throttle_find(struct throttle *t, const char *key, size_t len,
                                            uint64_t hash)
{
	struct throttle_entry *e = t->buckets[hash & (t->nbuckets - 1)];
	for (; e != NULL; e = e->hnext) {
		if (e->hash == hash && e->keylen == len && memcmp(e->key, key, len) == 0)
			return e;
	}
	return NULL;
}

static void lru_unlink(struct throttle *t, struct throttle_entry *e)
{
	if (e->lru_prev != NULL)
		e->lru_prev->lru_next = e->lru_next;
	else
		t->lru_head = e->lru_next;
	if (e->lru_next != NULL)
		e->lru_next->lru_prev = e->lru_prev;
	else
		t->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void lru_append(struct throttle *t, struct throttle_entry *e)
{
	e->lru_prev = t->lru_tail;
	e->lru_next = NULL;
	if (t->lru_tail != NULL)
		t->lru_tail->lru_next = e;
	else
		t->lru_head = e;
	t->lru_tail = e;
}

static void throttle_remove(struct throttle *t, struct throttle_entry *e)
{
	struct throttle_entry **pp = &t->buckets[e->hash & (t->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(t, e);
	t->count--;
	free(e);
}

/* Doubles the bucket array (keeps the old one if out of memory: chains get longer). */
static void throttle_grow(struct throttle *t)
{
	size_t n = t->nbuckets * 2;
	struct throttle_entry **b = calloc(n, sizeof(*b));
	if (b == NULL)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct throttle_entry *e = t->buckets[i];
		while (e != NULL) {
			struct throttle_entry *next = e->hnext;
			e->hnext = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
			e = next;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

static struct throttle_entry *throttle_get(struct throttle *t, const char *key, size_t len,
                                           uint64_t hash, int64_t now_ms)
{
	struct throttle_entry *e = throttle_find(t, key, len, hash);
	if (e != NULL)
		return e;
	/* bounded memory: forget the least recently failed key */
	while (t->count >= t->max_entries && t->lru_head != NULL)
		throttle_remove(t, t->lru_head);
	e = calloc(1, sizeof(*e) + len);
	if (e == NULL)
		return NULL;
	memcpy(e->key, key, len);
	e->keylen = (uint16_t)len;
	e->hash = hash;
	e->window_start_ms = now_ms;
	e->last_ms = now_ms;
	if (t->count >= t->nbuckets)
		throttle_grow(t);
	size_t i = hash & (t->nbuckets - 1);
	e->hnext = t->buckets[i];
	t->buckets[i] = e;
	lru_append(t, e);
	t->count++;
	return e;
}

static struct throttle_entry *throttle_lookup(struct throttle *t, char kind, const char *name)
{
	char key[THROTTLE_KEY_MAX];
	size_t len = throttle_key(key, kind, name);
	return throttle_find(t, key, len, throttle_hash(t, key, len));
}

static int64_t sec_ms(unsigned s)
{
	return (int64_t)s * 1000;
}

/* Counts one failure of a key; returns its failures in the current window. */
static uint32_t throttle_count_failure(struct throttle *t, char kind, const char *name,
                                       unsigned max, int64_t now_ms)
{
	char key[THROTTLE_KEY_MAX];
	size_t len = throttle_key(key, kind, name);
	struct throttle_entry *e = throttle_get(t, key, len, throttle_hash(t, key, len), now_ms);
	if (e == NULL)
		return 1; /* out of memory: still delay as for a first failure */

	if (e->failures == 0 || now_ms - e->window_start_ms >= sec_ms(t->limits.window)) {
		e->failures = 0;
		e->window_start_ms = now_ms;
	}
	if (e->failures < UINT32_MAX)
		e->failures++;
	e->last_ms = now_ms;
	lru_unlink(t, e);
	lru_append(t, e);
	if (max > 0 && e->failures >= max)
		e->locked_until_ms = now_ms + sec_ms(t->limits.lockout);
	return e->failures;
}

static bool throttle_refused_locked(struct throttle *t, const char *ip, const char *account, int64_t now_ms)
{
	struct throttle_entry *e;

	if (ip != NULL && (e = throttle_lookup(t, 'i', ip)) != NULL && e->locked_until_ms > now_ms)
		return true;
	if (account != NULL && (e = throttle_lookup(t, 'a', account)) != NULL &&
	    e->locked_until_ms > now_ms)
		return true;
	return false;
}

static unsigned throttle_failure_locked(struct throttle *t, const char *ip, const char *account, int64_t now_ms)
{
	uint32_t n = 0, m;

	if (ip != NULL)
		n = throttle_count_failure(t, 'i', ip, t->limits.max_failures, now_ms);
	if (account != NULL) {
		m = throttle_count_failure(t, 'a', account, t->limits.account_max_failures, now_ms);
		if (m > n)
			n = m;
	}
	if (n == 0)
		n = 1;
	/* 500 ms << (n - 1), capped */
	uint64_t delay = n - 1 >= 32 ? UINT64_MAX : (uint64_t)THROTTLE_BASE_DELAY_MS << (n - 1);
	if (delay > t->limits.max_delay_ms)
		delay = t->limits.max_delay_ms;
	return (unsigned)delay;
}

static void throttle_success_locked(struct throttle *t, const char *ip, const char *account, int64_t now_ms)
{
	struct throttle_entry *e;

	/* The account's count stays: failures from other IPs still count against it,
	 * and one good login by the user must not reset an attacker's progress. */
	if (ip != NULL && (e = throttle_lookup(t, 'i', ip)) != NULL)
		throttle_remove(t, e);
}

static void throttle_expire_locked(struct throttle *t, int64_t now_ms)
{
	int64_t idle = sec_ms(t->limits.window) + sec_ms(t->limits.lockout);

	/* The list is in order of last failure, so stop at the first live entry. */
	while (t->lru_head != NULL) {
		struct throttle_entry *e = t->lru_head;
		if (now_ms - e->last_ms <= idle || e->locked_until_ms > now_ms)
			break;
		throttle_remove(t, e);
	}
}

bool throttle_refused(struct throttle *t, const char *ip, const char *account, int64_t now_ms)
{
	pthread_mutex_lock(&t->lock);
	bool r = throttle_refused_locked(t, ip, account, now_ms);
	pthread_mutex_unlock(&t->lock);
	return r;
}

unsigned throttle_failure(struct throttle *t, const char *ip, const char *account, int64_t now_ms)
{
	pthread_mutex_lock(&t->lock);
	unsigned r = throttle_failure_locked(t, ip, account, now_ms);
	pthread_mutex_unlock(&t->lock);
	return r;
}

void throttle_success(struct throttle *t, const char *ip, const char *account, int64_t now_ms)
{
	pthread_mutex_lock(&t->lock);
	throttle_success_locked(t, ip, account, now_ms);
	pthread_mutex_unlock(&t->lock);
}

void throttle_expire(struct throttle *t, int64_t now_ms)
{
	pthread_mutex_lock(&t->lock);
	throttle_expire_locked(t, now_ms);
	pthread_mutex_unlock(&t->lock);
}
