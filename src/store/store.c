/* The store's front: backend selection and dispatch (struct store_ops), and the
 * recipient rules, written once on the backends' primitive lookups so that a
 * second backend does not re-implement them. See store.h for the contracts. */
#include "store/store.h"
#include "store/store_msg.h"
#include "store/store_util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define STORE_WATCH_BUCKETS 256

struct store_watch {
	struct store_watch *next, **prevp;
	char *account;
	store_watch_cb *cb;
	void *ctx;
};

static void store_notify(struct store *st, const char *account, const char *mailbox);

struct store {
	const struct store_ops *ops;
	struct store_backend *be;
	char *data_dir;
	char *hostname; /* lower-cased; NULL when not given */
	/* change notification (store_watch_*) */
	pthread_mutex_t watch_mu;
	struct store_watch *watch[STORE_WATCH_BUCKETS];
	/* store_set_queue_hook: set once before use, read without a lock */
	store_queue_hook *queue_hook;
	void *queue_hook_ctx;
};

static const struct store_ops *const store_backends[] = {&store_sqlite_ops};

int store_open(const struct store_options *opts, struct store **store_r, char **error_r)
{
	const struct store_ops *ops = NULL;
	struct store *st;

	*store_r = NULL;
	if (opts == NULL || opts->data_dir == NULL || opts->data_dir[0] == '\0') {
		str_error(error_r, "store: data_dir not set");
		return -1;
	}
	const char *name = opts->backend != NULL ? opts->backend : "sqlite";
	for (size_t i = 0; i < sizeof(store_backends) / sizeof(store_backends[0]); i++) {
		if (strcmp(store_backends[i]->name, name) == 0)
			ops = store_backends[i];
	}
	if (ops == NULL) {
		str_error(error_r, "store: unknown backend '%s'", name);
		return -1;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL || (st->data_dir = strdup(opts->data_dir)) == NULL ||
	    (opts->hostname != NULL && opts->hostname[0] != '\0' &&
	     (st->hostname = strdup(opts->hostname)) == NULL)) {
		if (st != NULL)
			free(st->data_dir);
		free(st);
		str_error(error_r, "store: out of memory");
		return -1;
	}
	if (st->hostname != NULL)
		store_ascii_lower(st->hostname);
	st->ops = ops;
	pthread_mutex_init(&st->watch_mu, NULL);
	if (ops->open(opts, &st->be, error_r) < 0) {
		pthread_mutex_destroy(&st->watch_mu);
		free(st->hostname);
		free(st->data_dir);
		free(st);
		return -1;
	}
	*store_r = st;
	return 1;
}

void store_close(struct store **stp)
{
	struct store *st = *stp;

	if (st == NULL)
		return;
	*stp = NULL;
	st->ops->close(&st->be);
	/* Watchers still registered are their owners' to remove; none can be
	 * called any more. */
	for (size_t i = 0; i < STORE_WATCH_BUCKETS; i++) {
		while (st->watch[i] != NULL) {
			struct store_watch *w = st->watch[i];
			st->watch[i] = w->next;
			free(w->account);
			free(w);
		}
	}
	pthread_mutex_destroy(&st->watch_mu);
	free(st->hostname);
	free(st->data_dir);
	free(st);
}

/* ---- dispatch ---- */

int store_domain_add(struct store *st, const char *domain, char **error_r)
{
	return st->ops->domain_add(st->be, domain, error_r);
}

int store_domain_del(struct store *st, const char *domain, char **error_r)
{
	return st->ops->domain_del(st->be, domain, error_r);
}

int store_domain_exists(struct store *st, const char *domain, char **error_r)
{
	return st->ops->domain_exists(st->be, domain, error_r);
}

int store_domain_list(struct store *st, store_name_cb *cb, void *ctx, char **error_r)
{
	return st->ops->domain_list(st->be, cb, ctx, error_r);
}

int store_account_add(struct store *st, const char *address, const char *pwhash, char **error_r)
{
	return st->ops->account_add(st->be, address, pwhash, error_r);
}

int store_account_del(struct store *st, const char *address, char **error_r)
{
	return st->ops->account_del(st->be, address, error_r);
}

int store_account_set_password(struct store *st, const char *address, const char *pwhash,
                               char **error_r)
{
	return st->ops->account_set_password(st->be, address, pwhash, error_r);
}

int store_account_get_password(struct store *st, const char *address, char **pwhash_r,
                               char **error_r)
{
	return st->ops->account_get_password(st->be, address, pwhash_r, error_r);
}

int store_account_list(struct store *st, store_name_cb *cb, void *ctx, char **error_r)
{
	return st->ops->account_list(st->be, cb, ctx, error_r);
}

int store_account_set_scram(struct store *st, const char *address, const char *scram,
                            char **error_r)
{
	return st->ops->account_set_scram(st->be, address, scram, error_r);
}

int store_account_get_credentials(struct store *st, const char *address, char **account_r,
                                  char **pwhash_r, char **scram_r, char **error_r)
{
	return st->ops->account_get_credentials(st->be, address, account_r, pwhash_r, scram_r,
	                                        error_r);
}

int store_alias_add(struct store *st, const char *source, const char *target, char **error_r)
{
	return st->ops->alias_add(st->be, source, target, error_r);
}

int store_alias_del(struct store *st, const char *source, const char *target, char **error_r)
{
	return st->ops->alias_del(st->be, source, target, error_r);
}

int store_alias_list(struct store *st, store_alias_cb *cb, void *ctx, char **error_r)
{
	return st->ops->alias_list(st->be, cb, ctx, error_r);
}

int store_msg_begin(struct store *st, struct store_msg **m_r, char **error_r)
{
	return store_msg_create(st->data_dir, m_r, error_r);
}

