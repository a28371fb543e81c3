/* SQLite backend: TLS report counts (store.h, RFC 8460). */
#include <pthread.h>
#include <stdint.h>

#include "store/store_sqlite_int.h"

int sqlite_tlsrpt_add(struct store_backend *st, const struct store_tlsrpt_row *rows, size_t n,
                      char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	int ret = -1;

	pthread_mutex_lock(&st->wmu);
	if (sqlite_db_exec(st->wdb, "BEGIN IMMEDIATE", error_r) < 0) {
		pthread_mutex_unlock(&st->wmu);
		return -1;
	}
	if (sqlite_stmt_cached(st->wdb,
	                       "INSERT INTO tlsrpt (day, domain, policy_type, policy, mx, result,"
	                       "                    sending_ip, receiving_ip, count)"
	                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
	                       " ON CONFLICT (day, domain, policy_type, policy, mx, result,"
	                       "              sending_ip, receiving_ip)"
	                       " DO UPDATE SET count = count + excluded.count",
	                       &stmt, error_r) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const struct store_tlsrpt_row *r = &rows[i];
		const char *v[8] = {r->day, r->domain, r->policy_type, r->policy,
		                    r->mx,  r->result, r->sending_ip,  r->receiving_ip};
		for (int k = 0; k < 8; k++)
			sqlite3_bind_text(stmt, k + 1, v[k] != NULL ? v[k] : "", -1, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 9, r->count > INT64_MAX ? INT64_MAX : (int64_t)r->count);
		int rc = sqlite3_step(stmt);
		sqlite3_reset(stmt);
		sqlite3_clear_bindings(stmt);
		if (rc != SQLITE_DONE) {
			sqlite_db_fail(st->wdb, error_r, "database");
			goto out;
		}
	}
	ret = 1;
out:
	sqlite_stmt_release(stmt);
	if (ret < 0 || sqlite_db_exec(st->wdb, "COMMIT", error_r) < 0) {
		sqlite_db_rollback(st->wdb);
		ret = -1;
	}
	pthread_mutex_unlock(&st->wmu);
	return ret;
}

long sqlite_tlsrpt_list(struct store_backend *st, const char *before, store_tlsrpt_cb *cb,
                        void *ctx, char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	sqlite3 *db;
	long n = -1;

	if (sqlite_reader_get(st, &db, error_r) < 0)
		return -1;
	if (sqlite_stmt_cached(db,
	                       "SELECT day, domain, policy_type, policy, mx, result, sending_ip,"
	                       "       receiving_ip, count FROM tlsrpt WHERE day < ?1"
	                       " ORDER BY day, domain, policy_type, policy, mx, result,"
	                       "          sending_ip, receiving_ip",
	                       &stmt, error_r) < 0)
		goto out;
	sqlite3_bind_text(stmt, 1, before, -1, SQLITE_STATIC);
	long count = 0;
	int rc;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *c[8];
		for (int k = 0; k < 8; k++) {
			c[k] = (const char *)sqlite3_column_text(stmt, k);
			if (c[k] == NULL)
				c[k] = "";
		}
		int64_t v = sqlite3_column_int64(stmt, 8);
		struct store_tlsrpt_row row = {
		    .day = c[0],
		    .domain = c[1],
		    .policy_type = c[2],
		    .policy = c[3],
		    .mx = c[4],
		    .result = c[5],
		    .sending_ip = c[6],
		    .receiving_ip = c[7],
		    .count = v > 0 ? (uint64_t)v : 0,
		};
		cb(ctx, &row);
		count++;
	}
	if (rc != SQLITE_DONE) {
		sqlite_db_fail(db, error_r, "database");
		goto out;
	}
	n = count;
out:
	sqlite_stmt_release(stmt);
	sqlite_reader_put(st, db);
	return n;
}

int sqlite_tlsrpt_delete(struct store_backend *st, const char *day, const char *domain,
                         char **error_r)
{
	sqlite3_stmt *stmt = NULL;
	int ret = -1;

	pthread_mutex_lock(&st->wmu);
	if (sqlite_stmt_cached(st->wdb, "DELETE FROM tlsrpt WHERE day = ?1 AND domain = ?2", &stmt,
	                       error_r) < 0)
		goto out;
	sqlite3_bind_text(stmt, 1, day, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, domain, -1, SQLITE_STATIC);
	if (sqlite3_step(stmt) != SQLITE_DONE) {
		sqlite_db_fail(st->wdb, error_r, "database");
		goto out;
	}
	ret = 1;
out:
	sqlite_stmt_release(stmt);
	pthread_mutex_unlock(&st->wmu);
	return ret;
}
