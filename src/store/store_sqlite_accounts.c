/* SQLite backend: domains, accounts, aliases and the primitive lookups of the
 * recipient rules (store.c). */
#include "store/store_sqlite_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---- domains ---- */

int sqlite_domain_add(struct store_backend *st, const char *domain, char **error_r)
{
	char now[32], *dom;
	bool constraint = false;
	int n;

	if (store_domain_normalize(domain, &dom, error_r) < 0)
		return -1;
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	const char *params[] = {dom, now};
	n = sqlite_wexec_text(st, "INSERT INTO domains (name, created) VALUES (?1, ?2)", params, 2,
	                      &constraint, error_r);
	if (constraint)
		str_error(error_r, "domain %s already exists", dom);
	free(dom);
	return n < 0 ? -1 : 1;
}

int sqlite_domain_del(struct store_backend *st, const char *domain, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	char *dom;
	int ret = -1, rc;

	if (store_domain_normalize(domain, &dom, error_r) < 0)
		return -1;
	pthread_mutex_lock(&st->wmu);
	if (sqlite_db_exec(st->wdb, "BEGIN IMMEDIATE", error_r) < 0)
		goto out;
	/* Refuse to orphan accounts (and their mail) or aliases: the admin deletes
	 * those explicitly first. */
	if (sqlite_db_prepare(st->wdb,
	                      "SELECT (SELECT count(*) FROM accounts WHERE domain = ?1),"
	                      "       (SELECT count(*) FROM aliases WHERE domain = ?1)",
	                      &stmt, error_r) < 0)
		goto rollback;
	sqlite3_bind_text(stmt, 1, dom, -1, SQLITE_STATIC);
	if (sqlite3_step(stmt) != SQLITE_ROW) {
		sqlite_db_fail(st->wdb, error_r, "database");
		goto rollback;
	}
	if (sqlite3_column_int(stmt, 0) > 0 || sqlite3_column_int(stmt, 1) > 0) {
		str_error(
		    error_r,
		    "domain %s still has %d account(s) and %d alias(es); delete them first", dom,
		    sqlite3_column_int(stmt, 0), sqlite3_column_int(stmt, 1));
		goto rollback;
	}
	sqlite3_finalize(stmt);
	if (sqlite_db_prepare(st->wdb, "DELETE FROM domains WHERE name = ?1", &stmt, error_r) < 0)
		goto rollback;
	sqlite3_bind_text(stmt, 1, dom, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_DONE) {
		sqlite_db_fail(st->wdb, error_r, "database");
		goto rollback;
	}
	ret = sqlite3_changes(st->wdb) > 0 ? 1 : 0;
	if (sqlite_db_exec(st->wdb, "COMMIT", error_r) < 0) {
		ret = -1;
		goto rollback;
	}
	goto out;
rollback:
	sqlite_db_rollback(st->wdb);
out:
	sqlite3_finalize(stmt);
	pthread_mutex_unlock(&st->wmu);
	free(dom);
	return ret;
}

int sqlite_domain_exists(struct store_backend *st, const char *domain, char **error_r)
{
	char *dom;
	int ret;

	if (store_domain_normalize(domain, &dom, error_r) < 0)
		return -1;
	const char *params[] = {dom};
	ret = sqlite_rquery_text(st, "SELECT 1 FROM domains WHERE name = ?1", params, 1, NULL,
	                         error_r);
	free(dom);
	return ret;
}

int sqlite_domain_list(struct store_backend *st, store_name_cb *cb, void *ctx, char **error_r)
{
	return sqlite_rlist(st, "SELECT name FROM domains ORDER BY name", cb, NULL, ctx, error_r) <
	               0
	           ? -1
	           : 1;
}

/* ---- accounts ---- */

static const struct {
	const char *name, *special_use;
} default_mailboxes[] = {
    {"INBOX", NULL},      {"Sent", "\\Sent"}, {"Drafts", "\\Drafts"},
    {"Trash", "\\Trash"}, {"Junk", "\\Junk"}, {"Archive", "\\Archive"},
};

