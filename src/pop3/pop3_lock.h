/* The POP3 maildrop lock (RFC 1939 8: one session per maildrop) and the last
 * login time of each account (RFC 2449 8.1.2 LOGIN-DELAY), behind a small
 * interface so that a shared implementation (several nodes) can replace the
 * in-memory one.
 *
 * Accounts are compared case-insensitively (ASCII). Every function is
 * thread-safe (sessions on every loop use the same table). */
#ifndef HERMOD_POP3_POP3_LOCK_H
#define HERMOD_POP3_POP3_LOCK_H

#include <stddef.h>
#include <stdint.h>

enum pop3_lock_result {
	POP3_LOCK_ERROR = -1,  /* out of memory, table full, account name too long */
	POP3_LOCK_IN_USE = 0,  /* another session holds the maildrop */
	POP3_LOCK_OK = 1,      /* the caller holds it now */
	POP3_LOCK_TOO_SOON = 2, /* the last login is less than login_delay ago */
};

struct pop3_lock;

struct pop3_lock_ops {
	/* Takes account's lock unless another session holds it (IN_USE, checked
	 * first) or login_delay (seconds, 0 = none) has not passed since its last
	 * login (TOO_SOON). */
	enum pop3_lock_result (*acquire)(struct pop3_lock *l, const char *account,
	                                 unsigned login_delay, int64_t now_ms);
	/* Gives the lock back (no-op when not held). login_delay: how long the login
	 * time still matters (the entry may be forgotten after that). */
	void (*release)(struct pop3_lock *l, const char *account, unsigned login_delay,
	                int64_t now_ms);
	/* Records a successful login (the maildrop was opened) at now_ms. */
	void (*note_login)(struct pop3_lock *l, const char *account, int64_t now_ms);
	/* 1 with *ms_r = the last login recorded, 0 when none is known. */
	int (*last_login)(struct pop3_lock *l, const char *account, int64_t *ms_r);
	/* Accounts known (locked, or with a login time kept). */
	size_t (*count)(struct pop3_lock *l);
	void (*free)(struct pop3_lock *l);
};

struct pop3_lock {
	const struct pop3_lock_ops *ops;
};

/* The in-memory implementation (core/dict under a mutex): at most max_entries
 * accounts (0 means POP3_LOCK_MAX_ENTRIES). Entries whose login time no longer
 * matters are forgotten as new ones come; when every entry is still needed
 * acquire answers POP3_LOCK_ERROR (never grows past the bound). NULL when out of
 * memory. */
#define POP3_LOCK_MAX_ENTRIES 100000
struct pop3_lock *pop3_lock_memory_new(size_t max_entries);

/* The process's table (created on first use; NULL when out of memory) and its
 * destruction at exit (after every session has ended). */
struct pop3_lock *pop3_lock_default(void);
void pop3_lock_default_free(void);

/* Dispatch helpers. */
enum pop3_lock_result pop3_lock_acquire(struct pop3_lock *l, const char *account,
                                        unsigned login_delay, int64_t now_ms);
void pop3_lock_release(struct pop3_lock *l, const char *account, unsigned login_delay,
                       int64_t now_ms);
void pop3_lock_note_login(struct pop3_lock *l, const char *account, int64_t now_ms);
int pop3_lock_last_login(struct pop3_lock *l, const char *account, int64_t *ms_r);
size_t pop3_lock_count(struct pop3_lock *l);
void pop3_lock_free(struct pop3_lock **lp);

#endif
