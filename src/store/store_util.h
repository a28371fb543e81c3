/* Private to src/store: helpers shared by the front (store.c) and the backends.
 * The normalizers follow the rules stated in store.h (domains lower-cased, local
 * parts kept, ASCII control characters refused). */
#ifndef HERMOD_STORE_STORE_UTIL_H
#define HERMOD_STORE_STORE_UTIL_H

#include "core/str.h" /* str_error for the char **error_r convention */

#include <stdbool.h>
#include <stddef.h>

#define STORE_ALIAS_DEPTH_MAX 8
#define STORE_RESOLVE_MAX 1000 /* accounts one recipient may expand to */
#define STORE_FLAGS_MAX 4096

void store_ascii_lower(char *s);
bool store_text_ok_ex(const char *s, bool allow_space);
bool store_text_ok(const char *s);
/* 1 with *r malloc'd, -1 error (invalid, or out of memory). Nothing in src/store
 * aborts on out of memory: every allocation failure is an error result. */
int store_domain_normalize(const char *domain, char **r, char **error_r);
/* "local@domain" -> copy with the domain lower-cased. allow_empty_local accepts the
 * catch-all form "@domain"; allow_space a quoted local part such as "a b"@d.
 * *at_r (optional) = offset of '@' in the result. 1 ok, -1 error. */
/* Whether store_addr_normalize_ex would accept address (allocates nothing): lets a
 * caller tell "not an address" from a failure of the copy. */
bool store_addr_valid(const char *address, bool allow_empty_local, bool allow_space);
int store_addr_normalize_ex(const char *address, bool allow_empty_local, bool allow_space, char **r,
                            size_t *at_r, char **error_r);
int store_addr_normalize(const char *address, bool allow_empty_local, char **r, size_t *at_r,
                         char **error_r);
const char *store_mailbox_normalize(const char *name);
/* store_mailbox_normalize, and "INBOX/" as the first level of any name whose
 * first level is INBOX in another case ("inbox/x" is "INBOX/x": INBOX is one
 * mailbox whatever its case, so are its inferiors). The result is name, a
 * static string or buf (size STORE_MAILBOX_NAME_MAX + 1). */
const char *store_mailbox_canon(const char *name, char *buf);
/* Whether name follows store.h's rules for mailbox names: valid UTF-8, no
 * control characters, no leading, trailing or doubled '/', at most
 * STORE_MAILBOX_NAME_MAX octets and STORE_MAILBOX_DEPTH_MAX levels. */
bool store_mailbox_name_valid(const char *name);
int store_flags_normalize(const char *flags, char **r, char **error_r);

/* A growing NULL-terminated string vector (v is a store_strv_free-able array). */
struct store_strv {
	char **v;
	size_t n, cap;
};

/* Adds a copy of s unless already present (ASCII case-insensitive). 1 ok, -1 out of
 * memory (sv unchanged, still store_strv_free-able). */
int store_strv_add_unique(struct store_strv *sv, const char *s, char **error_r);

#endif