/* Inside the writer's transaction. The default mailboxes start subscribed. */
static int account_create_mailboxes(struct store_backend *st, int64_t account_id, char **error_r)
{
	sqlite3_stmt *stmt, *sub = NULL;
	uint32_t uidvalidity;
	int ret = 1;

	/* UIDVALIDITY must never repeat for a mailbox name (RFC 9051 2.3.1.1): the
	 * counter stays above every value handed out so far, also for a deleted and
	 * re-created account. One value for all of them: it is per name. */
	if (sqlite_uidvalidity_next(st->wdb, &uidvalidity, error_r) < 0)
		return -1;
	if (sqlite_db_prepare(st->wdb,
	                      "INSERT INTO mailboxes (account, name, special_use, uidvalidity)"
	                      " VALUES (?1, ?2, ?3, ?4)",
	                      &stmt, error_r) < 0)
		return -1;
	if (sqlite_db_prepare(st->wdb, "INSERT INTO subscriptions (account, name) VALUES (?1, ?2)",
	                      &sub, error_r) < 0) {
		sqlite3_finalize(stmt);
		return -1;
	}
	for (size_t i = 0; i < sizeof(default_mailboxes) / sizeof(default_mailboxes[0]); i++) {
		sqlite3_reset(stmt);
		sqlite3_bind_int64(stmt, 1, account_id);
		sqlite3_bind_text(stmt, 2, default_mailboxes[i].name, -1, SQLITE_STATIC);
		if (default_mailboxes[i].special_use != NULL)
			sqlite3_bind_text(stmt, 3, default_mailboxes[i].special_use, -1,
			                  SQLITE_STATIC);
		else
			sqlite3_bind_null(stmt, 3);
		sqlite3_bind_int64(stmt, 4, uidvalidity);
		sqlite3_reset(sub);
		sqlite3_bind_int64(sub, 1, account_id);
		sqlite3_bind_text(sub, 2, default_mailboxes[i].name, -1, SQLITE_STATIC);
		if (sqlite3_step(stmt) != SQLITE_DONE || sqlite3_step(sub) != SQLITE_DONE) {
			ret = sqlite_db_fail(st->wdb, error_r, "database");
			break;
		}
	}
	sqlite3_finalize(stmt);
	sqlite3_finalize(sub);
	return ret;
}

int sqlite_account_add(struct store_backend *st, const char *address, const char *pwhash,
                       char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	char *addr;
	size_t at;
	int ret = -1, rc;

	if (store_addr_normalize(address, false, &addr, &at, error_r) < 0)
		return -1;
	if (pwhash == NULL)
		pwhash = "";
	pthread_mutex_lock(&st->wmu);
	if (sqlite_db_exec(st->wdb, "BEGIN IMMEDIATE", error_r) < 0)
		goto out;
	const char *params[] = {addr + at + 1};
	rc = sqlite_query_text(st->wdb, "SELECT 1 FROM domains WHERE name = ?1", params, 1, NULL,
	                       error_r);
	if (rc < 0)
		goto rollback;
	if (rc == 0) {
		str_error(error_r, "domain %s does not exist", addr + at + 1);
		goto rollback;
	}
	if (sqlite_db_prepare(st->wdb,
	                      "INSERT INTO accounts (address, domain, pwhash, created)"
	                      " VALUES (?1, ?2, ?3, ?4)",
	                      &stmt, error_r) < 0)
		goto rollback;
	sqlite3_bind_text(stmt, 1, addr, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, addr + at + 1, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, pwhash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, (int64_t)time(NULL));
	rc = sqlite3_step(stmt);
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		str_error(error_r, "account %s already exists", addr);
		goto rollback;
	}
	if (rc != SQLITE_DONE) {
		sqlite_db_fail(st->wdb, error_r, "database");
		goto rollback;
	}
	if (account_create_mailboxes(st, sqlite3_last_insert_rowid(st->wdb), error_r) < 0)
		goto rollback;
	if (sqlite_db_exec(st->wdb, "COMMIT", error_r) < 0)
		goto rollback;
	ret = 1;
	goto out;
rollback:
	sqlite_db_rollback(st->wdb);
out:
	sqlite3_finalize(stmt);
	pthread_mutex_unlock(&st->wmu);
	free(addr);
	return ret;
}

