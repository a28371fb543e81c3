/* COMPRESS=DEFLATE (RFC 4978): a bufferevent filter that inflates what the peer
 * sends and deflates what we send, as raw DEFLATE (RFC 1951, no zlib or gzip
 * wrapper) over whatever is under it (the socket, or TLS: RFC 4978 4 puts
 * compression inside TLS).
 *
 * Output is corked: what one loop pass writes is deflated as it is added and
 * flushed (Z_SYNC_FLUSH, so the peer can decode every reply at once) by an
 * event at the end of the pass, not once per write. Input is inflated no
 * further than the filter's read watermark allows (libevent passes the room
 * left), so a small compressed input cannot blow up into unbounded memory: the
 * rest stays compressed under the filter until the protocol has read
 * (zfilter_pull). A peer sending what is not DEFLATE data gets the filter's
 * event callback with BEV_EVENT_READING | BEV_EVENT_ERROR, from the loop.
 *
 * Memory per connection: the deflate state uses a 16 KiB window and memLevel 6
 * (about 80 KiB, against zlib's 256 KiB default; a window smaller than 32 KiB is
 * valid for every inflater), the inflate state a 32 KiB window (what the peer may
 * use, RFC 1951). */
#ifndef HERMOD_NET_ZFILTER_H
#define HERMOD_NET_ZFILTER_H

#include <stddef.h>

struct bufferevent;
struct event_base;
struct zfilter;

/* A filter over under (which the filter frees when it is freed,
 * BEV_OPT_CLOSE_ON_FREE); the zfilter lives as long as its bufferevent
 * (zfilter_bev) and goes with it. What is already in under's input buffer is
 * taken as compressed input (call bufferevent_trigger or wait for more). NULL on
 * out of memory (under is then untouched). */
struct zfilter *zfilter_new(struct event_base *base, struct bufferevent *under);
struct bufferevent *zfilter_bev(struct zfilter *zf);

/* Output taken from the filter's buffer but still inside zlib (not yet handed
 * to the layer under it): 0 when none, else at least 1. */
size_t zfilter_pending(const struct zfilter *zf);
/* Inflates more of what is buffered under the filter, as far as the filter's
 * read watermark allows (libevent does so by itself only when more arrives
 * from below): the octets added to the filter's input. */
size_t zfilter_pull(struct zfilter *zf);
/* Deflates and hands down everything written so far (a sync flush), now. */
void zfilter_flush(struct zfilter *zf);

#endif
