/* FETCH (RFC 9051 6.4.5, 7.5.2; RFC 3501 for rev1 items; RFC 3516 BINARY;
 * RFC 7162 CONDSTORE/QRESYNC modifiers): the attribute list compiled once per
 * command, then one "* n FETCH (...)" response per message written on a worker
 * thread in pieces of about a given budget, sections read from the stored blob by
 * range (never the whole message in memory). The response forms are described in
 * docs/imap.md, section "FETCH". */
#ifndef HERMOD_IMAP_IMAP_FETCH_H
#define HERMOD_IMAP_IMAP_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "imap/imap_parse.h"
#include "store/store.h"

struct imap_fetch; /* a compiled FETCH attribute list */

/* args[i .. end) are the tokens after the sequence set, as imap_parse gives them:
 * the fetch attributes (a macro ALL/FAST/FULL, one att, or a list of atts),
 * optionally followed by the modifier list "(CHANGEDSINCE n [VANISHED])" (RFC
 * 7162 3.1.4.1, 3.2.6). uid: UID FETCH (UID is implied and answered first).
 * 1 ok (*f_r, free with imap_fetch_free), -1 the client's mistake with *error_r
 * a static text for "<tag> BAD <text>" (also for out of memory, "Out of
 * memory", which is not the client's mistake but needs no other answer). */
int imap_fetch_compile(const struct imap_token *args, unsigned i, unsigned end, bool uid,
                       struct imap_fetch **f_r, const char **error_r);
void imap_fetch_free(struct imap_fetch **f);
/* The message's bytes or MIME tree are needed (ENVELOPE, BODY, BODYSTRUCTURE,
 * sections, RFC822*, BINARY*): imap_fetch_write opens the blob. */
bool imap_fetch_needs_msg(const struct imap_fetch *f);
/* BODY[...], BINARY[...], RFC822 or RFC822.TEXT without .PEEK: the session sets
 * \Seen (RFC 9051 6.4.5) before writing, and should then answer FLAGS too. */
bool imap_fetch_sets_seen(const struct imap_fetch *f);
/* MODSEQ or CHANGEDSINCE: CONDSTORE is enabled by this command (RFC 7162 3.1). */
bool imap_fetch_wants_modseq(const struct imap_fetch *f);
/* CHANGEDSINCE's value: only messages with a greater MODSEQ are answered. 0 none
 * (CHANGEDSINCE 0 selects every message, like none; it still implies MODSEQ). */
uint64_t imap_fetch_changedsince(const struct imap_fetch *f);
/* VANISHED was given (with CHANGEDSINCE, UID FETCH only): the session sends
 * "* VANISHED (EARLIER) uids" first (RFC 7162 3.2.6); the session checks that
 * QRESYNC is enabled (else BAD). */
bool imap_fetch_vanished(const struct imap_fetch *f);

struct imap_fetch_item {
	uint32_t seq, uid;
	uint64_t modseq, size;
	int64_t internal_date;
	const char *flags; /* space-separated, as the store lists them */
	const char *blob_id;
	/* Added items (false/zero by default): FLAGS when this FETCH has just set
	 * \Seen (RFC 9051 6.4.5: the changed flags SHOULD be answered), MODSEQ
	 * when the session has CONDSTORE enabled and answers FLAGS (RFC 7162
	 * 3.1.4.1); each written after the items asked, unless asked. */
	bool add_flags, add_modseq;
};

/* imap_fetch_write: BINARY of a part whose Content-Transfer-Encoding is neither
 * identity (7bit, 8bit, binary, none) nor base64 nor quoted-printable. Nothing
 * was written for this message; the caller answers "<tag> NO [UNKNOWN-CTE]
 * <*error_r>" (RFC 3516 4.3). */
#define IMAP_FETCH_UNKNOWN_CTE (-2)

/* Octets read from the blob at a time while a section is written or measured. */
#define IMAP_FETCH_CHUNK (64u * 1024u)
/* Octets of a header section read for ENVELOPE (fields past it are not seen). */
#define IMAP_FETCH_ENVELOPE_HEADER_MAX (256u * 1024u)

/* Writes "* <seq> FETCH (...)\r\n" for one message to out; runs on a worker (st
 * for imap_msg_open). Literal bodies of any size are written in pieces: returns 1
 * when the response is complete, 0 when at least `budget` octets were appended
 * in this call and more remain (call again with the same cursor once the output
 * drained; the concatenated output does not depend on the budgets), -1 error
 * (*error_r malloc'd; part of the response may have been written: the session
 * must then close the connection), IMAP_FETCH_UNKNOWN_CTE (above). A message
 * whose blob is gone gets no response (1, nothing written) -- RFC 9051 allows
 * the server to omit it. utf8: IMAP4rev2 / UTF8=ACCEPT strings.
 * cur: a pointer set to NULL before the first call for a message; the cursor
 * lives in it while 0 is returned, and is freed (and *cur set to NULL) when 1,
 * -1 or IMAP_FETCH_UNKNOWN_CTE is returned. Freeing it after 0 abandons the
 * response. m and what it points to must stay the same across the calls. */
struct imap_fetch_cursor;
int imap_fetch_write(const struct imap_fetch *f, struct store *st, const struct imap_fetch_item *m,
                     bool utf8, struct imap_fetch_cursor **cur, struct evbuffer *out, size_t budget,
                     char **error_r);
void imap_fetch_cursor_free(struct imap_fetch_cursor **cur);

#endif
