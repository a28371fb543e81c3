/* Small string helpers shared by every module: one string-dup and one formatted
 * error for the `char **error_r` convention (STYLE.md, "Errors and logs").
 * Nothing here aborts: out of memory is reported to the caller. */
#ifndef HERMOD_CORE_STR_H
#define HERMOD_CORE_STR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* malloc'd copy of s; NULL when s is NULL or memory ran out. */
/* The value (0..15) of a hexadecimal digit of either case, -1 for any other octet. */
int str_hexval(unsigned char c);
/* s[0..len) as a decimal uint64_t: digits only, at least one, overflow-checked.
 * 1 ok with *v_r, -1 bad. */
int str_parse_u64(const char *s, size_t len, uint64_t *v_r);
char *str_dup(const char *s);
/* malloc'd copy of s[0..len) plus a NUL (s may hold NULs; need not be
 * terminated); NULL when out of memory. s may be NULL only when len is 0. */
char *str_ndup(const char *s, size_t len);
/* malloc'd formatted string; NULL when out of memory or on a format error. */
char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *str_vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* Sets *error_r to a malloc'd formatted message (the caller frees it), unless
 * error_r is NULL. *error_r becomes NULL when memory ran out formatting it, so
 * callers keep a fallback text for the log. Returns -1, so that a failing
 * function can end with `return str_error(error_r, "...: %s", why);`. */
int str_error(char **error_r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