/* A delivery's completion, wrapped to tell the watchers of every account it
 * reached before the caller hears of it. */
struct deliver_notify {
	struct store *st;
	struct store_delivery *d;
	store_deliver_cb *cb;
	void *ctx;
};

static void deliver_notify_done(void *ctx, int result, char *error)
{
	struct deliver_notify *n = ctx;
	store_deliver_cb *cb = n->cb;
	void *cb_ctx = n->ctx;

	if (result == 1) {
		const char *mailbox = store_mailbox_normalize(n->d->mailbox);
		for (size_t i = 0; i < n->d->naccounts; i++)
			store_notify(n->st, n->d->accounts[i], mailbox);
	}
	free(n);
	cb(cb_ctx, result, error);
}

int store_deliver_async(struct store *st, struct store_delivery *d, uint32_t *uids_r,
                        store_deliver_cb *cb, void *ctx, char **error_r)
{
	struct deliver_notify *n;

	if (d == NULL || d->naccounts == 0)
		return st->ops->deliver_async(st->be, d, uids_r, cb, ctx, error_r);
	n = malloc(sizeof(*n));
	if (n == NULL) {
		str_error(error_r, "out of memory");
		return -1;
	}
	*n = (struct deliver_notify){.st = st, .d = d, .cb = cb, .ctx = ctx};
	if (st->ops->deliver_async(st->be, d, uids_r, deliver_notify_done, n, error_r) < 0) {
		free(n);
		return -1;
	}
	return 1;
}

struct deliver_wait {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool done;
	int result;
	char *error;
};

static void deliver_wait_done(void *ctx, int result, char *error)
{
	struct deliver_wait *w = ctx;

	pthread_mutex_lock(&w->mu);
	w->result = result;
	w->error = error;
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mu);
}

int store_deliver(struct store *st, struct store_delivery *d, uint32_t *uids_r, char **error_r)
{
	struct deliver_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

	if (store_deliver_async(st, d, uids_r, deliver_wait_done, &w, error_r) < 0)
		return -1;
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		pthread_cond_wait(&w.cond, &w.mu);
	pthread_mutex_unlock(&w.mu);
	pthread_mutex_destroy(&w.mu);
	pthread_cond_destroy(&w.cond);
	if (w.result < 0) {
		if (error_r != NULL)
			*error_r = w.error;
		else
			free(w.error);
		return -1;
	}
	return 1;
}

int store_queue_list(struct store *st, store_queue_cb *cb, void *ctx, char **error_r)
{
	return st->ops->queue_list(st->be, cb, ctx, error_r);
}

int store_queue_get(struct store *st, int64_t id, char **data_r, size_t *len_r, char **error_r)
{
	return st->ops->queue_get(st->be, id, data_r, len_r, error_r);
}

int store_queue_show(struct store *st, int64_t id, store_queue_cb *cb, void *ctx, char **error_r)
{
	return st->ops->queue_show(st->be, id, cb, ctx, error_r);
}

int store_queue_delete(struct store *st, int64_t id, char **error_r)
{
	return st->ops->queue_delete(st->be, id, error_r);
}

/* ---- the queue runner's ---- */

static int store_unsupported(struct store *st, const char *what, char **error_r);

#define STORE_DISPATCH(op, ...)                                                                    \
	(st->ops->op == NULL ? store_unsupported(st, #op, error_r)                                 \
	                     : st->ops->op(st->be, __VA_ARGS__))

void store_set_queue_hook(struct store *st, store_queue_hook *fn, void *ctx)
{
	st->queue_hook = fn;
	st->queue_hook_ctx = ctx;
	if (st->ops->set_queue_hook != NULL)
		st->ops->set_queue_hook(st->be, fn, ctx);
}

static void store_queue_told(struct store *st)
{
	if (st->queue_hook != NULL)
		st->queue_hook(st->queue_hook_ctx);
}

int store_queue_lease(struct store *st, int64_t now, const char *owner, unsigned lease_secs,
                      size_t max, store_queue_cb *cb, void *ctx, char **error_r)
{
	if (owner == NULL || owner[0] == '\0' || !store_text_ok(owner) || cb == NULL) {
		str_error(error_r, "store_queue_lease: no owner or callback");
		return -1;
	}
	if (max == 0)
		return 0;
	return STORE_DISPATCH(queue_lease, now, owner, lease_secs, max, cb, ctx, error_r);
}

int store_queue_release_leases(struct store *st, char **error_r)
{
	return STORE_DISPATCH(queue_release_leases, error_r);
}

/* A reply as stored: one line (controls, CR and LF included, become spaces), at
 * most STORE_QUEUE_REPLY_MAX octets, cut at a UTF-8 character boundary. */
static char *queue_reply_clean(const char *reply)
{
	size_t n = strnlen(reply, STORE_QUEUE_REPLY_MAX + 1);

	if (n > STORE_QUEUE_REPLY_MAX) {
		n = STORE_QUEUE_REPLY_MAX;
		while (n > 0 && ((unsigned char)reply[n] & 0xc0) == 0x80)
			n--; /* reply[n] continues a character: cut before it */
	}
	char *r = malloc(n + 1);
	if (r == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)reply[i];
		r[i] = c < ' ' || c == 0x7f ? ' ' : (char)c;
	}
	r[n] = '\0';
	return r;
}

