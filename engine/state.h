/* What pipe recorded about each stage's last successful run (.pipe/state):
 * its key and the parts the key was made of, so that staleness can be
 * explained component by component. Versioned, checksummed, written
 * atomically; a truncated or corrupt file is detected and ignored (every
 * stage is then "never run"), never trusted. */
#ifndef ENGINE_STATE_H
#define ENGINE_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "util/arena.h"
#include "util/error.h"
#include "util/hash.h"

struct state_file { /* one file under an input or output */
	char *path;
	struct hash128 hash;
};

struct state_path {		  /* one declared input or output */
	char *path;		  /* as declared (normalized) */
	struct hash128 hash;	  /* combined hash of everything under it */
	unsigned long long bytes; /* size of the files; not saved */
	struct state_file *files; /* of a loaded record: see
				   * state_path_files */
	/* private: the 'f' lines of a loaded record, still unparsed (in the
	 * state's arena) */
	char *files_raw;
	uint32_t files_nr, files_alloc;
	uint32_t files_raw_len; /* a record with more is refused (corrupt) */
	unsigned missing : 1;	/* declared but absent (inputs only) */
	/* private: the one 'f' line of a loaded record is this plain file
	 * itself (its path and hash): not kept, made again when needed */
	unsigned single : 1;
};

struct state_kv {
	char *key;
	char *value; /* env: hash hex; params: the value text */
};

/* One datum of a `datums:` stage: its match, its content, its own key,
 * and the files it put into the stage's output folder. */
struct state_datum {
	char *path;
	struct hash128 content;
	struct hash128 key;
	char **files; /* relative to the output folder */
	size_t files_nr, files_alloc;
};

/* 176 bytes: 100,000 of them are loaded by a status of 100,000 stages. */
struct stage_record {
	char *name;
	struct hash128 key;
	struct hash128 cmd; /* hash of the command (kind + text) */
	char *executor;
	char *image;  /* resolved image id, or NULL */
	char *datums; /* datums glob, or NULL */
	struct state_kv *env, *params, *matrix;
	struct state_path *inputs, *outputs;
	uint32_t env_nr, params_nr, matrix_nr;
	uint32_t inputs_nr, outputs_nr;
	unsigned has_files : 1; /* inputs carry file lists; not saved */
	/* private: a record loaded from the file (or put, or read back),
	 * whose strings and arrays (not its file and datum lists) live in
	 * one of the state's arenas; stage_record_free leaves them to it */
	unsigned loaded : 1;
	unsigned pending : 1; /* put since the last save (state_save) */
	struct state_datum *datum_list; /* sorted by path */
	size_t datum_nr, datum_alloc;
	unsigned long long bytes_in; /* input bytes; not saved */
	long long started_ms;	     /* unix time */
	long long duration_ms;
};

/* One stage's place in the state (24 bytes, and 8 of pointer to it in
 * the sorted array): its record held in memory
 * (loaded from the file, or put and not yet saved), or once saved a stub
 * saying where its bytes are in the file or the journal, read back when
 * asked for. A stub only ever points at whole, fsynced bytes that stay
 * as they are: a batch of the journal below its checksum, or the file;
 * a fold points every stub into the new file. */
struct state_ent {
	const char *name; /* in the state's name pool */
	union {
		struct stage_record *rec; /* held */
		uint64_t off;		  /* a stub: where its bytes start */
	} u;
	uint32_t len;	      /* a stub's bytes */
	unsigned stub : 1;    /* u.off and len, not u.rec */
	unsigned journal : 1; /* a stub's bytes are in the journal */
};

struct state {
	char *path;
	struct state_ent **recs; /* sorted by name; a put inserts a pointer
				  * (8 bytes moved, not 24) */
	size_t nr, alloc;
	/* private: the records held (loaded, put since the last save), their
	 * strings, arrays and unparsed file lists; a save that stubs them
	 * all releases them */
	struct arena arena, put_arena;
	struct arena names; /* the stages' names, each once */
	struct arena ents;  /* the entries, each once */
	/* private: the one stub read back (state_find), in its own arena */
	struct stage_record *back;
	const char *back_name;
	struct arena back_arena;
	int rfd[2]; /* the file and the journal read by stubs, plus one
		     * (0: not open), so a zeroed state is a valid one */
	/* private: the journal beside the file (state_save) */
	char base[HASH_HEX_LEN + 1];  /* the checksum of the file the journal
				       * extends; "" when there is none */
	size_t file_len, journal_len; /* journal_len: its whole batches */
	const char **pending;	      /* names put since the last save
				       * (borrowed from the pool) */
	size_t pending_nr, pending_alloc;
	int full; /* the next save writes the whole file */
};

/* Load path; a missing file gives an empty state. A corrupt or truncated
 * one is reported with log_warn and treated as empty. Fails only on I/O
 * errors (EXIT_ENV). */
int state_load(struct state **out, const char *path, struct error *err);
void state_free(struct state *st);

/* The record of stage name, or NULL (borrowed). A record held (loaded,
 * or put and not yet saved) is valid until the next put or drop of that
 * stage or the next save, which may leave it saved and not held; a saved
 * one is read back from the file or the journal (pread, parse) into one
 * slot, valid until a record of another stage is read back, or that
 * stage is put or dropped: asking for each stage in turn holds one record
 * at a time, never all. A stub whose bytes cannot be read back gives
 * NULL (the stage is then never run: stale, never fresh) and a warning. */
struct stage_record *state_find(const struct state *st, const char *name);

/* Insert or replace (takes ownership of rec, and frees it: the record is
 * held as a load gives it, in the state's arena with its file lists
 * unparsed, until it is saved); drop removes a record. */
void state_put(struct state *st, struct stage_record *rec);
void state_drop(struct state *st, const char *name);

/* Save the records put since the last save, O(records put): appended to
 * the journal <path>.journal as one batch with its checksum, and fsynced
 * (the folder too when the journal is new). The whole file is written
 * instead (temp + fsync + rename + fsync folder; the journal goes) when
 * there is no file to extend, a record was dropped, or the journal would
 * outgrow an eighth of the file: streamed through a 64 KB buffer, a saved
 * record's bytes copied as they are. Once saved, a record is held no
 * more: its entry becomes a stub (and the records loaded at the start go
 * at the first whole file). On failure every record stays held. */
int state_save(struct state *st, struct error *err);

void stage_record_free(struct stage_record *rec);

/* Make p->files of a loaded record usable. A record's file lists are read
 * from the state file only when first needed: a no-op status compares the
 * combined hashes and never looks at the 100,000 files under its inputs.
 * Logically const: the list is parsed in place. Returns -1 (and an empty
 * list) when the lines are malformed. */
int state_path_files(const struct state_path *p);

/* The datum of rec whose match is path (binary search), or NULL. */
const struct state_datum *state_find_datum(const struct stage_record *rec,
					   const char *path);
void state_datums_free(struct state_datum *v, size_t n);

/* Serialize / parse, exposed for tests and fuzzing (a stub is copied as
 * it was saved). state_parse returns -1 (and no records) on any malformed
 * or truncated input. */
void state_serialize(const struct state *st, struct strbuf *out);
int state_parse(struct state *st, const char *buf, size_t len);

#endif
