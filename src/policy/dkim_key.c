/* DKIM keys: loading, the key directory layout (DIR/<domain>/<selector>.pem),
 * generation and the TXT record to publish. See dkim_sign.h. */
#include "policy/dkim_int.h"

#include "core/base64.h"
#include "core/str.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DKIM_RSA_BITS 2048
/* RFC 8301 3.2: signers MUST use RSA keys of at least 1024 bits. */
#define DKIM_RSA_MIN_BITS 1024
#define DKIM_KEYS_MAX 64          /* keys of one domain loaded at most */
#define DKIM_DIR_ENTRIES_MAX 4096 /* names read from one directory at most */
#define DKIM_KEY_SUFFIX ".pem"

const char *dkim_ssl_error(char *buf, size_t size)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		return "unknown OpenSSL error";
	ERR_error_string_n(e, buf, size);
	ERR_clear_error();
	return buf;
}

int dkim_name_valid(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > 253)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			/* no empty label, none ending in '-' */
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (c == '-') {
			if (label == 0)
				return 0;
		} else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
			return 0;
		}
		if (++label > 63)
			return 0;
	}
	return label > 0 && s[len - 1] != '-';
}

static char *dkim_lower_dup(const char *s)
{
	char *d = str_dup(s);

	for (char *p = d; p != NULL && *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	return d;
}

const char *dkim_algorithm_name(enum dkim_algorithm alg)
{
	return alg == DKIM_ALG_ED25519_SHA256 ? "ed25519" : "rsa";
}

enum dkim_algorithm dkim_key_algorithm(const struct dkim_key *k)
{
	return k->alg;
}

const char *dkim_key_domain(const struct dkim_key *k)
{
	return k->domain;
}

const char *dkim_key_selector(const struct dkim_key *k)
{
	return k->selector;
}

/* Never prompts for a passphrase: an encrypted key file fails to load. */
static int dkim_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static int dkim_key_from_pkey(EVP_PKEY *pkey, const char *what, enum dkim_algorithm *alg_r,
                              char **error_r)
{
	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA:
		if (EVP_PKEY_get_bits(pkey) < DKIM_RSA_MIN_BITS)
			return str_error(error_r, "%s: RSA key of %d bits (at least %d needed)",
			                 what, EVP_PKEY_get_bits(pkey), DKIM_RSA_MIN_BITS);
		*alg_r = DKIM_ALG_RSA_SHA256;
		return 1;
	case EVP_PKEY_ED25519:
		*alg_r = DKIM_ALG_ED25519_SHA256;
		return 1;
	default:
		return str_error(error_r, "%s: not an RSA or Ed25519 key", what);
	}
}

int dkim_key_load(const char *path, const char *domain, const char *selector, struct dkim_key **k_r,
                  char **error_r)
{
	char ebuf[256];
	struct dkim_key *k;
	EVP_PKEY *pkey;
	enum dkim_algorithm alg = DKIM_ALG_RSA_SHA256;
	BIO *bio;

	ERR_clear_error();
	errno = 0;
	if ((bio = BIO_new_file(path, "r")) == NULL)
		return str_error(error_r, "%s: cannot open: %s", path,
		                 errno != 0 ? strerror(errno) : dkim_ssl_error(ebuf, sizeof(ebuf)));
	pkey = PEM_read_bio_PrivateKey(bio, NULL, dkim_no_passphrase, NULL);
	BIO_free(bio);
	if (pkey == NULL)
		return str_error(error_r, "%s: not a PEM private key (%s)", path,
		                 dkim_ssl_error(ebuf, sizeof(ebuf)));
	if (dkim_key_from_pkey(pkey, path, &alg, error_r) < 0) {
		EVP_PKEY_free(pkey);
		return -1;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL || (k->domain = dkim_lower_dup(domain)) == NULL ||
	    (k->selector = dkim_lower_dup(selector)) == NULL) {
		EVP_PKEY_free(pkey);
		dkim_key_free(&k);
		return str_error(error_r, "out of memory");
	}
	/* they go into d= and s= as they are */
	if (!dkim_name_valid(k->domain) || !dkim_name_valid(k->selector)) {
		str_error(error_r, "%s: invalid DKIM domain or selector '%s'/'%s'", path, domain,
		          selector);
		EVP_PKEY_free(pkey);
		dkim_key_free(&k);
		return -1;
	}
	k->pkey = pkey;
	k->alg = alg;
	*k_r = k;
	return 1;
}