int store_queue_record(struct store *st, int64_t id, const struct store_queue_result *res, size_t n,
                       int64_t next_attempt, bool *removed_r, char **error_r)
{
	struct store_queue_result *clean = NULL;
	int rc = -1;

	if (removed_r != NULL)
		*removed_r = false;
	if (n > 0 && res == NULL) {
		str_error(error_r, "store_queue_record: no results");
		return -1;
	}
	if (id <= 0)
		return 0;
	if (n > 0 && (clean = calloc(n, sizeof(*clean))) == NULL) {
		str_error(error_r, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (res[i].rcpt == NULL ||
		    (res[i].result != STORE_RCPT_DELIVERED &&
		     res[i].result != STORE_RCPT_DEFERRED && res[i].result != STORE_RCPT_BOUNCED)) {
			str_error(error_r, "store_queue_record: invalid result");
			goto out;
		}
		clean[i] = res[i];
		if (res[i].reply != NULL &&
		    (clean[i].reply = queue_reply_clean(res[i].reply)) == NULL) {
			str_error(error_r, "out of memory");
			goto out;
		}
	}
	rc = STORE_DISPATCH(queue_record, id, clean, n, next_attempt, removed_r, error_r);
out:
	for (size_t i = 0; clean != NULL && i < n; i++)
		free((char *)clean[i].reply);
	free(clean);
	return rc;
}

int store_queue_hold(struct store *st, int64_t id, bool hold, char **error_r)
{
	if (id <= 0)
		return 0;
	int rc = STORE_DISPATCH(queue_hold, id, hold, error_r);
	if (rc == 1 && !hold)
		store_queue_told(st);
	return rc;
}

int store_tlsrpt_add(struct store *st, const struct store_tlsrpt_row *rows, size_t n,
                     char **error_r)
{
	if (n == 0)
		return 1;
	return STORE_DISPATCH(tlsrpt_add, rows, n, error_r);
}

long store_tlsrpt_list(struct store *st, const char *before, store_tlsrpt_cb *cb, void *ctx,
                       char **error_r)
{
	return STORE_DISPATCH(tlsrpt_list, before, cb, ctx, error_r);
}

int store_tlsrpt_delete(struct store *st, const char *day, const char *domain, char **error_r)
{
	return STORE_DISPATCH(tlsrpt_delete, day, domain, error_r);
}

int store_queue_set_warned(struct store *st, int64_t id, char **error_r)
{
	if (id <= 0)
		return 0;
	return STORE_DISPATCH(queue_set_warned, id, error_r);
}

int store_queue_flush(struct store *st, int64_t id, char **error_r)
{
	if (id < 0) {
		str_error(error_r, "invalid queue id");
		return -1;
	}
	int rc = STORE_DISPATCH(queue_flush, id, error_r);
	if (rc == 1)
		store_queue_told(st);
	return rc;
}

int store_queue_bounce(struct store *st, int64_t id, char **error_r)
{
	if (id <= 0)
		return 0;
	int rc = STORE_DISPATCH(queue_bounce, id, error_r);
	if (rc == 1)
		store_queue_told(st);
	return rc;
}

int store_queue_next_due(struct store *st, int64_t *when_r, char **error_r)
{
	*when_r = 0;
	return STORE_DISPATCH(queue_next_due, when_r, error_r);
}

int store_mailbox_list(struct store *st, const char *account, store_mailbox_cb *cb, void *ctx,
                       char **error_r)
{
	return st->ops->mailbox_list(st->be, account, cb, ctx, error_r);
}

int store_message_list(struct store *st, const char *account, const char *mailbox,
                       store_message_cb *cb, void *ctx, char **error_r)
{
	return st->ops->message_list(st->be, account, mailbox, cb, ctx, error_r);
}

int store_message_get(struct store *st, const char *account, const char *mailbox, uint32_t uid,
                      char **data_r, size_t *len_r, char **error_r)
{
	return st->ops->message_get(st->be, account, mailbox, uid, data_r, len_r, error_r);
}

int store_blob_get(struct store *st, const char *blob_id, char **data_r, size_t *len_r,
                   char **error_r)
{
	if (blob_id == NULL) {
		str_error(error_r, "invalid blob id");
		return -1;
	}
	return st->ops->blob_get(st->be, blob_id, data_r, len_r, error_r);
}

int store_blob_open(struct store *st, const char *blob_id, struct store_blob_range *r,
                    char **error_r)
{
	r->fd = -1;
	r->off = r->len = 0;
	if (blob_id == NULL) {
		str_error(error_r, "invalid blob id");
		return -1;
	}
	return st->ops->blob_open(st->be, blob_id, r, error_r);
}

void store_blob_range_close(struct store_blob_range *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

int store_blob_sweep(struct store *st, unsigned min_age, uint64_t *removed_r, char **error_r)
{
	if (removed_r != NULL)
		*removed_r = 0;
	return st->ops->blob_sweep(st->be, min_age, removed_r, error_r);
}

int store_expunge_log_prune(struct store *st, uint64_t max_age, uint64_t max_rows,
                            uint64_t *removed_r, char **error_r)
{
	if (removed_r != NULL)
		*removed_r = 0;
	if (st->ops->expunge_log_prune == NULL)
		return 1; /* a backend without an expunge log */
	return st->ops->expunge_log_prune(st->be, max_age, max_rows, removed_r, error_r);
}

int store_message_expunge(struct store *st, const char *account, const char *mailbox,
                          const uint32_t *uids, size_t n, char **error_r)
{
	int rc = st->ops->message_expunge(st->be, account, mailbox, uids, n, error_r);
	if (rc > 0)
		store_notify(st, account, store_mailbox_normalize(mailbox));
	return rc;
}

/* ---- change notification ----
 * Watchers sit in STORE_WATCH_BUCKETS lists hashed by account (ASCII case
 * folded), so a change looks only at the watchers of its account however many
 * sessions idle. cb runs with watch_mu held: that is what lets
 * store_watch_remove promise that no call is running once it returns. */

static unsigned store_watch_hash(const char *account)
{
	unsigned h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)account; *p != '\0'; p++) {
		unsigned c = *p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p;
		h = (h ^ c) * 16777619u;
	}
	return h % STORE_WATCH_BUCKETS;
}

