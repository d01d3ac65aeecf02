/*
 * load: what loading a PAM module costs a C program, such as sshd or sudo,
 * which load the modules of a service in pam_start and unload them in
 * pam_end, in a new process for every login.
 *
 *   load REPS MODULE [LIBRARY]...
 *
 * Loads libpam.so.0 once (RTLD_GLOBAL, as the modules expect libpam's
 * symbols) and each LIBRARY the same way (to see what the module costs
 * where they are loaded already), then opens MODULE with dlopen(RTLD_NOW)
 * and closes it with dlclose once untimed and REPS times timed. Prints, one
 * per line:
 *
 *   loaded PATH       an object the first dlopen added to the process
 *                     (the module and whichever of its dependencies the
 *                     program did not have yet)
 *   kept PATH         an object the dlopen added that dlclose left loaded
 *   sample OPEN CLOSE one timed dlopen and dlclose, in nanoseconds
 *   dlopen median X us, p99 Y us  (and dlclose, sum): for people
 *
 * The program itself is C and links only libc, so, unlike a Rust program,
 * it has no libgcc_s.so.1 loaded before the module.
 *
 * Built by pam-mfa-bench with `cc -O2 -o load load.c -ldl`.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_OBJECTS 512

/* The names of the objects loaded in this process. */
struct objects {
	size_t count;
	char *names[MAX_OBJECTS];
};

static int add_object(struct dl_phdr_info *info, size_t size, void *data)
{
	struct objects *list = data;
	(void)size;
	if (list->count == MAX_OBJECTS || info->dlpi_name == NULL ||
	    info->dlpi_name[0] == '\0')
		return 0;
	list->names[list->count] = strdup(info->dlpi_name);
	if (list->names[list->count] != NULL)
		list->count++;
	return 0;
}

static void snapshot(struct objects *list)
{
	list->count = 0;
	dl_iterate_phdr(add_object, list);
}

static int contains(const struct objects *list, const char *name)
{
	for (size_t i = 0; i < list->count; i++)
		if (strcmp(list->names[i], name) == 0)
			return 1;
	return 0;
}

static void release(struct objects *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->names[i]);
	list->count = 0;
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Median (mean of the two middle samples for an even count) and 99th
 * percentile (nearest rank), as pam-mfa-bench computes them. Sorts. */
static void summary(const char *what, uint64_t *ns, size_t n)
{
	qsort(ns, n, sizeof *ns, by_value);
	double median = n % 2 ? (double)ns[n / 2]
			      : ((double)ns[n / 2 - 1] + (double)ns[n / 2]) / 2;
	size_t rank = (n * 99 + 99) / 100;
	printf("%s median %.1f us, p99 %.1f us\n", what, median / 1000,
	       (double)ns[(rank ? rank : 1) - 1] / 1000);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s REPS MODULE [LIBRARY]...\n", argv[0]);
		return 2;
	}
	char *end;
	errno = 0;
	unsigned long reps = strtoul(argv[1], &end, 10);
	if (errno || *end || reps == 0 || reps > 10000000) {
		fprintf(stderr, "load: REPS must be a number from 1 to 10000000\n");
		return 2;
	}
	const char *module = argv[2];
	if (dlopen("libpam.so.0", RTLD_NOW | RTLD_GLOBAL) == NULL) {
		fprintf(stderr, "load: %s\n", dlerror());
		return 1;
	}
	for (int i = 3; i < argc; i++) {
		if (dlopen(argv[i], RTLD_NOW | RTLD_GLOBAL) == NULL) {
			fprintf(stderr, "load: %s\n", dlerror());
			return 1;
		}
	}
	uint64_t *open_ns = calloc(reps, sizeof *open_ns);
	uint64_t *close_ns = calloc(reps, sizeof *close_ns);
	uint64_t *sum_ns = calloc(reps, sizeof *sum_ns);
	static struct objects before, loaded, after;
	if (open_ns == NULL || close_ns == NULL || sum_ns == NULL) {
		fprintf(stderr, "load: out of memory\n");
		return 1;
	}

	/* The untimed first round: what the dlopen adds, what dlclose keeps. */
	snapshot(&before);
	void *handle = dlopen(module, RTLD_NOW);
	if (handle == NULL) {
		fprintf(stderr, "load: %s\n", dlerror());
		return 1;
	}
	snapshot(&loaded);
	if (dlclose(handle) != 0) {
		fprintf(stderr, "load: dlclose: %s\n", dlerror());
		return 1;
	}
	snapshot(&after);
	for (size_t i = 0; i < loaded.count; i++) {
		if (contains(&before, loaded.names[i]))
			continue;
		printf("loaded %s\n", loaded.names[i]);
		if (contains(&after, loaded.names[i]))
			printf("kept %s\n", loaded.names[i]);
	}
	release(&before);
	release(&loaded);
	release(&after);

	for (unsigned long i = 0; i < reps; i++) {
		uint64_t t0 = now_ns();
		handle = dlopen(module, RTLD_NOW);
		uint64_t t1 = now_ns();
		if (handle == NULL) {
			fprintf(stderr, "load: %s\n", dlerror());
			return 1;
		}
		if (dlclose(handle) != 0) {
			fprintf(stderr, "load: dlclose: %s\n", dlerror());
			return 1;
		}
		uint64_t t2 = now_ns();
		open_ns[i] = t1 - t0;
		close_ns[i] = t2 - t1;
		sum_ns[i] = t2 - t0;
		printf("sample %llu %llu\n", (unsigned long long)open_ns[i],
		       (unsigned long long)close_ns[i]);
	}
	summary("dlopen", open_ns, reps);
	summary("dlclose", close_ns, reps);
	summary("dlopen + dlclose", sum_ns, reps);
	free(open_ns);
	free(close_ns);
	free(sum_ns);
	return fflush(stdout) == 0 ? 0 : 1;
}
