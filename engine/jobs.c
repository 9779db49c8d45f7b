/* The job log: a version line, then one tab-separated record per line,
 * each ending in a checksum of the rest of the line. */
#include "engine/jobs.h"
#include "util/hash.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define JOBS_MAGIC "pipe-jobs 1\n"
#define JOBS_FIELDS 12

void jobs_new_id(const char *stage, char *out)
{
	struct hasher *h = hasher_new();
	struct timespec ts;
	struct hash128 v;
	char hex[HASH_HEX_LEN + 1];
	static unsigned long counter;
	pid_t pid = getpid();

	clock_gettime(CLOCK_REALTIME, &ts);
	hasher_add(h, &ts, sizeof(ts));
	hasher_add(h, &pid, sizeof(pid));
	hasher_add(h, &counter, sizeof(counter));
	counter++;
	hasher_add_str(h, stage);
	hasher_final(h, &v);
	hasher_free(h);
	hash_to_hex(&v, hex);
	memcpy(out, hex, JOB_ID_LEN);
	out[JOB_ID_LEN] = '\0';
}

/* Fields never hold tabs or newlines: stage names and paths are checked
 * by the parser; anything else is replaced. */
static void add_field(struct strbuf *sb, const char *s)
{
	if (sb->len)
		strbuf_addch(sb, '\t');
	for (; s && *s; s++)
		strbuf_addch(sb, *s == '\t' || *s == '\n' ? ' ' : *s);
}

static void add_num(struct strbuf *sb, unsigned long long v)
{
	strbuf_addf(sb, "\t%llu", v);
}

int jobs_append(const char *path, const struct job_rec *j, struct error *err)
{
	struct strbuf sb = STRBUF_INIT;
	struct hash128 sum;
	char hex[HASH_HEX_LEN + 1];
	struct stat st;
	int fd, ret = 0;

	add_field(&sb, j->id);
	add_field(&sb, j->stage);
	add_field(&sb, j->commit);
	add_field(&sb, j->state);
	add_field(&sb, j->log);
	add_num(&sb, (unsigned long long)j->started_ms);
	add_num(&sb, (unsigned long long)j->duration_ms);
	add_num(&sb, j->processed);
	add_num(&sb, j->skipped);
	add_num(&sb, j->total);
	add_num(&sb, j->bytes_in);
	add_num(&sb, j->bytes_out);
	hash_buf(sb.buf, sb.len, &sum);
	hash_to_hex(&sum, hex);
	strbuf_addf(&sb, "\t%s\n", hex);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0 || fstat(fd, &st) ||
	    (st.st_size == 0 &&
	     write(fd, JOBS_MAGIC, strlen(JOBS_MAGIC)) < 0) ||
	    write(fd, sb.buf, sb.len) != (ssize_t)sb.len)
		ret = error_set(err, EXIT_ENV, "cannot write '%s': %s", path,
				strerror(errno));
	if (fd >= 0)
		close(fd);
	strbuf_release(&sb);
	return ret;
}

static int parse_line(char *line, struct job_rec *j)
{
	char *f[JOBS_FIELDS + 1];
	struct hash128 want, got;
	char *last = strrchr(line, '\t');
	int n = 0;

	if (!last || hash_from_hex(last + 1, &want))
		return -1;
	hash_buf(line, (size_t)(last - line), &got);
	if (!hash_equal(&want, &got))
		return -1;
	*last = '\0';
	for (char *p = line; p && n <= JOBS_FIELDS; n++) {
		f[n] = p;
		p = strchr(p, '\t');
		if (p)
			*p++ = '\0';
	}
	if (n != JOBS_FIELDS || strlen(f[0]) != JOB_ID_LEN)
		return -1;
	memcpy(j->id, f[0], JOB_ID_LEN + 1);
	j->stage = xstrdup(f[1]);
	j->commit = xstrdup(f[2]);
	j->state = xstrdup(f[3]);
	j->log = xstrdup(f[4]);
	j->started_ms = atoll(f[5]);
	j->duration_ms = atoll(f[6]);
	j->processed = strtoull(f[7], NULL, 10);
	j->skipped = strtoull(f[8], NULL, 10);
	j->total = strtoull(f[9], NULL, 10);
	j->bytes_in = strtoull(f[10], NULL, 10);
	j->bytes_out = strtoull(f[11], NULL, 10);
	return 0;
}

int jobs_load(const char *path, struct job_rec **out, size_t *nr,
	      struct error *err)
{
	struct strbuf sb = STRBUF_INIT;
	struct job_rec *v = NULL;
	size_t n = 0, alloc = 0;
	char *p;

	*out = NULL;
	*nr = 0;
	if (strbuf_read_file(&sb, path, 0)) {
		strbuf_release(&sb);
		if (errno == ENOENT)
			return 0;
		return error_set(err, EXIT_ENV, "cannot read '%s': %s", path,
				 strerror(errno));
	}
	if (strncmp(sb.buf, JOBS_MAGIC, strlen(JOBS_MAGIC))) {
		strbuf_release(&sb);
		return 0; /* foreign or corrupt: no jobs */
	}
	for (p = sb.buf + strlen(JOBS_MAGIC); *p;) {
		char *nl = strchr(p, '\n');

		if (!nl)
			break; /* a torn last line */
		*nl = '\0';
		ALLOC_GROW(v, n + 1, alloc);
		memset(&v[n], 0, sizeof(v[n]));
		if (!parse_line(p, &v[n]))
			n++;
		p = nl + 1;
	}
	strbuf_release(&sb);
	*out = v;
	*nr = n;
	return 0;
}

void jobs_free(struct job_rec *v, size_t nr)
{
	for (size_t i = 0; i < nr; i++) {
		free(v[i].stage);
		free(v[i].commit);
		free(v[i].state);
		free(v[i].log);
	}
	free(v);
}

void jobs_datum_log_name(struct strbuf *out, const char *datum)
{
	for (const char *p = datum; *p; p++) {
		if (*p == '/')
			strbuf_addstr(out, "%2F");
		else if (*p == '%')
			strbuf_addstr(out, "%25");
		else
			strbuf_addch(out, *p);
	}
	strbuf_addstr(out, ".log");
}

char *jobs_datum_of_log(const char *name)
{
	struct strbuf sb = STRBUF_INIT;
	size_t n = strlen(name);

	if (n < 4 || strcmp(name + n - 4, ".log"))
		return NULL;
	for (size_t i = 0; i < n - 4; i++) {
		if (!strncmp(name + i, "%2F", 3)) {
			strbuf_addch(&sb, '/');
			i += 2;
		} else if (!strncmp(name + i, "%25", 3)) {
			strbuf_addch(&sb, '%');
			i += 2;
		} else {
			strbuf_addch(&sb, name[i]);
		}
	}
	return strbuf_detach(&sb, NULL);
}