static void store_notify(struct store *st, const char *account, const char *mailbox)
{
	if (account == NULL)
		return;
	pthread_mutex_lock(&st->watch_mu);
	for (struct store_watch *w = st->watch[store_watch_hash(account)]; w != NULL; w = w->next) {
		if (strcasecmp(w->account, account) == 0)
			w->cb(w->ctx, w->account, mailbox);
	}
	pthread_mutex_unlock(&st->watch_mu);
}

int store_watch_add(struct store *st, const char *account, store_watch_cb *cb, void *ctx,
                    struct store_watch **w_r, char **error_r)
{
	struct store_watch *w;

	*w_r = NULL;
	if (account == NULL || cb == NULL) {
		str_error(error_r, "store_watch_add: no account or callback");
		return -1;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL || (w->account = strdup(account)) == NULL) {
		free(w);
		str_error(error_r, "out of memory");
		return -1;
	}
	w->cb = cb;
	w->ctx = ctx;
	pthread_mutex_lock(&st->watch_mu);
	struct store_watch **head = &st->watch[store_watch_hash(account)];
	w->next = *head;
	if (*head != NULL)
		(*head)->prevp = &w->next;
	w->prevp = head;
	*head = w;
	pthread_mutex_unlock(&st->watch_mu);
	*w_r = w;
	return 1;
}

void store_watch_remove(struct store *st, struct store_watch **wp)
{
	struct store_watch *w = *wp;

	if (w == NULL)
		return;
	*wp = NULL;
	pthread_mutex_lock(&st->watch_mu);
	*w->prevp = w->next;
	if (w->next != NULL)
		w->next->prevp = w->prevp;
	pthread_mutex_unlock(&st->watch_mu);
	free(w->account);
	free(w);
}

/* ---- IMAP ----
 * Names are normalized (INBOX) and checked here; a backend without an entry
 * answers "not supported". Watchers are told after every successful change. */

static int store_unsupported(struct store *st, const char *what, char **error_r)
{
	str_error(error_r, "store: the %s backend does not support %s", st->ops->name, what);
	return -1;
}

/* A name that breaks the rules: what each function says about it (store.h). */
static int store_name_bad(const char *name, int result, char **error_r)
{
	if (result != 0)
		str_error(error_r, "invalid mailbox name");
	return result;
}

#define STORE_NAME_CHECK(name, result)                                                         \
	do {                                                                                   \
		if (!store_mailbox_name_valid(name))                                            \
			return store_name_bad(name, result, error_r);                            \
	} while (0)

#define STORE_ACCOUNT_CHECK(account)                                                           \
	do {                                                                                   \
		if ((account) == NULL) {                                                       \
			str_error(error_r, "no account given");                                  \
			return -1;                                                             \
		}                                                                              \
	} while (0)

int store_mailbox_create(struct store *st, const char *account, const char *name,
                         const char *special_use, char **error_r)
{
	char name_buf[STORE_MAILBOX_NAME_MAX + 1];
	name = store_mailbox_canon(name, name_buf);
	STORE_ACCOUNT_CHECK(account);
	STORE_NAME_CHECK(name, STORE_CANNOT);
	int rc = STORE_DISPATCH(mailbox_create, account, name, special_use, error_r);
	if (rc == 1)
		store_notify(st, account, NULL);
	return rc;
}

int store_mailbox_delete(struct store *st, const char *account, const char *name, char **error_r)
{
	char name_buf[STORE_MAILBOX_NAME_MAX + 1];
	name = store_mailbox_canon(name, name_buf);
	STORE_ACCOUNT_CHECK(account);
	STORE_NAME_CHECK(name, 0);
	int rc = STORE_DISPATCH(mailbox_delete, account, name, error_r);
	if (rc == 1)
		store_notify(st, account, NULL);
	return rc;
}

int store_mailbox_rename(struct store *st, const char *account, const char *from, const char *to,
                         char **error_r)
{
	char from_buf[STORE_MAILBOX_NAME_MAX + 1];
	from = store_mailbox_canon(from, from_buf);
	char to_buf[STORE_MAILBOX_NAME_MAX + 1];
	to = store_mailbox_canon(to, to_buf);
	STORE_ACCOUNT_CHECK(account);
	STORE_NAME_CHECK(from, 0);
	STORE_NAME_CHECK(to, STORE_CANNOT);
	int rc = STORE_DISPATCH(mailbox_rename, account, from, to, error_r);
	if (rc == 1)
		store_notify(st, account, NULL);
	return rc;
}

int store_mailbox_subscribe(struct store *st, const char *account, const char *name, bool on,
                            char **error_r)
{
	char name_buf[STORE_MAILBOX_NAME_MAX + 1];
	name = store_mailbox_canon(name, name_buf);
	STORE_ACCOUNT_CHECK(account);
	STORE_NAME_CHECK(name, STORE_CANNOT);
	return STORE_DISPATCH(mailbox_subscribe, account, name, on, error_r);
}

int store_subscription_list(struct store *st, const char *account, store_name_cb *cb, void *ctx,
                            char **error_r)
{
	STORE_ACCOUNT_CHECK(account);
	return STORE_DISPATCH(subscription_list, account, cb, ctx, error_r);
}

int store_mailbox_get(struct store *st, const char *account, const char *name,
                      store_mailbox_cb *cb, void *ctx, char **error_r)
{
	char name_buf[STORE_MAILBOX_NAME_MAX + 1];
	name = store_mailbox_canon(name, name_buf);
	STORE_ACCOUNT_CHECK(account);
	STORE_NAME_CHECK(name, 0);
	return STORE_DISPATCH(mailbox_get, account, name, cb, ctx, error_r);
}