void dkim_key_free(struct dkim_key **kp)
{
	struct dkim_key *k = *kp;

	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k->domain);
	free(k->selector);
	free(k);
	*kp = NULL;
}

static int dkim_pkey_txt(EVP_PKEY *pkey, enum dkim_algorithm alg, char **txt_r, char **error_r)
{
	unsigned char raw[32], *der = NULL;
	char ebuf[256], *b64 = NULL;
	size_t rawlen = sizeof(raw);
	int len, ret;

	if (alg == DKIM_ALG_ED25519_SHA256) {
		/* RFC 8463 4: p= is the base64 of the raw public key, not an SPKI. */
		if (EVP_PKEY_get_raw_public_key(pkey, raw, &rawlen) != 1 || rawlen != sizeof(raw))
			return str_error(error_r, "cannot get the Ed25519 public key: %s",
			                 dkim_ssl_error(ebuf, sizeof(ebuf)));
		ret = base64_encode(raw, rawlen, &b64);
	} else {
		/* RFC 6376 3.6.1: an RSA p= is the DER SubjectPublicKeyInfo. */
		if ((len = i2d_PUBKEY(pkey, &der)) <= 0)
			return str_error(error_r, "cannot encode the RSA public key: %s",
			                 dkim_ssl_error(ebuf, sizeof(ebuf)));
		ret = base64_encode(der, (size_t)len, &b64);
		OPENSSL_free(der);
	}
	if (ret < 0)
		return str_error(error_r, "out of memory");
	*txt_r = str_printf("v=DKIM1; k=%s; p=%s", dkim_algorithm_name(alg), b64);
	free(b64);
	if (*txt_r == NULL)
		return str_error(error_r, "out of memory");
	return 1;
}

int dkim_key_txt(const struct dkim_key *k, char **txt_r, char **error_r)
{
	return dkim_pkey_txt(k->pkey, k->alg, txt_r, error_r);
}

/* ---- the directory layout ---- */

static int dkim_check_names(const char *domain, const char *selector, char **error_r)
{
	if (!dkim_name_valid(domain))
		return str_error(error_r, "invalid DKIM domain '%s'", domain);
	if (selector != NULL && !dkim_name_valid(selector))
		return str_error(error_r, "invalid DKIM selector '%s'", selector);
	return 1;
}

static char *dkim_key_path(const char *dir, const char *domain, const char *selector)
{
	return str_printf("%s/%s/%s%s", dir, domain, selector, DKIM_KEY_SUFFIX);
}

int dkim_key_exists(const char *dir, const char *domain, const char *selector, char **error_r)
{
	struct stat st;
	char *path;
	int ret;

	if (dkim_check_names(domain, selector, error_r) < 0)
		return -1;
	if ((path = dkim_key_path(dir, domain, selector)) == NULL)
		return str_error(error_r, "out of memory");
	if (lstat(path, &st) == 0)
		ret = 1;
	else if (errno == ENOENT)
		ret = 0;
	else
		ret = str_error(error_r, "%s: %s", path, strerror(errno));
	free(path);
	return ret;
}

static int dkim_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void dkim_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* The entries of path that are valid names (with suffix: "<name>.pem", the
 * suffix removed; without: the directories), sorted.
 * 1 ok (*names_r NULL, *n_r 0 when path is missing), -1 error. */
