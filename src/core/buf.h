/* Length-tracked byte buffer with a hard maximum. */
#ifndef HERMOD_CORE_BUF_H
#define HERMOD_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;  /* always NUL-terminated when non-NULL (the NUL is not counted in len) */
	size_t len;
	size_t cap;
	size_t max;  /* appends that would make len exceed max fail; 0 = SIZE_MAX */
};

void buf_init(struct buf *b, size_t max);
/* Returns 1 ok, -1 on exceeding max or out of memory (buffer unchanged). */
int buf_append(struct buf *b, const void *data, size_t len);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Takes ownership of the data (may be NULL if empty); the buffer is reset. */
char *buf_steal(struct buf *b, size_t *len_r);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);

/* Overflow-checked helpers: return 1 ok, -1 on overflow. */
int size_add(size_t a, size_t b, size_t *r);
int size_mul(size_t a, size_t b, size_t *r);

#endif
