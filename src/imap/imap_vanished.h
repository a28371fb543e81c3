/* VANISHED (EARLIER) responses (RFC 7162 3.2.5.2, 3.2.6, 7.2): UIDs arrive as
 * ascending runs (store_mailbox_changes' vanished), are narrowed to what the
 * client asked about and written as one response of UID ranges, adjacent runs
 * merged. The writer touches no session: it can run on a worker. */
#ifndef HERMOD_IMAP_IMAP_VANISHED_H
#define HERMOD_IMAP_IMAP_VANISHED_H

#include <stdbool.h>
#include <stdint.h>

#include "imap/imap_parse.h"

struct evbuffer;

struct imap_vanished {
	/* set by the caller */
	struct evbuffer *out;
	const struct imap_seqset *only; /* resolved (imap_seqset_resolve), or NULL: all */
	uint32_t above;                 /* only UIDs above this */
	/* the writer's */
	uint32_t lo, hi; /* the run held back for merging (lo 0: none) */
	unsigned next;   /* the first range of only that may still overlap */
	bool started;    /* "* VANISHED (EARLIER) " written */
};

/* Adds the UIDs first..last (first <= last; calls in ascending order, not
 * overlapping) that are in only and above `above`. */
void imap_vanished_add(struct imap_vanished *w, uint32_t first, uint32_t last);
/* Writes what is held and ends the response with CRLF; nothing at all when no
 * UID was added. Whether a response was written. */
bool imap_vanished_end(struct imap_vanished *w);

#endif
