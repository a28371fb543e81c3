/* Brute-force throttling of authentication (all protocols share one instance).
 *
 * Policy (the in-memory implementation, throttle_new):
 *   - Per client IP: failures are counted in a window; every failure is answered
 *     after a delay of 0.5 s doubling with each recent failure of that IP, capped
 *     at max_delay; an IP with max_failures failures in the window is refused
 *     (before any password is checked) for lockout seconds.
 *   - Per account: failures are counted over all IPs in the window, but an
 *     account is never refused, so an attacker cannot lock its owner out (as
 *     Dovecot's auth penalty, which slows rather than refuses). Once an account
 *     has account_max_failures failures in the window it is "under attack":
 *     every failure on it from an IP that has not logged in to it recently is
 *     answered after max_delay. An IP among the last THROTTLE_KNOWN_IPS that
 *     logged in to the account successfully is exempt from that penalty (its
 *     own per-IP count still applies).
 *   - A success is answered after the delay a failure would get at that moment
 *     when the IP has failed in the window, or when the account is under attack
 *     and the IP is not a known one: otherwise an attacker could stop waiting
 *     for a delayed failure and tell a right guess by its prompt answer (the
 *     penalty is on the attempt, as Dovecot's auth penalty, not on its
 *     result). Only a first attempt from a clean IP is answered at once either
 *     way (a failure waits 0.5 s). A success resets the IP's count and
 *     remembers the IP for the account.
 * A limit of 0 (max_failures, account_max_failures) disables that rule; the
 * per-IP delay still applies (max_delay_ms 0 turns delays off). Account names
 * are compared ASCII-case-insensitively (as the store matches logins), IPs as
 * given. Time is passed in, so tests need no sleeping.
 *
 * Counting is a fixed window per key that starts at the key's first failure and
 * restarts at the first failure after it has run out.
 *
 * Memory is bounded: at most THROTTLE_MAX_ENTRIES counted keys (IPs and accounts
 * together; the least recently failed is forgotten to make room, so a flood of
 * new keys can shorten the memory of old ones but never grows memory or stops
 * new attackers from being counted) and THROTTLE_KNOWN_MAX accounts with known
 * IPs (least recently successful forgotten first). Keys longer than
 * THROTTLE_KEY_MAX are truncated.
 *
 * Interface: struct throttle is a handle over struct throttle_ops, so that a
 * shared implementation (several nodes) can replace the in-memory one; every
 * function may be called from any thread (the in-memory implementation holds a
 * mutex around each call, which never blocks on I/O). */
#ifndef HERMOD_AUTH_THROTTLE_H
#define HERMOD_AUTH_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

struct throttle;

#define THROTTLE_MAX_ENTRIES 100000
#define THROTTLE_KNOWN_MAX 100000
#define THROTTLE_KNOWN_IPS 4
#define THROTTLE_KEY_MAX 320

struct throttle_limits {
	unsigned max_failures;         /* per IP */
	unsigned account_max_failures; /* per account: from here on, unknown IPs wait */
	unsigned window;               /* seconds */
	unsigned lockout;              /* seconds */
	unsigned max_delay_ms;         /* cap of the failure delay */
};

/* What an implementation provides. impl is its state; every function must be
 * thread-safe and must not block on I/O for long (it runs on event loops: a
 * shared implementation answers from a local cache and updates it
 * asynchronously). Semantics as the functions below. */
struct throttle_ops {
	bool (*refused)(void *impl, const char *ip, const char *account, int64_t now_ms);
	unsigned (*failure)(void *impl, const char *ip, const char *account, int64_t now_ms);
	unsigned (*success)(void *impl, const char *ip, const char *account, int64_t now_ms);
	void (*set_limits)(void *impl, const struct throttle_limits *limits);
	void (*expire)(void *impl, int64_t now_ms);
	void (*free)(void *impl);
};

/* The in-memory implementation. NULL when out of memory. */
struct throttle *throttle_new(const struct throttle_limits *limits);
/* A handle over another implementation (takes ownership of impl: ops->free on
 * throttle_free). NULL when out of memory (impl is then freed too). */
struct throttle *throttle_new_ops(const struct throttle_ops *ops, void *impl);
void throttle_free(struct throttle **t);
void throttle_set_limits(struct throttle *t, const struct throttle_limits *limits);

/* Check, before checking credentials. account may be NULL when not yet known.
 * Returns true when the attempt must be refused now (temporary failure reply). */
bool throttle_refused(struct throttle *t, const char *ip, const char *account, int64_t now_ms);
/* Records a failure; returns the delay in ms to wait before sending the failure
 * reply. account may be NULL. */
unsigned throttle_failure(struct throttle *t, const char *ip, const char *account, int64_t now_ms);
/* Records a success of account (the canonical address) from ip; returns the
 * delay in ms to wait before sending the success reply. */
unsigned throttle_success(struct throttle *t, const char *ip, const char *account,
                          int64_t now_ms);
/* Drops entries idle for longer than window + lockout (call now and then). */
void throttle_expire(struct throttle *t, int64_t now_ms);

/* In-memory implementation only (tests, stats; no-ops / 0 for others): a
 * smaller cap than THROTTLE_MAX_ENTRIES (0 restores the default), and the
 * number of counted keys. */
void throttle_set_max_entries(struct throttle *t, unsigned max_entries);
unsigned throttle_count(const struct throttle *t);

#endif
