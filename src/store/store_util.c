/* Helpers shared by the store's front (store.c) and its backends. */
#include "store/store_util.h"
#include "store/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void store_ascii_lower(char *s)
{
	for (; *s != '\0'; s++) {
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
	}
}

bool store_text_ok_ex(const char *s, bool allow_space)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < ' ' || c == 0x7f || (c == ' ' && !allow_space))
			return false;
	}
	return true;
}

bool store_text_ok(const char *s)
{
	return store_text_ok_ex(s, false);
}

int store_domain_normalize(const char *domain, char **r, char **error_r)
{
	if (domain == NULL || *domain == '\0' || !store_text_ok(domain) ||
	    strchr(domain, '@') != NULL || strlen(domain) > 255) {
		str_error(error_r, "invalid domain");
		return -1;
	}
	*r = str_dup(domain);
	if (*r == NULL)
		return str_error(error_r, "out of memory");
	store_ascii_lower(*r);
	return 1;
}

/* "local@domain" -> copy with the domain lower-cased. allow_empty_local accepts the
 * catch-all form "@domain"; allow_space a quoted local part such as "a b"@d (a
 * recipient can be anything RFC 5321 allows; our own accounts have no spaces).
 * *at_r (optional) = offset of '@' in the result. */
bool store_addr_valid(const char *address, bool allow_empty_local, bool allow_space)
{
	const char *at;

	return address != NULL && store_text_ok_ex(address, allow_space) &&
	       strlen(address) <= 320 && (at = strrchr(address, '@')) != NULL && at[1] != '\0' &&
	       (at != address || allow_empty_local);
}

int store_addr_normalize_ex(const char *address, bool allow_empty_local, bool allow_space, char **r,
                            size_t *at_r, char **error_r)
{
	const char *at;

	if (!store_addr_valid(address, allow_empty_local, allow_space)) {
		str_error(error_r, "invalid address '%s'", address != NULL ? address : "");
		return -1;
	}
	at = strrchr(address, '@');
	*r = str_dup(address);
	if (*r == NULL)
		return str_error(error_r, "out of memory");
	store_ascii_lower(*r + (at - address) + 1);
	if (at_r != NULL)
		*at_r = (size_t)(at - address);
	return 1;
}

int store_addr_normalize(const char *address, bool allow_empty_local, char **r, size_t *at_r,
                         char **error_r)
{
	return store_addr_normalize_ex(address, allow_empty_local, false, r, at_r, error_r);
}

const char *store_mailbox_normalize(const char *name)
{
	/* RFC 3501 5.1: INBOX is case-insensitive; other names are case-sensitive. */
	if (name == NULL || strcasecmp(name, "INBOX") == 0)
		return "INBOX";
	return name;
}

const char *store_mailbox_canon(const char *name, char *buf)
{
	size_t len;

	name = store_mailbox_normalize(name);
	if (strncasecmp(name, "INBOX/", 6) != 0 || strncmp(name, "INBOX/", 6) == 0 ||
	    (len = strlen(name)) > STORE_MAILBOX_NAME_MAX)
		return name;
	memcpy(buf, "INBOX", 5);
	memcpy(buf + 5, name + 5, len - 5 + 1);
	return buf;
}

bool store_mailbox_name_valid(const char *name)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t len = 0;
	unsigned depth = 1;

	if (name == NULL || *name == '\0' || *name == '/')
		return false;
	while (*p != '\0') {
		unsigned c = *p, need, cp;
		if (c < 0x20 || c == 0x7f)
			return false;
		if (c == '/') {
			if (p[1] == '/' || p[1] == '\0' || ++depth > STORE_MAILBOX_DEPTH_MAX)
				return false;
		}
		if (c < 0x80) {
			p++;
			len++;
			continue;
		}
		/* UTF-8 (RFC 3629): shortest form, no surrogates, at most U+10FFFF */
		if (c >= 0xc2 && c <= 0xdf)
			need = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			need = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 3, cp = c & 0x07;
		else
			return false;
		for (unsigned i = 1; i <= need; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		if (cp >= 0x80 && cp < 0xa0)
			return false; /* C1 controls */
		p += need + 1;
		len += need + 1;
	}
	return len <= STORE_MAILBOX_NAME_MAX;
}

int store_flags_normalize(const char *flags, char **r, char **error_r)
{
	size_t len = flags != NULL ? strlen(flags) : 0, o = 0;
	char *out;

	if (len > STORE_FLAGS_MAX) {
		str_error(error_r, "flags too long");
		return -1;
	}
	out = malloc(len + 1);
	if (out == NULL)
		return str_error(error_r, "out of memory");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)flags[i];
		if (c == ' ' || c == '\t') {
			if (o > 0 && out[o - 1] != ' ')
				out[o++] = ' ';
			continue;
		}
		if (c < ' ' || c == 0x7f || c == '(' || c == ')') {
			free(out);
			str_error(error_r, "invalid flags");
			return -1;
		}
		out[o++] = (char)c;
	}
	if (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
	*r = out;
	return 1;
}

int store_strv_add_unique(struct store_strv *sv, const char *s, char **error_r)
{
	char *copy;

	for (size_t i = 0; i < sv->n; i++) {
		if (strcasecmp(sv->v[i], s) == 0)
			return 1;
	}
	if (sv->n + 2 > sv->cap) {
		size_t cap = sv->cap == 0 ? 4 : sv->cap * 2;
		char **v = realloc(sv->v, cap * sizeof(*v));
		if (v == NULL)
			return str_error(error_r, "out of memory");
		v[sv->n] = NULL; /* still terminated should the copy fail */
		sv->v = v;
		sv->cap = cap;
	}
	copy = str_dup(s);
	if (copy == NULL)
		return str_error(error_r, "out of memory");
	sv->v[sv->n++] = copy;
	sv->v[sv->n] = NULL;
	return 1;
}

void store_strv_free(char ***strvp)
{
	char **v = *strvp;

	if (v == NULL)
		return;
	for (size_t i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
	*strvp = NULL;
}
