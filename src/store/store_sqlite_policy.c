/* SQLite backend: the MTA-STS policy cache (table mta_sts, schema v11). */
#include "store/store_sqlite_int.h"

#include <stdlib.h>
#include <string.h>

int sqlite_mta_sts_get(struct store_backend *st, const char *domain, struct store_mta_sts *r,
                       char **error_r)
{
	sqlite3_stmt *stmt;
	sqlite3 *db;
	int rc, ret = -1;

	if (sqlite_reader_get(st, &db, error_r) < 0)
		return -1;
	if (sqlite_stmt_cached(db,
	                       "SELECT domain, id, policy, fetched, expires FROM mta_sts"
	                       " WHERE domain = ?1",
	                       &stmt, error_r) < 0)
		goto out;
	sqlite3_bind_text(stmt, 1, domain, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		if (sqlite_column_dup(stmt, 0, &r->domain, error_r) < 0 ||
		    sqlite_column_dup(stmt, 1, &r->id, error_r) < 0 ||
		    sqlite_column_dup(stmt, 2, &r->policy, error_r) < 0) {
			ret = -1;
		} else if (r->domain == NULL || r->id == NULL || r->policy == NULL) {
			ret = str_error(error_r, "mta_sts: NULL column");
		} else {
			r->fetched = sqlite3_column_int64(stmt, 3);
			r->expires = sqlite3_column_int64(stmt, 4);
			ret = 1;
		}
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		sqlite_db_fail(db, error_r, "database");
	}
	sqlite_stmt_release(stmt);
out:
	sqlite_reader_put(st, db);
	return ret;
}

int sqlite_mta_sts_put(struct store_backend *st, const struct store_mta_sts *p, char **error_r)
{
	sqlite3_stmt *stmt;
	int ret = -1;

	pthread_mutex_lock(&st->wmu);
	if (sqlite_stmt_cached(
	        st->wdb,
	        "INSERT OR REPLACE INTO mta_sts (domain, id, policy, fetched, expires)"
	        " VALUES (?1, ?2, ?3, ?4, ?5)",
	        &stmt, error_r) < 0)
		goto out;
	sqlite3_bind_text(stmt, 1, p->domain, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, p->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, p->policy, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, p->fetched);
	sqlite3_bind_int64(stmt, 5, p->expires);
	ret = sqlite3_step(stmt) == SQLITE_DONE ? 1 : sqlite_db_fail(st->wdb, error_r, "database");
	sqlite_stmt_release(stmt);
out:
	pthread_mutex_unlock(&st->wmu);
	return ret;
}

int sqlite_mta_sts_delete(struct store_backend *st, const char *domain, char **error_r)
{
	const char *params[1] = {domain};
	int n = sqlite_wexec_text(st, "DELETE FROM mta_sts WHERE domain = ?1", params, 1, NULL,
	                          error_r);
	return n < 0 ? -1 : n > 0 ? 1 : 0;
}
