/*
 * pg_floor: the least a login on pam_mfa's PostgreSQL store can cost,
 * written with libpq: for each name, one connection, the SELECT a login
 * makes before the prompt, the version-checked UPDATE it makes after, and
 * the goodbye. The statements, their parameter types and the result format
 * (binary) are pam_mfa's; the row written back is the one read, so it has
 * the stored size.
 *
 *   pg_floor CONNINFO NAME...
 *
 * Prints `ready`, waits for a line on stdin (so that two copies start
 * together), then one line per name and one at the end:
 *
 *   sample CONNECT SELECT UPDATE CLOSE   nanoseconds of each step
 *   span START END                       CLOCK_MONOTONIC around the loop
 *
 * Exits 1 at the first failure, saying what failed on stderr.
 *
 * Built by pam-mfa-bench with
 * `cc -O2 -I$(pg_config --includedir) -o pg_floor pg_floor.c -lpq`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

/* pam_mfa's statements (mfa-core/src/store/postgres.rs). */
static const char SELECT_ROW[] =
	"SELECT version, key_generation, sealed FROM pam_mfa_records WHERE name = $1";
static const char UPDATE_ROW[] =
	"UPDATE pam_mfa_records SET version = $3, key_generation = $4, sealed = $5, "
	"updated_at = now(), updated_by = $6 WHERE name = $1 AND version = $2";

/* Type OIDs, as pam_mfa's prepare_typed names them. */
#define TEXTOID 25
#define INT8OID 20
#define INT4OID 23
#define BYTEAOID 17

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint64_t get_be(const char *p, int len)
{
	uint64_t v = 0;
	for (int i = 0; i < len; i++)
		v = v << 8 | (unsigned char)p[i];
	return v;
}

static void put_be(char *p, uint64_t v, int len)
{
	for (int i = len - 1; i >= 0; i--) {
		p[i] = (char)(v & 0xff);
		v >>= 8;
	}
}

static int fail(PGconn *conn, const char *what, const char *name)
{
	fprintf(stderr, "pg_floor: %s for %s: %s", what, name,
		conn ? PQerrorMessage(conn) : "out of memory\n");
	PQfinish(conn);
	return 1;
}

/* One login's statements on a fresh connection; fills the four steps. */
static int login(const char *conninfo, const char *name, uint64_t step[4])
{
	uint64_t t0 = now_ns();
	PGconn *conn = PQconnectdb(conninfo);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
		return fail(conn, "connect", name);
	uint64_t t1 = now_ns();

	const Oid select_types[1] = { TEXTOID };
	const char *select_values[1] = { name };
	PGresult *row = PQexecParams(conn, SELECT_ROW, 1, select_types,
				     select_values, NULL, NULL, 1);
	if (PQresultStatus(row) != PGRES_TUPLES_OK || PQntuples(row) != 1 ||
	    PQgetlength(row, 0, 0) != 8 || PQgetlength(row, 0, 1) != 4) {
		PQclear(row);
		return fail(conn, "SELECT (no such row?)", name);
	}
	uint64_t t2 = now_ns();

	char expected[8], next[8];
	memcpy(expected, PQgetvalue(row, 0, 0), 8);
	put_be(next, get_be(expected, 8) + 1, 8);
	const Oid update_types[6] = { TEXTOID, INT8OID, INT8OID,
				      INT4OID, BYTEAOID, TEXTOID };
	const char *update_values[6] = { name, expected, next,
					 PQgetvalue(row, 0, 1),
					 PQgetvalue(row, 0, 2), "pg_floor" };
	const int lengths[6] = { 0, 8, 8, 4, PQgetlength(row, 0, 2), 0 };
	const int formats[6] = { 0, 1, 1, 1, 1, 0 };
	PGresult *done = PQexecParams(conn, UPDATE_ROW, 6, update_types,
				      update_values, lengths, formats, 1);
	int changed = PQresultStatus(done) == PGRES_COMMAND_OK &&
		      strcmp(PQcmdTuples(done), "1") == 0;
	PQclear(done);
	PQclear(row);
	if (!changed)
		return fail(conn, "UPDATE", name);
	uint64_t t3 = now_ns();

	PQfinish(conn);
	uint64_t t4 = now_ns();
	step[0] = t1 - t0;
	step[1] = t2 - t1;
	step[2] = t3 - t2;
	step[3] = t4 - t3;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s CONNINFO NAME...\n", argv[0]);
		return 2;
	}
	printf("ready\n");
	fflush(stdout);
	char go[16];
	if (fgets(go, sizeof go, stdin) == NULL) {
		fprintf(stderr, "pg_floor: no start signal on stdin\n");
		return 2;
	}
	uint64_t start = now_ns();
	for (int i = 2; i < argc; i++) {
		uint64_t step[4];
		if (login(argv[1], argv[i], step) != 0)
			return 1;
		printf("sample %llu %llu %llu %llu\n",
		       (unsigned long long)step[0], (unsigned long long)step[1],
		       (unsigned long long)step[2], (unsigned long long)step[3]);
	}
	uint64_t end = now_ns();
	printf("span %llu %llu\n", (unsigned long long)start,
	       (unsigned long long)end);
	return fflush(stdout) == 0 ? 0 : 1;
}
