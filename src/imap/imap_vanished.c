/* VANISHED (EARLIER) responses (see imap_vanished.h). */
#include "imap/imap_vanished.h"

#include <event2/buffer.h>

static void imap_vanished_flush(struct imap_vanished *w)
{
	if (w->lo == 0)
		return;
	evbuffer_add_printf(w->out, "%s", w->started ? "," : "* VANISHED (EARLIER) ");
	w->started = true;
	if (w->hi > w->lo)
		evbuffer_add_printf(w->out, "%u:%u", w->lo, w->hi);
	else
		evbuffer_add_printf(w->out, "%u", w->lo);
	w->lo = w->hi = 0;
}

/* One run already inside only and above: merged with the held one, or held. */
static void imap_vanished_run(struct imap_vanished *w, uint32_t first, uint32_t last)
{
	if (w->lo != 0 && first == w->hi + 1) {
		w->hi = last;
		return;
	}
	imap_vanished_flush(w);
	w->lo = first;
	w->hi = last;
}

void imap_vanished_add(struct imap_vanished *w, uint32_t first, uint32_t last)
{
	if (last <= w->above)
		return;
	if (first <= w->above)
		first = w->above + 1;
	if (w->only == NULL) {
		imap_vanished_run(w, first, last);
		return;
	}
	/* only's ranges are sorted and disjoint, and the runs come in ascending
	 * order: one pass over both */
	const struct imap_seqset *o = w->only;
	while (w->next < o->n && o->ranges[w->next].hi < first)
		w->next++;
	for (unsigned i = w->next; i < o->n && o->ranges[i].lo <= last; i++) {
		uint64_t lo = o->ranges[i].lo > first ? o->ranges[i].lo : first;
		uint64_t hi = o->ranges[i].hi < last ? o->ranges[i].hi : last;
		imap_vanished_run(w, (uint32_t)lo, (uint32_t)hi);
	}
}

bool imap_vanished_end(struct imap_vanished *w)
{
	imap_vanished_flush(w);
	if (w->started)
		evbuffer_add(w->out, "\r\n", 2);
	return w->started;
}