int store_mailbox_changes(struct store *st, const char *account, const char *mailbox,
                          uint64_t since, const struct store_changes_ops *ops, void *ctx,
                          char **error_r)
{
	char mailbox_buf[STORE_MAILBOX_NAME_MAX + 1];
	mailbox = store_mailbox_canon(mailbox, mailbox_buf);
	STORE_ACCOUNT_CHECK(account);
	STORE_NAME_CHECK(mailbox, 0);
	return STORE_DISPATCH(mailbox_changes, account, mailbox, since, ops, ctx, error_r);
}

int store_message_ranges(struct store *st, const char *account, const char *mailbox,
                         uint32_t uidvalidity, const struct store_uid_range *ranges, size_t n,
                         store_message_cb *cb, void *ctx, char **error_r)
{
	char mailbox_buf[STORE_MAILBOX_NAME_MAX + 1];
	mailbox = store_mailbox_canon(mailbox, mailbox_buf);
	STORE_ACCOUNT_CHECK(account);
	STORE_NAME_CHECK(mailbox, 0);
	if (n > 0 && ranges == NULL)
		return str_error(error_r, "no UID ranges given");
	for (size_t i = 0; i < n; i++)
		if (ranges[i].first > ranges[i].last ||
		    (i > 0 && ranges[i].first <= ranges[i - 1].last))
			return str_error(error_r, "UID ranges not ascending");
	return STORE_DISPATCH(message_ranges, account, mailbox, uidvalidity, ranges, n, cb, ctx,
	                      error_r);
}

/* Counts the entries a STORE changed, to notify only when there were some. */
struct flags_count {
	const struct store_flags_ops *ops;
	void *ctx;
	size_t changed;
};

static void flags_count_changed(void *ctx, const struct store_message_info *m)
{
	struct flags_count *fc = ctx;

	fc->changed++;
	if (fc->ops != NULL && fc->ops->changed != NULL)
		fc->ops->changed(fc->ctx, m);
}

static void flags_count_modified(void *ctx, uint32_t uid)
{
	struct flags_count *fc = ctx;

	if (fc->ops != NULL && fc->ops->modified != NULL)
		fc->ops->modified(fc->ctx, uid);
}

int store_message_flags(struct store *st, const char *account, const char *mailbox,
                        const uint32_t *uids, size_t n, enum store_flags_op op, const char *flags,
                        uint64_t unchangedsince, const struct store_flags_ops *ops, void *ctx,
                        char **error_r)
{
	static const struct store_flags_ops count_ops = {flags_count_changed, flags_count_modified};
	struct flags_count fc = {.ops = ops, .ctx = ctx};

	char mailbox_buf[STORE_MAILBOX_NAME_MAX + 1];
	mailbox = store_mailbox_canon(mailbox, mailbox_buf);
	STORE_ACCOUNT_CHECK(account);
	STORE_NAME_CHECK(mailbox, 0);
	if (uids == NULL && n > 0) {
		str_error(error_r, "store_message_flags: no UIDs");
		return -1;
	}
	int rc = STORE_DISPATCH(message_flags, account, mailbox, uids, n, op, flags, unchangedsince,
	                        &count_ops, &fc, error_r);
	if (rc == 1 && fc.changed > 0)
		store_notify(st, account, mailbox);
	return rc;
}

int store_message_copy(struct store *st, const char *account, const char *from, const char *to,
                       const uint32_t *uids, size_t n, bool move, struct store_copy_result *r,
                       char **error_r)
{
	memset(r, 0, sizeof(*r));
	char from_buf[STORE_MAILBOX_NAME_MAX + 1];
	from = store_mailbox_canon(from, from_buf);
	char to_buf[STORE_MAILBOX_NAME_MAX + 1];
	to = store_mailbox_canon(to, to_buf);
	STORE_ACCOUNT_CHECK(account);
	STORE_NAME_CHECK(from, 0);
	STORE_NAME_CHECK(to, STORE_NOMAILBOX);
	if (uids == NULL && n > 0) {
		str_error(error_r, "store_message_copy: no UIDs");
		return -1;
	}
	int rc = STORE_DISPATCH(message_copy, account, from, to, uids, n, move, r, error_r);
	if (rc == 1 && r->n > 0) {
		store_notify(st, account, to);
		if (move)
			store_notify(st, account, from);
	}
	return rc;
}

void store_copy_result_free(struct store_copy_result *r)
{
	free(r->src_uids);
	free(r->dst_uids);
	r->src_uids = r->dst_uids = NULL;
	r->n = 0;
}

int store_mailbox_expunge_deleted(struct store *st, const char *account, const char *mailbox,
                                  const uint32_t *only, size_t nonly,
                                  void (*expunged)(void *ctx, uint32_t uid), void *ctx,
                                  char **error_r)
{
	char mailbox_buf[STORE_MAILBOX_NAME_MAX + 1];
	mailbox = store_mailbox_canon(mailbox, mailbox_buf);
	STORE_ACCOUNT_CHECK(account);
	STORE_NAME_CHECK(mailbox, 0);
	int rc =
	    STORE_DISPATCH(mailbox_expunge_deleted, account, mailbox, only, nonly, expunged, ctx,
	                   error_r);
	if (rc > 0)
		store_notify(st, account, mailbox);
	return rc;
}

