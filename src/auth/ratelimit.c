#include "auth/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RATELIMIT_BUCKETS 1024

struct ratelimit_entry {
	struct ratelimit_entry *next;
	double tokens;
	int64_t last_ms;
	char key[];
};

struct ratelimit {
	pthread_mutex_t lock; /* every public function holds it: several loops share one table */
	struct ratelimit_entry *buckets[RATELIMIT_BUCKETS];
};

struct ratelimit *ratelimit_new(void)
{
	struct ratelimit *rl = calloc(1, sizeof(struct ratelimit));
	if (rl != NULL)
		pthread_mutex_init(&rl->lock, NULL);
	return rl;
}

void ratelimit_free(struct ratelimit **rlp)
{
	struct ratelimit *rl = *rlp;
	if (rl == NULL)
		return;
	for (size_t i = 0; i < RATELIMIT_BUCKETS; i++) {
		while (rl->buckets[i] != NULL) {
			struct ratelimit_entry *e = rl->buckets[i];
			rl->buckets[i] = e->next;
			free(e);
		}
	}
	pthread_mutex_destroy(&rl->lock);
	free(rl);
	*rlp = NULL;
}

static unsigned ratelimit_hash(const char *key)
{
	unsigned h = 2166136261u;
	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h % RATELIMIT_BUCKETS;
}

static void ratelimit_refill(struct ratelimit_entry *e, unsigned per_hour, int64_t now_ms)
{
	if (now_ms > e->last_ms) {
		e->tokens += (double)(now_ms - e->last_ms) * per_hour / 3600000.0;
		if (e->tokens > per_hour)
			e->tokens = per_hour;
	}
	e->last_ms = now_ms;
}

static bool ratelimit_take_locked(struct ratelimit *rl, const char *key, unsigned per_hour, int64_t now_ms)
{
	if (per_hour == 0)
		return true;
	struct ratelimit_entry **p = &rl->buckets[ratelimit_hash(key)];
	while (*p != NULL && strcmp((*p)->key, key) != 0)
		p = &(*p)->next;
	if (*p == NULL) {
		size_t len = strlen(key);
		struct ratelimit_entry *e = malloc(sizeof(*e) + len + 1);
		if (e == NULL)
			return true; /* fail open: memory trouble must not stop mail */
		memcpy(e->key, key, len + 1);
		e->tokens = per_hour;
		e->last_ms = now_ms;
		e->next = NULL;
		*p = e;
	}
	ratelimit_refill(*p, per_hour, now_ms);
	if ((*p)->tokens < 1.0)
		return false;
	(*p)->tokens -= 1.0;
	return true;
}

static void ratelimit_expire_locked(struct ratelimit *rl, unsigned per_hour, int64_t now_ms)
{
	for (size_t i = 0; i < RATELIMIT_BUCKETS; i++) {
		struct ratelimit_entry **p = &rl->buckets[i];
		while (*p != NULL) {
			ratelimit_refill(*p, per_hour, now_ms);
			if (per_hour == 0 || (*p)->tokens >= per_hour) {
				struct ratelimit_entry *e = *p;
				*p = e->next;
				free(e);
			} else {
				p = &(*p)->next;
			}
		}
	}
}

bool ratelimit_take(struct ratelimit *rl, const char *key, unsigned per_hour, int64_t now_ms)
{
	pthread_mutex_lock(&rl->lock);
	bool r = ratelimit_take_locked(rl, key, per_hour, now_ms);
	pthread_mutex_unlock(&rl->lock);
	return r;
}

void ratelimit_expire(struct ratelimit *rl, unsigned per_hour, int64_t now_ms)
{
	pthread_mutex_lock(&rl->lock);
	ratelimit_expire_locked(rl, per_hour, now_ms);
	pthread_mutex_unlock(&rl->lock);
}
