/* dlopen and dlsym with pipe's errors. */
#include "util/dl.h"
#include "util/error.h"

#include <dlfcn.h>
#include <string.h>

void *dl_open(const char *soname, const char *package, struct error *err)
{
	void *lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);

	if (!lib)
		error_set(err, EXIT_ENV, "cannot load %s: %s (install %s)",
			  soname, dlerror(), package);
	return lib;
}

int dl_sym(void *lib, const char *soname, const char *name, void *slot,
	   struct error *err)
{
	void *p = dlsym(lib, name);

	if (!p)
		return error_set(err, EXIT_ENV, "cannot load %s: no '%s' in it",
				 soname, name);
	/* POSIX's way to turn dlsym's answer into a function pointer */
	memcpy(slot, &p, sizeof(p));
	return 0;
}