int sqlite_account_del(struct store_backend *st, const char *address, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	char *addr;
	int64_t id;
	int ret = -1, rc;

	if (store_addr_normalize(address, false, &addr, NULL, error_r) < 0)
		return -1;
	pthread_mutex_lock(&st->wmu);
	if (sqlite_db_exec(st->wdb, "BEGIN IMMEDIATE", error_r) < 0)
		goto out;
	if (sqlite_db_prepare(st->wdb, "SELECT id FROM accounts WHERE address = ?1", &stmt,
	                      error_r) < 0)
		goto rollback;
	sqlite3_bind_text(stmt, 1, addr, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE) {
		ret = 0;
		goto rollback;
	}
	if (rc != SQLITE_ROW) {
		sqlite_db_fail(st->wdb, error_r, "database");
		goto rollback;
	}
	id = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	stmt = NULL;

	static const char *const steps[] = {
	    "UPDATE blobs SET refcount = refcount - (SELECT count(*) FROM messages m"
	    "   JOIN mailboxes b ON b.id = m.mailbox WHERE b.account = ?1 AND m.blob = blobs.id)"
	    " WHERE id IN (SELECT m.blob FROM messages m JOIN mailboxes b ON b.id = m.mailbox"
	    "              WHERE b.account = ?1)",
	    "DELETE FROM messages WHERE mailbox IN (SELECT id FROM mailboxes WHERE account = ?1)",
	    "DELETE FROM expunged WHERE mailbox IN (SELECT id FROM mailboxes WHERE account = ?1)",
	    "DELETE FROM mailboxes WHERE account = ?1",
	    "DELETE FROM subscriptions WHERE account = ?1",
	    "DELETE FROM accounts WHERE id = ?1",
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (sqlite_db_prepare(st->wdb, steps[i], &stmt, error_r) < 0)
			goto rollback;
		sqlite3_bind_int64(stmt, 1, id);
		if (sqlite3_step(stmt) != SQLITE_DONE) {
			sqlite_db_fail(st->wdb, error_r, "database");
			goto rollback;
		}
		sqlite3_finalize(stmt);
		stmt = NULL;
	}
	if (sqlite_db_exec(st->wdb, "COMMIT", error_r) < 0)
		goto rollback;
	ret = 1;
	goto out;
rollback:
	sqlite_db_rollback(st->wdb);
out:
	sqlite3_finalize(stmt);
	pthread_mutex_unlock(&st->wmu);
	free(addr);
	if (ret == 1) {
		/* The account is gone either way; a failed sweep leaves unreferenced blobs
		 * for the next sweep, which is harmless. */
		char *err = NULL;
		(void)sqlite_blob_sweep(st, &err);
		free(err);
	}
	return ret;
}

int sqlite_account_set_password(struct store_backend *st, const char *address, const char *pwhash,
                                char **error_r)
{
	char *addr;
	int n;

	if (store_addr_normalize(address, false, &addr, NULL, error_r) < 0)
		return -1;
	const char *params[] = {pwhash != NULL ? pwhash : "", addr};
	/* SCRAM keys derived from the old password must not outlive it: they are
	 * cleared here, in the same statement, and set again by the caller
	 * (store_account_set_scram) when it has keys for the new password. */
	n = sqlite_wexec_text(st,
	                      "UPDATE accounts SET pwhash = ?1, scram = NULL WHERE address = ?2",
	                      params, 2, NULL, error_r);
	free(addr);
	return n < 0 ? -1 : n > 0 ? 1 : 0;
}

int sqlite_account_get_password(struct store_backend *st, const char *address, char **pwhash_r,
                                char **error_r)
{
	char *addr;
	int ret;

	if (store_addr_normalize(address, false, &addr, NULL, error_r) < 0)
		return -1;
	const char *params[] = {addr};
	ret = sqlite_rquery_text(st, "SELECT pwhash FROM accounts WHERE address = ?1", params, 1,
	                         pwhash_r, error_r);
	free(addr);
	return ret;
}

int sqlite_account_set_scram(struct store_backend *st, const char *address, const char *scram,
                             char **error_r)
{
	char *addr;
	int n;

	if (scram != NULL && (*scram == '\0' || !store_text_ok(scram) || strlen(scram) > 1024)) {
		str_error(error_r, "invalid SCRAM credentials");
		return -1;
	}
	if (store_addr_normalize(address, false, &addr, NULL, error_r) < 0)
		return -1;
	/* A NULL parameter binds SQL NULL. */
	const char *params[] = {scram, addr};
	n = sqlite_wexec_text(st, "UPDATE accounts SET scram = ?1 WHERE address = ?2", params, 2,
	                      NULL, error_r);
	free(addr);
	return n < 0 ? -1 : n > 0 ? 1 : 0;
}

/* The columns of a credentials row into the outputs that are non-NULL (a NULL
 * pwhash becomes ""). 1 ok; -1 out of memory, with every output freed and NULL. */
