/* The in-memory POP3 maildrop lock and login-time table (see pop3_lock.h). */
#include "pop3/pop3_lock.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/dict.h"

struct pop3_lock_entry {
	bool locked;
	bool has_login;
	int64_t last_login_ms;
};

struct pop3_lock_memory {
	struct pop3_lock base;
	pthread_mutex_t mutex; /* guards table and its entries */
	struct dict *table;    /* lowercased account -> struct pop3_lock_entry */
};

/* Entries looked at (oldest first) for forgetting on each acquire. */
#define POP3_LOCK_PRUNE_STEPS 4

/* The key of account: lowercased ASCII into key (DICT_KEY_MAX). 0 when too long. */
static size_t pop3_lock_key(const char *account, char *key)
{
	size_t len = strlen(account);
	if (len > DICT_KEY_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = account[i];
		key[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	return len;
}

/* An entry that neither holds a lock nor a login time that still matters. */
static bool pop3_lock_entry_idle(const struct pop3_lock_entry *e, unsigned login_delay,
                                 int64_t now_ms)
{
	return !e->locked &&
	       (!e->has_login || now_ms - e->last_login_ms >= (int64_t)login_delay * 1000);
}

/* Forgets idle entries from the least recently used on: at most steps of them
 * looked at (0: all). */
static void pop3_lock_prune(struct pop3_lock_memory *m, unsigned login_delay, int64_t now_ms,
                            size_t steps)
{
	struct pop3_lock_entry *e = dict_oldest(m->table);
	for (size_t n = 0; e != NULL && (steps == 0 || n < steps); n++) {
		struct pop3_lock_entry *next = dict_next(m->table, e);
		if (pop3_lock_entry_idle(e, login_delay, now_ms))
			dict_delete_value(m->table, e);
		e = next;
	}
}

static enum pop3_lock_result pop3_lock_memory_acquire(struct pop3_lock *l, const char *account,
                                                      unsigned login_delay, int64_t now_ms)
{
	struct pop3_lock_memory *m = (struct pop3_lock_memory *)l;
	char key[DICT_KEY_MAX];
	size_t klen = pop3_lock_key(account, key);
	if (klen == 0 && account[0] != '\0')
		return POP3_LOCK_ERROR;
	enum pop3_lock_result r;
	pthread_mutex_lock(&m->mutex);
	pop3_lock_prune(m, login_delay, now_ms, POP3_LOCK_PRUNE_STEPS);
	struct pop3_lock_entry *e = dict_put(m->table, key, klen, NULL);
	if (e == NULL) {
		/* full: forget every idle entry, then try once more */
		pop3_lock_prune(m, login_delay, now_ms, 0);
		e = dict_put(m->table, key, klen, NULL);
	}
	if (e == NULL) {
		r = POP3_LOCK_ERROR;
	} else if (e->locked) {
		r = POP3_LOCK_IN_USE; /* RFC 1939 8 */
	} else if (login_delay > 0 && e->has_login &&
	           now_ms - e->last_login_ms < (int64_t)login_delay * 1000) {
		r = POP3_LOCK_TOO_SOON; /* RFC 2449 8.1.2 */
	} else {
		e->locked = true;
		dict_touch(m->table, e);
		r = POP3_LOCK_OK;
	}
	if (e != NULL && r != POP3_LOCK_OK && pop3_lock_entry_idle(e, login_delay, now_ms))
		dict_delete_value(m->table, e);
	pthread_mutex_unlock(&m->mutex);
	return r;
}

static void pop3_lock_memory_release(struct pop3_lock *l, const char *account,
                                     unsigned login_delay, int64_t now_ms)
{
	struct pop3_lock_memory *m = (struct pop3_lock_memory *)l;
	char key[DICT_KEY_MAX];
	size_t klen = pop3_lock_key(account, key);
	pthread_mutex_lock(&m->mutex);
	struct pop3_lock_entry *e = dict_get(m->table, key, klen);
	if (e != NULL) {
		e->locked = false;
		if (pop3_lock_entry_idle(e, login_delay, now_ms))
			dict_delete_value(m->table, e);
	}
	pthread_mutex_unlock(&m->mutex);
}

static void pop3_lock_memory_note_login(struct pop3_lock *l, const char *account, int64_t now_ms)
{
	struct pop3_lock_memory *m = (struct pop3_lock_memory *)l;
	char key[DICT_KEY_MAX];
	size_t klen = pop3_lock_key(account, key);
	pthread_mutex_lock(&m->mutex);
	/* only for a held lock: the entry exists (acquire made it) */
	struct pop3_lock_entry *e = dict_get(m->table, key, klen);
	if (e != NULL) {
		e->has_login = true;
		e->last_login_ms = now_ms;
		dict_touch(m->table, e);
	}
	pthread_mutex_unlock(&m->mutex);
}

static int pop3_lock_memory_last_login(struct pop3_lock *l, const char *account, int64_t *ms_r)
{
	struct pop3_lock_memory *m = (struct pop3_lock_memory *)l;
	char key[DICT_KEY_MAX];
	size_t klen = pop3_lock_key(account, key);
	int r = 0;
	pthread_mutex_lock(&m->mutex);
	struct pop3_lock_entry *e = dict_get(m->table, key, klen);
	if (e != NULL && e->has_login) {
		*ms_r = e->last_login_ms;
		r = 1;
	}
	pthread_mutex_unlock(&m->mutex);
	return r;
}

static size_t pop3_lock_memory_count(struct pop3_lock *l)
{
	struct pop3_lock_memory *m = (struct pop3_lock_memory *)l;
	pthread_mutex_lock(&m->mutex);
	size_t n = dict_count(m->table);
	pthread_mutex_unlock(&m->mutex);
	return n;
}

static void pop3_lock_memory_free(struct pop3_lock *l)
{
	struct pop3_lock_memory *m = (struct pop3_lock_memory *)l;
	dict_free(&m->table);
	pthread_mutex_destroy(&m->mutex);
	free(m);
}

static const struct pop3_lock_ops pop3_lock_memory_ops = {
    .acquire = pop3_lock_memory_acquire,
    .release = pop3_lock_memory_release,
    .note_login = pop3_lock_memory_note_login,
    .last_login = pop3_lock_memory_last_login,
    .count = pop3_lock_memory_count,
    .free = pop3_lock_memory_free,
};

struct pop3_lock *pop3_lock_memory_new(size_t max_entries)
{
	struct pop3_lock_memory *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	m->table = dict_new(sizeof(struct pop3_lock_entry),
	                    max_entries > 0 ? max_entries : POP3_LOCK_MAX_ENTRIES, DICT_NO_EVICT);
	if (m->table == NULL) {
		free(m);
		return NULL;
	}
	pthread_mutex_init(&m->mutex, NULL);
	m->base.ops = &pop3_lock_memory_ops;
	return &m->base;
}

/* ---- the process's table ---- */

static pthread_mutex_t pop3_lock_default_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct pop3_lock *pop3_lock_default_table;

struct pop3_lock *pop3_lock_default(void)
{
	pthread_mutex_lock(&pop3_lock_default_mutex);
	if (pop3_lock_default_table == NULL)
		pop3_lock_default_table = pop3_lock_memory_new(0);
	struct pop3_lock *l = pop3_lock_default_table;
	pthread_mutex_unlock(&pop3_lock_default_mutex);
	return l;
}

void pop3_lock_default_free(void)
{
	pthread_mutex_lock(&pop3_lock_default_mutex);
	pop3_lock_free(&pop3_lock_default_table);
	pthread_mutex_unlock(&pop3_lock_default_mutex);
}

/* ---- dispatch ---- */

enum pop3_lock_result pop3_lock_acquire(struct pop3_lock *l, const char *account,
                                        unsigned login_delay, int64_t now_ms)
{
	return l->ops->acquire(l, account, login_delay, now_ms);
}

void pop3_lock_release(struct pop3_lock *l, const char *account, unsigned login_delay,
                       int64_t now_ms)
{
	l->ops->release(l, account, login_delay, now_ms);
}

void pop3_lock_note_login(struct pop3_lock *l, const char *account, int64_t now_ms)
{
	l->ops->note_login(l, account, now_ms);
}

int pop3_lock_last_login(struct pop3_lock *l, const char *account, int64_t *ms_r)
{
	return l->ops->last_login(l, account, ms_r);
}

size_t pop3_lock_count(struct pop3_lock *l)
{
	return l->ops->count(l);
}

void pop3_lock_free(struct pop3_lock **lp)
{
	if (*lp == NULL)
		return;
	(*lp)->ops->free(*lp);
	*lp = NULL;
}
