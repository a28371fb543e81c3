/* Token buckets: the handle over struct ratelimit_ops and the in-memory
 * implementation (a core/dict of buckets under one mutex). See ratelimit.h. */
#include "auth/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/dict.h"

struct ratelimit {
	const struct ratelimit_ops *ops;
	void *impl;
};

struct ratelimit *ratelimit_new_ops(const struct ratelimit_ops *ops, void *impl)
{
	struct ratelimit *rl = calloc(1, sizeof(*rl));
	if (rl == NULL) {
		ops->free(impl);
		return NULL;
	}
	rl->ops = ops;
	rl->impl = impl;
	return rl;
}

void ratelimit_free(struct ratelimit **rlp)
{
	struct ratelimit *rl = *rlp;
	if (rl == NULL)
		return;
	rl->ops->free(rl->impl);
	free(rl);
	*rlp = NULL;
}

bool ratelimit_take(struct ratelimit *rl, const char *key, unsigned per_hour, int64_t now_ms)
{
	return rl->ops->take(rl->impl, key, per_hour, now_ms);
}

void ratelimit_expire(struct ratelimit *rl, unsigned per_hour, int64_t now_ms)
{
	rl->ops->expire(rl->impl, per_hour, now_ms);
}

/* ---- in memory ---- */

struct ratelimit_mem {
	pthread_mutex_t lock;
	struct dict *buckets; /* key -> struct ratelimit_bucket */
};

struct ratelimit_bucket {
	double tokens;
	int64_t last_ms;
};

static void ratelimit_refill(struct ratelimit_bucket *b, unsigned per_hour, int64_t now_ms)
{
	if (now_ms > b->last_ms) {
		b->tokens += (double)(now_ms - b->last_ms) * per_hour / 3600000.0;
		if (b->tokens > per_hour)
			b->tokens = per_hour;
	}
	b->last_ms = now_ms;
}

static bool ratelimit_mem_take(void *impl, const char *key, unsigned per_hour, int64_t now_ms)
{
	struct ratelimit_mem *m = impl;
	size_t len = strlen(key);
	bool created, ok = true;

	if (per_hour == 0 || len > RATELIMIT_KEY_MAX)
		return true;
	pthread_mutex_lock(&m->lock);
	struct ratelimit_bucket *b = dict_put(m->buckets, key, len, &created);
	if (b != NULL) {
		if (created) {
			b->tokens = per_hour;
			b->last_ms = now_ms;
		}
		dict_touch(m->buckets, b);
		ratelimit_refill(b, per_hour, now_ms);
		if (b->tokens < 1.0)
			ok = false;
		else
			b->tokens -= 1.0;
	}
	pthread_mutex_unlock(&m->lock);
	return ok; /* out of memory: fail open */
}

static void ratelimit_mem_expire(void *impl, unsigned per_hour, int64_t now_ms)
{
	struct ratelimit_mem *m = impl;

	pthread_mutex_lock(&m->lock);
	struct ratelimit_bucket *b = dict_oldest(m->buckets);
	while (b != NULL) {
		struct ratelimit_bucket *next = dict_next(m->buckets, b);
		ratelimit_refill(b, per_hour, now_ms);
		if (per_hour == 0 || b->tokens >= per_hour)
			dict_delete_value(m->buckets, b);
		b = next;
	}
	pthread_mutex_unlock(&m->lock);
}

static void ratelimit_mem_free(void *impl)
{
	struct ratelimit_mem *m = impl;
	if (m == NULL)
		return;
	dict_free(&m->buckets);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const struct ratelimit_ops ratelimit_mem_ops = {
    .take = ratelimit_mem_take,
    .expire = ratelimit_mem_expire,
    .free = ratelimit_mem_free,
};

struct ratelimit *ratelimit_new(void)
{
	struct ratelimit_mem *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	m->buckets = dict_new(sizeof(struct ratelimit_bucket), RATELIMIT_MAX_ENTRIES, DICT_EVICT);
	if (m->buckets == NULL || pthread_mutex_init(&m->lock, NULL) != 0) {
		dict_free(&m->buckets);
		free(m);
		return NULL;
	}
	return ratelimit_new_ops(&ratelimit_mem_ops, m);
}
