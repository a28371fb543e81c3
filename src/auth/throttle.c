/* Authentication throttling: the handle over struct throttle_ops, and the
 * in-memory implementation. See throttle.h for the policy.
 *
 * In memory: one core/dict of counted keys ("i:<ip>" and "a:<account>"), each
 * with a failure count, the start of its counting window and a lockout
 * deadline, in least-recently-failed order for eviction and expiry; and one
 * dict of accounts with the IPs that last logged in to them. One mutex guards
 * both (every operation is a few hash lookups). */
#include "auth/throttle.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/dict.h"

#define THROTTLE_BASE_DELAY_MS 500u
#define THROTTLE_IP_MAX 64 /* an IPv6 text form with a scope fits */

struct throttle {
	const struct throttle_ops *ops;
	void *impl;
};

/* ---- the handle ---- */

struct throttle *throttle_new_ops(const struct throttle_ops *ops, void *impl)
{
	struct throttle *t = calloc(1, sizeof(*t));
	if (t == NULL) {
		ops->free(impl);
		return NULL;
	}
	t->ops = ops;
	t->impl = impl;
	return t;
}

void throttle_free(struct throttle **tp)
{
	struct throttle *t = *tp;
	if (t == NULL)
		return;
	t->ops->free(t->impl);
	free(t);
	*tp = NULL;
}

void throttle_set_limits(struct throttle *t, const struct throttle_limits *limits)
{
	t->ops->set_limits(t->impl, limits);
}

bool throttle_refused(struct throttle *t, const char *ip, const char *account, int64_t now_ms)
{
	return t->ops->refused(t->impl, ip, account, now_ms);
}

unsigned throttle_failure(struct throttle *t, const char *ip, const char *account, int64_t now_ms)
{
	return t->ops->failure(t->impl, ip, account, now_ms);
}

unsigned throttle_success(struct throttle *t, const char *ip, const char *account,
                          int64_t now_ms)
{
	return t->ops->success(t->impl, ip, account, now_ms);
}

void throttle_expire(struct throttle *t, int64_t now_ms)
{
	t->ops->expire(t->impl, now_ms);
}

/* ---- in memory ---- */

struct throttle_mem {
	pthread_mutex_t lock;
	struct throttle_limits limits;
	struct dict *keys;  /* "i:"/"a:" key -> struct throttle_key */
	struct dict *known; /* account (lower-cased) -> struct throttle_known */
};

struct throttle_key {
	int64_t window_start_ms;
	int64_t last_ms;
	int64_t locked_until_ms;
	uint32_t failures;
};

/* IPs that logged in to an account, most recent first ("" = free slot). */
struct throttle_known {
	char ip[THROTTLE_KNOWN_IPS][THROTTLE_IP_MAX];
};

static const struct throttle_ops throttle_mem_ops;

/* "i:<ip>" or "a:<account, ASCII lower-cased>" (kind 0: the account alone),
 * truncated to THROTTLE_KEY_MAX. */
