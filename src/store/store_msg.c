/* The message writer (store.h, "message writer"). The first STORE_MSG_MEM_MAX bytes
 * are kept in memory; past that everything moves to an unnamed O_TMPFILE in
 * data_dir, so a large message costs a session one buffer, not its size. The file
 * is created on the file system of the blobs, so that store_deliver can link it
 * into place instead of copying it. Nothing here syncs or takes a store lock: the
 * writer is used on an event loop thread while bytes arrive. Page-cache writes of
 * a spill file are the only I/O. */
#include "store/store_msg.h"
#include "core/str.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STORE_MSG_PREAD_MAX ((size_t)1 << 30) /* one pread's bound, fits a long */

int store_msg_create(const char *data_dir, struct store_msg **m_r, char **error_r)
{
	struct store_msg *m = calloc(1, sizeof(*m));

	*m_r = NULL;
	if (m == NULL || (m->data_dir = strdup(data_dir)) == NULL ||
	    (m->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(m->md, EVP_sha256(), NULL) != 1) {
		if (m != NULL) {
			EVP_MD_CTX_free(m->md);
			free(m->data_dir);
			free(m);
		}
		str_error(error_r, "message writer: out of memory");
		return -1;
	}
	m->fd = -1;
	*m_r = m;
	return 1;
}

static int msg_pwrite_all(int fd, const char *p, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 1;
}

/* Moves the in-memory bytes to a new spill file. */
static int msg_spill(struct store_msg *m, char **error_r)
{
	int fd = open(m->data_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0640);

	if (fd < 0) {
		str_error(error_r, "message spill file in %s: %s", m->data_dir, strerror(errno));
		return -1;
	}
	if (m->size > 0 && msg_pwrite_all(fd, m->mem, (size_t)m->size, 0) < 0) {
		int saved = errno;
		close(fd);
		str_error(error_r, "write message spill file: %s", strerror(saved));
		return -1;
	}
	m->fd = fd;
	free(m->mem);
	m->mem = NULL;
	m->memcap = 0;
	return 1;
}

int store_msg_write(struct store_msg *m, const void *data, size_t len, char **error_r)
{
	if (m->failed || m->delivered) {
		str_error(error_r, "message writer: not writable");
		return -1;
	}
	if (len == 0)
		return 1;
	if (len > UINT64_MAX - m->size) {
		m->failed = true;
		str_error(error_r, "message too large");
		return -1;
	}
	if (EVP_DigestUpdate(m->md, data, len) != 1) {
		m->failed = true;
		str_error(error_r, "SHA-256 failed");
		return -1;
	}
	if (m->fd < 0 && m->size + len <= STORE_MSG_MEM_MAX) {
		if (m->size + len > m->memcap) {
			size_t cap = m->memcap == 0 ? 4096 : m->memcap;
			while (cap < m->size + len)
				cap *= 2;
			if (cap > STORE_MSG_MEM_MAX)
				cap = STORE_MSG_MEM_MAX;
			char *p = realloc(m->mem, cap);
			if (p == NULL) {
				m->failed = true;
				str_error(error_r, "message writer: out of memory");
				return -1;
			}
			m->mem = p;
			m->memcap = cap;
		}
		memcpy(m->mem + m->size, data, len);
		m->size += len;
		return 1;
	}
	if (m->fd < 0 && msg_spill(m, error_r) < 0) {
		m->failed = true;
		return -1;
	}
	if (msg_pwrite_all(m->fd, data, len, m->size) < 0) {
		m->failed = true;
		str_error(error_r, "write message spill file: %s", strerror(errno));
		return -1;
	}
	m->size += len;
	return 1;
}

uint64_t store_msg_size(const struct store_msg *m)
{
	return m->size;
}

long store_msg_pread(struct store_msg *m, void *buf, size_t len, uint64_t off)
{
	if (off >= m->size)
		return 0;
	if (len > m->size - off)
		len = (size_t)(m->size - off);
	if (len > STORE_MSG_PREAD_MAX)
		len = STORE_MSG_PREAD_MAX;
	if (m->fd < 0) {
		memcpy(buf, m->mem + off, len);
		return (long)len;
	}
	for (;;) {
		ssize_t n = pread(m->fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -1 : (long)n;
	}
}

int store_msg_read_exact(struct store_msg *m, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len > 0) {
		long n = store_msg_pread(m, p, len, off);
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 1;
}

int store_msg_digest(struct store_msg *m, char id_r[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok;

	ok = c != NULL && EVP_MD_CTX_copy_ex(c, m->md) == 1 &&
	     EVP_DigestFinal_ex(c, md, &mdlen) == 1 && mdlen == 32;
	EVP_MD_CTX_free(c);
	if (!ok)
		return -1;
	for (unsigned int i = 0; i < mdlen; i++) {
		id_r[i * 2] = hex[md[i] >> 4];
		id_r[i * 2 + 1] = hex[md[i] & 0xf];
	}
	id_r[64] = '\0';
	return 1;
}

void store_msg_free(struct store_msg **mp)
{
	struct store_msg *m = *mp;

	if (m == NULL)
		return;
	*mp = NULL;
	/* Not delivered: the spill file is unnamed and goes with its last fd. Delivered:
	 * it may have been linked as a blob, which closing does not affect. */
	if (m->fd >= 0)
		close(m->fd);
	EVP_MD_CTX_free(m->md);
	free(m->mem);
	free(m->data_dir);
	free(m);
}
