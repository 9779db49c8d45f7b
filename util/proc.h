/* Run a helper program to its end and collect what it prints: Kubernetes
 * exec credential plugins and Docker credential helpers. Not for stages
 * (those run on the executors' loop). */
#ifndef UTIL_PROC_H
#define UTIL_PROC_H

#include <stddef.h>

#include "util/error.h"
#include "util/strbuf.h"

struct proc_run {
	char *const *argv; /* argv[0] looked up on PATH unless it has a '/' */
	char *const *env;  /* "KEY=VALUE" added to (or replacing in) pipe's
			    * environment, NULL-terminated; may be NULL */
	const char *dir;   /* working folder; NULL: pipe's */
	const char *in;	   /* written to its stdin, then closed; NULL:
			    * stdin is /dev/null */
	size_t in_len;
	int keep_stdin;	 /* 1: stdin is pipe's own (an interactive
			  * plugin); in must be NULL */
	long timeout_ms; /* then SIGKILL; 0: 60 s */
	size_t max_out;	 /* stdout kept up to this many bytes; more is an
			  * error; 0: 4 MiB */
};

/* Run it and wait. stdout into out, the first 4 KiB of stderr into errout
 * (may be NULL). Returns the exit status (0-255), or -1 with err set when
 * it could not be started, was killed by a signal, timed out, or printed
 * more than max_out (EXIT_ENV; the message names argv[0], never what it
 * printed or was given). A signal delivered to pipe (EINTR) does not
 * abort the wait. */
int proc_capture(const struct proc_run *r, struct strbuf *out,
		 struct strbuf *errout, struct error *err);

#endif