int store_append(struct store *st, const char *account, const char *mailbox,
                 const struct store_append_msg *msgs, size_t n, uint32_t *uidvalidity_r,
                 uint32_t *uids_r, char **error_r)
{
	char mailbox_buf[STORE_MAILBOX_NAME_MAX + 1];
	mailbox = store_mailbox_canon(mailbox, mailbox_buf);
	STORE_ACCOUNT_CHECK(account);
	STORE_NAME_CHECK(mailbox, STORE_NOMAILBOX);
	int rc = STORE_DISPATCH(append, account, mailbox, msgs, n, uidvalidity_r, uids_r, error_r);
	if (rc == 1)
		store_notify(st, account, mailbox);
	return rc;
}

int store_blob_cache_get(struct store *st, const char *blob_id, char **data_r, size_t *len_r,
                         char **error_r)
{
	*data_r = NULL;
	*len_r = 0;
	if (blob_id == NULL) {
		str_error(error_r, "invalid blob id");
		return -1;
	}
	return STORE_DISPATCH(blob_cache_get, blob_id, data_r, len_r, error_r);
}

int store_blob_cache_put(struct store *st, const char *blob_id, const void *data, size_t len,
                         char **error_r)
{
	if (blob_id == NULL) {
		str_error(error_r, "invalid blob id");
		return -1;
	}
	return STORE_DISPATCH(blob_cache_put, blob_id, data, len, error_r);
}

/* ---- resolving recipients ---- */

struct resolve {
	struct store *st;
	struct store_lookup *lk;
	struct store_strv out;
	/* alias targets outside the local domains (forwarding), when asked for */
	bool want_remote;
	struct store_strv remote;
};

/* 1 when target is an alias target outside every local domain (added to
 * rs->remote), 0 when it is local (or malformed), -1 error. */
static int resolve_remote_target(struct resolve *rs, const char *target, char **error_r)
{
	char *addr = NULL;
	size_t at;
	int rc;

	if (!store_addr_valid(target, false, true) || strchr(target, '@') == NULL)
		return 0;
	if (store_addr_normalize_ex(target, false, true, &addr, &at, error_r) < 0)
		return -1;
	rc = rs->st->ops->lookup_domain(rs->lk, addr + at + 1, error_r);
	if (rc == 0) {
		if (rs->remote.n >= STORE_RESOLVE_MAX) {
			rc = str_error(error_r, "recipient forwards to too many addresses");
		} else {
			rc = store_strv_add_unique(&rs->remote, addr, error_r) < 0 ? -1 : 1;
		}
	} else if (rc == 1) {
		rc = 0;
	}
	free(addr);
	return rc;
}

/* 1 if address is an account (canonical form added to out), 0 if not, -1 error. */
static int resolve_account(struct resolve *rs, const char *address, char **error_r)
{
	char *canon = NULL;
	int rc = rs->st->ops->lookup_account(rs->lk, address, &canon, error_r);

	if (rc == 1) {
		if (rs->out.n >= STORE_RESOLVE_MAX) {
			free(canon);
			str_error(error_r, "recipient expands to too many accounts");
			return -1;
		}
		if (store_strv_add_unique(&rs->out, canon, error_r) < 0)
			rc = -1;
		free(canon);
	}
	return rc;
}

static int resolve_rec(struct resolve *rs, const char *address, unsigned depth, bool catchall,
                       char **error_r);

/* 1 if source has alias rows (each target followed), 0 if none, -1 error.
 * catchall: whether targets may fall through to their domain's catch-all. */
static int resolve_alias(struct resolve *rs, const char *source, unsigned depth, bool catchall,
                         char **error_r)
{
	char **targets = NULL;
	int ret = rs->st->ops->lookup_alias(rs->lk, source, &targets, error_r);

	/* Targets in other domains are forwarded (collected when asked for);
	 * targets in local domains that are neither accounts nor aliases are
	 * ignored; past the depth bound a loop just stops expanding. */
	for (size_t i = 0; ret == 1 && targets[i] != NULL && depth < STORE_ALIAS_DEPTH_MAX; i++) {
		int rr = rs->want_remote ? resolve_remote_target(rs, targets[i], error_r) : 0;
		if (rr < 0 || (rr == 0 && resolve_rec(rs, targets[i], depth + 1, catchall, error_r) < 0))
			ret = -1;
	}
	store_strv_free(&targets);
	return ret;
}

static int resolve_rec(struct resolve *rs, const char *address, unsigned depth, bool catchall,
                       char **error_r)
{
	char *addr, *base = NULL;
	size_t at;
	const char *plus;
	int rc;

	if (!store_addr_valid(address, false, true))
		return 0; /* a malformed alias target matches nothing */
	if (store_addr_normalize_ex(address, false, true, &addr, &at, error_r) < 0)
		return -1;

	/* exact account, then exact alias */
	rc = resolve_account(rs, addr, error_r);
	if (rc == 0)
		rc = resolve_alias(rs, addr, depth, catchall, error_r);
	/* plus-addressing: "user+tag@d" is retried as "user@d" */
	if (rc == 0 && (plus = memchr(addr, '+', at)) != NULL && plus != addr) {
		size_t llen = (size_t)(plus - addr), dlen = strlen(addr + at);
		base = malloc(llen + dlen + 1);
		if (base == NULL) {
			free(addr);
			str_error(error_r, "out of memory");
			return -1;
		}
		memcpy(base, addr, llen);
		memcpy(base + llen, addr + at, dlen + 1);
		rc = resolve_account(rs, base, error_r);
		if (rc == 0)
			rc = resolve_alias(rs, base, depth, catchall, error_r);
	}
	/* catch-all "@d" */
	if (rc == 0 && catchall)
		rc = resolve_alias(rs, addr + at, depth, catchall, error_r);
	free(base);
	free(addr);
	return rc;
}

/* ---- postmaster (RFC 5321 4.5.1) ---- */

