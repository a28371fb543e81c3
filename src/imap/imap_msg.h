/* One stored message opened for FETCH and SEARCH: its bytes by range (never
 * loaded whole) and its MIME tree (src/mail/mime.h), taken from the store's
 * per-blob cache or parsed once by streaming the blob through the MIME parser
 * and then cached. Blocks on disk: call it on a worker thread, never on an
 * event loop. One thread at a time per struct imap_msg. */
#ifndef HERMOD_IMAP_IMAP_MSG_H
#define HERMOD_IMAP_IMAP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/mime.h"
#include "store/store.h"

/* Octets read from the blob at a time while parsing it. */
#define IMAP_MSG_READ_CHUNK (64u * 1024u)

struct imap_msg {
	struct store_blob_range r; /* the bytes (store_blob_open) */
	struct mime_tree tree;     /* from store_blob_cache_get, else parsed and put */
	bool have_tree;
};

/* Opens blob_id. want_tree: also load the MIME tree (from the cache; on a miss,
 * or when the cache fails or holds something undecodable, the blob is parsed in
 * pieces of IMAP_MSG_READ_CHUNK octets and the tree is put into the cache, a
 * failed put being ignored). 1 ok (close with imap_msg_close), 0 the blob is gone
 * (expunged meanwhile), -1 error with *error_r malloc'd (error_r may be NULL). On
 * 0 and -1 there is nothing to close (imap_msg_close is harmless). */
int imap_msg_open(struct imap_msg *m, struct store *st, const char *blob_id, bool want_tree,
                  char **error_r);
/* Closes the fd and frees the tree; m can be opened again. Safe on a message
 * that failed to open or was zero-initialised with r.fd = -1. */
void imap_msg_close(struct imap_msg *m);
/* The message's length in octets. */
static inline uint64_t imap_msg_size(const struct imap_msg *m)
{
	return m->r.len;
}
/* pread of [off, off + len) of the message into buf (bounded by the message's
 * end): the number of octets read (less than len only at the end, 0 at or past
 * it), -1 on an I/O error (errno set). */
long imap_msg_read(struct imap_msg *m, void *buf, size_t len, uint64_t off);

#endif
