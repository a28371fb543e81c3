/* Opening a stored message for FETCH/SEARCH (see imap_msg.h). */
#include "imap/imap_msg.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void set_error(char **error_r, const char *what)
{
	if (error_r == NULL)
		return;
	free(*error_r);
	*error_r = strdup(what);
}

long imap_msg_read(struct imap_msg *m, void *buf, size_t len, uint64_t off)
{
	if (off >= m->r.len)
		return 0;
	if (len > m->r.len - off)
		len = (size_t)(m->r.len - off);
	if (len > (size_t)LONG_MAX)
		len = (size_t)LONG_MAX;
	size_t got = 0;
	while (got < len) {
		ssize_t n =
		    pread(m->r.fd, (char *)buf + got, len - got, (off_t)(m->r.off + off + got));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			/* the range promised more: the file was cut short */
			errno = EIO;
			return -1;
		}
		got += (size_t)n;
	}
	return (long)got;
}

/* Parses the blob in pieces into m->tree: 1 ok, -1 error. */
static int msg_parse(struct imap_msg *m, char **error_r)
{
	struct mime_parser *p = mime_parser_new(NULL);
	char *chunk = malloc(IMAP_MSG_READ_CHUNK);
	if (p == NULL || chunk == NULL) {
		free(chunk);
		mime_parser_free(&p);
		set_error(error_r, "out of memory");
		return -1;
	}
	uint64_t off = 0;
	int rc = 1;
	while (off < m->r.len) {
		long n = imap_msg_read(m, chunk, IMAP_MSG_READ_CHUNK, off);
		if (n < 0) {
			char msg[128];
			snprintf(msg, sizeof(msg), "reading message: %s", strerror(errno));
			set_error(error_r, msg);
			rc = -1;
			break;
		}
		if (mime_parser_feed(p, chunk, (size_t)n) < 0) {
			set_error(error_r, "out of memory");
			rc = -1;
			break;
		}
		off += (uint64_t)n;
	}
	free(chunk);
	if (rc == 1 && mime_parser_finish(p, &m->tree) < 0) {
		set_error(error_r, "out of memory");
		rc = -1;
	}
	mime_parser_free(&p);
	return rc;
}

int imap_msg_open(struct imap_msg *m, struct store *st, const char *blob_id, bool want_tree,
                  char **error_r)
{
	memset(m, 0, sizeof(*m));
	m->r.fd = -1;
	mime_tree_init(&m->tree);
	int r = store_blob_open(st, blob_id, &m->r, error_r);
	if (r != 1) {
		m->r.fd = -1;
		return r;
	}
	if (!want_tree)
		return 1;

	char *data = NULL, *cerr = NULL;
	size_t len = 0;
	/* A cache read that fails is a miss: the tree can always be derived again
	 * from the bytes. */
	if (store_blob_cache_get(st, blob_id, &data, &len, &cerr) == 1) {
		if (mime_tree_decode(data, len, &m->tree) == 1)
			m->have_tree = true;
		else
			mime_tree_free(&m->tree);
	}
	free(data);
	free(cerr);
	if (m->have_tree)
		return 1;

	if (msg_parse(m, error_r) < 0) {
		imap_msg_close(m);
		return -1;
	}
	m->have_tree = true;
	struct buf enc;
	buf_init(&enc, STORE_BLOB_CACHE_MAX);
	if (mime_tree_encode(&m->tree, &enc) == 1) {
		cerr = NULL;
		(void)store_blob_cache_put(st, blob_id, enc.data, enc.len, &cerr);
		free(cerr);
	}
	buf_free(&enc);
	return 1;
}

void imap_msg_close(struct imap_msg *m)
{
	if (m->r.fd >= 0)
		store_blob_range_close(&m->r);
	m->r.fd = -1;
	mime_tree_free(&m->tree);
	m->have_tree = false;
}