static bool is_postmaster(const char *local, size_t len)
{
	return len == 10 && strncasecmp(local, "postmaster", 10) == 0;
}

/* The primary domain into *dom_r (malloc'd): hostname if local, else its parent
 * if local, else the oldest local domain. 1 ok, 0 no local domain, -1 error. */
static int primary_domain(struct resolve *rs, char **dom_r, char **error_r)
{
	const char *h = rs->st->hostname;
	int rc;

	*dom_r = NULL;
	for (int i = 0; h != NULL && *h != '\0' && i < 2; i++) {
		rc = rs->st->ops->lookup_domain(rs->lk, h, error_r);
		if (rc < 0)
			return -1;
		if (rc == 1) {
			*dom_r = strdup(h);
			if (*dom_r == NULL) {
				str_error(error_r, "out of memory");
				return -1;
			}
			return 1;
		}
		h = strchr(h, '.');
		if (h != NULL)
			h++;
	}
	return rs->st->ops->lookup_first_domain(rs->lk, dom_r, error_r);
}

/* Adds the oldest account (of domain, or of all when NULL). 1 added, 0 none, -1. */
static int oldest_account(struct resolve *rs, const char *domain, char **error_r)
{
	char *a = NULL;
	int rc = rs->st->ops->lookup_first_account(rs->lk, domain, &a, error_r);

	if (rc == 1 && store_strv_add_unique(&rs->out, a, error_r) < 0)
		rc = -1;
	free(a);
	return rc;
}

/* postmaster@<domain> as an account or through its alias rows (no plus-address,
 * no catch-all). 1 if it reached an account, 0 if not, -1 error. */
static int postmaster_direct(struct resolve *rs, const char *domain, char **error_r)
{
	char *addr = NULL;
	size_t before = rs->out.n;
	int rc;

	if (asprintf(&addr, "postmaster@%s", domain) < 0) {
		str_error(error_r, "out of memory");
		return -1;
	}
	rc = resolve_account(rs, addr, error_r);
	if (rc == 0)
		rc = resolve_alias(rs, addr, 0, true, error_r);
	free(addr);
	if (rc < 0)
		return -1;
	return rs->out.n > before ? 1 : 0;
}

/* postmaster@domain for a local domain: see store.h for the order. */
static int resolve_postmaster(struct resolve *rs, const char *domain, char **error_r)
{
	char *primary = NULL;
	int rc;

	rc = postmaster_direct(rs, domain, error_r);
	if (rc != 0)
		return rc;
	rc = primary_domain(rs, &primary, error_r);
	if (rc == 1 && strcasecmp(primary, domain) != 0)
		rc = postmaster_direct(rs, primary, error_r);
	else if (rc == 1)
		rc = 0;
	free(primary);
	if (rc != 0)
		return rc;
	rc = oldest_account(rs, domain, error_r);
	if (rc == 0)
		rc = oldest_account(rs, NULL, error_r);
	return rc;
}

static int resolve_top(struct resolve *rs, const char *address, char **error_r)
{
	char *addr = NULL, *primary = NULL;
	size_t at;
	int rc;

	/* RFC 5321 4.5.1: "postmaster" without a domain is the primary domain's */
	if (strchr(address, '@') == NULL && is_postmaster(address, strlen(address))) {
		rc = primary_domain(rs, &primary, error_r);
		if (rc == 1)
			rc = resolve_postmaster(rs, primary, error_r);
		free(primary);
		return rc;
	}
	if (store_addr_normalize_ex(address, false, true, &addr, &at, error_r) < 0)
		return -1;
	if (is_postmaster(addr, at)) {
		rc = rs->st->ops->lookup_domain(rs->lk, addr + at + 1, error_r);
		if (rc == 1)
			rc = resolve_postmaster(rs, addr + at + 1, error_r);
	} else {
		rc = resolve_rec(rs, addr, 0, true, error_r);
	}
	free(addr);
	return rc;
}

int store_resolve_recipient(struct store *st, const char *address, char ***accounts_r,
                            char **error_r)
{
	struct resolve rs = {.st = st};
	int rc;

	*accounts_r = NULL;
	if (address == NULL) {
		str_error(error_r, "invalid address ''");
		return -1;
	}
	/* One snapshot: consistent across all the lookups. */
	if (st->ops->lookup_begin(st->be, &rs.lk, error_r) < 0)
		return -1;
	rc = resolve_top(&rs, address, error_r);
	st->ops->lookup_end(&rs.lk);
	if (rc < 0 || rs.out.n == 0) {
		store_strv_free(&rs.out.v);
		return rc < 0 ? -1 : 0;
	}
	*accounts_r = rs.out.v;
	return 1;
}

int store_resolve_recipients(struct store *st, const char *const *addresses, size_t n,
                             char ***results_r, int *rcs_r, char **error_r)
{
	return store_resolve_recipients_fwd(st, addresses, n, results_r, NULL, rcs_r, error_r);
}

