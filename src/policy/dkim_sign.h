/* DKIM signing (RFC 6376) of outgoing mail: relaxed/relaxed canonicalization,
 * rsa-sha256 and ed25519-sha256 (RFC 8463), one DKIM-Signature per key.
 *
 * Keys live in DIR/<domain>/<selector>.pem (DIR is <data_dir>/dkim; the
 * directories are mode 0700, the key files 0600). dkim_keygen writes PEM
 * PKCS#8; any unencrypted PEM private key loads ("BEGIN RSA PRIVATE KEY" too;
 * an encrypted one fails, never prompting). The domain and the selector are
 * lower-case LDH labels separated by dots. Files and entries with other names
 * in those directories are ignored (e.g. a key being written aside).
 *
 * Nothing here keeps global state: a key may be shared by signers running on
 * different threads (it is only read), a signer belongs to one thread at a time.
 * Results follow STYLE.md: 1 ok, 0 none / not found where stated, -1 error with
 * *error_r malloc'd (the caller frees it; may be NULL when memory ran out). */
#ifndef HERMOD_POLICY_DKIM_SIGN_H
#define HERMOD_POLICY_DKIM_SIGN_H

#include <stddef.h>
#include <stdint.h>

struct buf;

/* Header section limit kept by a signer (the body is never kept). */
#define DKIM_HEADER_MAX (1024 * 1024)

enum dkim_algorithm {
	DKIM_ALG_RSA_SHA256,
	DKIM_ALG_ED25519_SHA256,
};

/* A private key with its domain (d=) and selector (s=). */
struct dkim_key;

/* Loads the PEM private key at path (RSA of at least 1024 bits, or Ed25519;
 * the kind is detected). domain and selector are copied (lower-cased). */
int dkim_key_load(const char *path, const char *domain, const char *selector, struct dkim_key **k_r,
                  char **error_r);
void dkim_key_free(struct dkim_key **k);

enum dkim_algorithm dkim_key_algorithm(const struct dkim_key *k);
const char *dkim_key_domain(const struct dkim_key *k);
const char *dkim_key_selector(const struct dkim_key *k);
/* "rsa" or "ed25519" (the k= of the key record). */
const char *dkim_algorithm_name(enum dkim_algorithm alg);
/* The DNS TXT record value to publish at <selector>._domainkey.<domain>:
 * "v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>" or
 * "v=DKIM1; k=ed25519; p=<base64 of the raw 32-octet public key>" (RFC 8463 4).
 * 1 ok with *txt_r malloc'd, -1 error. */
int dkim_key_txt(const struct dkim_key *k, char **txt_r, char **error_r);

/* Every key of domain under dir (DIR/<domain>/<selector>.pem), loaded, sorted by
 * selector. 1 ok with *keys_r an array of *n_r keys (*keys_r NULL and *n_r 0
 * when the domain has none, the directory missing included), -1 error (a file
 * that does not load is an error: a broken key is not silently skipped). */
int dkim_keys_load_domain(const char *dir, const char *domain, struct dkim_key ***keys_r,
                          size_t *n_r, char **error_r);
void dkim_keys_free(struct dkim_key ***keys, size_t n);

/* Creates a new key for domain/selector: algorithm "rsa" (2048 bits) or
 * "ed25519". Creates dir and dir/<domain> (mode 0700) when missing, writes the
 * key file with mode 0600 (written aside, then linked into place, so a reader
 * never sees half a key) and refuses to overwrite an existing one. 1 ok with
 * *txt_r the TXT record value (malloc'd; txt_r may be NULL), -1 error. */
int dkim_keygen(const char *dir, const char *domain, const char *selector, const char *algorithm,
                char **txt_r, char **error_r);
/* 1 when dir/<domain>/<selector>.pem exists, 0 when not, -1 error (a bad domain
 * or selector included). */
int dkim_key_exists(const char *dir, const char *domain, const char *selector, char **error_r);

/* Calls cb for every key under dir, sorted by domain then selector. A missing
 * dir lists nothing. 1 ok, -1 error (a key that does not load included; cb may
 * have been called for the keys before it). */
typedef void dkim_key_list_cb(void *ctx, const char *domain, const char *selector,
                              const char *algorithm, const char *txt);
int dkim_key_list(const char *dir, dkim_key_list_cb *cb, void *ctx, char **error_r);

/* 1 when s is a valid domain or selector for the key layout (lower-case
 * letters, digits, '-' and '.', labels of 1..63, at most 253 in all), else 0. */
int dkim_name_valid(const char *s);

struct dkim_signer;

/* A signer using every key given (one DKIM-Signature per key, in that order;
 * keys of several domains may be mixed). The keys are borrowed: they must
 * outlive the signer. now is the t= tag (unix seconds). 1 ok, -1 error
 * (nkeys 0 included). */
int dkim_signer_new(struct dkim_key *const *keys, size_t nkeys, int64_t now,
                    struct dkim_signer **s_r, char **error_r);
/* Feeds the message exactly as it will be sent (CRLF line ends, before SMTP
 * dot-stuffing), in any split. The header section (up to the first empty line;
 * a message without one is all header, with an empty body) is kept, at most
 * DKIM_HEADER_MAX octets; the body is hashed as it comes. 1 ok, -1 error (the
 * header section too large, out of memory, a hash failure, fed after finish):
 * the reason is given by dkim_signer_finish(), which then fails. */
int dkim_signer_feed(struct dkim_signer *s, const void *data, size_t len);
/* Appends the DKIM-Signature header fields (CRLF line ends, folded to lines of
 * at most 78 octets) to out, to be put before the message. Ends the signer
 * (feed fails afterwards). 1 ok, -1 error (out may then hold part of them). */
int dkim_signer_finish(struct dkim_signer *s, struct buf *out, char **error_r);
void dkim_signer_free(struct dkim_signer **s);

#endif
