/* Password hashing with libcrypt. See password.h. */
#include "auth/password.h"

#include "core/str.h"

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* crypt_ra() keeps its state (and a copy of the derived hash) in a malloc'd
 * struct crypt_data; wipe it before freeing. */
static void crypt_data_free(void **data, int size)
{
	if (*data != NULL) {
		explicit_bzero(*data, (size_t)size);
		free(*data);
		*data = NULL;
	}
}

int password_hash(const char *password, char **hash_r, char **error_r)
{
	char *setting, *out, *hash;
	void *data = NULL;
	int size = 0;

	*hash_r = NULL;
	if (password == NULL || password[0] == '\0') {
		str_error(error_r, "empty password");
		return -1;
	}
	/* count 0 = libcrypt's default cost for yescrypt; NULL rbytes = libcrypt
	 * draws the salt from the OS random source. */
	errno = 0;
	setting = crypt_gensalt_ra("$y$", 0, NULL, 0);
	if (setting == NULL) {
		str_error(error_r, "crypt_gensalt: %s", errno != 0 ? strerror(errno) : "failed");
		return -1;
	}
	out = crypt_ra(password, setting, &data, &size);
	free(setting);
	/* On failure libcrypt returns NULL or a string starting with '*'. */
	if (out == NULL || out[0] == '*') {
		str_error(error_r, "crypt: %s", errno != 0 ? strerror(errno) : "failed");
		crypt_data_free(&data, size);
		return -1;
	}
	hash = strdup(out);
	crypt_data_free(&data, size);
	if (hash == NULL) {
		str_error(error_r, "out of memory");
		return -1;
	}
	*hash_r = hash;
	return 1;
}

static int const_time_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	volatile unsigned char diff = 0;

	/* The hash length is public (it is the stored string's); only the content
	 * comparison must not leak where the first difference is. */
	if (alen != blen)
		return 0;
	for (size_t i = 0; i < alen; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

int password_verify(const char *password, const char *hash)
{
	void *data = NULL;
	int size = 0, ok;
	char *out;

	if (password == NULL || hash == NULL || hash[0] == '\0' || hash[0] == '!' || hash[0] == '*')
		return 0;
	out = crypt_ra(password, hash, &data, &size);
	if (out == NULL || out[0] == '*') {
		crypt_data_free(&data, size);
		return 0;
	}
	ok = const_time_equal(out, strlen(out), hash, strlen(hash));
	crypt_data_free(&data, size);
	return ok;
}
