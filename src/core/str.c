/* String helpers. See str.h. */
#include "core/str.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *str_dup(const char *s)
{
	if (s == NULL)
		return NULL;
	return str_ndup(s, strlen(s));
}

char *str_ndup(const char *s, size_t len)
{
	if (len == SIZE_MAX)
		return NULL;
	char *r = malloc(len + 1);
	if (r == NULL)
		return NULL;
	if (len > 0)
		memcpy(r, s, len);
	r[len] = '\0';
	return r;
}

char *str_vprintf(const char *fmt, va_list ap)
{
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		return NULL;
	return s;
}

char *str_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = str_vprintf(fmt, ap);
	va_end(ap);
	return s;
}

int str_error(char **error_r, const char *fmt, ...)
{
	va_list ap;

	if (error_r == NULL)
		return -1;
	va_start(ap, fmt);
	*error_r = str_vprintf(fmt, ap);
	va_end(ap);
	return -1;
}

int str_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int str_parse_u64(const char *s, size_t len, uint64_t *v_r)
{
	uint64_t v = 0;

	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*v_r = v;
	return 1;
}
