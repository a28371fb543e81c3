/* Per-key token buckets ("N per hour"): the submission service's per-user sending
 * limit. Loop-thread only. Memory: one small entry per key seen; entries that
 * have refilled completely are dropped by ratelimit_expire. */
#ifndef HERMOD_AUTH_RATELIMIT_H
#define HERMOD_AUTH_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct ratelimit;

struct ratelimit *ratelimit_new(void);
void ratelimit_free(struct ratelimit **rl);
/* Takes one token from key's bucket (capacity per_hour, refilled continuously at
 * per_hour per hour). false when empty. per_hour 0 means unlimited. */
bool ratelimit_take(struct ratelimit *rl, const char *key, unsigned per_hour, int64_t now_ms);
void ratelimit_expire(struct ratelimit *rl, unsigned per_hour, int64_t now_ms);

#endif