static int credentials_copy(sqlite3_stmt *stmt, char **account_r, char **pwhash_r, char **scram_r,
                            char **error_r)
{
	char **outs[] = {account_r, pwhash_r, scram_r};

	for (int i = 0; i < 3; i++) {
		if (outs[i] != NULL && sqlite_column_dup(stmt, i, outs[i], error_r) < 0)
			goto fail;
	}
	if (pwhash_r != NULL && *pwhash_r == NULL && (*pwhash_r = str_dup("")) == NULL) {
		str_error(error_r, "out of memory");
		goto fail;
	}
	return 1;
fail:
	for (int i = 0; i < 3; i++) {
		if (outs[i] != NULL) {
			free(*outs[i]);
			*outs[i] = NULL;
		}
	}
	return -1;
}

int sqlite_account_get_credentials(struct store_backend *st, const char *address, char **account_r,
                                   char **pwhash_r, char **scram_r, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	sqlite3 *db;
	char *addr;
	int rc, ret = -1;

	if (account_r != NULL)
		*account_r = NULL;
	if (pwhash_r != NULL)
		*pwhash_r = NULL;
	if (scram_r != NULL)
		*scram_r = NULL;
	/* A login name that cannot be an address names no account: "not found", not
	 * an error (which the protocol would answer with a temporary failure). */
	if (!store_addr_valid(address, false, false))
		return 0;
	if (store_addr_normalize(address, false, &addr, NULL, error_r) < 0)
		return -1;
	if (sqlite_reader_get(st, &db, error_r) < 0) {
		free(addr);
		return -1;
	}
	/* address is COLLATE NOCASE: ASCII case-insensitive in the local part too */
	if (sqlite_stmt_cached(db, "SELECT address, pwhash, scram FROM accounts WHERE address = ?1",
	                      &stmt, error_r) < 0)
		goto out;
	sqlite3_bind_text(stmt, 1, addr, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE) {
		ret = 0;
	} else if (rc == SQLITE_ROW) {
		ret = credentials_copy(stmt, account_r, pwhash_r, scram_r, error_r);
	} else {
		sqlite_db_fail(db, error_r, "database");
	}
out:
	sqlite_stmt_release(stmt);
	sqlite_reader_put(st, db);
	free(addr);
	return ret;
}

int sqlite_account_list(struct store_backend *st, store_name_cb *cb, void *ctx, char **error_r)
{
	return sqlite_rlist(st, "SELECT address FROM accounts ORDER BY domain, address", cb, NULL,
	                    ctx, error_r) < 0
	           ? -1
	           : 1;
}

/* ---- aliases ---- */

int sqlite_alias_add(struct store_backend *st, const char *source, const char *target,
                     char **error_r)
{
	char *src = NULL, *dst = NULL, now[32];
	bool constraint = false;
	size_t at;
	int ret = -1, rc;

	if (store_addr_normalize(source, true, &src, &at, error_r) < 0 ||
	    store_addr_normalize(target, false, &dst, NULL, error_r) < 0)
		goto out;
	if (strcasecmp(src, dst) == 0) {
		str_error(error_r, "alias %s points to itself", src);
		goto out;
	}
	const char *dparams[] = {src + at + 1};
	rc = sqlite_rquery_text(st, "SELECT 1 FROM domains WHERE name = ?1", dparams, 1, NULL,
	                        error_r);
	if (rc < 0)
		goto out;
	if (rc == 0) {
		str_error(error_r, "domain %s does not exist", src + at + 1);
		goto out;
	}
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	/* The domain is re-checked by the foreign key inside the INSERT. */
	const char *params[] = {src, dst, src + at + 1, now};
	rc = sqlite_wexec_text(st,
	                       "INSERT INTO aliases (source, target, domain, created)"
	                       " VALUES (?1, ?2, ?3, ?4)",
	                       params, 4, &constraint, error_r);
	if (constraint)
		str_error(error_r, "alias %s -> %s already exists (or domain %s is gone)",
		                src, dst, src + at + 1);
	if (rc >= 0)
		ret = 1;
out:
	free(src);
	free(dst);
	return ret;
}

int sqlite_alias_del(struct store_backend *st, const char *source, const char *target,
                     char **error_r)
{
	char *src = NULL, *dst = NULL;
	int ret = -1, n;

	if (store_addr_normalize(source, true, &src, NULL, error_r) < 0)
		goto out;
	if (target != NULL) {
		if (store_addr_normalize(target, false, &dst, NULL, error_r) < 0)
			goto out;
		const char *params[] = {src, dst};
		n = sqlite_wexec_text(st, "DELETE FROM aliases WHERE source = ?1 AND target = ?2",
		                      params, 2, NULL, error_r);
	} else {
		const char *params[] = {src};
		n = sqlite_wexec_text(st, "DELETE FROM aliases WHERE source = ?1", params, 1, NULL,
		                      error_r);
	}
	ret = n < 0 ? -1 : n > 0 ? 1 : 0;
out:
	free(src);
	free(dst);
	return ret;
}

