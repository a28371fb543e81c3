/* sasl_lookup_run: the store side of a SASL exchange, run on a worker thread. Kept
 * apart from sasl.c so that the mechanisms (and their fuzz target) link without
 * the store. */
#include "auth/sasl.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auth/password.h"
#include "store/store.h"

/* A hash of a random password, verified against when the user does not exist, so
 * that an unknown user costs the same time as a wrong password. */
static char *dummy_hash;
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_hash_init(void)
{
	if (password_hash("hermod dummy password for unknown users", &dummy_hash, NULL) != 1)
		dummy_hash = NULL;
}

static void wipe_free(char **p)
{
	if (*p != NULL) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

void sasl_lookup_run(struct store *st, struct sasl_lookup *l)
{
	char *account = NULL, *pwhash = NULL, *scram = NULL, *error = NULL;
	int r;

	wipe_free(&l->scram);
	free(l->account);
	l->account = NULL;
	free(l->error);
	l->error = NULL;
	l->result = -1;

	if (l->user == NULL || (!l->want_scram && l->password == NULL)) {
		wipe_free(&l->password);
		l->error = strdup("bad lookup");
		return;
	}
	if (l->want_scram)
		r = store_account_get_credentials(st, l->user, &account, NULL, &scram, &error);
	else
		r = store_account_get_credentials(st, l->user, &account, &pwhash, NULL, &error);

	if (r < 0) {
		l->result = -1;
		l->error = error != NULL ? error : strdup("store error");
		error = NULL;
	} else if (l->want_scram) {
		/* found without SCRAM keys: result 1, scram NULL (fails like unknown) */
		l->result = r == 1 ? 1 : 0;
		l->scram = scram;
		scram = NULL;
	} else if (r == 0) {
		pthread_once(&dummy_once, dummy_hash_init);
		if (dummy_hash != NULL)
			(void)password_verify(l->password, dummy_hash);
		l->result = 0;
	} else {
		l->result = password_verify(l->password, pwhash) == 1 ? 1 : 0;
	}
	if (l->result == 1) {
		l->account = account;
		account = NULL;
	}
	wipe_free(&l->password);
	wipe_free(&pwhash);
	wipe_free(&scram);
	free(account);
	free(error);
}
