/* COMPRESS=DEFLATE filter (see zfilter.h). */
#include "net/zfilter.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define ZF_WINDOW_OUT 14 /* 16 KiB */
#define ZF_MEMLEVEL 6
#define ZF_WINDOW_IN 15 /* 32 KiB: the most a peer may use */
#define ZF_CHUNK 16384

struct zfilter {
	z_stream in, out;
	bool in_ok, out_ok;
	bool dirty;           /* deflated since the last sync flush */
	bool failed;          /* the peer's data is not DEFLATE: ev_fail reports it */
	struct event *ev_fail;
	bool flush_scheduled; /* ev_flush is active */
	struct event *ev_flush;
	struct bufferevent *bev; /* the filter itself */
};

static void zf_free(void *arg)
{
	struct zfilter *zf = arg;
	if (zf == NULL)
		return;
	if (zf->ev_flush != NULL)
		event_free(zf->ev_flush);
	if (zf->ev_fail != NULL)
		event_free(zf->ev_fail);
	if (zf->in_ok)
		inflateEnd(&zf->in);
	if (zf->out_ok)
		deflateEnd(&zf->out);
	free(zf);
}

/* Peer -> us: inflate src into dst, at most dst_limit octets when it is >= 0. */
static enum bufferevent_filter_result zf_input(struct evbuffer *src, struct evbuffer *dst,
                                               ev_ssize_t dst_limit,
                                               enum bufferevent_flush_mode mode, void *arg)
{
	struct zfilter *zf = arg;
	size_t produced = 0;
	(void)mode;
	if (zf->failed) {
		evbuffer_drain(src, evbuffer_get_length(src));
		return BEV_ERROR;
	}
	for (;;) {
		size_t room = ZF_CHUNK;
		if (dst_limit >= 0) {
			if (produced >= (size_t)dst_limit)
				break;
			if ((size_t)dst_limit - produced < room)
				room = (size_t)dst_limit - produced;
		}
		struct evbuffer_iovec inv;
		if (evbuffer_peek(src, -1, NULL, &inv, 1) < 1 || inv.iov_len == 0)
			break;
		struct evbuffer_iovec outv;
		if (evbuffer_reserve_space(dst, (ev_ssize_t)room, &outv, 1) < 1)
			return BEV_ERROR;
		if (outv.iov_len > room)
			outv.iov_len = room;
		zf->in.next_in = inv.iov_base;
		zf->in.avail_in = (uInt)(inv.iov_len > UINT32_MAX ? UINT32_MAX : inv.iov_len);
		zf->in.next_out = outv.iov_base;
		zf->in.avail_out = (uInt)outv.iov_len;
		int r = inflate(&zf->in, Z_SYNC_FLUSH);
		size_t used = inv.iov_len - zf->in.avail_in;
		size_t made = outv.iov_len - zf->in.avail_out;
		outv.iov_len = made;
		evbuffer_commit_space(dst, &outv, 1);
		evbuffer_drain(src, used);
		produced += made;
		/* the end of the stream is not expected: the session is compressed
		 * until it closes (RFC 4978 3); corrupt data ends the connection */
		if (r == Z_STREAM_END || r == Z_NEED_DICT || r == Z_DATA_ERROR || r == Z_MEM_ERROR ||
		    r == Z_STREAM_ERROR) {
			/* libevent reports a filter's error only when it also produced
			 * something: report it from the loop ourselves */
			if (!zf->failed) {
				zf->failed = true;
				event_active(zf->ev_fail, EV_TIMEOUT, 0);
			}
			evbuffer_drain(src, evbuffer_get_length(src));
			return BEV_ERROR;
		}
		if (used == 0 && made == 0)
			break; /* Z_BUF_ERROR: needs more input */
	}
	return produced > 0 ? BEV_OK : BEV_NEED_MORE;
}

