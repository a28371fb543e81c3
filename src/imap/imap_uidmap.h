/* The message sequence numbers of a selected mailbox as one session knows them
 * (RFC 9051 2.3.1.2): message n is the n-th of an ascending list of UIDs. This is
 * all a session must keep per message; everything else is read from the store
 * when a command needs it. The list is kept as runs of consecutive UIDs (a
 * mailbox that was only appended to is one run), 8 octets a run: at most twice
 * a plain UID array when every other message has gone, a few octets for a whole
 * mailbox in the common case. Not thread-safe; copy it for a worker. */
#ifndef HERMOD_IMAP_IMAP_UIDMAP_H
#define HERMOD_IMAP_IMAP_UIDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct imap_uidrun {
	uint32_t uid; /* the run's first UID */
	uint32_t seq; /* its sequence number; the run ends where the next begins */
};

struct imap_uidmap {
	struct imap_uidrun *runs;
	uint32_t nruns, cap;
	uint32_t n; /* messages */
};

/* Appends uid as message n + 1. uid must be above every UID in the map (-1
 * otherwise, as for out of memory). 1 ok. */
int imap_uidmap_append(struct imap_uidmap *m, uint32_t uid);
/* The UID of message seq (1..n); 0 when seq is out of range. O(log runs). */
uint32_t imap_uidmap_uid(const struct imap_uidmap *m, uint32_t seq);
/* The sequence number of uid, 0 when it is not in the map. O(log runs). */
uint32_t imap_uidmap_seq(const struct imap_uidmap *m, uint32_t uid);
/* The sequence number of the first message with a UID >= uid; n + 1 when
 * there is none. O(log runs). */
uint32_t imap_uidmap_lower(const struct imap_uidmap *m, uint32_t uid);
/* The largest UID, 0 when empty. */
uint32_t imap_uidmap_max(const struct imap_uidmap *m);
/* Run i (0..nruns-1): its first UID and length. */
void imap_uidmap_run(const struct imap_uidmap *m, uint32_t i, uint32_t *uid_r, uint32_t *len_r);
/* Removes message seq (1..n): the later ones move down by one (EXPUNGE). 1 ok,
 * -1 out of memory (removing from inside a run splits it; the map is then
 * unchanged). O(runs). */
int imap_uidmap_remove(struct imap_uidmap *m, uint32_t seq);
/* Gives back the growth slack (a map that lives as long as a selection). */
void imap_uidmap_trim(struct imap_uidmap *m);
/* dst (uninitialised) becomes a copy of src. 1 ok, -1 out of memory (dst empty). */
int imap_uidmap_copy(struct imap_uidmap *dst, const struct imap_uidmap *src);
void imap_uidmap_free(struct imap_uidmap *m);
/* Octets of memory the map holds (tests, accounting). */
size_t imap_uidmap_bytes(const struct imap_uidmap *m);

#endif
