/* IMAP SEARCH (RFC 9051 6.4.4, RFC 3501 6.4.4): a search program compiled from
 * the command parser's tokens, evaluated message by message on a worker, and the
 * SEARCH / ESEARCH (RFC 4731) replies, with SEARCHRES "$" (RFC 5182) and the
 * CONDSTORE MODSEQ key (RFC 7162 3.1.5). The rules (date comparisons, text
 * matching, limits) are described in docs/imap.md, section "SEARCH".
 *
 * Lifetimes: a compiled program owns copies of everything it needs from the
 * tokens (they may be freed right after imap_search_compile). A program is
 * read-only after compilation (imap_search_force_esearch aside, which the session
 * calls before any evaluation): imap_search_match keeps its per-message state in
 * the call, so several threads may evaluate one program at once. */
#ifndef HERMOD_IMAP_IMAP_SEARCH_H
#define HERMOD_IMAP_IMAP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap/imap_parse.h"

struct evbuffer;
struct store;

/* Limits on what a client controls. */
#define IMAP_SEARCH_DEPTH_MAX 32     /* nesting of (), NOT and OR */
#define IMAP_SEARCH_KEYS_MAX 1000    /* search keys in one program */
#define IMAP_SEARCH_RANGES_MAX 16384 /* ranges in one sequence set */
#define IMAP_SEARCH_STRING_MAX 1024  /* octets of one text key's string */
#define IMAP_SEARCH_TEXT_KEYS_MAX 64 /* text keys (HEADER, BODY, ...) in one program */

struct imap_search;

/* args[i .. end): the search program after "SEARCH" (RETURN (...) and CHARSET x
 * included, RFC 9051 6.4.4 / RFC 4731 ESEARCH), as imap_parse gives it. 1 ok; -1
 * with *code_r (NULL, or "BADCHARSET (US-ASCII UTF-8)") and *error_r static text.
 * With *code_r NULL the answer is "<tag> BAD <error>"; with BADCHARSET it is
 * "<tag> NO [BADCHARSET (US-ASCII UTF-8)] <error>" (RFC 9051 6.4.4). */
int imap_search_compile(const struct imap_token *args, unsigned i, unsigned end,
                        struct imap_search **s_r, const char **code_r, const char **error_r);
void imap_search_free(struct imap_search **s);
bool imap_search_needs_msg(const struct imap_search *s);    /* header/body keys */
bool imap_search_wants_modseq(const struct imap_search *s); /* MODSEQ key: CONDSTORE */

/* IMAP4rev2 (RFC 9051 7.3.4): the SEARCH response is gone, a SEARCH without
 * RETURN answers as RETURN (ALL) with ESEARCH. The session calls this after
 * compiling when IMAP4rev2 is enabled. */
void imap_search_force_esearch(struct imap_search *s);
/* RETURN (SAVE) was given (RFC 5182): the session keeps the result for "$". */
bool imap_search_saves(const struct imap_search *s);
/* What RETURN (... SAVE) saves of the result uids[0..n) (ascending, UIDs of the
 * matching messages, RFC 5182 2.4: MIN and/or MAX alone save only those, else
 * everything): written to out (room for n), returns how many. */
size_t imap_search_save_select(const struct imap_search *s, const uint32_t *uids, size_t n,
                               uint32_t *out);
/* Whether the session must send a response at all: false for RETURN (SAVE)
 * alone (RFC 5182 2.1: no ESEARCH then). */
bool imap_search_replies(const struct imap_search *s);

struct imap_search_item {
	uint32_t seq, uid;
	uint64_t modseq, size;
	int64_t internal_date; /* unix seconds */
	const char *flags;     /* space-separated as the store lists them (NULL: none);
	                          the session adds "\Recent" when it counts the message
	                          as recent (RECENT, NEW, OLD) */
	const char *blob_id;
};
/* The mailbox as the session sees it (for sequence sets, "*" and "$"). */
struct imap_search_ctx {
	uint32_t exists;  /* messages in the session's view */
	uint32_t max_uid; /* UID of the last message, 0 when empty */
	/* SEARCHRES "$" (RFC 5182): the UIDs of the saved result, ascending; may be
	 * NULL (no saved result: "$" is the empty set). "$" means these messages
	 * both as a sequence set and after UID. */
	const uint32_t *saved;
	size_t nsaved;
};
/* On a worker: 1 match, 0 no, -1 error with *error_r malloc'd (st for the
 * message's bytes when needed). Reads a message only when non-text keys left
 * the result open, and stops reading as soon as it is decided. */
int imap_search_match(const struct imap_search *s, const struct imap_search_ctx *c,
                      struct store *st, const struct imap_search_item *m, char **error_r);
/* The reply for the matching items (ascending seq), "* SEARCH ..." or "* ESEARCH
 * (TAG "tag") [UID] MIN .. MAX .. COUNT .. ALL set" (RETURN given), plus
 * " (MODSEQ n)" / "MODSEQ n" when the MODSEQ key was used (RFC 7162 3.1.5). uid: UID
 * SEARCH. nums are UIDs for UID SEARCH, else sequence numbers; modseqs[0..n) may
 * be NULL when the MODSEQ key was not used. Appended to out with CRLF; nothing
 * for RETURN (SAVE) alone. 1 ok, -1 OOM. */
int imap_search_reply(const struct imap_search *s, const char *tag, bool uid, const uint32_t *nums,
                      const uint64_t *modseqs, size_t n, struct evbuffer *out);

/* ---- helpers, exposed for the tests ---- */

/* RFC 9051 date "d-MMM-yyyy" (month case-insensitive, day 1 or 2 digits): 1 with
 * *day_r the unix time of 00:00 UTC of that day, -1 not a valid date. */
int imap_search_date_parse(const char *s, size_t len, int64_t *day_r);
/* Octets of messages this thread has read for SEARCH so far (tests, accounting). */
uint64_t imap_search_octets_read(void);

#endif
