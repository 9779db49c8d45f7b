/* Numbers with units as written in a Pipefile: whole numbers, durations
 * ("1h30m"), sizes ("4Gi") and cpu amounts ("500m"), parsed by hand so
 * that nothing like "1e3", "0x10" or " 5" slips through strtol. */
#include "pipefile/internal.h"
#include "util/xalloc.h"

#include <ctype.h>
#include <limits.h>
#include <string.h>

int pipefile_parse_int(const char *s, long long *out)
{
	int neg = *s == '-';
	long long v = 0;

	if (neg)
		s++;
	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++)
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, *s - '0', &v))
			return -1;
	if (*s)
		return -1;
	*out = neg ? -v : v;
	return 0;
}

/* A decimal number "12" or "1.25" at *sp: whole part, and the fraction
 * as num / den (at most 9 digits). Advances *sp. */
struct decimal {
	long long whole, num, den;
};

static int parse_decimal(const char **sp, struct decimal *d)
{
	const char *s = *sp;

	d->whole = d->num = 0;
	d->den = 1;
	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++)
		if (__builtin_mul_overflow(d->whole, 10, &d->whole) ||
		    __builtin_add_overflow(d->whole, *s - '0', &d->whole))
			return -1;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return -1;
		for (; isdigit((unsigned char)*s); s++) {
			if (d->den >= 1000000000)
				return -1;
			d->num = d->num * 10 + (*s - '0');
			d->den *= 10;
		}
	}
	*sp = s;
	return 0;
}

/* d * mult, the fraction rounded up; -1 on overflow. */
static int scale(const struct decimal *d, long long mult, long long *out)
{
	long long v, frac;

	if (__builtin_mul_overflow(d->whole, mult, &v))
		return -1;
	if (d->num) {
		long double f = (long double)d->num * mult / d->den;

		frac = (long long)f;
		if ((long double)frac < f)
			frac++;
		if (__builtin_add_overflow(v, frac, &v))
			return -1;
	}
	*out = v;
	return 0;
}

struct unit {
	const char *name;
	long long mult;
};

/* The longest unit that s starts with (so "ms" wins over "m"). */
static const struct unit *find_unit(const struct unit *t, size_t n,
				    const char *s, int whole)
{
	const struct unit *best = NULL;

	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(t[i].name);

		if (whole ? strcmp(s, t[i].name) : strncmp(s, t[i].name, len))
			continue;
		if (!best || len > strlen(best->name))
			best = &t[i];
	}
	return best;
}

int pipefile_parse_duration(const char *s, long long *ms)
{
	static const struct unit units[] = {
		{"ms", 1},	{"s", 1000},	 {"m", 60000},
		{"h", 3600000}, {"d", 86400000},
	};
	long long total = 0, v;

	if (pipefile_parse_int(s, &v) == 0)
		return v < 0 || __builtin_mul_overflow(v, 1000, ms) ? -1 : 0;
	if (!*s)
		return -1;
	while (*s) {
		struct decimal d;
		const struct unit *u;

		if (parse_decimal(&s, &d))
			return -1;
		u = find_unit(units, ARRAY_SIZE(units), s, 0);
		if (!u || scale(&d, u->mult, &v) ||
		    __builtin_add_overflow(total, v, &total))
			return -1;
		s += strlen(u->name);
	}
	*ms = total;
	return 0;
}

int pipefile_parse_size(const char *s, long long *bytes)
{
	static const struct unit units[] = {
		{"", 1},
		{"k", 1000},
		{"K", 1000},
		{"M", 1000000},
		{"G", 1000000000},
		{"T", 1000000000000},
		{"P", 1000000000000000},
		{"Ki", 1ll << 10},
		{"Mi", 1ll << 20},
		{"Gi", 1ll << 30},
		{"Ti", 1ll << 40},
		{"Pi", 1ll << 50},
	};
	const struct unit *u;
	struct decimal d;

	if (parse_decimal(&s, &d))
		return -1;
	u = find_unit(units, ARRAY_SIZE(units), s, 1);
	if (!u || scale(&d, u->mult, bytes))
		return -1;
	return 0;
}

int pipefile_parse_cpu(const char *s, long long *milli)
{
	struct decimal d;
	long long v;

	if (parse_decimal(&s, &d))
		return -1;
	if (!strcmp(s, "m")) {
		if (d.num)
			return -1; /* "2.5m": less than a millicore */
		v = d.whole;
	} else if (*s || (d.num * 1000) % d.den || scale(&d, 1000, &v)) {
		return -1;
	}
	if (v <= 0)
		return -1;
	*milli = v;
	return 0;
}

int pipefile_edit_distance(const char *a, const char *b, int max)
{
	int prev[65], cur[65];
	int na = (int)strlen(a), nb = (int)strlen(b);

	if (na > 64 || nb > 64 || na - nb > max || nb - na > max)
		return max + 1;
	for (int j = 0; j <= nb; j++)
		prev[j] = j;
	for (int i = 1; i <= na; i++) {
		int best = cur[0] = i;

		for (int j = 1; j <= nb; j++) {
			int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			int del = prev[j] + 1, ins = cur[j - 1] + 1;

			cur[j] = sub < del ? sub : del;
			if (ins < cur[j])
				cur[j] = ins;
			if (cur[j] < best)
				best = cur[j];
		}
		if (best > max)
			return max + 1;
		memcpy(prev, cur, sizeof(cur));
	}
	return prev[nb] > max ? max + 1 : prev[nb];
}