/* Us -> peer: deflate src into dst; sync-flush on BEV_FLUSH / BEV_FINISHED. */
static enum bufferevent_filter_result zf_output(struct evbuffer *src, struct evbuffer *dst,
                                                ev_ssize_t dst_limit,
                                                enum bufferevent_flush_mode mode, void *arg)
{
	struct zfilter *zf = arg;
	bool flush = mode != BEV_NORMAL;
	(void)dst_limit; /* the output is bounded by the session's back-pressure */
	if (evbuffer_get_length(src) > 0)
		zf->dirty = true;
	if (!flush && zf->dirty && !zf->flush_scheduled) {
		zf->flush_scheduled = true;
		event_active(zf->ev_flush, EV_TIMEOUT, 0);
	}
	if (flush && !zf->dirty)
		return BEV_OK;
	for (;;) {
		struct evbuffer_iovec inv = {.iov_base = NULL, .iov_len = 0};
		int have = evbuffer_peek(src, -1, NULL, &inv, 1);
		bool last = have < 1 || inv.iov_len == 0;
		if (last && !flush)
			break;
		struct evbuffer_iovec outv;
		if (evbuffer_reserve_space(dst, ZF_CHUNK, &outv, 1) < 1)
			return BEV_ERROR;
		zf->out.next_in = last ? NULL : inv.iov_base;
		zf->out.avail_in = last ? 0 : (uInt)(inv.iov_len > UINT32_MAX ? UINT32_MAX : inv.iov_len);
		zf->out.next_out = outv.iov_base;
		zf->out.avail_out = (uInt)outv.iov_len;
		int r = deflate(&zf->out, last ? Z_SYNC_FLUSH : Z_NO_FLUSH);
		size_t used = last ? 0 : inv.iov_len - zf->out.avail_in;
		outv.iov_len -= zf->out.avail_out;
		bool full = zf->out.avail_out == 0;
		evbuffer_commit_space(dst, &outv, 1);
		if (used > 0)
			evbuffer_drain(src, used);
		if (r == Z_STREAM_ERROR)
			return BEV_ERROR;
		if (last && !full) {
			zf->dirty = false; /* all of it flushed out */
			break;
		}
	}
	return BEV_OK;
}

static void zf_on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct zfilter *zf = arg;
	(void)fd;
	(void)what;
	zf->flush_scheduled = false;
	zfilter_flush(zf);
}

/* The event callback of whoever uses the filter, as for a read error. */
static void zf_on_fail(evutil_socket_t fd, short what, void *arg)
{
	struct zfilter *zf = arg;
	bufferevent_event_cb eventcb = NULL;
	void *cbarg = NULL;
	(void)fd;
	(void)what;
	bufferevent_getcb(zf->bev, NULL, NULL, &eventcb, &cbarg);
	if (eventcb != NULL)
		eventcb(zf->bev, BEV_EVENT_READING | BEV_EVENT_ERROR, cbarg);
}

struct zfilter *zfilter_new(struct event_base *base, struct bufferevent *under)
{
	struct zfilter *zf = calloc(1, sizeof(*zf));
	if (zf == NULL)
		return NULL;
	if (inflateInit2(&zf->in, -ZF_WINDOW_IN) != Z_OK)
		goto fail;
	zf->in_ok = true;
	if (deflateInit2(&zf->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -ZF_WINDOW_OUT, ZF_MEMLEVEL,
	                 Z_DEFAULT_STRATEGY) != Z_OK)
		goto fail;
	zf->out_ok = true;
	zf->ev_flush = event_new(base, -1, 0, zf_on_flush, zf);
	zf->ev_fail = event_new(base, -1, 0, zf_on_fail, zf);
	if (zf->ev_flush == NULL || zf->ev_fail == NULL)
		goto fail;
	zf->bev = bufferevent_filter_new(under, zf_input, zf_output, BEV_OPT_CLOSE_ON_FREE, zf_free,
	                                 zf);
	if (zf->bev == NULL)
		goto fail;
	return zf;
fail:
	zf_free(zf);
	return NULL;
}

struct bufferevent *zfilter_bev(struct zfilter *zf)
{
	return zf->bev;
}

size_t zfilter_pending(const struct zfilter *zf)
{
	if (!zf->dirty)
		return 0;
	unsigned pending = 0;
	int bits = 0;
	if (deflatePending((z_streamp)&zf->out, &pending, &bits) != Z_OK || pending == 0)
		return 1;
	return pending;
}

size_t zfilter_pull(struct zfilter *zf)
{
	struct evbuffer *in = bufferevent_get_input(zf->bev);
	struct bufferevent *under = bufferevent_get_underlying(zf->bev);
	if (zf->failed || under == NULL || evbuffer_get_length(bufferevent_get_input(under)) == 0)
		return 0;
	size_t before = evbuffer_get_length(in);
	bufferevent_flush(zf->bev, EV_READ, BEV_NORMAL);
	size_t after = evbuffer_get_length(in);
	return after > before ? after - before : 0;
}

void zfilter_flush(struct zfilter *zf)
{
	if (zf->dirty)
		bufferevent_flush(zf->bev, EV_WRITE, BEV_FLUSH);
}
