#include "mail/date.h"

#include <stdbool.h>
#include <string.h>

struct dscan {
	const char *s;
	size_t n, i;
};

/* CFWS: blanks, line ends and (nested) comments. */
static void dskip(struct dscan *d)
{
	while (d->i < d->n) {
		char c = d->s[d->i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			d->i++;
		} else if (c == '(') {
			unsigned depth = 0;
			while (d->i < d->n) {
				char k = d->s[d->i++];
				if (k == '\\' && d->i < d->n)
					d->i++;
				else if (k == '(')
					depth++;
				else if (k == ')' && --depth == 0)
					break;
			}
		} else {
			break;
		}
	}
}

static bool dpunct(struct dscan *d, char c)
{
	dskip(d);
	if (d->i < d->n && d->s[d->i] == c) {
		d->i++;
		return true;
	}
	return false;
}

/* Digits (at most max of them): their count, 0 when none, -1 more. */
static int dnum(struct dscan *d, int max, int *v)
{
	dskip(d);
	int k = 0, x = 0;
	while (d->i < d->n && d->s[d->i] >= '0' && d->s[d->i] <= '9') {
		if (k == max)
			return -1;
		x = x * 10 + (d->s[d->i] - '0');
		d->i++;
		k++;
	}
	*v = x;
	return k;
}

/* Letters, lower-cased into w (longer words are cut, so do not match). */
static size_t dword(struct dscan *d, char *w, size_t cap)
{
	dskip(d);
	size_t k = 0, start = d->i;
	while (d->i < d->n) {
		char c = d->s[d->i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c < 'a' || c > 'z')
			break;
		if (k + 1 < cap)
			w[k++] = c;
		d->i++;
	}
	w[k] = '\0';
	return d->i - start;
}

static const char *const months[12] = {"january",   "february", "march",    "april",
                                       "may",       "june",     "july",     "august",
                                       "september", "october",  "november", "december"};
static const char *const days[7] = {"monday", "tuesday",  "wednesday", "thursday",
                                    "friday", "saturday", "sunday"};

/* A name in three letters or in full (its prefix of at least 3). */
static int name_index(const char *w, size_t len, const char *const *names, int count)
{
	if (len < 3)
		return -1;
	for (int k = 0; k < count; k++) {
		size_t l = strlen(names[k]);
		if (len <= l && strncmp(w, names[k], len) == 0 && (len == 3 || len == l))
			return k;
	}
	if (len == 4 && strcmp(w, "sept") == 0)
		return 8;
	return -1;
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* zone: 1 read (*off set), 0 none there. */
static int dzone(struct dscan *d, int *off)
{
	dskip(d);
	if (d->i >= d->n)
		return 0;
	char c = d->s[d->i];
	if (c == '+' || c == '-') {
		size_t save = d->i;
		d->i++;
		int v;
		/* no CFWS inside the zone */
		if (d->i < d->n && d->s[d->i] >= '0' && d->s[d->i] <= '9' && dnum(d, 4, &v) == 4 &&
		    v % 100 < 60) {
			*off = (v / 100 * 60 + v % 100) * (c == '-' ? -1 : 1);
			return 1;
		}
		d->i = save;
		return -1;
	}
	if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
		return 0;
	char w[8];
	size_t l = dword(d, w, sizeof(w));
	static const struct {
		const char *name;
		int off;
	} zones[] = {
	    {"ut", 0},        {"gmt", 0},       {"utc", 0},       {"z", 0},
	    {"est", -5 * 60}, {"edt", -4 * 60}, {"cst", -6 * 60}, {"cdt", -5 * 60},
	    {"mst", -7 * 60}, {"mdt", -6 * 60}, {"pst", -8 * 60}, {"pdt", -7 * 60},
	};
	*off = 0;
	if (l < sizeof(w))
		for (size_t k = 0; k < sizeof(zones) / sizeof(zones[0]); k++)
			if (strcmp(w, zones[k].name) == 0)
				*off = zones[k].off;
	/* RFC 5322 4.3: military and other names: -0000 (unknown) */
	return 1;
}

static bool dtime(struct dscan *d, int *h, int *mi, int *sec)
{
	if (dnum(d, 2, h) <= 0 || !dpunct(d, ':') || dnum(d, 2, mi) <= 0)
		return false;
	*sec = 0;
	if (dpunct(d, ':') && dnum(d, 2, sec) <= 0)
		return false;
	return *h <= 23 && *mi <= 59 && *sec <= 60;
}

static bool dyear(struct dscan *d, int64_t *y)
{
	int v;
	int k = dnum(d, 4, &v);
	if (k <= 0 || k == 1)
		return false;
	/* RFC 5322 4.3 */
	if (k == 2)
		*y = v < 50 ? 2000 + v : 1900 + v;
	else if (k == 3)
		*y = 1900 + v;
	else
		*y = v;
	return true;
}

int mail_date_parse(const char *s, size_t len, int64_t *t_r, int *tzoff_min_r)
{
	struct dscan d = {s, len, 0};
	char w[16];
	int mon = -1, day = 0, h, mi, sec, off = 0;
	int64_t year = 0;
	bool asctime_form = false;

	dskip(&d);
	size_t save = d.i;
	size_t l = dword(&d, w, sizeof(w));
	if (l > 0) {
		if (l < sizeof(w) && name_index(w, l, days, 7) >= 0) {
			(void)dpunct(&d, ',');
			save = d.i;
			l = dword(&d, w, sizeof(w));
		}
		if (l > 0) {
			mon = l < sizeof(w) ? name_index(w, l, months, 12) : -1;
			if (mon < 0)
				return -1;
			asctime_form = true;
		} else {
			d.i = save;
		}
	}
	if (asctime_form) {
		/* month day time [zone] year [zone] */
		if (dnum(&d, 2, &day) <= 0 || !dtime(&d, &h, &mi, &sec))
			return -1;
		size_t at = d.i;
		dskip(&d);
		if (d.i < d.n &&
		    ((d.s[d.i] >= 'a' && d.s[d.i] <= 'z') || (d.s[d.i] >= 'A' && d.s[d.i] <= 'Z')))
			(void)dzone(&d, &off);
		else
			d.i = at;
		if (!dyear(&d, &year))
			return -1;
		int z;
		if (dzone(&d, &z) == 1)
			off = z;
	} else {
		if (dnum(&d, 2, &day) <= 0)
			return -1;
		if (!dpunct(&d, '-'))
			(void)dpunct(&d, '/');
		l = dword(&d, w, sizeof(w));
		mon = l > 0 && l < sizeof(w) ? name_index(w, l, months, 12) : -1;
		if (mon < 0)
			return -1;
		if (!dpunct(&d, '-'))
			(void)dpunct(&d, '/');
		if (!dyear(&d, &year) || !dtime(&d, &h, &mi, &sec))
			return -1;
		if (dzone(&d, &off) < 0)
			return -1;
	}
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int dim = mdays[mon] + (mon == 1 && is_leap(year));
	if (day < 1 || day > dim)
		return -1;
	*t_r = days_from_civil(year, mon + 1, day) * 86400 + h * 3600 + mi * 60 + sec -
	       (int64_t)off * 60;
	*tzoff_min_r = off;
	return 1;
}