static size_t throttle_key_make(char *buf, char kind, const char *name)
{
	size_t n = 0;
	if (kind != 0) {
		buf[n++] = kind;
		buf[n++] = ':';
	}
	for (; *name != '\0' && n < THROTTLE_KEY_MAX; name++) {
		char c = *name;
		if (kind != 'i' && c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		buf[n++] = c;
	}
	return n;
}

static int64_t sec_ms(unsigned s)
{
	return (int64_t)s * 1000;
}

static void *throttle_mem_new(const struct throttle_limits *limits)
{
	struct throttle_mem *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	m->keys = dict_new(sizeof(struct throttle_key), THROTTLE_MAX_ENTRIES, DICT_EVICT);
	m->known = dict_new(sizeof(struct throttle_known), THROTTLE_KNOWN_MAX, DICT_EVICT);
	if (m->keys == NULL || m->known == NULL || pthread_mutex_init(&m->lock, NULL) != 0) {
		dict_free(&m->keys);
		dict_free(&m->known);
		free(m);
		return NULL;
	}
	m->limits = *limits;
	return m;
}

static void throttle_mem_free(void *impl)
{
	struct throttle_mem *m = impl;
	if (m == NULL)
		return;
	dict_free(&m->keys);
	dict_free(&m->known);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static void throttle_mem_set_limits(void *impl, const struct throttle_limits *limits)
{
	struct throttle_mem *m = impl;
	pthread_mutex_lock(&m->lock);
	m->limits = *limits;
	pthread_mutex_unlock(&m->lock);
}

static struct throttle_key *throttle_mem_lookup(struct throttle_mem *m, char kind, const char *name)
{
	char key[THROTTLE_KEY_MAX];
	size_t len = throttle_key_make(key, kind, name);
	return dict_get(m->keys, key, len);
}

/* Counts one failure of a key; returns its failures in the current window.
 * max > 0: lock the key out when it reaches max. */
static uint32_t throttle_mem_count(struct throttle_mem *m, char kind, const char *name,
                                   unsigned max, int64_t now_ms)
{
	char key[THROTTLE_KEY_MAX];
	size_t len = throttle_key_make(key, kind, name);
	bool created;
	struct throttle_key *e = dict_put(m->keys, key, len, &created);
	if (e == NULL)
		return 1; /* out of memory: still delay as for a first failure */

	if (e->failures == 0 || now_ms - e->window_start_ms >= sec_ms(m->limits.window)) {
		e->failures = 0;
		e->window_start_ms = now_ms;
	}
	if (e->failures < UINT32_MAX)
		e->failures++;
	e->last_ms = now_ms;
	dict_touch(m->keys, e);
	if (max > 0 && e->failures >= max)
		e->locked_until_ms = now_ms + sec_ms(m->limits.lockout);
	return e->failures;
}

static bool throttle_mem_known(struct throttle_mem *m, const char *ip, const char *account)
{
	char key[THROTTLE_KEY_MAX];
	size_t len = throttle_key_make(key, 0, account);
	struct throttle_known *k = dict_get(m->known, key, len);
	if (k == NULL)
		return false;
	for (size_t i = 0; i < THROTTLE_KNOWN_IPS; i++) {
		if (k->ip[i][0] != '\0' && strncmp(k->ip[i], ip, THROTTLE_IP_MAX - 1) == 0)
			return true;
	}
	return false;
}

static unsigned throttle_delay(uint32_t n, unsigned max_delay_ms)
{
	if (n == 0)
		n = 1;
	/* 500 ms << (n - 1), capped */
	uint64_t delay = n - 1 >= 32 ? UINT64_MAX : (uint64_t)THROTTLE_BASE_DELAY_MS << (n - 1);
	if (delay > max_delay_ms)
		delay = max_delay_ms;
	return (unsigned)delay;
}

static bool throttle_mem_refused(void *impl, const char *ip, const char *account, int64_t now_ms)
{
	struct throttle_mem *m = impl;
	struct throttle_key *e;
	bool refused = false;

	/* Only the IP is ever refused: refusing an account would hand attackers a
	 * way to lock its owner out (the account's penalty is a delay). */
	pthread_mutex_lock(&m->lock);
	if (ip != NULL && (e = throttle_mem_lookup(m, 'i', ip)) != NULL &&
	    e->locked_until_ms > now_ms)
		refused = true;
	pthread_mutex_unlock(&m->lock);
	return refused;
}

static unsigned throttle_mem_failure(void *impl, const char *ip, const char *account,
                                     int64_t now_ms)
{
	struct throttle_mem *m = impl;
	uint32_t n = 0;
	unsigned delay;

	pthread_mutex_lock(&m->lock);
	if (ip != NULL)
		n = throttle_mem_count(m, 'i', ip, m->limits.max_failures, now_ms);
	delay = throttle_delay(n, m->limits.max_delay_ms);
	if (account != NULL) {
		uint32_t a = throttle_mem_count(m, 'a', account, 0, now_ms);
		if (m->limits.account_max_failures > 0 && a >= m->limits.account_max_failures &&
		    (ip == NULL || !throttle_mem_known(m, ip, account)))
			delay = m->limits.max_delay_ms;
	}
	pthread_mutex_unlock(&m->lock);
	return delay;
}

/* Failures of a key in its current window, without counting one. */
static uint32_t throttle_mem_current(struct throttle_mem *m, char kind, const char *name,
                                     int64_t now_ms)
{
	struct throttle_key *e = throttle_mem_lookup(m, kind, name);

	if (e == NULL || e->failures == 0 ||
	    now_ms - e->window_start_ms >= sec_ms(m->limits.window))
		return 0;
	return e->failures;
}

static unsigned throttle_mem_success(void *impl, const char *ip, const char *account,
                                     int64_t now_ms)
{
	struct throttle_mem *m = impl;
	char key[THROTTLE_KEY_MAX];
	size_t len;
	unsigned delay = 0;

	pthread_mutex_lock(&m->lock);
	/* The delay a failure would get now (decided before the IP becomes known). */
	uint32_t n = ip != NULL ? throttle_mem_current(m, 'i', ip, now_ms) : 0;
	if (n > 0)
		delay = throttle_delay(n < UINT32_MAX ? n + 1 : n, m->limits.max_delay_ms);
	if (account != NULL && m->limits.account_max_failures > 0 &&
	    throttle_mem_current(m, 'a', account, now_ms) >= m->limits.account_max_failures &&
	    (ip == NULL || !throttle_mem_known(m, ip, account)))
		delay = m->limits.max_delay_ms;
	/* The account's count stays: failures from other IPs still count against it,
	 * and one good login by the user must not reset an attacker's progress. */
	if (ip != NULL) {
		len = throttle_key_make(key, 'i', ip);
		dict_delete(m->keys, key, len);
	}
	if (ip != NULL && account != NULL) {
		len = throttle_key_make(key, 0, account);
		struct throttle_known *k = dict_put(m->known, key, len, NULL);
		if (k != NULL) {
			/* move (or add) ip to the front, dropping the least recent */
			size_t i = 0;
			while (i < THROTTLE_KNOWN_IPS - 1 &&
			       strncmp(k->ip[i], ip, THROTTLE_IP_MAX - 1) != 0)
				i++;
			memmove(k->ip[1], k->ip[0], i * sizeof(k->ip[0]));
			strncpy(k->ip[0], ip, THROTTLE_IP_MAX - 1);
			k->ip[0][THROTTLE_IP_MAX - 1] = '\0';
			dict_touch(m->known, k);
		}
	}
	pthread_mutex_unlock(&m->lock);
	return delay;
}

static void throttle_mem_expire(void *impl, int64_t now_ms)
{
	struct throttle_mem *m = impl;

	pthread_mutex_lock(&m->lock);
	int64_t idle = sec_ms(m->limits.window) + sec_ms(m->limits.lockout);
	/* The table is in order of last failure, so stop at the first live entry. */
	struct throttle_key *e;
	while ((e = dict_oldest(m->keys)) != NULL) {
		if (now_ms - e->last_ms <= idle || e->locked_until_ms > now_ms)
			break;
		dict_delete_value(m->keys, e);
	}
	pthread_mutex_unlock(&m->lock);
}

static const struct throttle_ops throttle_mem_ops = {
    .refused = throttle_mem_refused,
    .failure = throttle_mem_failure,
    .success = throttle_mem_success,
    .set_limits = throttle_mem_set_limits,
    .expire = throttle_mem_expire,
    .free = throttle_mem_free,
};

struct throttle *throttle_new(const struct throttle_limits *limits)
{
	void *m = throttle_mem_new(limits);
	if (m == NULL)
		return NULL;
	return throttle_new_ops(&throttle_mem_ops, m);
}

void throttle_set_max_entries(struct throttle *t, unsigned max_entries)
{
	if (t->ops != &throttle_mem_ops)
		return;
	struct throttle_mem *m = t->impl;
	pthread_mutex_lock(&m->lock);
	dict_set_max(m->keys, max_entries == 0 ? THROTTLE_MAX_ENTRIES : max_entries);
	pthread_mutex_unlock(&m->lock);
}

unsigned throttle_count(const struct throttle *t)
{
	if (t->ops != &throttle_mem_ops)
		return 0;
	struct throttle_mem *m = t->impl;
	pthread_mutex_lock(&m->lock);
	unsigned n = (unsigned)dict_count(m->keys);
	pthread_mutex_unlock(&m->lock);
	return n;
}
