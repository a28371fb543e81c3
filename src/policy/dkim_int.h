/* Shared between dkim_key.c and dkim_sign.c only. */
#ifndef HERMOD_POLICY_DKIM_INT_H
#define HERMOD_POLICY_DKIM_INT_H

#include "policy/dkim_sign.h"

#include <openssl/evp.h>

struct dkim_key {
	EVP_PKEY *pkey;
	enum dkim_algorithm alg;
	char *domain, *selector;
};

/* The last OpenSSL error of this thread as text (for messages), into buf. */
const char *dkim_ssl_error(char *buf, size_t size);

#endif
