/* Password hashes in crypt(3) format via libcrypt (libxcrypt). New hashes are
 * yescrypt ("$y$"); verification accepts every method libcrypt supports, including
 * sha512-crypt ("$6$"), sha256-crypt ("$5$") and bcrypt ("$2b$"). Hashing is slow by
 * design: call these from worker threads, never from an event loop. */
#ifndef HERMOD_AUTH_PASSWORD_H
#define HERMOD_AUTH_PASSWORD_H

/* Hashes password with a fresh random salt. Returns 1 with *hash_r malloc'd, or -1
 * with *error_r malloc'd (error_r may be NULL). */
int password_hash(const char *password, char **hash_r, char **error_r);

/* Returns 1 if password matches hash, 0 if not (or hash is malformed, locked "!" /
 * "*", or empty). The comparison of the crypt output is constant-time. */
int password_verify(const char *password, const char *hash);

#endif