static int dkim_dir_names(const char *path, const char *suffix, char ***names_r, size_t *n_r,
                          char **error_r)
{
	size_t slen = suffix != NULL ? strlen(suffix) : 0, n = 0;
	char **names = NULL;
	struct dirent *de;
	DIR *d;

	*names_r = NULL;
	*n_r = 0;
	if ((d = opendir(path)) == NULL) {
		if (errno == ENOENT)
			return 1;
		return str_error(error_r, "%s: %s", path, strerror(errno));
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		char *name, **grown;

		if (slen > 0 && (len <= slen || strcmp(de->d_name + len - slen, suffix) != 0))
			continue;
		if (slen == 0 && de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
			continue;
		if ((name = str_ndup(de->d_name, len - slen)) == NULL)
			goto oom;
		if (!dkim_name_valid(name)) {
			free(name); /* "." and "..", temporary files, anything else */
			continue;
		}
		if (n == DKIM_DIR_ENTRIES_MAX ||
		    (grown = realloc(names, (n + 1) * sizeof(*names))) == NULL) {
			free(name);
			goto oom;
		}
		names = grown;
		names[n++] = name;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), dkim_cmp_str);
	*names_r = names;
	*n_r = n;
	return 1;
oom:
	closedir(d);
	dkim_names_free(names, n);
	return str_error(error_r, "%s: out of memory or too many entries", path);
}

int dkim_keys_load_domain(const char *dir, const char *domain, struct dkim_key ***keys_r,
                          size_t *n_r, char **error_r)
{
	struct dkim_key **keys = NULL;
	char *ddir, *lower, **sels = NULL;
	size_t nsel = 0, n = 0;
	int ret = -1;

	*keys_r = NULL;
	*n_r = 0;
	if ((lower = dkim_lower_dup(domain)) == NULL)
		return str_error(error_r, "out of memory");
	if (dkim_check_names(lower, NULL, error_r) < 0) {
		free(lower);
		return -1;
	}
	if ((ddir = str_printf("%s/%s", dir, lower)) == NULL) {
		free(lower);
		return str_error(error_r, "out of memory");
	}
	if (dkim_dir_names(ddir, DKIM_KEY_SUFFIX, &sels, &nsel, error_r) < 0)
		goto out;
	if (nsel > DKIM_KEYS_MAX) {
		str_error(error_r, "%s: more than %d keys", ddir, DKIM_KEYS_MAX);
		goto out;
	}
	if (nsel > 0 && (keys = calloc(nsel, sizeof(*keys))) == NULL) {
		str_error(error_r, "out of memory");
		goto out;
	}
	for (; n < nsel; n++) {
		char *path = dkim_key_path(dir, lower, sels[n]);

		if (path == NULL) {
			str_error(error_r, "out of memory");
			goto out;
		}
		ret = dkim_key_load(path, lower, sels[n], &keys[n], error_r);
		free(path);
		if (ret < 0)
			goto out;
	}
	*keys_r = keys;
	*n_r = n;
	keys = NULL;
	ret = 1;
out:
	if (keys != NULL)
		dkim_keys_free(&keys, n);
	dkim_names_free(sels, nsel);
	free(ddir);
	free(lower);
	return ret;
}

void dkim_keys_free(struct dkim_key ***keysp, size_t n)
{
	struct dkim_key **keys = *keysp;

	if (keys == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		dkim_key_free(&keys[i]);
	free(keys);
	*keysp = NULL;
}

/* ---- generation ---- */

static int dkim_mkdir(const char *path, char **error_r)
{
	struct stat st;

	if (mkdir(path, 0700) == 0)
		return 1;
	if (errno != EEXIST)
		return str_error(error_r, "%s: cannot create: %s", path, strerror(errno));
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return str_error(error_r, "%s: not a directory", path);
	return 1;
}

/* Writes pkey to a new file tmp (mode 0600), flushed to disk. */
static int dkim_write_pem(const char *tmp, EVP_PKEY *pkey, char **error_r)
{
	char ebuf[256];
	int fd, ok;
	FILE *f;

	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
		return str_error(error_r, "%s: cannot create: %s", tmp, strerror(errno));
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		return str_error(error_r, "%s: %s", tmp, strerror(errno));
	}
	ok = PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) == 1;
	if (!ok) {
		fclose(f);
		return str_error(error_r, "%s: cannot write the key: %s", tmp,
		                 dkim_ssl_error(ebuf, sizeof(ebuf)));
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fclose(f);
		return str_error(error_r, "%s: cannot write: %s", tmp, strerror(errno));
	}
	if (fclose(f) != 0)
		return str_error(error_r, "%s: cannot write: %s", tmp, strerror(errno));
	return 1;
}