int sqlite_alias_list(struct store_backend *st, store_alias_cb *cb, void *ctx, char **error_r)
{
	return sqlite_rlist(st,
	                    "SELECT source, target FROM aliases ORDER BY domain, source, target",
	                    NULL, cb, ctx, error_r) < 0
	           ? -1
	           : 1;
}

/* ---- primitive lookups (the recipient rules are in store.c) ---- */

int sqlite_lookup_begin(struct store_backend *st, struct store_lookup **lk_r, char **error_r)
{
	struct store_lookup *lk = calloc(1, sizeof(*lk));

	*lk_r = NULL;
	if (lk == NULL) {
		str_error(error_r, "out of memory");
		return -1;
	}
	lk->st = st;
	if (sqlite_reader_get(st, &lk->db, error_r) < 0) {
		free(lk);
		return -1;
	}
	/* One read transaction: a consistent snapshot across all the lookups. */
	if (sqlite_db_exec(lk->db, "BEGIN", error_r) < 0) {
		sqlite_reader_put(st, lk->db);
		free(lk);
		return -1;
	}
	*lk_r = lk;
	return 1;
}

void sqlite_lookup_end(struct store_lookup **lkp)
{
	struct store_lookup *lk = *lkp;

	if (lk == NULL)
		return;
	*lkp = NULL;
	sqlite3_exec(lk->db, "COMMIT", NULL, NULL, NULL);
	sqlite_reader_put(lk->st, lk->db);
	free(lk);
}

int sqlite_lookup_account(struct store_lookup *lk, const char *address, char **canon_r,
                          char **error_r)
{
	const char *params[] = {address};

	/* address is COLLATE NOCASE: ASCII case-insensitive in the local part too */
	return sqlite_query_text(lk->db, "SELECT address FROM accounts WHERE address = ?1", params,
	                         1, canon_r, error_r);
}

int sqlite_lookup_alias(struct store_lookup *lk, const char *source, char ***targets_r,
                        char **error_r)
{
	struct store_strv targets = {0};
	sqlite3_stmt *stmt;
	int rc;

	*targets_r = NULL;
	if (sqlite_stmt_cached(lk->db,
	                       "SELECT target FROM aliases WHERE source = ?1 ORDER BY target",
	                       &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_text(stmt, 1, source, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(stmt, 0);
		if (t != NULL && store_strv_add_unique(&targets, t, error_r) < 0)
			break;
	}
	if (rc != SQLITE_DONE) {
		if (rc != SQLITE_ROW) /* SQLITE_ROW: a copy ran out of memory, error_r set */
			sqlite_db_fail(lk->db, error_r, "database");
		sqlite_stmt_release(stmt);
		store_strv_free(&targets.v);
		return -1;
	}
	sqlite_stmt_release(stmt);
	if (targets.n == 0)
		return 0;
	*targets_r = targets.v;
	return 1;
}

int sqlite_lookup_domain(struct store_lookup *lk, const char *domain, char **error_r)
{
	const char *params[] = {domain};

	return sqlite_query_text(lk->db, "SELECT 1 FROM domains WHERE name = ?1", params, 1, NULL,
	                         error_r);
}

int sqlite_lookup_first_domain(struct store_lookup *lk, char **domain_r, char **error_r)
{
	/* rowid breaks ties between domains created in the same second */
	return sqlite_query_text(lk->db, "SELECT name FROM domains ORDER BY created, rowid LIMIT 1",
	                         NULL, 0, domain_r, error_r);
}

int sqlite_lookup_first_account(struct store_lookup *lk, const char *domain, char **address_r,
                                char **error_r)
{
	const char *params[] = {domain};

	if (domain == NULL)
		return sqlite_query_text(
		    lk->db, "SELECT address FROM accounts ORDER BY created, id LIMIT 1", NULL, 0,
		    address_r, error_r);
	return sqlite_query_text(lk->db,
	                         "SELECT address FROM accounts WHERE domain = ?1"
	                         " ORDER BY created, id LIMIT 1",
	                         params, 1, address_r, error_r);
}