int store_resolve_recipients_fwd(struct store *st, const char *const *addresses, size_t n,
                                 char ***results_r, char ***remotes_r, int *rcs_r,
                                 char **error_r)
{
	struct store_lookup *lk = NULL;

	for (size_t i = 0; i < n; i++) {
		results_r[i] = NULL;
		if (remotes_r != NULL)
			remotes_r[i] = NULL;
		rcs_r[i] = 0;
	}
	if (st->ops->lookup_begin(st->be, &lk, error_r) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct resolve rs = {.st = st, .lk = lk, .want_remote = remotes_r != NULL};
		char *err = NULL;
		const char *a = addresses[i];
		bool valid =
		    a != NULL && ((strchr(a, '@') == NULL && is_postmaster(a, strlen(a))) ||
		                  store_addr_valid(a, false, true));
		int rc = valid ? resolve_top(&rs, a, &err) : -1;

		if (rc < 0 && valid) {
			/* the lookup failed, not the address: fail the whole call */
			store_strv_free(&rs.out.v);
			store_strv_free(&rs.remote.v);
			for (size_t k = 0; k < i; k++) {
				store_strv_free(&results_r[k]);
				if (remotes_r != NULL)
					store_strv_free(&remotes_r[k]);
			}
			st->ops->lookup_end(&lk);
			if (error_r != NULL)
				*error_r = err;
			else
				free(err);
			return -1;
		}
		free(err);
		if (rc < 0 || (rs.out.n == 0 && rs.remote.n == 0)) {
			store_strv_free(&rs.out.v);
			store_strv_free(&rs.remote.v);
			rcs_r[i] = rc < 0 ? -1 : 0;
			continue;
		}
		results_r[i] = rs.out.v; /* NULL when it only forwards */
		if (remotes_r != NULL)
			remotes_r[i] = rs.remote.v;
		rcs_r[i] = 1;
	}
	st->ops->lookup_end(&lk);
	return 1;
}

/* Sender ownership (RFC 6409 submission). The rules mirror delivery: an address
 * that is an account belongs to that account alone (resolve never looks at alias
 * rows for it); an address with alias rows belongs to every account its targets
 * reach, with the same depth bound as resolve but never through a catch-all (a
 * catch-all receives mail for unknown names; it does not make every name in the
 * domain the catch-all owner's sender address); a plus-address "user+tag@d" without
 * alias rows of its own belongs to the account "user@d". */
int store_account_owns_address(struct store *st, const char *account, const char *address,
                               char **error_r)
{
	struct resolve rs = {.st = st};
	char *acct = NULL, *addr = NULL, *canon = NULL;
	const char *plus;
	size_t at;
	int rc, ret = -1;

	if (store_addr_normalize(account, false, &acct, NULL, error_r) < 0)
		return -1;
	/* A sender that is not even an address is not owned (the caller's parser
	 * should have refused it already). */
	if (!store_addr_valid(address, false, true)) {
		free(acct);
		return 0;
	}
	if (store_addr_normalize_ex(address, false, true, &addr, &at, error_r) < 0) {
		free(acct);
		return -1;
	}
	if (st->ops->lookup_begin(st->be, &rs.lk, error_r) < 0) {
		free(acct);
		free(addr);
		return -1;
	}
	rc = st->ops->lookup_account(rs.lk, acct, &canon, error_r);
	if (rc <= 0) {
		ret = rc; /* no such account owns nothing */
		goto out;
	}
	if (strcasecmp(addr, canon) == 0) {
		ret = 1;
		goto out;
	}
	rc = st->ops->lookup_account(rs.lk, addr, NULL, error_r);
	if (rc != 0) {
		ret = rc < 0 ? -1 : 0; /* another account's own address */
		goto out;
	}
	rc = resolve_alias(&rs, addr, 0, false, error_r);
	if (rc < 0)
		goto out;
	if (rc == 1) {
		ret = 0;
		for (size_t i = 0; i < rs.out.n; i++) {
			if (strcasecmp(rs.out.v[i], canon) == 0)
				ret = 1;
		}
		goto out;
	}
	ret = 0;
	plus = memchr(addr, '+', at);
	if (plus != NULL && plus != addr) {
		size_t llen = (size_t)(plus - addr);
		const char *cat = strrchr(canon, '@');
		/* canon's local part is addr's up to the '+', and the domains match */
		if (cat != NULL && (size_t)(cat - canon) == llen &&
		    strncasecmp(addr, canon, llen) == 0 && strcasecmp(addr + at, cat) == 0)
			ret = 1;
	}
out:
	st->ops->lookup_end(&rs.lk);
	store_strv_free(&rs.out.v);
	free(canon);
	free(acct);
	free(addr);
	return ret;
}

/* ---- MTA-STS policy cache ---- */

static bool store_mta_sts_str_ok(const char *s, size_t max)
{
	return s != NULL && s[0] != '\0' && strlen(s) <= max;
}

void store_mta_sts_clear(struct store_mta_sts *r)
{
	if (r == NULL)
		return;
	free(r->domain);
	free(r->id);
	free(r->policy);
	memset(r, 0, sizeof(*r));
}

int store_mta_sts_get(struct store *st, const char *domain, struct store_mta_sts *r,
                      char **error_r)
{
	memset(r, 0, sizeof(*r));
	if (!store_mta_sts_str_ok(domain, STORE_MTA_STS_DOMAIN_MAX)) {
		str_error(error_r, "invalid domain");
		return -1;
	}
	int rc = STORE_DISPATCH(mta_sts_get, domain, r, error_r);
	if (rc != 1)
		store_mta_sts_clear(r);
	return rc;
}

int store_mta_sts_put(struct store *st, const struct store_mta_sts *p, char **error_r)
{
	if (!store_mta_sts_str_ok(p->domain, STORE_MTA_STS_DOMAIN_MAX) ||
	    !store_mta_sts_str_ok(p->id, STORE_MTA_STS_ID_MAX) || p->policy == NULL ||
	    strlen(p->policy) > STORE_MTA_STS_POLICY_MAX) {
		str_error(error_r, "invalid MTA-STS cache entry");
		return -1;
	}
	return STORE_DISPATCH(mta_sts_put, p, error_r);
}

int store_mta_sts_delete(struct store *st, const char *domain, char **error_r)
{
	if (!store_mta_sts_str_ok(domain, STORE_MTA_STS_DOMAIN_MAX)) {
		str_error(error_r, "invalid domain");
		return -1;
	}
	return STORE_DISPATCH(mta_sts_delete, domain, error_r);
}