int dkim_keygen(const char *dir, const char *domain, const char *selector, const char *algorithm,
                char **txt_r, char **error_r)
{
	char ebuf[256], *ddir = NULL, *path = NULL, *tmp = NULL;
	enum dkim_algorithm alg;
	EVP_PKEY *pkey = NULL;
	int ret = -1;

	if (dkim_check_names(domain, selector, error_r) < 0)
		return -1;
	if (strcmp(algorithm, "rsa") == 0)
		alg = DKIM_ALG_RSA_SHA256;
	else if (strcmp(algorithm, "ed25519") == 0)
		alg = DKIM_ALG_ED25519_SHA256;
	else
		return str_error(error_r, "unknown DKIM algorithm '%s' (rsa or ed25519)",
		                 algorithm);
	if ((ddir = str_printf("%s/%s", dir, domain)) == NULL ||
	    (path = dkim_key_path(dir, domain, selector)) == NULL ||
	    (tmp = str_printf("%s.tmp.%ld", path, (long)getpid())) == NULL) {
		str_error(error_r, "out of memory");
		goto out;
	}
	if (dkim_mkdir(dir, error_r) < 0 || dkim_mkdir(ddir, error_r) < 0)
		goto out;
	if (access(path, F_OK) == 0) {
		str_error(error_r, "%s already exists (keys are never overwritten)", path);
		goto out;
	}
	ERR_clear_error();
	if (alg == DKIM_ALG_RSA_SHA256)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)DKIM_RSA_BITS);
	else
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (pkey == NULL) {
		str_error(error_r, "key generation failed: %s", dkim_ssl_error(ebuf, sizeof(ebuf)));
		goto out;
	}
	if (dkim_write_pem(tmp, pkey, error_r) < 0) {
		unlink(tmp);
		goto out;
	}
	/* link() fails when path exists: a key that appeared meanwhile is kept. */
	if (link(tmp, path) < 0) {
		if (errno == EEXIST)
			str_error(error_r, "%s already exists (keys are never overwritten)", path);
		else
			str_error(error_r, "%s: cannot create: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	unlink(tmp);
	if (txt_r != NULL && dkim_pkey_txt(pkey, alg, txt_r, error_r) < 0)
		goto out;
	ret = 1;
out:
	EVP_PKEY_free(pkey);
	free(ddir);
	free(path);
	free(tmp);
	return ret;
}

/* ---- listing ---- */

int dkim_key_list(const char *dir, dkim_key_list_cb *cb, void *ctx, char **error_r)
{
	char **domains = NULL;
	size_t ndomains = 0;
	int ret = 1;

	if (dkim_dir_names(dir, NULL, &domains, &ndomains, error_r) < 0)
		return -1;
	for (size_t i = 0; i < ndomains && ret > 0; i++) {
		struct dkim_key **keys = NULL;
		size_t n = 0;

		if (dkim_keys_load_domain(dir, domains[i], &keys, &n, error_r) < 0) {
			ret = -1;
			break;
		}
		for (size_t j = 0; j < n; j++) {
			char *txt = NULL;

			if (dkim_key_txt(keys[j], &txt, error_r) < 0) {
				ret = -1;
				break;
			}
			cb(ctx, keys[j]->domain, keys[j]->selector,
			   dkim_algorithm_name(keys[j]->alg), txt);
			free(txt);
		}
		dkim_keys_free(&keys, n);
	}
	dkim_names_free(domains, ndomains);
	return ret;
}
