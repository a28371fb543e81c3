/* Private to src/store: the message writer's internals, shared by the writer
 * (store_msg.c) and the backends that turn a written message into a blob. */
#ifndef HERMOD_STORE_STORE_MSG_H
#define HERMOD_STORE_STORE_MSG_H

#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

struct store_msg {
	char *data_dir; /* where the spill file lives (same file system as the blobs) */
	EVP_MD_CTX *md; /* SHA-256 of every byte written so far */
	char *mem;      /* the bytes while size <= STORE_MSG_MEM_MAX */
	size_t memcap;
	int fd; /* spill file (unlinked O_TMPFILE, O_RDWR) once spilled, else -1 */
	uint64_t size;
	bool failed;    /* a write failed: the message is unusable */
	bool delivered; /* store_deliver made it a blob (the spill file may be linked) */
};

/* store_msg_begin without a store: the spill file goes into data_dir. */
int store_msg_create(const char *data_dir, struct store_msg **m_r, char **error_r);

/* Hex SHA-256 of the bytes written so far (the writer stays usable). 1 ok, -1 error. */
int store_msg_digest(struct store_msg *m, char id_r[65]);

/* Reads exactly len bytes at off (within the message). 1 ok, -1 error. */
int store_msg_read_exact(struct store_msg *m, void *buf, size_t len, uint64_t off);

#endif
