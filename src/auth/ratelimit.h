/* Per-key token buckets ("N per hour"): the submission service's per-user sending
 * limit.
 *
 * Interface: struct ratelimit is a handle over struct ratelimit_ops, so that a
 * shared implementation (several nodes) can replace the in-memory one
 * (ratelimit_new); every function may be called from any thread (the in-memory
 * implementation holds a mutex around each call).
 *
 * In memory: one small entry per key seen, at most RATELIMIT_MAX_ENTRIES (keys
 * are authenticated users, so the bound is only a safety net: when full, the
 * least recently used key is forgotten, which gives it a full bucket again);
 * entries that have refilled completely are dropped by ratelimit_expire. Keys
 * are compared as given (the caller passes canonical account addresses). */
#ifndef HERMOD_AUTH_RATELIMIT_H
#define HERMOD_AUTH_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#define RATELIMIT_MAX_ENTRIES 100000
#define RATELIMIT_KEY_MAX 320

struct ratelimit;

/* What an implementation provides (thread-safe, no long blocking: called from
 * event loops). Semantics as the functions below. */
struct ratelimit_ops {
	bool (*take)(void *impl, const char *key, unsigned per_hour, int64_t now_ms);
	void (*expire)(void *impl, unsigned per_hour, int64_t now_ms);
	void (*free)(void *impl);
};

/* The in-memory implementation; NULL when out of memory. */
struct ratelimit *ratelimit_new(void);
/* A handle over another implementation (takes ownership of impl). NULL when out
 * of memory (impl is then freed too). */
struct ratelimit *ratelimit_new_ops(const struct ratelimit_ops *ops, void *impl);
void ratelimit_free(struct ratelimit **rl);
/* Takes one token from key's bucket (capacity per_hour, refilled continuously at
 * per_hour per hour). false when empty. per_hour 0 means unlimited. Fails open
 * (true) when memory runs out or the key is longer than RATELIMIT_KEY_MAX:
 * trouble here must not stop mail. */
bool ratelimit_take(struct ratelimit *rl, const char *key, unsigned per_hour, int64_t now_ms);
/* Drops the buckets that are full again at now_ms (call now and then). */
void ratelimit_expire(struct ratelimit *rl, unsigned per_hour, int64_t now_ms);

#endif
