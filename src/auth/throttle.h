/* Brute-force throttling of authentication (all protocols share one table).
 * Failures are counted per client IP and per account in a window:
 *   - every failure is answered after a growing delay (0.5 s doubling per recent
 *     failure of that IP or account, capped at max_delay);
 *   - an IP with max_failures failures in the window is refused (before any
 *     password is checked) for lockout seconds;
 *   - an account with account_max_failures failures (from any IPs) likewise; this
 *     threshold is higher so that one attacker cannot easily lock a user out.
 * Successes are never delayed, and reset the IP's count for that window.
 * Thread-safe: a mutex inside, since every event loop shares the table. Time is
 * passed in, so tests need no sleeping.
 *
 * Counting is a fixed window per key that starts at the key's first failure and
 * restarts at the first failure after it has run out (a count and a start time per
 * key, so an entry is small). A limit of 0 (max_failures, account_max_failures)
 * disables that refusal; the delay still applies. Account names are compared
 * ASCII-case-insensitively (as the store matches logins), IPs as given.
 *
 * Memory is bounded: at most THROTTLE_MAX_ENTRIES keys (IPs and accounts together).
 * When the table is full the least recently failed key is forgotten to make room,
 * so a flood of new keys can shorten the memory of old ones but never grows memory
 * or stops new attackers from being counted. Keys longer than THROTTLE_KEY_MAX are
 * truncated. */
#ifndef HERMOD_AUTH_THROTTLE_H
#define HERMOD_AUTH_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

struct throttle;

#define THROTTLE_MAX_ENTRIES 100000
#define THROTTLE_KEY_MAX 320

struct throttle_limits {
	unsigned max_failures;         /* per IP */
	unsigned account_max_failures; /* per account */
	unsigned window;               /* seconds */
	unsigned lockout;              /* seconds */
	unsigned max_delay_ms;         /* cap of the failure delay */
};

struct throttle *throttle_new(const struct throttle_limits *limits);
void throttle_free(struct throttle **t);
void throttle_set_limits(struct throttle *t, const struct throttle_limits *limits);

/* Before checking credentials. account may be NULL when not yet known.
 * Returns true when the attempt must be refused now (temporary failure reply). */
bool throttle_refused(struct throttle *t, const char *ip, const char *account, int64_t now_ms);
/* Records a failure; returns the delay in ms to wait before sending the failure reply. */
unsigned throttle_failure(struct throttle *t, const char *ip, const char *account, int64_t now_ms);
void throttle_success(struct throttle *t, const char *ip, const char *account, int64_t now_ms);
/* Tests: a smaller cap than THROTTLE_MAX_ENTRIES (0 restores the default). */
void throttle_set_max_entries(struct throttle *t, unsigned max_entries);
/* Number of keys tracked (tests, stats). */
unsigned throttle_count(const struct throttle *t);
/* Drops entries idle for longer than window + lockout (call now and then). */
void throttle_expire(struct throttle *t, int64_t now_ms);

#endif
